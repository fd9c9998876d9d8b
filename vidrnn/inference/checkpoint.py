"""Checkpoints: atomic writes and loading a trained model from nothing but the checkpoint file.

A vidrnn checkpoint is a Lightning checkpoint whose ``hyper_parameters`` hold the model name
and arguments, the class names, the data settings (sampler, transform, decode size) and the
resolved run config, so ``vidrnn predict CKPT VIDEO`` needs nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vidrnn.errors import CheckpointError
from vidrnn.io.files import atomic_write

__all__ = ["AtomicCheckpointIO", "read_checkpoint", "load_model", "check_compatible", "checkpoint_task"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` plugin that writes every checkpoint atomically (a temporary
    file beside it, then ``os.replace``; :func:`vidrnn.io.files.atomic_write`), so an
    interrupted save never leaves a truncated ``best.ckpt``/``last.ckpt``.

    Pass it to the trainer: ``lightning.Trainer(plugins=[AtomicCheckpointIO()])``.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp:
            torch.save(checkpoint, tmp)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint file (on the CPU) and check it is a vidrnn checkpoint.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable, or not written by vidrnn (no model name/classes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e.__class__.__name__}: {e})") from e
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hp or "model_name" not in hp or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a vidrnn checkpoint (no model name or state_dict)")
    if "class_names" not in hp and "scheduled_sampling" not in hp:
        raise CheckpointError(f"{path}: not a vidrnn checkpoint (neither a classifier's class names nor a "
                              "forecaster's settings)")
    return ckpt


def checkpoint_task(ckpt: dict) -> str:
    """``"classification"`` or ``"forecasting"``: what the checkpoint's model does."""
    return "classification" if "class_names" in ckpt["hyper_parameters"] else "forecasting"


def check_compatible(ckpt: dict, path, *, model_name: str | None = None, class_names: list[str] | None = None) -> None:
    """Raise :class:`CheckpointError` if ``ckpt`` is for another model or another class list."""
    hp = ckpt["hyper_parameters"]
    if model_name is not None and hp["model_name"] != model_name:
        raise CheckpointError(f"{path}: checkpoint is for model {hp['model_name']!r}, but model {model_name!r} was asked for")
    if class_names is not None and "class_names" not in hp:
        raise CheckpointError(f"{path}: checkpoint is a forecasting model ({hp['model_name']!r}), not a classifier")
    if class_names is not None and list(hp["class_names"]) != list(class_names):
        n_ck, n_new = len(hp["class_names"]), len(class_names)
        what = f"{n_ck} classes vs {n_new}" if n_ck != n_new else "the same number of classes in another order/naming"
        raise CheckpointError(f"{path}: checkpoint was trained on other classes than the data ({what}; "
                              f"checkpoint: {hp['class_names'][:5]}..., data: {list(class_names)[:5]}...)")


def load_model(path: str | os.PathLike, *, map_location: str | torch.device = "cpu", model_name: str | None = None,
               class_names: list[str] | None = None):
    """Rebuild the trained task (:class:`~vidrnn.tasks.classification.ClassificationTask` or
    :class:`~vidrnn.tasks.forecasting.ForecastingTask`) from a checkpoint.

    Pretrained-weight downloads are switched off (the weights come from the checkpoint).
    The task is returned in eval mode; ``task.model`` is the plain ``nn.Module``,
    ``task.hparams.data`` the input settings and ``task.class_names`` the labels.

    Args:
        path: the ``.ckpt`` file.
        model_name, class_names: if given, the checkpoint must match them.

    Raises:
        FileNotFoundError, CheckpointError: missing, unreadable, foreign or mismatched checkpoint.
    """
    ckpt = read_checkpoint(path)
    check_compatible(ckpt, path, model_name=model_name, class_names=class_names)
    hp = dict(ckpt["hyper_parameters"])
    if checkpoint_task(ckpt) == "forecasting":
        from vidrnn.tasks.forecasting import ForecastingTask as Task
    else:
        from vidrnn.tasks.classification import ClassificationTask as Task

        hp["model_kwargs"] = {**(hp.get("model_kwargs") or {}), "pretrained": False}
    try:
        task = Task(**hp)
        task.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the weights do not fit model {hp['model_name']!r}: {e}") from e
    return task.to(map_location).eval()
