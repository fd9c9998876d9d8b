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

__all__ = ["fusion_search", "fusion_report", "preference_summary"]


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


def preference_summary(marginals: list[dict], layers_per_stage: Sequence[int]) -> dict:
    """Per unit, the mean marginal probability over all layers, over the first stage's layers
    ("low") and over the last stage's ("high"), and each layer's most probable unit: the numbers
    behind the paper's reading of its figure (S+ST low, ST high).

    Returns:
        ``{"units": {u: {"mean", "low", "high"}}, "preferred": [unit per layer]}``.
    """
    n = len(marginals)
    low = set(range(layers_per_stage[0])) if len(layers_per_stage) > 1 else set(range(n // 2))
    high = set(range(n - layers_per_stage[-1], n)) if len(layers_per_stage) > 1 else set(range(n // 2, n))
    units = list(marginals[0]["units"]) if marginals else []

    def mean(u, layers):
        vals = [m["units"][u] for m in marginals if m["layer"] in layers]
        return float(np.mean(vals)) if vals else float("nan")

    return {"units": {u: {"mean": mean(u, set(range(n))), "low": mean(u, low), "high": mean(u, high)} for u in units},
            "preferred": [max(m["units"], key=m["units"].get) for m in marginals]}


def fusion_report(checkpoints: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike | None = None,
                  labels: Sequence[str] | None = None) -> dict:
    """Draw the per-layer unit probabilities (``1 - sqrt(p)``) of one template or compare several
    (e.g. one trained on a motion task, one on an appearance task).

    One checkpoint: ``fusion_bars.png``, ``fusion_heatmap.png``, ``fusion_marginals.json`` and
    ``fusion_summary.json`` (:func:`preference_summary`) in ``out`` (default: ``fusion_report``
    beside the checkpoint's folder). Several: the same for each in ``out/<label>``, and
    ``fusion_compare.png`` (one panel per unit, the templates' bars side by side per layer) with
    ``fusion_compare.json`` in ``out`` (required).

    Args:
        labels: one name per checkpoint (default: each run directory's name).

    Returns:
        One checkpoint: ``{"marginals", "summary", "bars", "heatmap", "json"}``. Several:
        ``{"reports": {label: that dict}, "compare": path, "json": path}``.

    Raises:
        ConfigError: not a template checkpoint, several without ``out``, labels that do not
            match, or templates with different layers or unit sets.
    """
    from vidrnn.viz.fusion import fusion_bars, fusion_compare, fusion_heatmap

    single = isinstance(checkpoints, (str, os.PathLike))
    paths = [Path(c).resolve() for c in ([checkpoints] if single else checkpoints)]
    if not paths:
        raise ConfigError("fusion-report: give at least one checkpoint")
    if len(paths) > 1 and out is None:
        raise ConfigError("fusion-report: --out is required to compare several checkpoints")
    labels = list(labels) if labels else [p.parent.parent.name for p in paths]
    if len(labels) != len(paths) or len(set(labels)) != len(labels):
        raise ConfigError(f"fusion-report: {len(paths)} checkpoints need as many distinct labels, got {labels}")
    reports, shape = {}, None
    for label, checkpoint in zip(labels, paths):
        ck, model = _template(checkpoint)
        this = (tuple(model.layers_per_stage), tuple(model.unit_set))
        if shape is not None and this != shape:
            raise ConfigError(f"{checkpoint}: layers {list(this[0])} and units {list(this[1])} differ from the first "
                              f"template's ({list(shape[0])}, {list(shape[1])}); compare like with like")
        shape = this
        where = (Path(out) if out else checkpoint.parent.parent / "fusion_report") if len(paths) == 1 \
            else Path(out) / label
        where.mkdir(parents=True, exist_ok=True)
        marginals = model.marginals()
        summary = preference_summary(marginals, model.layers_per_stage)
        name = ck["hyper_parameters"]["model_name"] if len(paths) == 1 else label
        bars = fusion_bars(marginals, where / "fusion_bars.png", title=f"{name}: P(unit used) per layer")
        heat = fusion_heatmap(marginals, where / "fusion_heatmap.png", title=f"{name}: unit preferences")
        write_json(where / "fusion_marginals.json", marginals)
        write_json(where / "fusion_summary.json", summary)
        reports[label] = {"checkpoint": str(checkpoint), "marginals": marginals, "summary": summary,
                          "bars": str(bars), "heatmap": str(heat), "json": str(where / "fusion_marginals.json")}
    if len(paths) == 1:
        return reports[labels[0]]
    compare = fusion_compare({k: r["marginals"] for k, r in reports.items()}, Path(out) / "fusion_compare.png")
    write_json(Path(out) / "fusion_compare.json",
               {k: {"checkpoint": r["checkpoint"], "summary": r["summary"], "marginals": r["marginals"]}
                for k, r in reports.items()})
    return {"reports": reports, "compare": str(compare), "json": str(Path(out) / "fusion_compare.json")}
