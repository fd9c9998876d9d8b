"""``vidrnn export-yt8m``: write a vidrnn feature cache as YouTube-8M frame-level TFRecord shards.

The other direction of :mod:`vidrnn.io.yt8m`: every video of a ``vidrnn extract-features``
cache (``(T, D)`` pooled vectors) becomes one ``SequenceExample`` with ``id`` (the video's
path), ``labels`` (its class index, when the cache was made from annotated data) and one
8-bit ``rgb`` byte string per sampled frame, quantised like the dataset (:func:`quantize`:
values clipped to [-2, 2]). Tools written for YouTube-8M (its starter code, other readers) then
read vidrnn's features; ``data.source: yt8m`` reads them back (``features: [rgb]``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from vidrnn.errors import ConfigError
from vidrnn.io.yt8m import write_yt8m_frames

__all__ = ["cache_to_yt8m"]


def cache_to_yt8m(cache: str | os.PathLike, out: str | os.PathLike, *, videos_per_shard: int = 1000,
                  prefix: str = "vidrnn") -> dict:
    """Write the feature cache ``cache`` as shards ``out/<prefix>NNNN.tfrecord``.

    Args:
        cache: a ``vidrnn extract-features`` folder of pooled vectors (not ``--maps``).
        out: the output folder (new or without shards of this prefix: nothing is overwritten).
        videos_per_shard: videos per TFRecord file.
        prefix: shard file name prefix.

    Returns:
        ``{"videos", "shards", "feature_dim", "files": [...]}``.

    Raises:
        FileNotFoundError: not a feature cache. ConfigError: a cache of conv maps, or shards
        already in ``out``.
    """
    from vidrnn.data.datamodule import resolve_annotations
    from vidrnn.data.features import load_cache_meta

    meta = load_cache_meta(cache)
    if meta.get("kind") != "vector":
        raise ConfigError(f"{cache}: a cache of conv maps; YouTube-8M frame features are vectors (extract without --maps)")
    out = Path(out)
    if any(out.glob(f"{prefix}*.tfrecord")):
        raise ConfigError(f"{out} already holds {prefix}*.tfrecord shards; choose another --out (nothing is overwritten)")
    labels: dict[str, list[int]] = {}
    if meta.get("data"):
        splits, _ = resolve_annotations(meta["data"])
        for samples in splits.values():
            for s in samples:
                if s.label >= 0:
                    labels.setdefault(s.key, [int(s.label)])
    records = sorted((Path(cache) / "features").glob("*.json"))

    def videos(batch):
        for js in batch:
            info = json.loads(js.read_text())
            feats = np.load(js.with_suffix(".npy"), mmap_mode="r")
            yield {"id": info.get("path", js.stem), "labels": labels.get(js.stem, []),
                   "rgb": np.asarray(feats, dtype=np.float32)}

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(0, len(records), videos_per_shard):
        f = out / f"{prefix}{k // videos_per_shard:04d}.tfrecord"
        write_yt8m_frames(f, videos(records[k:k + videos_per_shard]), features=("rgb",))
        files.append(str(f))
    dim = int(np.load(records[0].with_suffix(".npy"), mmap_mode="r").shape[1]) if records else 0
    return {"videos": len(records), "shards": len(files), "feature_dim": dim, "files": files}
