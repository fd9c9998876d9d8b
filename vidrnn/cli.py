"""The ``vidrnn`` command: thin wrappers over the library.

    vidrnn fit [--config C] [--run-dir D] [--resume] [--init-from CKPT] [key=value ...]
    vidrnn validate CKPT [--config C] [key=value ...]
    vidrnn test CKPT [--config C] [key=value ...]
    vidrnn predict CKPT VIDEO... [--topk K] [--output F.json] [--timeline/--no-timeline]
    vidrnn predict FORECASTER_CKPT [INPUT...] [--output-dir D] [--num N]
    vidrnn models [PATTERN]
    vidrnn extract-features --out DIR [--config C | VIDEO...] [--encoder NAME] [--fps 1]

``vidrnn fit`` with no arguments trains LRCN (tiny) on the embedded Moving Digits dataset and
prints its test accuracy. Every fit writes a run directory (``runs/<name>/<version>``, or
``--run-dir``; an existing non-empty one is never overwritten -- use ``--resume``) holding
``config.yaml``, ``classes.json``, ``checkpoints/{best,last}.ckpt``, ``logs/`` (CSV, and
TensorBoard when installed) and ``summary.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

from vidrnn.errors import CheckpointError, ConfigError, VidrnnError

log = logging.getLogger("vidrnn")


def forecast_report(result: dict, settings: dict) -> str:
    """Per-lead-time table of a forecasting evaluation (see :func:`vidrnn.tasks.forecasting.forecast_report`)."""
    from vidrnn.tasks.forecasting import forecast_report as report

    return report(result, settings)


# ---------------------------------------------------------------------------- helpers
def _write_json(path: Path, obj) -> None:
    from vidrnn.io.files import write_json

    write_json(path, obj)


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed", "lightning.pytorch.utilities.model_summary"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*The number of training batches.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # frozen encoders, on purpose


def new_run_dir(cfg: dict, run_dir: str | None) -> Path:
    """The directory for a new run; never an existing non-empty one.

    Raises:
        FileExistsError: ``run_dir`` exists and is not empty.
    """
    if run_dir:
        p = Path(run_dir)
        if p.exists() and any(p.iterdir()):
            raise FileExistsError(f"run directory {p} already exists and is not empty; "
                                  "pass --resume to continue it, or choose another --run-dir")
        p.mkdir(parents=True, exist_ok=True)
        return p
    base = Path(cfg["run"].get("root") or "runs") / (cfg["run"].get("name") or cfg["model"]["name"])
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        p = base / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a new run directory under {base}")


def _make_trainer(cfg: dict, run_dir: Path, *, for_fit: bool, monitor: str | None):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from lightning.pytorch.callbacks import ModelCheckpoint

    from vidrnn.inference.checkpoint import AtomicCheckpointIO

    tcfg = dict(cfg["trainer"])
    tcfg.setdefault("enable_progress_bar", sys.stderr.isatty())
    # A resumed run logs into logs/resume<k>/ so the earlier logs are kept, never rewritten.
    version, k = "", 0
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
    callbacks = []
    if for_fit:
        mode = "max" if monitor and ("top1" in monitor or "mAP" in monitor) else "min"
        callbacks.append(ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), filename="best", monitor=monitor,
                                               mode=mode, save_last=True, save_top_k=1, auto_insert_metric_name=False,
                                               enable_version_counter=False))
    try:
        return L.Trainer(default_root_dir=str(run_dir), logger=loggers, callbacks=callbacks,
                         plugins=[AtomicCheckpointIO()], enable_model_summary=False, **tcfg)
    except TypeError as e:
        raise ConfigError(f"trainer section: {e}") from None


def _metrics_table(metrics: dict, title: str) -> str:
    rows = [(k, v) for k, v in metrics.items()]
    w = max([len(k) for k, _ in rows] + [10])
    lines = [title, "-" * (w + 12)]
    for k, v in rows:
        lines.append(f"{k:<{w}}  {v:>9.4f}" if isinstance(v, float) else f"{k:<{w}}  {v!s:>9}")
    return "\n".join(lines)


def _is_forecasting(cfg: dict) -> bool:
    from vidrnn.registry import model_task

    return model_task(cfg["model"]["name"]) == "forecasting"


def _build_datamodule(cfg: dict):
    """The data module for the config's model: videos+labels, or input/target frame sequences."""
    if _is_forecasting(cfg):
        from vidrnn.data.forecast_datamodule import ForecastDataModule

        if cfg["data"].get("source") == "digits":  # the classification default: switch to Moving MNIST
            cfg["data"] = {**cfg["data"], "source": "moving_mnist"}
        return ForecastDataModule(cfg["data"])
    from vidrnn.data.datamodule import VideoDataModule

    return VideoDataModule(cfg["data"])


def _build_forecasting_task(cfg: dict, datamodule, init_from: str | None = None):
    from vidrnn.tasks.forecasting import ForecastingTask

    model_cfg = dict(cfg["model"])
    name = model_cfg.pop("name")
    fc = cfg.get("forecasting") or {}
    task = ForecastingTask(name, model_cfg, optimizer=cfg["optimizer"], data=datamodule.settings, config=cfg,
                           loss=fc.get("loss", "bce"), scheduled_sampling=fc.get("scheduled_sampling"),
                           ssim=bool(fc.get("ssim", True)))
    if init_from:
        from vidrnn.inference.checkpoint import check_compatible, read_checkpoint

        ck = read_checkpoint(init_from)
        check_compatible(ck, init_from, model_name=name)
        try:
            task.load_state_dict(ck["state_dict"])
        except RuntimeError as e:
            raise CheckpointError(f"{init_from}: weights do not fit the configured {name!r}: {e}") from None
    return task


def _build_task(cfg: dict, datamodule, init_from: str | None = None):
    import torch

    if _is_forecasting(cfg):
        return _build_forecasting_task(cfg, datamodule, init_from)

    from vidrnn.tasks.classification import ClassificationTask

    model_cfg = dict(cfg["model"])
    name = model_cfg.pop("name")
    encoder_state = None
    if cfg["data"].get("source") == "features":
        from vidrnn.data.features import load_cache_meta

        meta = load_cache_meta(cfg["data"]["cache"])
        model_cfg.update(encoder=meta["encoder"], pretrained=False, trainable="none")
        encoder_state = torch.load(Path(cfg["data"]["cache"]) / "encoder.pt", map_location="cpu", weights_only=True)
    task = ClassificationTask(name, model_cfg, datamodule.classes, optimizer=cfg["optimizer"], data=datamodule.settings,
                              config=cfg, label_smoothing=float(cfg.get("label_smoothing") or 0.0),
                              multilabel=getattr(datamodule, "multilabel", False))
    if encoder_state is not None:
        task.model.encoder.load_state_dict(encoder_state)
    if init_from:
        from vidrnn.inference.checkpoint import check_compatible, read_checkpoint

        ck = read_checkpoint(init_from)
        check_compatible(ck, init_from, model_name=name, class_names=datamodule.classes)
        try:
            task.load_state_dict(ck["state_dict"])
        except RuntimeError as e:
            raise CheckpointError(f"{init_from}: weights do not fit the configured {name!r}: {e}") from None
    return task


def _num_params(module) -> tuple[int, int]:
    return (sum(p.numel() for p in module.parameters()),
            sum(p.numel() for p in module.parameters() if p.requires_grad))


# ---------------------------------------------------------------------------- commands
def cmd_fit(args) -> int:
    import lightning as L

    from vidrnn.config import dump_config, load_config

    if args.resume:
        if not args.run_dir:
            raise ConfigError("--resume needs --run-dir (the run to continue)")
        run_dir = Path(args.run_dir)
        last = run_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise FileNotFoundError(f"--resume: no {last} to continue from")
        cfg = load_config(run_dir / "config.yaml", args.overrides)
        if args.config:
            raise ConfigError("--resume continues the run's own config.yaml; give changes as key=value overrides")
    else:
        cfg = load_config(args.config, args.overrides)
        run_dir = new_run_dir(cfg, args.run_dir)
        last = None
    L.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    forecasting = _is_forecasting(cfg)
    dm = _build_datamodule(cfg)
    cfg["data"] = dm.settings
    task = _build_task(cfg, dm, args.init_from)
    classes = None if forecasting else dm.classes
    if last is not None:
        from vidrnn.inference.checkpoint import check_compatible, read_checkpoint

        check_compatible(read_checkpoint(last), last, model_name=cfg["model"]["name"], class_names=classes)
    dump_config(cfg, run_dir / "config.yaml")
    n_all, n_train = _num_params(task.model)
    sizes = {k: len(v) for k, v in dm.splits.items()}
    if forecasting:
        print(f"vidrnn fit: {cfg['model']['name']} ({n_all:,} parameters) forecasting {cfg['data']['num_output']} "
              f"frames from {cfg['data']['num_input']} on {dm.describe()}")
        monitor = "val/mse" if "val" in dm.splits else "train/loss"
    else:
        _write_json(run_dir / "classes.json", {str(i): c for i, c in enumerate(dm.classes)})
        print(f"vidrnn fit: {cfg['model']['name']} ({n_all:,} parameters, {n_train:,} trainable) on "
              f"{cfg['data']['source']} data, {len(dm.classes)} classes, "
              + ", ".join(f"{k} {v} videos" for k, v in sizes.items()))
        monitor = ("val/mAP" if dm.multilabel else "val/top1") if "val" in dm.splits else "train/loss"
    print(f"run directory: {run_dir}")
    trainer = _make_trainer(cfg, run_dir, for_fit=True, monitor=monitor)
    t0 = time.time()
    trainer.fit(task, datamodule=dm, ckpt_path=str(last) if last else None)
    fit_s = time.time() - t0
    summary = {"model": cfg["model"]["name"], "parameters": n_all, "trainable_parameters": n_train,
               "classes": None if forecasting else len(dm.classes), ("sequences" if forecasting else "videos"): sizes,
               "fit_seconds": round(fit_s, 1),
               "epochs": trainer.current_epoch, "run_dir": str(run_dir),
               "best_checkpoint": str(run_dir / "checkpoints" / "best.ckpt"),
               "last_checkpoint": str(run_dir / "checkpoints" / "last.ckpt")}
    results = {}
    ckpt_cb = trainer.checkpoint_callback
    best = ckpt_cb.best_model_path if ckpt_cb and ckpt_cb.best_model_path else None
    if "val" in dm.splits:
        results.update(trainer.validate(task, datamodule=dm, ckpt_path=best, verbose=False)[0])
    if "test" in dm.splits and not args.no_test:
        results.update(trainer.test(task, datamodule=dm, ckpt_path=best, verbose=False)[0])
    summary["metrics"] = {k: round(float(v), 4) for k, v in results.items()}
    if forecasting:
        summary["per_lead_time"] = task.last_eval
        _write_json(run_dir / "summary.json", summary)
        print()
        print(_metrics_table(summary["metrics"], f"{cfg['model']['name']}: {trainer.current_epoch} epochs in "
                                                 f"{fit_s:.0f} s, best checkpoint"))
        if "test" in task.last_eval:
            print()
            print(forecast_report(task.last_eval["test"], dm.settings))
        print(f"\ncheckpoints: {run_dir / 'checkpoints'}  logs: {run_dir / 'logs'}")
        return 0
    summary["skipped_videos"] = sorted(task.skipped_videos)
    _write_json(run_dir / "summary.json", summary)
    print()
    print(_metrics_table({**summary["metrics"], "skipped_videos": len(task.skipped_videos)},
                         f"{cfg['model']['name']}: {trainer.current_epoch} epochs in {fit_s:.0f} s, best checkpoint"))
    if task.skipped_videos:
        print(f"skipped {len(task.skipped_videos)} unreadable videos (listed in {run_dir / 'summary.json'})")
    print(f"\ncheckpoints: {run_dir / 'checkpoints'}  logs: {run_dir / 'logs'}")
    if "test/top1" in summary["metrics"]:
        print(f"test accuracy (top-1): {summary['metrics']['test/top1'] * 100:.1f}%")
    if "test/mAP" in summary["metrics"]:
        print(f"test mAP: {summary['metrics']['test/mAP'] * 100:.1f}%")
    return 0


def cmd_evaluate(args, stage: str) -> int:
    import lightning as L

    from vidrnn.inference.checkpoint import check_compatible, checkpoint_task, load_model, read_checkpoint
    from vidrnn.config import apply_overrides, merge

    ck = read_checkpoint(args.checkpoint)
    hp = ck["hyper_parameters"]
    cfg = merge(hp.get("config") or {}, {"data": hp.get("data") or {}})
    if args.config:
        from vidrnn.config import find_config
        import yaml

        cfg = merge(cfg, yaml.safe_load(find_config(args.config).read_text()) or {})
    cfg = apply_overrides(cfg, args.overrides)
    forecasting = checkpoint_task(ck) == "forecasting"
    cfg["model"] = {**cfg.get("model", {}), "name": hp["model_name"]}
    dm = _build_datamodule(cfg)
    if not forecasting:
        check_compatible(ck, args.checkpoint, class_names=dm.classes)
    task = load_model(args.checkpoint)
    part = "val" if stage == "validate" else "test"
    if part not in dm.splits:
        raise ConfigError(f"the data config has no {part} split to {stage} on")
    run_dir = Path(args.checkpoint).resolve().parent.parent
    tcfg = {k: v for k, v in cfg.get("trainer", {}).items() if k in ("accelerator", "devices", "precision")}
    trainer = L.Trainer(logger=False, enable_checkpointing=False, default_root_dir=str(run_dir),
                        enable_progress_bar=sys.stderr.isatty(), **tcfg)
    fn = trainer.validate if stage == "validate" else trainer.test
    res = fn(task, datamodule=dm, verbose=False)[0]
    res = {k: round(float(v), 4) for k, v in res.items()}
    if forecasting:
        print(_metrics_table(res, f"{stage}: {hp['model_name']} on {len(dm.splits[part])} sequences ({args.checkpoint})"))
        print()
        print(forecast_report(task.last_eval[part], dm.settings))
        if args.output:
            _write_json(Path(args.output), {"checkpoint": str(args.checkpoint), "metrics": res,
                                            "per_lead_time": task.last_eval[part]})
        return 0
    res["skipped_videos"] = len(task.skipped_videos)
    print(_metrics_table(res, f"{stage}: {hp['model_name']} on {len(dm.splits[part])} videos ({args.checkpoint})"))
    if args.output:
        _write_json(Path(args.output), {"checkpoint": str(args.checkpoint), "metrics": res,
                                        "skipped_videos": sorted(task.skipped_videos)})
    return 0


def cmd_predict(args) -> int:
    from vidrnn.inference.checkpoint import checkpoint_task, load_model, read_checkpoint

    if checkpoint_task(read_checkpoint(args.checkpoint)) == "forecasting":
        return cmd_predict_forecast(args)
    from vidrnn.inference.predict import Predictor

    if not args.videos:
        raise ValueError("predict: give one or more video files to label")
    task = load_model(args.checkpoint)
    pred = Predictor(task, device=args.device)
    results, failed = [], 0
    for v in args.videos:
        try:
            r = pred.predict(v, topk=args.topk, timeline=args.timeline, window=args.window)
        except (FileNotFoundError, VidrnnError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            results.append({"video": str(v), "error": str(e)})
            failed += 1
            continue
        if args.attention:
            r["attention"] = _write_attention(pred, v, Path(args.attention))
        results.append(r)
        print(f"\n{Path(v).name}  ({r['duration']:.1f} s, {r['frames']} frames)")
        w = max(len(t["label"]) for t in r["topk"])
        for i, t in enumerate(r["topk"], 1):
            print(f"  {i}. {t['label']:<{w}}  {t['prob'] * 100:5.1f}%")
        if "present" in r:
            print(f"  present (p >= 0.5): {', '.join(r['present']) or 'none'}")
        if r["timeline"]:
            print("  timeline (label per second):")
            for seg in _merge_timeline(r["timeline"]):
                print(f"    {seg['start']:7.1f}-{seg['end']:7.1f} s  {seg['label']}  (mean p {seg['prob']:.2f})")
    if args.output:
        _write_json(Path(args.output), {"checkpoint": str(args.checkpoint), "model": task.hparams.model_name,
                                        "results": results})
        print(f"\nwrote {args.output}")
    return 1 if failed else 0


def _true_label(video, classes: list[str]) -> str | None:
    """The label a file name or its folder states, when it is one of the classes (else None)."""
    p = Path(video)
    for cand in (p.stem, p.parent.name):
        for c in classes:
            if cand.lower() == c.lower():
                return c
    return None


def _write_attention(pred, video, out_dir: Path) -> dict:
    """Overlay MP4 + GIF of one video's attention; titles say predicted (and true) label."""
    from vidrnn.viz.attention import write_attention_video

    out_dir.mkdir(parents=True, exist_ok=True)
    a = pred.attention_clip(video)
    i = int(a["probs"].argmax())
    label, truth = pred.classes[i], _true_label(video, pred.classes)
    title = f"pred {label} {a['probs'][i] * 100:.0f}%"
    if pred.multilabel:  # independent labels: name every one the model says is present
        label = ",".join(c for c, p in zip(pred.classes, a["probs"].tolist()) if p >= 0.5) or "none"
        title = f"pred {label}"
    colour = (255, 255, 255)
    if truth is not None:
        ok = truth in label.split(",") if pred.multilabel else truth == label
        title += f" | true {truth} {'(right)' if ok else '(wrong)'}"
        colour = (120, 255, 120) if ok else (255, 110, 110)
    scale = max(1, -(-320 // a["frames"].shape[-1]))  # at least 320 px wide
    mp4, gif = write_attention_video(a["frames"], out_dir / Path(video).stem, spatial=a["spatial"],
                                     map_size=a["map_size"], temporal=a["temporal"], title=title,
                                     title_colour=colour, scale=scale)
    print(f"  attention: {mp4}  {gif}")
    return {"mp4": str(mp4), "gif": str(gif), "predicted": label, "true": truth}


def cmd_predict_forecast(args) -> int:
    from vidrnn.inference.checkpoint import load_model
    from vidrnn.inference.forecast import predict_forecasts

    task = load_model(args.checkpoint)
    out_dir = Path(args.output_dir or Path(args.checkpoint).resolve().parent.parent / "predictions")
    res = predict_forecasts(task, list(args.videos), out_dir, num=args.num, device=args.device)
    print(f"{task.hparams.model_name}: forecast {len(res['sequences'])} sequences -> {out_dir}")
    for r in res["sequences"]:
        print(f"  {Path(r['png']).name}  {Path(r['gif']).name}  MSE/frame {r['mse_per_frame']:.1f}")
    print()
    print(forecast_report(res["metrics"], dict(task.hparams.data or {})))
    print(f"\nper-lead-time plot: {out_dir / 'lead_time.png'}  metrics: {out_dir / 'metrics.json'}")
    if args.output:
        _write_json(Path(args.output), res)
    return 0


def _merge_timeline(timeline: list[dict]) -> list[dict]:
    """Consecutive seconds with the same label as one segment (for the terminal)."""
    out: list[dict] = []
    for s in timeline:
        if out and out[-1]["label"] == s["label"]:
            o = out[-1]
            n = o["n"] + 1
            o.update(end=s["end"], prob=(o["prob"] * o["n"] + s["prob"]) / n, n=n)
        else:
            out.append({**s, "n": 1})
    return out


def cmd_models(args) -> int:
    from vidrnn.registry import get_model_builder, list_models

    names = list_models(args.pattern)
    if not names:
        print(f"no model matches {args.pattern!r}")
        return 1
    w = max(len(n) for n in names)
    for n in names:
        doc = (get_model_builder(n).__doc__ or "").strip().splitlines()
        print(f"{n:<{w}}  {doc[0] if doc else ''}")
    return 0


def cmd_extract(args) -> int:
    from vidrnn.inference.features import extract_features

    stats = extract_features(
        args.out, videos=args.videos, config=args.config, overrides=args.overrides, encoder=args.encoder,
        fps=args.fps, size=args.size, decode_size=args.decode_size, maps=args.maps, batch_size=args.batch_size,
        shard=args.shard, num_shards=args.num_shards, device=args.device, on_error=args.on_error)
    print(_metrics_table(stats, f"extract-features -> {args.out}"))
    return 0


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidrnn", description="Recurrent and attention-based video models.")
    p.add_argument("--verbose", "-v", action="store_true", help="show Lightning's messages and full tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fit", help="train a model (default: LRCN-tiny on the embedded Moving Digits)")
    f.add_argument("--config", "-c", help="YAML config path or name in configs/")
    f.add_argument("--run-dir", help="run directory (default runs/<name>/<timestamp>); must be new unless --resume")
    f.add_argument("--resume", action="store_true", help="continue --run-dir from its last checkpoint")
    f.add_argument("--init-from", help="initialise the weights from a checkpoint of the same model and classes")
    f.add_argument("--no-test", action="store_true", help="skip the test-set evaluation after training")
    f.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. trainer.max_epochs=2")

    for stage in ("validate", "test"):
        e = sub.add_parser(stage, help=f"{stage} a checkpoint (data settings from the checkpoint unless overridden)")
        e.add_argument("checkpoint")
        e.add_argument("--config", "-c", help="YAML whose sections override the checkpoint's config")
        e.add_argument("--output", "-o", help="write the metrics as JSON")
        e.add_argument("overrides", nargs="*", metavar="key=value")

    pr = sub.add_parser("predict", help="label videos (classifier) or forecast sequences (forecaster) with a checkpoint")
    pr.add_argument("checkpoint")
    pr.add_argument("videos", nargs="*", metavar="INPUT",
                    help="videos to label; for a forecaster: .npy sequences or radar folders (default: its test split)")
    pr.add_argument("--output-dir", help="forecaster: folder for PNG/GIF/plots (default: <run>/predictions)")
    pr.add_argument("--num", type=int, default=4, help="forecaster: sequences per input to draw")
    pr.add_argument("--topk", type=int, default=5)
    pr.add_argument("--output", "-o", help="write the results as JSON")
    pr.add_argument("--timeline", dest="timeline", action="store_true", default=None,
                    help="per-second labels (default: for videos longer than 10 s)")
    pr.add_argument("--no-timeline", dest="timeline", action="store_false")
    pr.add_argument("--window", type=float, help="seconds of video per timeline clip")
    pr.add_argument("--attention", metavar="DIR",
                    help="attention models: write per-video MP4 and GIF overlays of where the model looks into DIR")
    pr.add_argument("--device", default="cpu")

    m = sub.add_parser("models", help="list registered models")
    m.add_argument("pattern", nargs="?", default="*")

    x = sub.add_parser("extract-features", help="cache per-frame encoder features of a dataset or of videos")
    x.add_argument("videos", nargs="*", help="video files (default: every video of --config's data)")
    x.add_argument("--out", required=True, help="cache directory (resumable: finished videos are skipped)")
    x.add_argument("--config", "-c", help="config whose data section lists the videos")
    x.add_argument("--set", dest="overrides", action="append", default=[], metavar="key=value")
    x.add_argument("--encoder", default="efficientnet_lite0")
    x.add_argument("--fps", type=float, default=1.0, help="frames per second to sample (Ng et al.: 1)")
    x.add_argument("--size", type=int, default=224, help="centre-crop side fed to the encoder, pixels")
    x.add_argument("--decode-size", type=int, default=256, help="shorter side while decoding, pixels")
    x.add_argument("--maps", action="store_true", help="store conv maps (B, T, C, h, w) instead of pooled vectors")
    x.add_argument("--batch-size", type=int, default=32, help="frames per encoder batch (bounds memory)")
    x.add_argument("--shard", type=int, default=0, help="this process's shard (0-based)")
    x.add_argument("--num-shards", type=int, default=1, help="processes/GPUs splitting the videos")
    x.add_argument("--device", default="cpu")
    x.add_argument("--on-error", choices=["skip", "raise"], default="skip")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (errors in user input print one line, status 2)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come before or after options: collect the stragglers
    bad = [e for e in extra if e.startswith("-") or "=" not in e]
    if bad or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(bad or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        _quiet_lightning()
    try:
        if args.command == "fit":
            return cmd_fit(args)
        if args.command in ("validate", "test"):
            return cmd_evaluate(args, args.command)
        if args.command == "predict":
            return cmd_predict(args)
        if args.command == "models":
            return cmd_models(args)
        if args.command == "extract-features":
            return cmd_extract(args)
    except (FileNotFoundError, FileExistsError, VidrnnError, ValueError) as e:
        if args.verbose:
            raise
        print(f"vidrnn {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
