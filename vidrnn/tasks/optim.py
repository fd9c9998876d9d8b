"""Optimiser and learning-rate schedule: the ``optimizer:`` section of a config (its defaults
live here, in :class:`OptimizerSettings`) and ``configure_optimizers`` for the tasks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from vidrnn.schema import validate_section

__all__ = ["OptimizerSettings", "configure_optimizer"]


@dataclass
class OptimizerSettings:
    """The ``optimizer:`` section.

    Attributes:
        name: ``adamw``, ``sgd`` (Nesterov momentum) or ``rmsprop`` (decay 0.9, what Shi et al.
            2015 used).
        lr: learning rate.
        weight_decay: decoupled (AdamW) or L2 (SGD, RMSProp) weight decay.
        momentum: SGD momentum.
        scheduler: ``cosine`` (per step, to 0 at the end of training) or ``none``.
        warmup_epochs: linear warm-up before the cosine, in epochs (fractions allowed).
    """

    name: Literal["adamw", "sgd", "rmsprop"] = "adamw"
    lr: float = 3e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: Literal["cosine", "none"] = "cosine"
    warmup_epochs: float = 0.0


def configure_optimizer(params, cfg: dict | None, trainer):
    """``configure_optimizers`` for Lightning.

    Args:
        params: the parameters to train (frozen ones are left out), or parameter groups
            (dicts with ``params`` and optionally ``lr_scale``, a multiple of the configured
            learning rate, and ``weight_decay``).
        cfg: the ``optimizer`` section (see :class:`OptimizerSettings`; missing keys take the
            defaults).
        trainer: the Lightning trainer (for the number of steps of the cosine schedule).

    Raises:
        ConfigError: an unknown key or value.
    """
    c = validate_section(OptimizerSettings, cfg, "optimizer")
    lr, wd = c["lr"], c["weight_decay"]
    params = list(params)
    if params and isinstance(params[0], dict):
        params = [{**{k: v for k, v in g.items() if k != "lr_scale"}, "lr": lr * g.get("lr_scale", 1.0),
                   "params": [p for p in g["params"] if p.requires_grad]} for g in params]
    else:
        params = [p for p in params if p.requires_grad]
    if c["name"] == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    elif c["name"] == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=c["momentum"], weight_decay=wd, nesterov=True)
    else:
        opt = torch.optim.RMSprop(params, lr=lr, alpha=0.9, weight_decay=wd)
    if c["scheduler"] == "none":
        return opt
    est = trainer.estimated_stepping_batches
    if math.isfinite(est) and est >= 1:
        total, interval = int(est), "step"
        warm = int(c["warmup_epochs"] * total / max(1, trainer.max_epochs or 1))
    else:  # a streamed training set (no length: Lightning says -1): the schedule runs per epoch
        total, interval = max(1, trainer.max_epochs or 1), "epoch"
        warm = int(c["warmup_epochs"])

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}
