"""Run configuration: YAML files plus ``key.sub=value`` command-line overrides, checked before
anything is built or written.

A config has these sections, each checked against the one place that defines it:

========================  ==============================================================
``seed``                  an int (default 0)
``model``                 ``name`` (a registered model, default ``lrcn_tiny``) and that
                          builder's keyword arguments, checked against its signature;
                          ``compile: true`` runs the model through ``torch.compile``
                          (``benchmarks/bench_compile.py`` measures where it pays)
``data``                  classification: :class:`vidrnn.data.datamodule.VideoDataSettings`;
                          forecasting: :class:`vidrnn.data.forecast_datamodule.ForecastDataSettings`;
                          language modelling: :class:`vidrnn.data.text.TextDataSettings`
``optimizer``             :class:`vidrnn.tasks.optim.OptimizerSettings`
``trainer``               ``lightning.Trainer`` arguments (checked against its signature),
                          vidrnn's defaults in :data:`TRAINER_DEFAULTS`
``run``                   :class:`RunSettings` (where run directories go)
``classification``        :class:`vidrnn.tasks.classification.ClassificationSettings`
``forecasting``           :class:`vidrnn.tasks.forecasting.ForecastingSettings`
``language_modeling``     :class:`vidrnn.tasks.language_model.LanguageModelingSettings`
``captioning``            :class:`vidrnn.tasks.captioning.CaptioningSettings`
========================  ==============================================================

The model's task (registered with the builder) decides which ``data`` schema applies and
which task section may be given. An unknown key anywhere gets a one-line error with the
closest valid keys (``data.batchsize: unknown key; did you mean data.batch_size?``), a wrong
type names what was expected (``trainer.max_epochs: expected an int or null, got 'ten' (a
string)``). Overrides are parsed as YAML (``trainer.max_epochs=3``,
``data.sampler.name=dense``, ``model.encoder=efficientnet_lite0``). The resolved config (every
default filled in, except the model's: those stay in the builder's signature) is what a run
saves as ``config.yaml`` and in its checkpoints. The validator itself is :mod:`vidrnn.schema`.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import yaml

from vidrnn.errors import ConfigError
from vidrnn.io.files import write_text
from vidrnn.registry import get_model_builder, model_task
from vidrnn.schema import merge, unknown_key, validate_call, validate_section, validate_value

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["load_config", "resolve_config", "apply_overrides", "find_config", "read_config_file", "shipped_configs",
           "config_summary", "dump_config", "merge", "RunSettings", "TRAINER_DEFAULTS", "SECTIONS"]

TASK_SECTIONS = ("classification", "forecasting", "language_modeling", "captioning")
SECTIONS = ("seed", "model", "data", "optimizer", "trainer", "run") + TASK_SECTIONS
DEFAULT_MODEL = "lrcn_tiny"

#: vidrnn's defaults for the Lightning Trainer (every other argument: Lightning's own default)
TRAINER_DEFAULTS: dict[str, Any] = {"max_epochs": 4, "accelerator": "auto", "devices": 1, "precision": "32-true",
                                    "log_every_n_steps": 10}
#: Trainer arguments vidrnn sets itself
TRAINER_RESERVED = {
    "logger": "set by vidrnn (CSV, and TensorBoard when installed, in the run directory)",
    "callbacks": "set by vidrnn (checkpoints in the run directory)",
    "plugins": "set by vidrnn (atomic checkpoint writes)",
    "default_root_dir": "set by vidrnn: choose the run directory with --run-dir or run.root",
    "enable_checkpointing": "set by vidrnn (best and last checkpoints)",
    "enable_model_summary": "set by vidrnn",
    "model_registry": "not used by vidrnn",
}
#: settings that moved, with their new place (old run directories and checkpoints are read with them moved)
MOVED = {"label_smoothing": "classification.label_smoothing"}
#: model arguments that come from the data, by task
MODEL_RESERVED = {
    "classification": {"num_classes": "set from the data's classes",
                       "multilabel": "set from the data (multi-label sources)"},
    "forecasting": {"num_output": "set data.num_output instead"},
    "language_modeling": {"vocab_size": "set from the text's vocabulary"},
    "captioning": {"vocab_size": "set from the training captions' vocabulary (data.min_count)"},
}
#: Trainer arguments that do not apply to a task, with what to use instead
TRAINER_NOT_FOR = {
    "language_modeling": {
        "gradient_clip_val": "language models clip in the task (manual optimisation for truncated BPTT): "
                             "use language_modeling.clip and language_modeling.clip_value",
        "gradient_clip_algorithm": "use language_modeling.clip (norm or value)",
        "accumulate_grad_batches": "not with truncated BPTT (each chunk is one optimiser step)",
    },
    "captioning": {
        "gradient_clip_val": "captioners clip in the task: use captioning.clip (the global norm)",
        "gradient_clip_algorithm": "captioners clip by global norm (captioning.clip)",
    },
}


@dataclass
class RunSettings:
    """The ``run:`` section: a run directory is ``<root>/<name>/<timestamp>`` (name: the config's
    name, else the model's)."""

    root: str = "runs"
    name: str | None = None


class _YAMLLoader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, except that ``1e-3`` is a float (YAML 1.2, and what
    everyone writes for a learning rate; PyYAML reads it as a string)."""


_YAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+
                |[-+]?\.[0-9_]+[eE][-+]?[0-9]+)$""", re.X),
    list("-+0123456789."))


def load_yaml(text: str):
    """Parse YAML text (as :class:`yaml.SafeLoader`, with ``1e-3`` read as a float)."""
    return yaml.load(text, Loader=_YAMLLoader)  # noqa: S506 (a SafeLoader)


def _task_sections() -> dict[str, tuple]:
    """``task -> (data validator, task-section settings class)``."""
    from vidrnn.data.datamodule import validate_data_settings
    from vidrnn.data.forecast_datamodule import validate_forecast_data_settings
    from vidrnn.data.caption_datamodule import validate_caption_data_settings
    from vidrnn.data.text import validate_text_data_settings
    from vidrnn.tasks.captioning import CaptioningSettings
    from vidrnn.tasks.classification import ClassificationSettings
    from vidrnn.tasks.forecasting import ForecastingSettings
    from vidrnn.tasks.language_model import LanguageModelingSettings

    return {"classification": (validate_data_settings, ClassificationSettings),
            "forecasting": (validate_forecast_data_settings, ForecastingSettings),
            "language_modeling": (validate_text_data_settings, LanguageModelingSettings),
            "captioning": (validate_caption_data_settings, CaptioningSettings)}


def _trainer_signature():
    import lightning as L

    return L.Trainer


def resolve_config(raw: dict | None, *, where: str = "") -> dict:
    """Check every section of a config and fill in the defaults.

    Args:
        raw: the config as read (file merged with overrides).
        where: prefix for messages (e.g. the file name).

    Returns:
        The resolved config: ``seed``, ``model``, ``data``, ``optimizer``, ``trainer``, ``run``
        and the model's task section.

    Raises:
        ConfigError: the first problem found, in one line naming the key.
    """
    raw = dict(raw or {})
    for key in raw:
        if key in MOVED:
            raise ConfigError(f"{key}: moved to {MOVED[key]}")
        if key not in SECTIONS:
            raise unknown_key(str(key), SECTIONS, "")
    out: dict[str, Any] = {"seed": validate_value(raw.get("seed", 0), int, "seed")}
    model = raw.get("model")
    if model is None:
        model = {}
    if not isinstance(model, dict):
        raise ConfigError(f"model: expected a mapping with a name and the model's arguments, got {model!r}")
    model = dict(model)
    name = model.pop("name", None) or DEFAULT_MODEL
    if not isinstance(name, str):
        raise ConfigError(f"model.name: expected a registered model name, got {name!r}")
    try:
        builder = get_model_builder(name)
    except ValueError as e:
        raise ConfigError(f"model.name: {e}") from None
    task = model_task(name)
    if task not in MODEL_RESERVED:
        raise ConfigError(f"model.name: {name!r} is a {task} model; vidrnn cannot train {task} models from a config "
                          "yet (build it from Python: vidrnn.create_model)")
    compiled = validate_value(model.pop("compile", False), bool, "model.compile")
    out["model"] = {"name": name, **validate_call(builder, model, "model", reserved=MODEL_RESERVED[task])}
    if compiled:
        out["model"]["compile"] = True
    validate_data, task_settings = _task_sections()[task]
    out["data"] = validate_data(raw.get("data"), "data")
    from vidrnn.tasks.optim import OptimizerSettings

    out["optimizer"] = validate_section(OptimizerSettings, raw.get("optimizer"), "optimizer")
    trainer = raw.get("trainer") or {}
    if not isinstance(trainer, dict):
        raise ConfigError(f"trainer: expected a mapping of lightning.Trainer arguments, got {trainer!r}")
    out["trainer"] = validate_call(_trainer_signature(), {**TRAINER_DEFAULTS, **trainer}, "trainer",
                                   reserved={**TRAINER_RESERVED, **TRAINER_NOT_FOR.get(task, {})})
    devices = out["trainer"].get("devices")
    if task == "language_modeling" and not (devices in (1, "1", None) or (isinstance(devices, list) and len(devices) == 1)):
        raise ConfigError(f"trainer.devices: language models train on one device (the B text streams carry "
                          f"their state from batch to batch, which a distributed sampler would break), got "
                          f"{out['trainer']['devices']!r}")
    out["run"] = validate_section(RunSettings, raw.get("run"), "run")
    for other in TASK_SECTIONS:
        if other != task and raw.get(other):
            raise ConfigError(f"{other}: settings for {other} models, but {name!r} is a {task} model "
                              f"(use the {task} section)")
    out[task] = validate_section(task_settings, raw.get(task), task)
    return out


def shipped_configs() -> dict[str, Traversable]:
    """The configs shipped inside the package (``vidrnn/configs/*.yaml``), by name."""
    folder = resources.files("vidrnn") / "configs"
    return {f.name[:-5]: f for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.name.endswith(".yaml")}


def config_summary(cfg_file) -> str:
    """The first comment line of a shipped config (what ``vidrnn configs`` prints)."""
    for line in cfg_file.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


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


def read_config_file(path: str | os.PathLike) -> tuple[dict, str]:
    """``(the mapping in a config file, its name)``.

    Raises:
        FileNotFoundError: no such config. ConfigError: not YAML, or not a mapping.
    """
    p = find_config(path)
    try:
        loaded = load_yaml(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: expected a mapping of sections ({', '.join(SECTIONS)}), got {type(loaded).__name__}")
    return loaded, p.name.rsplit(".", 1)[0]


def apply_overrides(cfg: dict, overrides: Sequence[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a copy of ``cfg``.

    Raises:
        ConfigError: an override without ``=``, or one that descends into a non-mapping.
    """
    cfg = copy.deepcopy(cfg)
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r}: expected key.path=value")
        key, raw = ov.split("=", 1)
        try:
            value = load_yaml(raw) if raw != "" else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {ov!r}: value is not valid YAML ({str(e).splitlines()[0]})") from None
        node = cfg
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {ov!r}: expected key.path=value")
        for p in parts[:-1]:
            if node.get(p) is None:
                node[p] = {}
            if not isinstance(node[p], dict):
                raise ConfigError(f"override {ov!r}: {p!r} is {node[p]!r}, not a section")
            node = node[p]
        node[parts[-1]] = value
    return cfg


def _source_sections() -> tuple[str, ...]:
    from vidrnn.data.datamodule import SOURCE_SECTIONS as video
    from vidrnn.data.forecast_datamodule import SOURCE_SECTIONS as forecast

    return video + forecast


def upgrade_saved_config(saved: dict, overrides: Sequence[str] = ()) -> dict:
    """A config saved by an earlier run or checkpoint, fitted to this version's schema and to the
    ``overrides`` about to be applied to it: moved keys go to their new place (:data:`MOVED`),
    the section of the other task is dropped (vidrnn before 0.2 saved both), and so are the
    data sub-sections of sources other than the one in use (so that ``vidrnn test CKPT
    data.source=folder data.root=...`` evaluates a model trained on the embedded digits on
    real videos). Only what was saved is dropped, never what the overrides give.
    """
    base = copy.deepcopy(dict(saved or {}))
    for old, new in MOVED.items():
        if old in base:
            section, key = new.split(".")
            value = base.pop(old)
            if isinstance(base.setdefault(section, {}), dict):
                base[section].setdefault(key, value)
    final = apply_overrides(base, overrides)
    name = (final.get("model") or {}).get("name") or DEFAULT_MODEL
    try:
        task = model_task(name)
    except ValueError:
        return base  # resolve_config names the unknown model
    for other in TASK_SECTIONS:
        if other != task:
            base.pop(other, None)
    data, final_data = base.get("data"), final.get("data")
    if isinstance(data, dict) and isinstance(final_data, dict):
        for key in _source_sections():
            if key != final_data.get("source"):
                data.pop(key, None)
    return base


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = (), *,
                saved: dict | None = None) -> dict:
    """The resolved config: ``saved`` (the config of an earlier run or of a checkpoint, see
    :func:`upgrade_saved_config`), then the YAML file (if any), then the overrides, all checked
    (:func:`resolve_config`).

    ``run.name`` defaults to the config file's name.

    Raises:
        FileNotFoundError: the config does not exist.
        ConfigError: the file is not a YAML mapping, a bad override, or a bad setting.
    """
    raw = upgrade_saved_config(saved, overrides) if saved is not None else {}
    if path is not None:
        loaded, name = read_config_file(path)
        raw = merge(raw, loaded)
        run = raw.get("run") if isinstance(raw.get("run"), dict) else {}
        if not run.get("name") and isinstance(raw.get("run", {}), dict):
            raw["run"] = {**run, "name": name}
    return resolve_config(apply_overrides(raw, overrides))


def dump_config(cfg: dict, path: str | os.PathLike) -> None:
    """Write ``cfg`` as YAML atomically."""
    write_text(path, yaml.safe_dump(cfg, sort_keys=False))
