"""Building a task's model from its registry name and arguments, the same way for training
(the Lightning tasks) and for inference (:func:`vidrnn.inference.checkpoint.load_model`, which
needs no Lightning).

The task sets the arguments that come from the data: a classifier's ``num_classes`` (and
``multilabel`` for multi-hot labels), a forecaster's ``num_output``, a language model's
``vocab_size`` (characters), a captioner's ``vocab_size`` (words).
"""

from __future__ import annotations

import inspect

import torch.nn as nn

from vidrnn.registry import create_model, get_model_builder

__all__ = ["build_classifier", "build_forecaster", "build_language_model", "build_captioner", "accepts"]


def accepts(model_name: str, argument: str) -> bool:
    """Whether the builder ``model_name`` has the keyword argument ``argument``.

    Raises:
        ValueError: unknown model (close names suggested).
    """
    return argument in inspect.signature(get_model_builder(model_name)).parameters


def build_classifier(model_name: str, model_kwargs: dict | None, num_classes: int, *,
                     multilabel: bool = False) -> nn.Module:
    """The classifier ``model_name`` for ``num_classes`` classes (independent sigmoid outputs
    when ``multilabel``).

    Raises:
        ValueError: unknown model, or ``multilabel`` with a model that has no multi-label outputs.
    """
    from vidrnn.models.base import VideoClassifier

    kwargs = dict(model_kwargs or {})
    if multilabel and accepts(model_name, "multilabel"):
        kwargs["multilabel"] = True
    model = create_model(model_name, num_classes=num_classes, **kwargs)
    if multilabel and not getattr(model, "multilabel", False):
        if not isinstance(model, VideoClassifier):
            raise ValueError(f"model {model_name!r} has no multi-label outputs; the data is multi-label "
                             "(use a recurrent or pooling model: temporal_attention_lstm, deep_lstm, lrcn, "
                             "avg_pooling, conv_pooling, ...)")
        # per-step (LRCN, deep LSTM) or pooled scores read as independent sigmoid logits: per-step
        # models then aggregate sigmoid probabilities (FrameOutputClassifier.aggregate)
        model.multilabel = True
    return model


def build_forecaster(model_name: str, model_kwargs: dict | None, num_output: int | None) -> nn.Module:
    """The forecaster ``model_name`` forecasting ``num_output`` frames by default (None: the
    builder's default).

    Raises:
        ValueError: unknown model.
    """
    kwargs = dict(model_kwargs or {})
    if num_output is not None:
        kwargs["num_output"] = int(num_output)
    return create_model(model_name, **kwargs)


def build_language_model(model_name: str, model_kwargs: dict | None, vocab_size: int) -> nn.Module:
    """The language model ``model_name`` over a vocabulary of ``vocab_size`` characters.

    Raises:
        ValueError: unknown model.
    """
    return create_model(model_name, vocab_size=int(vocab_size), **dict(model_kwargs or {}))


def build_captioner(model_name: str, model_kwargs: dict | None, vocab_size: int) -> nn.Module:
    """The captioner ``model_name`` over a vocabulary of ``vocab_size`` words (special tokens included).

    Raises:
        ValueError: unknown model.
    """
    return create_model(model_name, vocab_size=int(vocab_size), **dict(model_kwargs or {}))
