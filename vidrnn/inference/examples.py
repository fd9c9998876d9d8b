"""The example inputs a checkpoint brings with it: the test split of the data it was trained on,
when those files exist on this machine (``vidrnn serve`` offers them beside the upload).
"""

from __future__ import annotations

import logging
from pathlib import Path

from vidrnn.errors import VidrnnError

log = logging.getLogger(__name__)

__all__ = ["example_files"]


def example_files(info, *, limit: int = 30) -> list[dict]:
    """Up to ``limit`` test-split files of a classifier or captioner checkpoint.

    Args:
        info: a loaded model's ``model.vidrnn`` metadata.
        limit: most files returned.

    Returns:
        ``[{"name", "path", "label"}]``: ``name`` is the file name with its folder (the class
        folder of folder datasets), ``label`` the true class or the first reference caption
        (``None`` when unknown). Empty for generated data (Moving Digits), for forecasters (their
        examples are windows, :class:`vidrnn.inference.forecast.ForecastPredictor`) and when
        the data is not on this machine (logged, not raised).
    """
    try:
        if info.task == "classification" and info.data.get("source") not in (None, "digits"):
            from vidrnn.data.datamodule import resolve_annotations

            splits, _ = resolve_annotations(dict(info.data))
            classes = list(info.class_names)
            items = [(s.path, classes[s.label] if 0 <= s.label < len(classes) else None) for s in splits.get("test", [])]
        elif info.task == "captioning":
            from vidrnn.data.caption_datamodule import test_items

            items = [(it.path, it.captions[0] if it.captions else None) for it in test_items(dict(info.data))]
        else:
            return []
    except (VidrnnError, FileNotFoundError, OSError, ValueError) as e:
        log.info("no example files for %s: %s", info.name, e)
        return []
    out, seen = [], set()
    for path, label in items:
        p = Path(path)
        if p in seen or not p.is_file():
            continue
        seen.add(p)
        out.append({"name": f"{p.parent.name}/{p.name}", "path": str(p), "label": label})
        if len(out) >= limit:
            break
    return out
