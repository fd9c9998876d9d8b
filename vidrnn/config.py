"""Run configuration: YAML files plus ``key.sub=value`` command-line overrides.

A config has the sections ``model`` (``name`` plus builder arguments), ``data`` (see
:mod:`vidrnn.data.datamodule`), ``optimizer``, ``trainer`` (``lightning.Trainer``
arguments), ``run`` (``root``/``name`` of the run directory) and top-level ``seed`` and
``label_smoothing``. Files are merged over :data:`DEFAULT_CONFIG`; overrides are applied
last, values parsed as YAML (``trainer.max_epochs=3``, ``data.sampler.name=dense``,
``model.encoder=efficientnet_lite0``).
"""

from __future__ import annotations

import copy
import difflib
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import yaml

from vidrnn.errors import ConfigError
from vidrnn.io.files import write_text

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["DEFAULT_CONFIG", "load_config", "apply_overrides", "find_config", "merge", "dump_config"]

DEFAULT_CONFIG: dict[str, Any] = {
    "seed": 0,
    "model": {"name": "lrcn_tiny"},
    "data": {"source": "digits"},
    "optimizer": {"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "scheduler": "cosine", "warmup_epochs": 0},
    "trainer": {"max_epochs": 4, "accelerator": "auto", "devices": 1, "precision": "32-true",
                "log_every_n_steps": 10},
    "label_smoothing": 0.0,
    "forecasting": {"loss": "bce", "scheduled_sampling": None, "ssim": True},
    "run": {"root": "runs", "name": None},
}


def merge(base: dict, update: dict) -> dict:
    """Recursive dict merge: ``update`` wins; nested dicts merge, everything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in (update or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def shipped_configs() -> dict[str, Traversable]:
    """The configs shipped inside the package (``vidrnn/configs/*.yaml``), by name."""
    folder = resources.files("vidrnn") / "configs"
    return {f.name[:-5]: f for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.name.endswith(".yaml")}


def find_config(name: str | os.PathLike) -> Path | Traversable:
    """A config from a YAML path, or a name shipped with the package (``lrcn_asl`` or
    ``lrcn_asl.yaml``; ``vidrnn configs`` lists them).

    Raises:
        FileNotFoundError: neither exists (names the closest shipped configs).
    """
    p = Path(name)
    if p.is_file():
        return p
    shipped = shipped_configs()
    stem = p.name[:-5] if p.name.endswith(".yaml") else p.name
    if stem in shipped and (p.parent == Path(".") or not p.parent.exists()):
        return shipped[stem]
    close = difflib.get_close_matches(stem, list(shipped), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "`vidrnn configs` lists the shipped configs"
    raise FileNotFoundError(f"config {str(name)!r} not found: not a YAML file, nor a config shipped with vidrnn; {hint}")


def apply_overrides(cfg: dict, overrides: Sequence[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML).

    Raises:
        ConfigError: an override without ``=``, or one that descends into a non-dict.
    """
    cfg = copy.deepcopy(cfg)
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r}: expected key.path=value")
        key, raw = ov.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {ov!r}: value is not valid YAML ({e})") from None
        node = cfg
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if node.get(p) is None:
                node[p] = {}
            if not isinstance(node[p], dict):
                raise ConfigError(f"override {ov!r}: {p!r} is {node[p]!r}, not a section")
            node = node[p]
        node[parts[-1]] = value
    return cfg


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> dict:
    """Defaults, then the YAML file (if any), then the overrides.

    Raises:
        FileNotFoundError: the config does not exist.
        ConfigError: the file is not a YAML mapping, or a bad override.
    """
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    if path is not None:
        p = find_config(path)
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({e})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of sections (model, data, trainer, ...), got {type(loaded).__name__}")
        unknown = set(loaded) - set(DEFAULT_CONFIG)
        if unknown:
            raise ConfigError(f"{p}: unknown sections {sorted(unknown)}; expected {sorted(DEFAULT_CONFIG)}")
        cfg = merge(cfg, loaded)
        cfg["run"]["name"] = cfg["run"].get("name") or p.name.rsplit(".", 1)[0]
    return apply_overrides(cfg, overrides)


def dump_config(cfg: dict, path: str | os.PathLike) -> None:
    """Write ``cfg`` as YAML atomically (temporary file, then rename)."""
    write_text(path, yaml.safe_dump(cfg, sort_keys=False))
