"""Model registry: ``@register_model`` on builder functions, ``create_model``, ``list_models``.

Builders are plain functions returning an ``nn.Module``, with explicit, typed keyword
arguments (no ``**kwargs``: the config validator checks a config's ``model`` section against
the signature); keyword arguments passed to :func:`create_model` override the builder's
defaults. A name can be registered once. This module imports nothing from vidrnn: the
package's ``__init__`` imports :mod:`vidrnn.models`, whose files register their builders (as
timm does).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_TASKS: dict[str, str] = {}
TASKS = ("classification", "forecasting", "language_modeling", "captioning")


def register_model(fn: Callable[..., nn.Module] | None = None, *, task: str = "classification"):
    """Register ``fn`` under its function name, for ``task`` (one of :data:`TASKS`).

    Use as ``@register_model`` or ``@register_model(task="forecasting")``.

    Raises:
        ValueError: if the name is already registered, or an unknown task.
        TypeError: a builder with ``**kwargs`` (its arguments must be explicit).
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {TASKS}")

    def add(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = f.__name__
        if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(f).parameters.values()):
            raise TypeError(f"builder {name!r} takes **kwargs; list its arguments explicitly (configs are checked "
                            "against the signature)")
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered (by {_MODELS[name].__module__})")
        _MODELS[name] = f
        _TASKS[name] = task
        return f

    return add(fn) if fn is not None else add


def list_models(pattern: str = "*", *, task: str | None = None) -> list[str]:
    """Sorted names of registered models matching the shell-style ``pattern`` (e.g. ``"lrcn*"``),
    optionally only those of one ``task``."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern) and (task is None or _TASKS[n] == task))


def model_task(name: str) -> str:
    """The task (one of :data:`TASKS`) model ``name`` was registered for.

    Raises:
        ValueError: unknown name.
    """
    get_model_builder(name)
    return _TASKS[name]


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered as ``name``.

    Raises:
        ValueError: unknown name; the message suggests close matches.
    """
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `vidrnn models`"
        raise ValueError(f"unknown model {name!r}{hint}")
    return _MODELS[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` overriding its defaults.

    Raises:
        ValueError: unknown model name.
        TypeError: an argument the builder does not accept.
    """
    return get_model_builder(name)(**kwargs)
