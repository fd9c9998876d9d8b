"""Fusion search and report for a trained fusion template (Zhou et al. 2020, section 3.3).

:func:`fusion_search` samples strategies from the template's learned path probabilities,
scores each on the validation split with the template's own weights (no retraining), ranks
them, and writes the best as a config that fine-tunes it (``vidrnn fit -c best_strategy.yaml``,
initialised from the template's weights). :func:`fusion_report` draws the per-layer unit
probabilities.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vidrnn.errors import ConfigError
from vidrnn.inference.checkpoint import load_task, read_checkpoint
from vidrnn.io.files import write_json, write_text

__all__ = ["fusion_search", "fusion_report"]


def _template(checkpoint: str | os.PathLike):
    from vidrnn.models.fusion_template import FusionTemplate

    ck = read_checkpoint(checkpoint)
    task = load_task(checkpoint, checkpoint=ck)
    model = task.model
    if not isinstance(model, FusionTemplate) or not model.search:
        raise ConfigError(f"{checkpoint}: not a fusion template checkpoint (model {ck['hyper_parameters']['model_name']!r}"
                          f"{' with a fixed strategy' if isinstance(model, FusionTemplate) else ''}); train one with "
                          "`vidrnn fit -c fusion_template_motion`")
    return ck, model.eval()


@torch.no_grad()
def _top1(model, batches) -> float:
    from vidrnn.models.base import average_views

    correct = total = 0
    for b in batches:
        if len(b["label"]) == 0:
            continue
        logp = average_views(model(b["video"]).logits, b["views"])
        correct += int((logp.argmax(-1) == b["label"]).sum())
        total += len(b["label"])
    return correct / max(1, total)


def fusion_search(checkpoint: str | os.PathLike, *, num_samples: int = 100, seed: int = 0,
                  out: str | os.PathLike | None = None, config: str | os.PathLike | None = None,
                  overrides: Sequence[str] = ()) -> dict:
    """Sample ``num_samples`` strategies from a trained template, score them on its validation
    split, and write ``fusion_search.json`` (the ranking, every preset the unit set allows
    scored the same way for reference) and ``best_strategy.yaml`` in ``out`` (default: beside
    the checkpoint's ``checkpoints`` folder).

    Returns:
        ``{"ranking": [{"strategy", "val_top1", "draws"}...], "presets": {name: val_top1},
        "best": triplets, "json": path, "config": path, "samples": n}``.

    Raises:
        ConfigError: not a template checkpoint, ``num_samples < 1``, or a data setting error.
        FileExistsError: ``out`` already holds a search (nothing is overwritten).
    """
    from vidrnn.config import load_config
    from vidrnn.models.fusion_template import PRESETS, preset_triplets
    from vidrnn.runner import build_datamodule

    if num_samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {num_samples}")
    checkpoint = Path(checkpoint).resolve()
    ck, model = _template(checkpoint)
    hp = ck["hyper_parameters"]
    base = dict(hp.get("config") or {"data": dict(hp.get("data") or {})})
    base["model"] = {**(base.get("model") or {}), "name": hp["model_name"]}
    cfg = load_config(config, overrides, saved=base)
    out = Path(out) if out else checkpoint.parent.parent / "fusion_search"
    if (out / "fusion_search.json").exists():
        raise FileExistsError(f"{out / 'fusion_search.json'} exists; pass another --out")
    dm = build_datamodule(cfg, only="val")
    if "val" not in dm.splits:
        raise ConfigError("the template's data has no validation split to score strategies on")
    batches = list(dm.val_dataloader())
    rng = np.random.default_rng(seed)
    scores: dict[str, dict] = {}
    for _ in range(num_samples):
        s = model.sample_strategy(rng)
        key = json.dumps(s)
        if key not in scores:
            model.from_triplets(s)
            scores[key] = {"strategy": s, "val_top1": _top1(model, batches), "draws": 0}
        scores[key]["draws"] += 1
    presets = {}
    for name in PRESETS:
        units = name.removeprefix("all-").split("+")
        if all(u in model.unit_set for u in units):
            model.from_triplets(preset_triplets(name, model.layers_per_stage))
            presets[name] = _top1(model, batches)
    ranking = sorted(scores.values(), key=lambda r: (-r["val_top1"], -r["draws"]))
    best = ranking[0]["strategy"]
    out.mkdir(parents=True, exist_ok=True)
    result = {"checkpoint": str(checkpoint), "samples": num_samples, "distinct": len(scores), "seed": seed,
              "presets": presets, "ranking": ranking, "best": best}
    write_json(out / "fusion_search.json", result)
    best_cfg = {k: v for k, v in cfg.items() if k not in ("run",)}
    best_cfg["model"] = {**cfg["model"], "strategy": best, "weights": str(checkpoint), "warmup_epochs": 0}
    import yaml

    write_text(out / "best_strategy.yaml", "# The best strategy of `vidrnn fusion-search` (val top-1 "
               f"{ranking[0]['val_top1']:.3f} with the template's weights), initialised from\n# {checkpoint}\n"
               + yaml.safe_dump(best_cfg, sort_keys=False))
    return {**result, "json": str(out / "fusion_search.json"), "config": str(out / "best_strategy.yaml")}


def fusion_report(checkpoint: str | os.PathLike, out: str | os.PathLike | None = None) -> dict:
    """Draw the template's per-layer unit probabilities (``1 - sqrt(p)``): ``fusion_bars.png``
    and ``fusion_heatmap.png`` in ``out`` (default: beside the checkpoint's folder), and
    ``fusion_marginals.json``.

    Returns:
        ``{"marginals": [...], "bars": path, "heatmap": path, "json": path}``.
    """
    from vidrnn.viz.fusion import fusion_bars, fusion_heatmap

    checkpoint = Path(checkpoint).resolve()
    ck, model = _template(checkpoint)
    out = Path(out) if out else checkpoint.parent.parent / "fusion_report"
    out.mkdir(parents=True, exist_ok=True)
    marginals = model.marginals()
    name = ck["hyper_parameters"]["model_name"]
    bars = fusion_bars(marginals, out / "fusion_bars.png", title=f"{name}: P(unit used) per layer")
    heat = fusion_heatmap(marginals, out / "fusion_heatmap.png", title=f"{name}: unit preferences")
    write_json(out / "fusion_marginals.json", marginals)
    return {"marginals": marginals, "bars": str(bars), "heatmap": str(heat), "json": str(out / "fusion_marginals.json")}
