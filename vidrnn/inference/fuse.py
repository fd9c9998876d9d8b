"""Late fusion of separately trained streams (``vidrnn fuse RGB.ckpt FLOW.ckpt [--weights 1:2]``).

Two-stream models train each stream on its own and average the class probabilities at test
time (LRCN, Donahue et al. 2015: flow weighted 2/3 in its best setting; Ng et al. 2015: the
flow network's scores fused with the RGB network's). Each checkpoint is run on the validation
and test splits of its own data settings (the RGB stream on frames, the flow stream on the flow
of the same clips), the videos are matched by their index in the split, and the fusion weight
is the given one or the one that scores best on validation (searched over 0, 0.05, ..., 1).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from vidrnn.data.clip_dataset import collate_clips
from vidrnn.data.datamodule import VideoDataModule
from vidrnn.inference.checkpoint import load_model
from vidrnn.models.base import average_views

__all__ = ["split_probabilities", "fuse_streams"]


@torch.no_grad()
def split_probabilities(model, split: str, *, batch_size: int = 8, device: str = "cpu") -> dict:
    """Video-level class probabilities of a classifier on one split of its own data settings.

    Returns:
        ``{"index": (N,) int64, "label": (N,) int64, "probs": (N, K) float32}`` over the videos
        that could be read (skipped ones are absent), in split order, and ``"keys"`` (each
        video's file and segment) for file datasets.

    Raises:
        ValueError: the data has no such split, or the model is multi-label.
    """
    info = model.vidrnn
    if info.multilabel:
        raise ValueError(f"{info.checkpoint}: late fusion here is for single-label classifiers")
    dm = VideoDataModule(dict(info.data))
    if split not in dm.splits:
        raise ValueError(f"{info.checkpoint}: its data has no {split} split (splits: {', '.join(dm.splits)})")
    model = model.to(device).eval()
    out = {"index": [], "label": [], "probs": []}
    for batch in DataLoader(dm.splits[split], batch_size=batch_size, collate_fn=collate_clips):
        if batch["video"] is None:
            continue
        logits = model(batch["video"].to(device)).logits
        out["probs"].append(average_views(logits, batch["views"]).exp().cpu())
        out["index"].append(batch["index"])
        out["label"].append(batch["label"])
    if not out["probs"]:
        raise ValueError(f"{info.checkpoint}: no video of the {split} split could be read")
    res = {k: torch.cat(v) for k, v in out.items()}
    samples = getattr(dm.splits[split], "samples", None)
    if samples is not None:  # which video each row is (files: their path and segment)
        res["keys"] = [f"{samples[i].path}@{samples[i].start}-{samples[i].end}@{samples[i].frac}"
                       for i in res["index"].tolist()]
    return res


def _matched(a: dict, b: dict, names: Sequence[str], split: str) -> tuple[torch.Tensor, ...]:
    common = sorted(set(a["index"].tolist()) & set(b["index"].tolist()))
    if not common:
        raise ValueError(f"the {split} splits of {names[0]} and {names[1]} share no video")
    pos_a = {int(i): k for k, i in enumerate(a["index"])}
    pos_b = {int(i): k for k, i in enumerate(b["index"])}
    ia, ib = [pos_a[i] for i in common], [pos_b[i] for i in common]
    if "keys" in a and "keys" in b and [a["keys"][i] for i in ia] != [b["keys"][i] for i in ib]:
        raise ValueError(f"{names[0]} and {names[1]} were trained on different data: the videos of their "
                         f"{split} splits differ")
    if not torch.equal(a["label"][ia], b["label"][ib]):
        raise ValueError(f"{names[0]} and {names[1]} were trained on different data: the labels of their "
                         f"{split} splits differ")
    return a["probs"][ia], b["probs"][ib], a["label"][ia]


def _top1(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probs.argmax(-1) == labels).float().mean())


def fuse_streams(first: str | os.PathLike, second: str | os.PathLike, *, weights: Sequence[float] | None = None,
                 batch_size: int = 8, device: str = "cpu") -> dict:
    """Evaluate the late fusion of two classifier checkpoints (e.g. RGB and flow streams).

    Args:
        first, second: the checkpoints (same classes, trained on the same videos).
        weights: ``(w_first, w_second)``; None: the second stream's share is chosen on the
            validation split among 0, 0.05, ..., 1.
        batch_size, device: for running the models.

    Returns:
        ``{"classes", "weights": [w1, w2] (summing to 1), "chosen_on": "validation"|"given",
        "val": {...}, "test": {...}}`` where each split has ``first``, ``second`` and ``fused``
        top-1 accuracy and ``videos``; ``"curve"``: validation top-1 per candidate weight.

    Raises:
        ValueError: different classes or data, bad weights, a missing split.
        FileNotFoundError, CheckpointError: a checkpoint cannot be loaded.
    """
    names = (str(first), str(second))
    a, b = load_model(first), load_model(second)
    for m in (a, b):
        if m.vidrnn.task != "classification":
            raise ValueError(f"{m.vidrnn.checkpoint}: a {m.vidrnn.task} checkpoint; fuse takes two classifiers")
    if list(a.vidrnn.class_names) != list(b.vidrnn.class_names):
        raise ValueError(f"{names[0]} and {names[1]} have different classes")
    if weights is not None:
        w = np.asarray([float(x) for x in weights])
        if len(w) != 2 or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"--weights: expected two non-negative numbers, not both 0 (e.g. 1:2), got {weights}")
        w = w / w.sum()
    res = {"classes": list(a.vidrnn.class_names), "checkpoints": list(names)}
    probs = {}
    for split in ("val", "test"):
        pa = split_probabilities(a, split, batch_size=batch_size, device=device)
        pb = split_probabilities(b, split, batch_size=batch_size, device=device)
        probs[split] = _matched(pa, pb, names, split)
    va, vb, vy = probs["val"]
    grid = np.round(np.arange(0, 1.0001, 0.05), 2)
    res["curve"] = {float(s): _top1((1 - s) * va + s * vb, vy) for s in grid}
    if weights is None:
        best = max(res["curve"].values())
        share = min((s for s, v in res["curve"].items() if v == best), key=lambda s: abs(s - 0.5))  # ties: balanced
        w = np.array([1 - share, share])
        res["chosen_on"] = "validation"
    else:
        res["chosen_on"] = "given"
    res["weights"] = [float(w[0]), float(w[1])]
    for split, (pa, pb, y) in probs.items():
        res[split] = {"videos": len(y), "first": _top1(pa, y), "second": _top1(pb, y),
                      "fused": _top1(float(w[0]) * pa + float(w[1]) * pb, y)}
    return res
