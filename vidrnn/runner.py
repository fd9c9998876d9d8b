"""Runs on Lightning's engine: fit a model from a config into a run directory, evaluate a
checkpoint. What ``vidrnn fit``, ``vidrnn validate`` and ``vidrnn test`` call.

A run directory (``runs/<name>/<timestamp>``, or ``run_dir``; an existing non-empty one is
never overwritten, ``resume=True`` continues one) holds ``config.yaml`` (the resolved config),
``classes.json`` (classifiers) or ``vocab.json`` (language models and captioners),
``checkpoints/{best,last}.ckpt`` (written atomically through :class:`AtomicCheckpointIO`),
``logs/`` (CSV, and TensorBoard when installed; a resumed run logs into ``logs/resume<k>/``) and
``summary.json``. Everything that can be checked is checked before
the directory is made: the config, the data (annotation files, folders), the model; a run that
fails before its first training step removes the directory it made.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vidrnn.config import apply_overrides, dump_config, load_config, read_config_file, resolve_config
from vidrnn.errors import CheckpointError, ConfigError
from vidrnn.inference.checkpoint import check_compatible, checkpoint_task, load_task, read_checkpoint
from vidrnn.io.files import atomic_write, write_json
from vidrnn.registry import model_task

__all__ = ["AtomicCheckpointIO", "fit", "evaluate", "build_datamodule", "build_task", "new_run_dir",
           "quiet_lightning"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` plugin that writes every checkpoint atomically (a temporary
    file beside it, then ``os.replace``; :func:`vidrnn.io.files.atomic_write`), so an
    interrupted save never leaves a truncated ``best.ckpt``/``last.ckpt``.

    Use: ``lightning.Trainer(plugins=[AtomicCheckpointIO()])`` (every vidrnn run does).
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp:
            torch.save(checkpoint, tmp)


def quiet_lightning() -> None:
    """Silence Lightning's informational messages and warnings that say nothing to a vidrnn user."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed", "lightning.pytorch.utilities.model_summary"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*The number of training batches.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # frozen encoders, on purpose


def new_run_dir(cfg: dict, run_dir: str | os.PathLike | None) -> Path:
    """Make the directory of a new run; never an existing non-empty one.

    Raises:
        FileExistsError: ``run_dir`` exists and is not empty.
    """
    return _make_run_dir(cfg, run_dir)[0]


def _mkdirs(path: Path) -> list[Path]:
    """``path.mkdir(parents=True, exist_ok=True)``, returning the directories it created (deepest first)."""
    missing = [d for d in (path, *path.parents) if not d.exists()]
    path.mkdir(parents=True, exist_ok=True)
    return missing


def _make_run_dir(cfg: dict, run_dir: str | os.PathLike | None) -> tuple[Path, list[Path]]:
    """The new run directory and every directory made for it (deepest first; the run directory
    itself is in the list unless it was the user's existing empty ``run_dir``)."""
    if run_dir:
        p = Path(run_dir)
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise FileExistsError(f"run directory {p} already exists and is not empty; "
                                  "pass --resume to continue it, or choose another --run-dir")
        return p, _mkdirs(p)
    base = Path(cfg["run"]["root"]) / (cfg["run"]["name"] or cfg["model"]["name"])
    made = _mkdirs(base)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        p = base / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            p.mkdir()
            return p, [p, *made]
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a new run directory under {base}")


def _launched_rank() -> int:
    """0 for the first (or only) process; nonzero for a process a distributed launcher started
    beside it (Lightning's DDP launcher re-runs the command with ``LOCAL_RANK``/``NODE_RANK``;
    torchrun and SLURM set the global ``RANK``/``SLURM_PROCID``)."""
    for key in ("RANK", "SLURM_PROCID"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    local, node = os.environ.get("LOCAL_RANK", "0"), os.environ.get("NODE_RANK", "0")
    return int(local) + int(node) if local.isdigit() and node.isdigit() else 0


def _undo_run_dir(run: Path, made: list[Path]) -> None:
    """Remove what a run that failed before training left: the run directory if it made it (else
    the contents of the user's empty ``--run-dir``), then the parents it made, when empty."""
    if run in made:
        shutil.rmtree(run, ignore_errors=True)
    else:
        for child in run.iterdir():
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
    for d in made:
        try:
            d.rmdir()  # only when empty
        except OSError:
            pass


def build_datamodule(cfg: dict, vocab: list[str] | None = None, only: str | None = None):
    """The data module of a resolved config: videos and labels, input/target sequences, text
    streams or captioned images/videos (encoded with ``vocab``, a trained model's characters or
    words, when given; ``only`` one split, for evaluation).

    Raises:
        ConfigError, FileNotFoundError: missing or inconsistent data settings or files.
    """
    task = model_task(cfg["model"]["name"])
    if task == "forecasting":
        from vidrnn.data.forecast_datamodule import ForecastDataModule

        return ForecastDataModule(cfg["data"])
    if task == "language_modeling":
        from vidrnn.data.text import TextDataModule, Vocabulary

        return TextDataModule(cfg["data"], vocab=Vocabulary(vocab) if vocab else None, only=only)
    if task == "captioning":
        from vidrnn.data.caption_datamodule import CaptionDataModule
        from vidrnn.data.captions import CaptionVocabulary

        return CaptionDataModule(cfg["data"], vocab=CaptionVocabulary(vocab) if vocab else None, only=only)
    from vidrnn.data.datamodule import VideoDataModule

    return VideoDataModule(cfg["data"])


def _cache_encoder(cache: str, model_cfg: dict) -> dict:
    """Point ``model_cfg`` at the encoder a feature cache was made with (so the checkpoint can
    later caption or label raw video) and return that encoder's weights."""
    from vidrnn.data.features import load_cache_meta

    meta = load_cache_meta(cache)
    model_cfg.update(encoder=meta["encoder"], pretrained=False, trainable="none")
    return torch.load(Path(cache) / "encoder.pt", map_location="cpu", weights_only=True)


def _cache_encoder_outputs(cfg: dict, task, dm, run: Path, report) -> None:
    """``classification.cache_encoder``: run the frozen frame encoder once over every split and
    train from its outputs (see :class:`vidrnn.tasks.classification.ClassificationSettings`).

    Raises:
        ConfigError: the model has no per-frame encoder, or it is not wholly frozen.
    """
    model, mode = task.model, cfg["classification"]["cache_encoder"]
    enc = getattr(model, "encoder", None)
    if enc is None or getattr(model, "input_kind", None) not in ("vector", "map"):
        raise ConfigError(f"classification.cache_encoder: {cfg['model']['name']} has no per-frame encoder to cache")
    if list(getattr(model, "levels", [-1])) != [-1]:
        raise ConfigError(f"classification.cache_encoder: {cfg['model']['name']} reads the encoder's intermediate "
                          f"levels {model.levels}; the cache holds the last map only")
    if any(p.requires_grad for p in enc.parameters()):
        raise ConfigError(f"classification.cache_encoder: the frame encoder of {cfg['model']['name']} trains "
                          f"(model.trainable: {enc.trainable!r}; a tiny encoder's pooling layer always trains); "
                          "caching needs a frozen one (model.trainable: none, pooled by averaging)")
    device = "cuda" if torch.cuda.is_available() and cfg["trainer"].get("accelerator") in ("gpu", "cuda", "auto") else "cpu"
    rank = _launched_rank()
    if device == "cuda":
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    enc.eval().to(device)
    # each process encodes every clip (its sampler picks its part later); on disk, each in its own folder
    folder = run / "encoder_cache" / (f"rank{rank}" if rank else "") if mode == "disk" else None
    times = dm.encode_once(model.encode, folder=folder, device=device)
    enc.to("cpu")
    task.use_cached_features(True)
    report(f"encoder outputs cached ({mode}): " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
           + "; training clips are fixed (eval sampling and crop)")


def build_task(cfg: dict, datamodule, init_from: str | os.PathLike | None = None):
    """The Lightning task of a resolved config and its data module, optionally initialised
    from the weights of a checkpoint of the same model (and classes).

    Raises:
        CheckpointError: ``init_from`` is for another model or other classes, or does not fit.
    """
    model_cfg = dict(cfg["model"])
    name = model_cfg.pop("name")
    compiled = model_cfg.pop("compile", False)
    if model_task(name) == "language_modeling":
        from vidrnn.tasks.language_model import LanguageModelTask

        task = LanguageModelTask(name, model_cfg, datamodule.vocab.to_json(), optimizer=cfg["optimizer"],
                                 data=datamodule.settings, config=cfg, **cfg["language_modeling"])
        classes = None
    elif model_task(name) == "captioning":
        from vidrnn.tasks.captioning import CaptioningTask

        cache = cfg["data"]["features"]
        encoder_state = _cache_encoder(cache, model_cfg) if cache else None
        task = CaptioningTask(name, model_cfg, datamodule.vocab.to_json(), optimizer=cfg["optimizer"],
                              data=datamodule.settings, config=cfg, **cfg["captioning"])
        if encoder_state is not None:
            task.model.encoder.load_state_dict(encoder_state)
        classes = None
    elif model_task(name) == "forecasting":
        from vidrnn.tasks.forecasting import ForecastingTask

        fc = cfg["forecasting"]
        task = ForecastingTask(name, model_cfg, optimizer=cfg["optimizer"], data=datamodule.settings, config=cfg,
                               loss=fc["loss"], scheduled_sampling=fc["scheduled_sampling"], ssim=fc["ssim"])
        classes = None
    else:
        from vidrnn.tasks.classification import ClassificationTask

        encoder_state = None
        if cfg["data"]["source"] == "features":  # the cache's encoder, so the checkpoint can predict from video
            encoder_state = _cache_encoder(cfg["data"]["cache"], model_cfg)
        task = ClassificationTask(name, model_cfg, datamodule.classes, optimizer=cfg["optimizer"],
                                  data=datamodule.settings, config=cfg,
                                  label_smoothing=cfg["classification"]["label_smoothing"],
                                  multilabel=datamodule.multilabel,
                                  channels_last=cfg["classification"]["channels_last"])
        if encoder_state is not None:
            task.model.encoder.load_state_dict(encoder_state)
        classes = datamodule.classes
    if init_from:
        ck = read_checkpoint(init_from)
        check_compatible(ck, init_from, model_name=name, class_names=classes)
        if model_task(name) == "language_modeling" and ck["hyper_parameters"].get("vocab") != datamodule.vocab.to_json():
            raise CheckpointError(f"{init_from}: checkpoint has another vocabulary than the text")
        if model_task(name) == "captioning" and ck["hyper_parameters"].get("caption_vocab") != datamodule.vocab.to_json():
            raise CheckpointError(f"{init_from}: checkpoint has another word vocabulary than the captions")
        try:
            task.load_state_dict(ck["state_dict"])
        except RuntimeError as e:
            raise CheckpointError(f"{init_from}: weights do not fit the configured {name!r}: {e}") from None
    if compiled:  # torch.compile in place: the state_dict keys (and checkpoints) stay those of the plain model
        task.model.compile()
    return task


def _trainer(cfg: dict, run_dir: Path, *, monitor: str | None):
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    tcfg = dict(cfg["trainer"])
    tcfg.setdefault("enable_progress_bar", sys.stderr.isatty())
    version, k = "", 0  # a resumed run logs into logs/resume<k>/ so the earlier logs are kept
    while (run_dir / "logs" / version / "metrics.csv").exists():
        k += 1
        version = f"resume{k}"
    loggers = [CSVLogger(save_dir=str(run_dir), name="logs", version=version)]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="logs", version=f"tensorboard{version}"))
    except ImportError:
        pass
    mode = "max" if monitor and any(k in monitor for k in ("top1", "mAP", "gap20", "bleu", "cider")) else "min"
    ckpt = ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), filename="best", monitor=monitor, mode=mode,
                           save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    # last.ckpt after every epoch. Not ``save_last=True``: since Lightning 2.6 that writes last.ckpt
    # only in the epochs that also write a best checkpoint, so it fell behind once the monitored
    # metric stopped improving (a resume repeated epochs; a report read stale weights).
    last = ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), filename="last", monitor=None, save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    try:
        return L.Trainer(default_root_dir=str(run_dir), logger=loggers, callbacks=[ckpt, last, _Started()],
                         plugins=[AtomicCheckpointIO()], enable_model_summary=False, **tcfg)
    except (MisconfigurationException, ValueError, TypeError) as e:
        raise ConfigError(f"trainer: {e}") from None


class _Started(L.Callback):
    """Remembers whether training reached its first step (a run that fails before it leaves
    no run directory)."""

    started = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.started = True


def _num_params(module) -> tuple[int, int]:
    return (sum(p.numel() for p in module.parameters()),
            sum(p.numel() for p in module.parameters() if p.requires_grad))


def fit(config: str | os.PathLike | dict | None = None, overrides: Sequence[str] = (), *,
        run_dir: str | os.PathLike | None = None, resume: bool = False, init_from: str | os.PathLike | None = None,
        test: bool = True, report: Callable[[str], None] = print) -> dict:
    """Train a model and evaluate its best checkpoint.

    Args:
        config: a config file or shipped config name, a config mapping, or None (the default
            run: LRCN-tiny on the embedded Moving Digits).
        overrides: ``key.path=value`` settings applied on top.
        run_dir: the run directory (default ``runs/<name>/<timestamp>``); must be new or empty
            unless ``resume``.
        resume: continue ``run_dir`` from its ``last.ckpt`` with its own ``config.yaml``
            (``overrides`` still apply, e.g. more epochs).
        init_from: start from the weights of a checkpoint of the same model and classes.
        test: evaluate the test split after training.
        report: where progress lines go (the CLI prints them).

    Returns:
        The run summary (also written to ``summary.json``): model, parameters, dataset sizes,
        seconds, epochs, run directory, checkpoints, ``metrics`` (best checkpoint on val and
        test), ``per_lead_time`` (forecasters), ``language_model`` (nats and bits per
        character and perplexity of language models) or ``skipped_videos`` (classifiers).

    Raises:
        ConfigError, FileNotFoundError, FileExistsError, CheckpointError: bad input, reported
        before any run directory is made.
    """
    if resume:
        if not run_dir:
            raise ConfigError("--resume needs --run-dir (the run to continue)")
        if config is not None:
            raise ConfigError("--resume continues the run's own config.yaml; give changes as key=value overrides")
        last = Path(run_dir) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise FileNotFoundError(f"--resume: no {last} to continue from")
        cfg = load_config(None, overrides, saved=read_config_file(Path(run_dir) / "config.yaml")[0])
    else:
        last = None
        cfg = resolve_config(apply_overrides(config, overrides)) if isinstance(config, dict) else \
            load_config(config, overrides)
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    kind = model_task(cfg["model"]["name"])
    forecasting, language, captioning = kind == "forecasting", kind == "language_modeling", kind == "captioning"
    dm = build_datamodule(cfg)
    task = build_task(cfg, dm, init_from)
    classes = dm.classes if kind == "classification" else None
    if last is not None:
        ck = read_checkpoint(last)
        check_compatible(ck, last, model_name=cfg["model"]["name"], class_names=classes)
        if language and ck["hyper_parameters"].get("vocab") != dm.vocab.to_json():
            raise CheckpointError(f"{last}: the run was trained with another vocabulary than {cfg['data']['path']} gives "
                                  "(resume with the run's own data.path and data.max_chars)")
        if captioning and ck["hyper_parameters"].get("caption_vocab") != dm.vocab.to_json():
            raise CheckpointError(f"{last}: the run was trained with another word vocabulary than its data gives now "
                                  "(resume with the run's own data settings)")
    rank = _launched_rank()
    if rank > 0:  # a DDP worker: rank 0 made the run directory and writes everything in it
        shared = os.environ.get("VIDRNN_RUN_DIR") or run_dir
        if not shared:
            raise ConfigError("a distributed run started by an external launcher (torchrun, SLURM) needs --run-dir, "
                              "the same for every process")
        run, made = Path(shared), []
        run.mkdir(parents=True, exist_ok=True)
        report = _quiet
    else:
        run, made = (Path(run_dir), []) if resume else _make_run_dir(cfg, run_dir)
        os.environ["VIDRNN_RUN_DIR"] = str(run)  # the DDP workers Lightning starts re-run this command
    writes = rank == 0
    started = None
    try:
        n_all, n_train = _num_params(task.model)
        # streamed splits (YouTube-8M shards) have no length: their shard count is reported
        sizes = {k: len(v) if hasattr(v, "__len__") else f"{len(v.files)} shards of" for k, v in dm.splits.items()}
        if forecasting:
            monitor = "val/mse" if "val" in dm.splits else "train/loss"
        elif language:
            monitor = "val/loss" if "val" in dm.splits else "train/loss"
        elif captioning:
            monitor = "val/bleu4" if "val" in dm.splits else "train/loss"
        else:
            from vidrnn.tasks.classification import MAP_MAX_CLASSES

            ml = "val/mAP" if len(dm.classes) <= MAP_MAX_CLASSES else "val/gap20"
            monitor = (ml if dm.multilabel else "val/top1") if "val" in dm.splits else "train/loss"
        trainer = _trainer(cfg, run, monitor=monitor)
        started = next(c for c in trainer.callbacks if isinstance(c, _Started))
        if writes:
            dump_config(cfg, run / "config.yaml")
        if forecasting:
            report(f"vidrnn fit: {cfg['model']['name']} ({n_all:,} parameters) forecasting {cfg['data']['num_output']} "
                   f"frames from {cfg['data']['num_input']} on {dm.describe()}")
        elif language:
            from vidrnn.data.text import save_vocab

            if writes:
                save_vocab(dm.vocab, run / "vocab.json")
            report(f"vidrnn fit: {cfg['model']['name']} ({n_all:,} parameters) on {dm.describe()}, "
                   f"{cfg['data']['batch_size']} streams x {cfg['data']['seq_len']} characters per batch")
        elif captioning:
            if writes:
                dm.vocab.save(run / "vocab.json")
            report(f"vidrnn fit: {cfg['model']['name']} ({n_all:,} parameters, {n_train:,} trainable) on {dm.describe()}")
        else:
            if writes:
                write_json(run / "classes.json", {str(i): c for i, c in enumerate(dm.classes)})
            report(f"vidrnn fit: {cfg['model']['name']} ({n_all:,} parameters, {n_train:,} trainable) on "
                   f"{cfg['data']['source']} data, {len(dm.classes)} classes, "
                   + ", ".join(f"{k} {v} videos" for k, v in sizes.items()))
        report(f"run directory: {run}")
        t0 = time.time()
        if kind == "classification" and cfg["classification"]["cache_encoder"]:
            _cache_encoder_outputs(cfg, task, dm, run, report)
        trainer.fit(task, datamodule=dm, ckpt_path=str(last) if last else None)
    except BaseException:
        if writes and not resume and (started is None or not started.started):  # nothing trained: leave nothing
            _undo_run_dir(run, made)
        raise
    fit_s = time.time() - t0
    unit = "sequences" if forecasting else "batches" if language else "items" if captioning else "videos"
    summary = {"model": cfg["model"]["name"], "parameters": n_all, "trainable_parameters": n_train,
               "classes": len(dm.classes) if classes else None, unit: sizes,
               "fit_seconds": round(fit_s, 1), "epochs": trainer.current_epoch, "run_dir": str(run),
               "best_checkpoint": str(run / "checkpoints" / "best.ckpt"),
               "last_checkpoint": str(run / "checkpoints" / "last.ckpt")}
    results = {}
    best = trainer.checkpoint_callback.best_model_path or None
    if "val" in dm.splits:
        results.update(trainer.validate(task, datamodule=dm, ckpt_path=best, verbose=False)[0])
    if "test" in dm.splits and test:
        results.update(trainer.test(task, datamodule=dm, ckpt_path=best, verbose=False)[0])
    summary["metrics"] = {k: round(float(v), 4) for k, v in results.items()}
    if forecasting:
        summary["per_lead_time"] = task.last_eval
        summary["data"] = dict(dm.settings)
    elif language:
        summary["characters"] = {k: len(v) for k, v in dm.ids.items()}
        summary["vocab_size"] = len(dm.vocab)
        summary["language_model"] = task.last_eval
    elif captioning:
        summary["vocab_size"] = len(dm.vocab)
        summary["captioning"] = task.last_eval
        summary["missing_files"] = len(dm.missing)
        summary["skipped"] = sorted(task.skipped)
    else:
        summary["skipped_videos"] = sorted(task.skipped_videos)
    summary["processes"] = trainer.world_size
    if writes:
        write_json(run / "summary.json", summary)
    return summary


def _quiet(_line: str) -> None:
    pass


def evaluate(checkpoint: str | os.PathLike, stage: str = "test", *, config: str | os.PathLike | None = None,
             overrides: Sequence[str] = ()) -> dict:
    """Evaluate a checkpoint on the validation or test split of its own data settings (or of
    ``config`` / ``overrides`` given on top).

    Args:
        checkpoint: a vidrnn ``.ckpt``.
        stage: ``"validate"`` or ``"test"``.
        config: a YAML whose sections override the checkpoint's config.
        overrides: ``key.path=value`` settings on top. Evaluation runs in one process on one
            device unless they set ``trainer.devices``.

    Returns:
        ``{"checkpoint", "model", "split", "size", "metrics", "per_lead_time" (forecasters) |
        "language_model" (language models; size in characters) | "captioning" (captioners) |
        "skipped_videos" (classifiers), "data"}``.

    Raises:
        ConfigError: the data has no such split, or a bad setting.
        CheckpointError: the data's classes differ from the checkpoint's.
    """
    if stage not in ("validate", "test"):
        raise ValueError(f"stage={stage!r}: expected 'validate' or 'test'")
    ck = read_checkpoint(checkpoint)
    hp = ck["hyper_parameters"]
    # the run's config; a checkpoint made from Python without one: its data settings
    base = dict(hp.get("config") or {"data": dict(hp.get("data") or {})})
    base["model"] = {**(base.get("model") or {}), "name": hp["model_name"]}
    cfg = load_config(config, overrides, saved=base)
    if cfg["model"]["name"] != hp["model_name"]:
        raise ConfigError(f"model.name: the checkpoint holds {hp['model_name']!r}, not {cfg['model']['name']!r}")
    kind = checkpoint_task(ck)
    part = "val" if stage == "validate" else "test"
    dm = build_datamodule(cfg, vocab=hp.get("caption_vocab") or hp.get("vocab"), only=part)
    if kind == "classification":
        check_compatible(ck, checkpoint, class_names=dm.classes)
    task = load_task(checkpoint, checkpoint=ck)
    if kind == "classification":
        task.use_cached_features(cfg["data"]["source"] == "features")
    if kind == "captioning":  # decoding settings of this evaluation (e.g. captioning.beam_size=5)
        task.set_decoding(**{k: cfg["captioning"][k] for k in ("beam_size", "max_length", "length_penalty")})
    if part not in dm.splits:
        raise ConfigError(f"the data config has no {part} split to {stage} on")
    run_dir = Path(checkpoint).resolve().parent.parent
    tcfg = {k: v for k, v in cfg["trainer"].items() if k in ("accelerator", "devices", "precision")}
    # one process unless asked: a run trained with DDP on N devices is not evaluated by relaunching
    # N processes (whose distributed sampler would also pad the split)
    if not any(o.split("=", 1)[0].strip() == "trainer.devices" for o in overrides):
        tcfg["devices"] = 1
    trainer = L.Trainer(logger=False, enable_checkpointing=False, default_root_dir=str(run_dir),
                        enable_progress_bar=sys.stderr.isatty(), enable_model_summary=False, **tcfg)
    fn = trainer.validate if stage == "validate" else trainer.test
    res = {k: round(float(v), 4) for k, v in fn(task, datamodule=dm, verbose=False)[0].items()}
    split = dm.splits[part]
    size = len(split) if hasattr(split, "__len__") else f"{len(split.files)} shards"  # streamed (YouTube-8M)
    out = {"checkpoint": str(checkpoint), "model": hp["model_name"], "split": part, "size": size,
           "metrics": res, "data": dict(dm.settings)}
    if kind == "forecasting":
        out["per_lead_time"] = task.last_eval[part]
    elif kind == "language_modeling":
        out["size"] = len(dm.ids[part])
        out["language_model"] = task.last_eval[part]
    elif kind == "captioning":
        out["captioning"] = task.last_eval.get(part, {})
        out["skipped"] = sorted(task.skipped)
    else:
        out["skipped_videos"] = sorted(task.skipped_videos)
    return out
