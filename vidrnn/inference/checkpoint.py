"""Checkpoints: loading a trained model from nothing but the checkpoint file.

A vidrnn checkpoint is a Lightning checkpoint whose ``hyper_parameters`` hold the model name
and arguments, the class names, the data settings (sampler, transform, decode size) and the
resolved run config, so ``vidrnn predict CKPT VIDEO`` needs nothing else. :func:`load_model`
gives the plain ``nn.Module`` with that metadata (no Lightning needed); :func:`load_task` the
Lightning task for evaluation. Checkpoints are written by :class:`vidrnn.runner.AtomicCheckpointIO`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from vidrnn.errors import CheckpointError

__all__ = ["ModelInfo", "read_checkpoint", "load_model", "load_task", "check_compatible",
           "checkpoint_task"]


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint file (on the CPU) and check it is a vidrnn checkpoint.

    The file is read with ``torch.load(weights_only=True)``: only tensors and plain data
    (dicts, lists, numbers, strings) are unpickled, never arbitrary Python objects, so a crafted
    checkpoint cannot run code when it is opened (vidrnn's own checkpoints hold nothing else).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable (truncated, not a checkpoint), holding Python objects beyond
            tensors and plain data (refused: such a pickle could run code), or not written by
            vidrnn (no model name/classes).
    """
    import pickle

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused: the checkpoint holds Python objects other than tensors and plain "
                              f"data, which could run code when loaded; vidrnn does not open it "
                              f"({str(e).splitlines()[0][:200]})") from None
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e.__class__.__name__}: {e})") from e
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hp or "model_name" not in hp or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a vidrnn checkpoint (no model name or state_dict)")
    if not {"class_names", "scheduled_sampling", "vocab", "caption_vocab"} & set(hp):
        raise CheckpointError(f"{path}: not a vidrnn checkpoint (neither a classifier's class names, a "
                              "forecaster's settings nor a language model's vocabulary)")
    return ckpt


def checkpoint_task(ckpt: dict) -> str:
    """``"classification"``, ``"forecasting"``, ``"language_modeling"`` or ``"captioning"``: what the
    checkpoint's model does."""
    hp = ckpt["hyper_parameters"]
    if "class_names" in hp:
        return "classification"
    if "caption_vocab" in hp:
        return "captioning"
    return "language_modeling" if "vocab" in hp else "forecasting"


def check_compatible(ckpt: dict, path, *, model_name: str | None = None, class_names: list[str] | None = None) -> None:
    """Raise :class:`CheckpointError` if ``ckpt`` is for another model or another class list."""
    hp = ckpt["hyper_parameters"]
    if model_name is not None and hp["model_name"] != model_name:
        raise CheckpointError(f"{path}: checkpoint is for model {hp['model_name']!r}, but model {model_name!r} was asked for")
    if class_names is not None and "class_names" not in hp:
        kind = checkpoint_task(ckpt).replace("_", " ")
        raise CheckpointError(f"{path}: checkpoint is a {kind} model ({hp['model_name']!r}), not a classifier")
    if class_names is not None and list(hp["class_names"]) != list(class_names):
        n_ck, n_new = len(hp["class_names"]), len(class_names)
        what = f"{n_ck} classes vs {n_new}" if n_ck != n_new else "the same number of classes in another order/naming"
        raise CheckpointError(f"{path}: checkpoint was trained on other classes than the data ({what}; "
                              f"checkpoint: {hp['class_names'][:5]}..., data: {list(class_names)[:5]}...)")


@dataclass
class ModelInfo:
    """What a trained model was built from and what it needs, kept as ``model.vidrnn`` by
    :func:`load_model`.

    Attributes:
        name: registry name of the model.
        kwargs: its builder arguments (without those that come from the data).
        task: ``"classification"``, ``"forecasting"`` or ``"language_modeling"``.
        class_names: the K labels in index order (classifiers), else None.
        vocab: the characters in index order (language models), the words after the special
            tokens (captioners: :class:`vidrnn.data.captions.CaptionVocabulary`), else None.
        multilabel: independent sigmoid outputs (multi-label classifiers).
        data: the input settings: decode size, test-time sampler and transform (classifiers);
            ``num_input``, ``num_output``, ``kind`` and the Z-R pair (forecasters).
        config: the resolved run config the model was trained with.
        checkpoint: the file it was loaded from.
    """

    name: str
    kwargs: dict
    task: str
    class_names: list[str] | None
    multilabel: bool
    data: dict
    config: dict
    checkpoint: str
    vocab: list[str] | None = None


def _without_pretrained(model_kwargs: dict, model_name: str) -> dict:
    """A classifier's builder arguments with pretrained-weight loading off (the weights come
    from the checkpoint): also inside an encoder given as settings; a builder that takes a
    weights file (``weights=PATH``, the 3D CNNs) gets none, so the file need not exist any more."""
    import inspect

    from vidrnn.registry import get_model_builder

    params = inspect.signature(get_model_builder(model_name)).parameters
    kwargs = dict(model_kwargs)
    if "pretrained" in params:
        kwargs["pretrained"] = False
    if "weights" in params:
        kwargs["weights"] = None
    if isinstance(kwargs.get("encoder"), dict):
        kwargs["encoder"] = {**kwargs["encoder"], "pretrained": False}
    return kwargs


def _model_from(ckpt: dict, path) -> tuple[torch.nn.Module, ModelInfo]:
    from vidrnn.tasks.build import build_captioner, build_classifier, build_forecaster, build_language_model

    hp = ckpt["hyper_parameters"]
    task = checkpoint_task(ckpt)
    kwargs = dict(hp.get("model_kwargs") or {})
    data = dict(hp.get("data") or {})
    try:
        if task == "classification":
            model = build_classifier(hp["model_name"], _without_pretrained(kwargs, hp["model_name"]),
                                     len(hp["class_names"]), multilabel=bool(hp.get("multilabel")))
        elif task == "language_modeling":
            model = build_language_model(hp["model_name"], kwargs, len(hp["vocab"]))
        elif task == "captioning":
            from vidrnn.io.captions import SPECIALS

            model = build_captioner(hp["model_name"], _without_pretrained(kwargs, hp["model_name"]),
                                    len(SPECIALS) + len(hp["caption_vocab"]))
        else:
            model = build_forecaster(hp["model_name"], kwargs, data.get("num_output"))
        state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the weights do not fit model {hp['model_name']!r}: {e}") from e
    info = ModelInfo(name=hp["model_name"], kwargs=kwargs, task=task, class_names=list(hp.get("class_names") or []) or None,
                     multilabel=bool(hp.get("multilabel")), data=data, config=dict(hp.get("config") or {}),
                     checkpoint=str(path), vocab=list(hp["vocab"]) if task == "language_modeling" else
                     list(hp["caption_vocab"]) if task == "captioning" else None)
    return model, info


def load_model(path: str | os.PathLike, *, map_location: str | torch.device = "cpu", model_name: str | None = None,
               class_names: list[str] | None = None) -> torch.nn.Module:
    """The trained model of a checkpoint, as a plain ``nn.Module`` in eval mode (no Lightning).

    ``model.vidrnn`` (:class:`ModelInfo`) holds its metadata: the registry name and arguments,
    the class names, the input settings (decode size, sampler, transform) and the run config.
    Pretrained-weight downloads are switched off (the weights come from the checkpoint).

    Example::

        model = vidrnn.load_model("runs/lrcn_asl/.../best.ckpt")
        probs = model(clips).logits.softmax(-1)      # clips (B, T, 3, H, W) in [0, 1]
        labels = model.vidrnn.class_names

    Args:
        path: the ``.ckpt`` file.
        map_location: device of the returned model.
        model_name, class_names: if given, the checkpoint must match them.

    Raises:
        FileNotFoundError, CheckpointError: missing, unreadable, foreign or mismatched checkpoint.
    """
    ckpt = read_checkpoint(path)
    check_compatible(ckpt, path, model_name=model_name, class_names=class_names)
    model, info = _model_from(ckpt, path)
    model.vidrnn = info
    return model.to(map_location).eval()


def load_task(path: str | os.PathLike, *, map_location: str | torch.device = "cpu", model_name: str | None = None,
              class_names: list[str] | None = None, checkpoint: dict | None = None):
    """The Lightning task of a checkpoint (:class:`~vidrnn.tasks.classification.ClassificationTask`,
    :class:`~vidrnn.tasks.forecasting.ForecastingTask` or
    :class:`~vidrnn.tasks.language_model.LanguageModelTask`), in eval mode, for evaluation with a
    ``Trainer`` (``vidrnn test``) or fine-tuning; ``task.model`` is the plain ``nn.Module``.

    Args:
        path: the ``.ckpt`` file.
        map_location: device of the returned task.
        model_name, class_names: if given, the checkpoint must match them.
        checkpoint: the file's contents when already read (:func:`read_checkpoint`), so it is
            not loaded twice.

    Raises:
        FileNotFoundError, CheckpointError: missing, unreadable, foreign or mismatched checkpoint.
    """
    ckpt = read_checkpoint(path) if checkpoint is None else checkpoint
    check_compatible(ckpt, path, model_name=model_name, class_names=class_names)
    hp = dict(ckpt["hyper_parameters"])
    if checkpoint_task(ckpt) == "forecasting":
        from vidrnn.tasks.forecasting import ForecastingTask as Task
    elif checkpoint_task(ckpt) == "language_modeling":
        from vidrnn.tasks.language_model import LanguageModelTask as Task
    elif checkpoint_task(ckpt) == "captioning":
        from vidrnn.tasks.captioning import CaptioningTask as Task

        hp["model_kwargs"] = _without_pretrained(hp.get("model_kwargs") or {}, hp["model_name"])
    else:
        from vidrnn.tasks.classification import ClassificationTask as Task

        hp["model_kwargs"] = _without_pretrained(hp.get("model_kwargs") or {}, hp["model_name"])
    try:
        task = Task(**hp)
        task.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the weights do not fit model {hp['model_name']!r}: {e}") from e
    return task.to(map_location).eval()
