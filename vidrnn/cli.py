"""The ``vidrnn`` command: each subcommand parses its arguments, calls one library function and
prints the result.

    vidrnn fit [--config C] [--run-dir D] [--resume] [--init-from CKPT] [key=value ...]   vidrnn.runner.fit
    vidrnn validate CKPT [--config C] [key=value ...]                                     vidrnn.runner.evaluate
    vidrnn test CKPT [--config C] [key=value ...]                                         vidrnn.runner.evaluate
    vidrnn predict CKPT VIDEO... [--topk K] [--attention DIR] [--output F.json]           vidrnn.inference.predict
    vidrnn predict FORECASTER_CKPT [INPUT...] [--output-dir D] [--num N]                  vidrnn.inference.forecast
    vidrnn models [PATTERN]                                                               vidrnn.list_models
    vidrnn configs                                                                        vidrnn.config.shipped_configs
    vidrnn extract-features --out DIR [--config C | VIDEO...] [--encoder NAME] [--fps 1]  vidrnn.inference.features

``vidrnn fit`` with no arguments trains LRCN (tiny) on the embedded Moving Digits dataset and
prints its test accuracy. Bad input (a config typo, a missing file, a wrong value) prints one
line naming what is wrong and exits with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from vidrnn.errors import VidrnnError

log = logging.getLogger("vidrnn")


def _metrics_table(metrics: dict, title: str) -> str:
    w = max([len(k) for k in metrics] + [10])
    lines = [title, "-" * (w + 12)]
    for k, v in metrics.items():
        lines.append(f"{k:<{w}}  {v:>9.4f}" if isinstance(v, float) else f"{k:<{w}}  {v!s:>9}")
    return "\n".join(lines)


def _write_json(path: str, obj) -> None:
    from vidrnn.io.files import write_json

    write_json(Path(path), obj)


# ---------------------------------------------------------------------------- commands
def cmd_fit(args) -> int:
    from vidrnn.runner import fit
    from vidrnn.tasks.forecasting import forecast_report

    s = fit(args.config, args.overrides, run_dir=args.run_dir, resume=args.resume, init_from=args.init_from,
            test=not args.no_test)
    title = f"{s['model']}: {s['epochs']} epochs in {s['fit_seconds']:.0f} s, best checkpoint"
    print()
    if "per_lead_time" in s:
        print(_metrics_table(s["metrics"], title))
        if "test" in s["per_lead_time"]:
            print()
            print(forecast_report(s["per_lead_time"]["test"], s["data"]))
        print(f"\ncheckpoints: {Path(s['run_dir']) / 'checkpoints'}  logs: {Path(s['run_dir']) / 'logs'}")
        return 0
    print(_metrics_table({**s["metrics"], "skipped_videos": len(s["skipped_videos"])}, title))
    if s["skipped_videos"]:
        print(f"skipped {len(s['skipped_videos'])} unreadable videos (listed in {Path(s['run_dir']) / 'summary.json'})")
    print(f"\ncheckpoints: {Path(s['run_dir']) / 'checkpoints'}  logs: {Path(s['run_dir']) / 'logs'}")
    if "test/top1" in s["metrics"]:
        print(f"test accuracy (top-1): {s['metrics']['test/top1'] * 100:.1f}%")
    if "test/mAP" in s["metrics"]:
        print(f"test mAP: {s['metrics']['test/mAP'] * 100:.1f}%")
    return 0


def cmd_evaluate(args) -> int:
    from vidrnn.runner import evaluate
    from vidrnn.tasks.forecasting import forecast_report

    r = evaluate(args.checkpoint, args.command, config=args.config, overrides=args.overrides)
    what = "sequences" if "per_lead_time" in r else "videos"
    metrics = r["metrics"] if "per_lead_time" in r else {**r["metrics"], "skipped_videos": len(r["skipped_videos"])}
    print(_metrics_table(metrics, f"{args.command}: {r['model']} on {r['size']} {what} ({args.checkpoint})"))
    if "per_lead_time" in r:
        print()
        print(forecast_report(r["per_lead_time"], r["data"]))
    if args.output:
        _write_json(args.output, {k: v for k, v in r.items() if k != "data"})
    return 0


def cmd_predict(args) -> int:
    from vidrnn.inference.checkpoint import checkpoint_task, read_checkpoint

    ckpt = read_checkpoint(args.checkpoint)
    if checkpoint_task(ckpt) == "forecasting":
        return cmd_predict_forecast(args)
    model_name = ckpt["hyper_parameters"]["model_name"]
    del ckpt
    from vidrnn.inference.predict import label_videos, merge_timeline

    results, failed = [], 0
    for r in label_videos(args.checkpoint, args.videos, topk=args.topk, timeline=args.timeline, window=args.window,
                          attention_dir=args.attention, device=args.device):
        results.append(r)
        if "error" in r:
            print(f"error: {r['error']}", file=sys.stderr)
            failed += 1
            continue
        print(f"\n{Path(r['video']).name}  ({r['duration']:.1f} s, {r['frames']} frames)")
        w = max(len(t["label"]) for t in r["topk"])
        for i, t in enumerate(r["topk"], 1):
            print(f"  {i}. {t['label']:<{w}}  {t['prob'] * 100:5.1f}%")
        if "present" in r:
            print(f"  present (p >= 0.5): {', '.join(r['present']) or 'none'}")
        if "attention" in r:
            print(f"  attention: {r['attention']['mp4']}  {r['attention']['gif']}")
        if r["timeline"]:
            print("  timeline (label per second):")
            for seg in merge_timeline(r["timeline"]):
                print(f"    {seg['start']:7.1f}-{seg['end']:7.1f} s  {seg['label']}  (mean p {seg['prob']:.2f})")
    if args.output:
        _write_json(args.output, {"checkpoint": str(args.checkpoint), "model": model_name,
                                  "results": results})
        print(f"\nwrote {args.output}")
    return 1 if failed else 0


def cmd_predict_forecast(args) -> int:
    from vidrnn.inference.checkpoint import load_model
    from vidrnn.inference.forecast import predict_forecasts
    from vidrnn.tasks.forecasting import forecast_report

    model = load_model(args.checkpoint)
    out_dir = Path(args.output_dir or Path(args.checkpoint).resolve().parent.parent / "predictions")
    res = predict_forecasts(model, list(args.videos), out_dir, num=args.num, device=args.device)
    print(f"{res['model']}: forecast {len(res['sequences'])} sequences -> {out_dir}")
    for r in res["sequences"]:
        print(f"  {Path(r['png']).name}  {Path(r['gif']).name}  MSE/frame {r['mse_per_frame']:.1f}")
    print()
    print(forecast_report(res["metrics"], model.vidrnn.data))
    print(f"\nper-lead-time plot: {out_dir / 'lead_time.png'}  metrics: {out_dir / 'metrics.json'}")
    if args.output:
        _write_json(args.output, res)
    return 0


def cmd_models(args) -> int:
    from vidrnn.registry import get_model_builder, list_models, model_task

    names = list_models(args.pattern)
    if not names:
        print(f"no model matches {args.pattern!r}")
        return 1
    w = max(len(n) for n in names)
    for n in names:
        doc = (get_model_builder(n).__doc__ or "").strip().splitlines()
        print(f"{n:<{w}}  {model_task(n):<14}  {doc[0] if doc else ''}")
    return 0


def cmd_configs(args) -> int:
    from vidrnn.config import config_summary, shipped_configs

    configs = shipped_configs()
    w = max(len(n) for n in configs)
    for name, f in configs.items():
        print(f"{name:<{w}}  {config_summary(f)}")
    print("\nrun one with `vidrnn fit -c NAME` (settings can be overridden: key=value)")
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
    p.add_argument("--verbose", "-v", action="store_true", help="show Lightning's messages")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fit", help="train a model (default: LRCN-tiny on the embedded Moving Digits)")
    f.add_argument("--config", "-c", help="YAML config path, or the name of a shipped config (`vidrnn configs`)")
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

    sub.add_parser("configs", help="list the configs shipped with vidrnn")

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


COMMANDS = {"fit": cmd_fit, "validate": cmd_evaluate, "test": cmd_evaluate, "predict": cmd_predict,
            "models": cmd_models, "configs": cmd_configs, "extract-features": cmd_extract}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (reported in one line), not a bug in vidrnn."""
    errors: list[type[BaseException]] = [FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError,
                                         VidrnnError, ValueError]
    try:
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        errors.append(MisconfigurationException)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (bad input prints one line and gives 2)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come before or after options: collect the stragglers
    bad = [e for e in extra if e.startswith("-") or "=" not in e]
    if bad or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(bad or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose and args.command in ("fit", "validate", "test"):
        from vidrnn.runner import quiet_lightning

        quiet_lightning()
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"vidrnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as e:
        if args.debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"vidrnn {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
