"""Optimiser and learning-rate schedule from the ``optimizer:`` section of a config (shared by tasks)."""

from __future__ import annotations

import math

import torch

__all__ = ["OPTIMIZER_DEFAULTS", "configure_optimizer"]

OPTIMIZER_DEFAULTS = {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "momentum": 0.9, "scheduler": "cosine",
                      "warmup_epochs": 0}


def configure_optimizer(params, cfg: dict, trainer):
    """``configure_optimizers`` for Lightning.

    Args:
        params: the parameters to train.
        cfg: ``{"name": "adamw"|"sgd"|"rmsprop", "lr", "weight_decay", "momentum",
            "scheduler": "cosine"|"none", "warmup_epochs"}`` (RMSProp with decay 0.9 is what
            Shi et al. 2015 used).
        trainer: the Lightning trainer (for the number of steps of the cosine schedule).

    Raises:
        ValueError: unknown optimiser or scheduler name.
    """
    c = {**OPTIMIZER_DEFAULTS, **cfg}
    params = [p for p in params if p.requires_grad]
    lr, wd = float(c["lr"]), float(c["weight_decay"])
    if c["name"] == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    elif c["name"] == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=float(c["momentum"]), weight_decay=wd, nesterov=True)
    elif c["name"] == "rmsprop":
        opt = torch.optim.RMSprop(params, lr=lr, alpha=0.9, weight_decay=wd)
    else:
        raise ValueError(f"optimizer.name={c['name']!r}: expected 'adamw', 'sgd' or 'rmsprop'")
    if c["scheduler"] in (None, "none"):
        return opt
    if c["scheduler"] != "cosine":
        raise ValueError(f"optimizer.scheduler={c['scheduler']!r}: expected 'cosine' or 'none'")
    total = max(1, int(trainer.estimated_stepping_batches))
    warm = int(float(c["warmup_epochs"]) * total / max(1, trainer.max_epochs or 1))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
