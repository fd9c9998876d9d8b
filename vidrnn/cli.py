"""The ``vidrnn`` command: each subcommand parses its arguments, calls one library function and
prints the result.

    vidrnn fit [--config C] [--run-dir D] [--resume] [--init-from CKPT] [key=value ...]   vidrnn.runner.fit
    vidrnn validate CKPT [--config C] [key=value ...]                                     vidrnn.runner.evaluate
    vidrnn test CKPT [--config C] [key=value ...]                                         vidrnn.runner.evaluate
    vidrnn predict CKPT VIDEO... [--topk K] [--attention DIR] [--output F.json]           vidrnn.inference.predict
    vidrnn predict CAPTIONER_CKPT IMAGE|VIDEO... [--beam K] [--attention DIR]             vidrnn.inference.caption
    vidrnn predict FORECASTER_CKPT [INPUT...] [--output-dir D] [--num N]                  vidrnn.inference.forecast
    vidrnn models [PATTERN]                                                               vidrnn.list_models
    vidrnn configs                                                                        vidrnn.config.shipped_configs
    vidrnn extract-features --out DIR [--config C | VIDEO...] [--encoder NAME] [--fps 1]  vidrnn.inference.features
    vidrnn sample CKPT [--prime P] [--length N] [--temperature T] [--top-k K] [--seed S]  vidrnn.inference.generate
    vidrnn units CKPT --text FILE --out DIR                                               vidrnn.inference.units
    vidrnn gradients CKPT|MODEL... [--text FILE] [--scale S...] --out DIR                vidrnn.inference.gradient_flow
    vidrnn serve CKPT... [--host 127.0.0.1] [--port 8000] [--max-upload-mb 200]         vidrnn.web.app
    vidrnn fuse RGB_CKPT FLOW_CKPT [--weights 1:2] [--output F.json]                     vidrnn.inference.fuse
    vidrnn extract-flow --out DIR [--config C | VIDEO...] [--fps 15] [--method dis]      vidrnn.inference.flow
    vidrnn export-yt8m CACHE --out DIR [--videos-per-shard 1000]                         vidrnn.inference.yt8m

``vidrnn fit`` with no arguments trains LRCN (tiny) on the embedded Moving Digits dataset and
prints its test accuracy. Bad input (a config typo, a missing file, a wrong value) prints one
line naming what is wrong and exits with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
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


def _language_line(split: str, m: dict) -> str:
    return (f"{split}: {m['nats_per_char']:.4f} nats/char = {m['bits_per_char']:.4f} bits/char, "
            f"perplexity {m['perplexity']:.2f}")


# ---------------------------------------------------------------------------- commands
def cmd_fit(args) -> int:
    from vidrnn.runner import fit
    from vidrnn.tasks.forecasting import forecast_report

    s = fit(args.config, args.overrides, run_dir=args.run_dir, resume=args.resume, init_from=args.init_from,
            test=not args.no_test)
    title = f"{s['model']}: {s['epochs']} epochs in {s['fit_seconds']:.0f} s, best checkpoint"
    print()
    if "language_model" in s:
        print(_metrics_table(s["metrics"], title))
        print(f"\ncheckpoints: {Path(s['run_dir']) / 'checkpoints'}  logs: {Path(s['run_dir']) / 'logs'}")
        for stage in ("val", "test"):
            if stage in s["language_model"]:
                print(_language_line(stage, s["language_model"][stage]))
        return 0
    if "captioning" in s:
        print(_metrics_table(s["metrics"], title))
        print(f"\ncheckpoints: {Path(s['run_dir']) / 'checkpoints'}  logs: {Path(s['run_dir']) / 'logs'}")
        _caption_report(s["captioning"].get("test") or s["captioning"].get("val"), s["skipped"], s["missing_files"])
        return 0
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


def _caption_report(ev: dict | None, skipped: list, missing: int = 0) -> None:
    if ev:
        print(f"\nexamples (beam {ev['beam_size']}, {ev['items']} items):")
        for x in ev["examples"][:5]:
            print(f"  {x['id']}: {x['caption']!r}  (reference: {x['reference']!r})")
    if skipped:
        print(f"skipped {len(skipped)} unreadable files, e.g. {skipped[0]}")
    if missing:
        print(f"{missing} files named by the caption file are missing (skipped)")


def cmd_evaluate(args) -> int:
    from vidrnn.runner import evaluate
    from vidrnn.tasks.forecasting import forecast_report

    overrides = list(args.overrides) + ([f"captioning.beam_size={args.beam}"] if args.beam else [])
    r = evaluate(args.checkpoint, args.command, config=args.config, overrides=overrides)
    if "captioning" in r:
        print(_metrics_table(r["metrics"], f"{args.command}: {r['model']} on {r['size']} items ({args.checkpoint})"))
        _caption_report(r["captioning"], r["skipped"])
        if args.output:
            _write_json(args.output, {k: v for k, v in r.items() if k != "data"})
        return 0
    if "language_model" in r:
        print(_metrics_table(r["metrics"], f"{args.command}: {r['model']} on {r['size']:,} characters ({args.checkpoint})"))
        print(_language_line(r["split"], r["language_model"]))
        if args.output:
            _write_json(args.output, {k: v for k, v in r.items() if k != "data"})
        return 0
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
    if checkpoint_task(ckpt) == "language_modeling":
        raise ValueError(f"{args.checkpoint}: a language model; generate text with `vidrnn sample CKPT --prime ...`")
    if checkpoint_task(ckpt) == "forecasting":
        return cmd_predict_forecast(args)
    if checkpoint_task(ckpt) == "captioning":
        del ckpt
        return cmd_predict_caption(args)
    model_name = ckpt["hyper_parameters"]["model_name"]
    del ckpt
    from vidrnn.inference.predict import label_videos, merge_timeline

    def show(r):
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

    results = label_videos(args.checkpoint, _expand_folders(args.videos), topk=args.topk, timeline=args.timeline,
                           window=args.window, attention_dir=args.attention, device=args.device,
                           precision=args.precision)
    return _report_results(results, show, args.output, {"checkpoint": str(args.checkpoint), "model": model_name})


def _expand_folders(paths: list[str]) -> list[str]:
    """Each folder -> the videos directly in it (by extension, sorted); a folder without any stays
    as given, so that it is reported."""
    from vidrnn.data.annotations import VIDEO_EXTENSIONS

    out = []
    for p in paths:
        videos = sorted(str(f) for f in Path(p).iterdir() if f.suffix.lower() in VIDEO_EXTENSIONS and f.is_file()) \
            if Path(p).is_dir() else []
        out += videos or [p]
    return out


def _report_results(results, show, output: str | None, meta: dict) -> int:
    """Print each result (``show``) or its error; write them all as JSON to ``output``; status 1
    if any input failed."""
    kept, failed = [], 0
    for r in results:
        kept.append(r)
        if "error" in r:
            print(f"error: {r['error']}", file=sys.stderr)
            failed += 1
            continue
        show(r)
    if output:
        _write_json(output, {**meta, "results": kept})
        print(f"\nwrote {output}")
    return 1 if failed else 0


def cmd_predict_caption(args) -> int:
    from vidrnn.inference.caption import caption_files

    if not args.videos:
        raise ValueError("give the images or videos to caption: vidrnn predict CKPT image.jpg video.mp4 ...")
    def show(r):
        print(f"{Path(r['input']).name}: {r['caption']}")
        if "attention_png" in r:
            print(f"  attention: {r['attention_png']}")

    results = caption_files(args.checkpoint, args.videos, beam_size=args.beam, max_length=args.max_length,
                            attention_dir=args.attention, device=args.device)
    return _report_results(results, show, args.output, {"checkpoint": str(args.checkpoint), "beam_size": args.beam})


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


def _positive(args, *names: str) -> None:
    for name in names:
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected a positive number, got {getattr(args, name)}")


def _device(name: str):
    """``--device`` as a torch device that exists here (ValueError otherwise)."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {name!r}: expected cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r}: no CUDA GPU is available here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name!r}: there are {torch.cuda.device_count()} CUDA GPUs here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name!r}: MPS (Apple GPU) is not available here")
    return device


def _load_language_model(path: str, device: str = "cpu"):
    from vidrnn.errors import CheckpointError
    from vidrnn.inference.checkpoint import load_model

    model = load_model(path, map_location=_device(device))
    if model.vidrnn.task != "language_modeling":
        raise CheckpointError(f"{path}: a {model.vidrnn.task} model ({model.vidrnn.name!r}), not a language model")
    return model


def cmd_sample(args) -> int:
    from vidrnn.inference.generate import sample_text

    model = _load_language_model(args.checkpoint, args.device)
    temperature = 0.0 if args.greedy else args.temperature
    text = sample_text(model, model.vidrnn.vocab, args.prime.replace("\\n", "\n"), args.length,
                       temperature=temperature, top_k=args.top_k, seed=args.seed)
    print(text)
    if args.output:
        from vidrnn.io.files import write_text

        write_text(args.output, text)
    return 0


def cmd_units(args) -> int:
    from vidrnn.inference.units import find_units
    from vidrnn.io.text import read_text

    _positive(args, "max_chars", "show_chars")
    model = _load_language_model(args.checkpoint)
    text, where = read_text(args.text), args.text
    if args.split:  # the held-out part, cut as the model's run cut its text
        from vidrnn.data.text import split_by_position

        data = model.vidrnn.config.get("data", {})
        if data.get("path") and Path(data["path"]).resolve() != Path(args.text).resolve():
            raise ValueError(f"--split {args.split}: --text {args.text} is not the text the model was trained on "
                             f"({data['path']}); without --split the whole of --text is read")
        text = text[: data.get("max_chars") or len(text)]
        parts = split_by_position(len(text), data.get("val_fraction", 0.05), data.get("test_fraction", 0.05))
        if args.split not in parts:
            raise ValueError(f"--split {args.split}: the model's run had no {args.split} split")
        text, where = text[parts[args.split]], f"the {args.split} split of {args.text}"
    r = find_units(model, text, args.out, max_chars=args.max_chars, show_chars=args.show_chars)
    print(f"{r['model']}: {r['units']} units over {r['characters']:,} characters of {where}")
    w = max(len(k) for k in r["properties"])
    for name, p in r["properties"].items():
        if p.get("constant"):
            print(f"  {name:<{w}}  (constant in this text)")
            continue
        print(f"  {name:<{w}}  best |r| {p['abs_r']:.3f}  ({p['best_unit']}, r = {p['r']:+.3f})  {p['png']}")
    print(f"\n{Path(args.out) / 'units.json'}  (HTML pages beside the PNGs)")
    return 0


def cmd_gradients(args) -> int:
    from vidrnn.inference.gradient_flow import compare_gradient_flow
    from vidrnn.io.text import Vocabulary, read_text
    from vidrnn.registry import create_model, list_models

    import math

    _positive(args, "length", "windows", "max_chars")
    bad = [x for x in args.scale if not (math.isfinite(x) and x > 0)]
    if bad:
        raise ValueError(f"--scale: largest singular values must be finite and > 0, got {bad[0]}")
    if len(set(args.models)) != len(args.models):
        raise ValueError("each checkpoint or model may be given once")
    models, vocab, text_path = {}, None, args.text
    for m in args.models:
        if Path(m).suffix == ".ckpt" or Path(m).is_file():
            model = _load_language_model(m)
            ck_vocab = Vocabulary(model.vidrnn.vocab)
            if vocab is not None and ck_vocab != vocab:
                raise ValueError(f"{m}: another vocabulary than {next(iter(models))}; compare models trained on "
                                 "the same text")
            vocab = ck_vocab
            text_path = text_path or model.vidrnn.config.get("data", {}).get("path")
            label = f"{model.vidrnn.name} ({Path(m).name})"
            if label in models:  # two runs' best.ckpt: name them by their run directories
                label = f"{model.vidrnn.name} ({m})"
            models[label] = model
        elif m not in list_models(task="language_modeling"):
            raise ValueError(f"{m!r}: neither a checkpoint file nor a language model name "
                             f"({', '.join(list_models(task='language_modeling'))})")
    if not text_path:
        raise ValueError("--text: give the text to measure on (models given by name have none)")
    text = read_text(text_path, args.max_chars)
    vocab = vocab or Vocabulary.from_text(text)
    import torch

    from vidrnn.config import apply_overrides
    from vidrnn.registry import get_model_builder
    from vidrnn.schema import validate_call

    model_args = apply_overrides({}, args.model_args)
    if model_args and not any(m in list_models(task="language_modeling") for m in args.models):
        raise ValueError("--model-args: applies to models given by name (untrained); none was given")
    for m in args.models:
        if m in list_models(task="language_modeling"):
            kwargs = validate_call(get_model_builder(m), model_args, "--model-args",
                                   reserved={"vocab_size": "set from the text's vocabulary"})
            torch.manual_seed(args.seed)
            shown = ", ".join(f"{k}={v}" for k, v in model_args.items())
            models[f"{m} (untrained{', ' + shown if shown else ''})"] = create_model(m, vocab_size=len(vocab), **kwargs)
    r = compare_gradient_flow(models, vocab.encode(text, what=str(text_path)), args.out, sigmas=tuple(args.scale),
                              length=args.length, windows=args.windows, seed=args.seed)
    print(f"||dL_T/dh_t|| (top layer) on {text_path}, {args.windows} windows, ratio {args.length - 1} steps back / at T:")
    for key, res in r["models"].items():
        sig = ", ".join(f"{v:.2f}" for v in res["sigma_max"].values())
        print(f"  {key}: {res['ratio_first_to_last']:.3g}   (sigma_max of W_hh: {sig})")
    print(f"\nplot: {r['png']}  numbers: {r['json']}")
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

    shard, num_shards, device = args.shard, args.num_shards, args.device
    if shard is None and num_shards is None and os.environ.get("WORLD_SIZE", "").isdigit() \
            and os.environ.get("RANK", "").isdigit():  # started by torchrun: one shard per process
        shard, num_shards = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        if device == "cuda" and os.environ.get("LOCAL_RANK", "").isdigit():
            device = f"cuda:{os.environ['LOCAL_RANK']}"  # one GPU per process
    stats = extract_features(
        args.out, videos=args.videos, config=args.config, overrides=args.overrides, encoder=args.encoder,
        fps=args.fps, size=args.size, decode_size=args.decode_size, maps=args.maps, batch_size=args.batch_size,
        shard=0 if shard is None else shard, num_shards=1 if num_shards is None else num_shards, device=device,
        on_error=args.on_error, precision=args.precision, seek=args.seek, seek_tolerance=args.seek_tolerance,
        prefetch=args.prefetch)
    print(_metrics_table(stats, f"extract-features -> {args.out}"))
    return 0


def cmd_extract_flow(args) -> int:
    from vidrnn.inference.flow import extract_flow

    stats = extract_flow(args.out, videos=args.videos, config=args.config, overrides=args.overrides, fps=args.fps,
                         decode_size=args.decode_size, method=args.method, bound=args.bound, shard=args.shard,
                         num_shards=args.num_shards, on_error=args.on_error, progress=not args.no_progress)
    print(_metrics_table(stats, f"extract-flow -> {args.out}"))
    return 0 if not stats["failed"] else 1


def cmd_export_yt8m(args) -> int:
    from vidrnn.inference.yt8m import cache_to_yt8m

    r = cache_to_yt8m(args.cache, args.out, videos_per_shard=args.videos_per_shard)
    print(f"export-yt8m: {r['videos']} videos ({r['feature_dim']}-d frame features, 8 bits) in {r['shards']} "
          f"YouTube-8M frame-level shard(s) under {args.out}")
    return 0


def _seconds_arg(value: str, name: str) -> float:
    """``"1s"``, ``"1.5"``, ``"500ms"`` -> seconds (ValueError naming the option otherwise)."""
    v = value.strip().lower()
    try:
        secs = float(v[:-2]) / 1000 if v.endswith("ms") else float(v.removesuffix("s"))
    except ValueError:
        raise ValueError(f"--{name} {value!r}: expected a duration such as 1s, 0.5 or 500ms") from None
    if not secs > 0:
        raise ValueError(f"--{name} {value!r}: expected a positive duration")
    return secs


def cmd_stream(args) -> int:
    from vidrnn.inference.checkpoint import load_model
    from vidrnn.inference.stream import StreamRunner

    every = _seconds_arg(args.every, "every")
    if args.fps is not None and not args.fps > 0:
        raise ValueError(f"--fps {args.fps}: expected a positive number of frames per second")
    out = Path(args.output) if args.output else None
    if out is not None and out.exists():
        raise FileExistsError(f"--output {out} exists; choose another file (nothing is overwritten)")
    runner = StreamRunner(load_model(args.checkpoint), fps=args.fps, every=every, device=_device(args.device),
                          precision=args.precision)
    print(f"stream: {Path(args.video).name}, {runner.fps:g} frames/s into {runner.info.name}, a line every {every:g} s "
          "(window label | video so far)", flush=True)
    import json

    sink = None  # opened with the first line, so a video that cannot be read leaves no file
    try:
        for line in runner.run(args.video):
            print(f"  {line['start']:8.1f}-{line['end']:8.1f} s  {line['label']:<20} {line['prob'] * 100:5.1f}%  |  "
                  f"{line['video_label']:<20} {line['video_prob'] * 100:5.1f}%", flush=True)
            if out is not None:
                sink = sink or out.open("x", encoding="utf-8")
                sink.write(json.dumps(line) + "\n")
                sink.flush()
    finally:
        if sink is not None:
            sink.close()
    if out is not None:
        print(f"wrote {out}")
    return 0


def cmd_serve(args) -> int:
    try:
        import uvicorn

        from vidrnn.web.app import create_app
    except ImportError as e:
        raise ValueError(f"vidrnn serve needs the web extra: pip install 'vidrnn[web]' ({e})") from None
    app = create_app(args.checkpoints, max_upload_mb=args.max_upload_mb)
    print(f"serving {len(args.checkpoints)} checkpoint(s) on http://{args.host}:{args.port}/ (Ctrl+C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(":")]
    except ValueError:
        raise ValueError(f"--weights {text!r}: expected W1:W2, e.g. 1:2 (flow weighted 2/3)") from None


def cmd_fuse(args) -> int:
    from vidrnn.inference.fuse import fuse_streams
    from vidrnn.io.files import write_json

    r = fuse_streams(args.first, args.second, weights=_weights(args.weights), batch_size=args.batch_size,
                     device=args.device)
    w1, w2 = r["weights"]
    how = "chosen on the validation split" if r["chosen_on"] == "validation" else "given"
    print(f"late fusion: {w1:.2f} x {args.first} + {w2:.2f} x {args.second} (weights {how})")
    print(f"{'split':<6} {'videos':>6} {'first':>7} {'second':>7} {'fused':>7}   (top-1)")
    for split in ("val", "test"):
        t = r[split]
        print(f"{split:<6} {t['videos']:>6} {t['first']:>7.3f} {t['second']:>7.3f} {t['fused']:>7.3f}")
    if args.output:
        write_json(args.output, r)
        print(f"wrote {args.output}")
    return 0


def cmd_export(args) -> int:
    from vidrnn.inference.export import export_onnx, export_torchscript

    if args.format not in ("onnx", "torchscript"):
        raise ValueError(f"--format {args.format!r}: expected onnx or torchscript")
    r = (export_onnx if args.format == "onnx" else export_torchscript)(args.checkpoint, args.out)
    graphs = ", ".join(v for k, v in r.items() if k != "json")
    print(f"export: {args.checkpoint} -> {graphs} (inputs and outputs: {r['json']})")
    return 0


def cmd_fusion_search(args) -> int:
    from vidrnn.inference.fusion import fusion_search

    _positive(args, "samples")
    r = fusion_search(args.checkpoint, num_samples=args.samples, seed=args.seed, out=args.out,
                      config=args.config, overrides=args.overrides)
    print(f"fusion-search: {r['samples']} strategies sampled ({r['distinct']} distinct) from {args.checkpoint}, "
          "scored on the validation split with the template's weights")
    for name, acc in r["presets"].items():
        print(f"  preset {name:<10} val top-1 {acc:.3f}")
    for k, row in enumerate(r["ranking"][:5]):
        units = " | ".join(t["units"] for t in row["strategy"])
        print(f"  #{k + 1} val top-1 {row['val_top1']:.3f} (drawn {row['draws']}x): {units}")
    print(f"ranking: {r['json']}\nbest strategy (fine-tune it with `vidrnn fit -c {r['config']}`): {r['config']}")
    return 0


def cmd_fusion_report(args) -> int:
    from vidrnn.inference.fusion import fusion_report

    labels = [v for v in args.labels.split(",")] if args.labels else None
    r = fusion_report(args.checkpoint[0] if len(args.checkpoint) == 1 else args.checkpoint, out=args.out,
                      labels=labels)
    reports = {"": r} if len(args.checkpoint) == 1 else r["reports"]
    for label, rep in reports.items():
        units = list(rep["marginals"][0]["units"]) if rep["marginals"] else []
        print(f"fusion-report{' ' + label if label else ''}: P(unit used) = 1 - sqrt(p) per layer "
              f"({rep.get('checkpoint', args.checkpoint[0])})")
        print("  layer  " + "  ".join(f"{u:>5}" for u in units))
        for m in rep["marginals"]:
            print(f"  {m['layer']:>5}  " + "  ".join(f"{m['units'][u]:5.2f}" for u in units))
        summ = rep["summary"]["units"]
        for row in ("mean", "low", "high"):
            print(f"  {row:>5}  " + "  ".join(f"{summ[u][row]:5.2f}" for u in units))
        print(f"  preferred per layer: {' '.join(rep['summary']['preferred'])}")
        print(f"  figures: {rep['bars']}, {rep['heatmap']}")
    if len(args.checkpoint) > 1:
        print(f"comparison: {r['compare']} ({r['json']})")
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
        e.add_argument("--beam", type=int, help="captioners: beam size for decoding (1: greedy; default: the run's)")
        e.add_argument("overrides", nargs="*", metavar="key=value")

    pr = sub.add_parser("predict", help="label videos (classifier), caption images/videos (captioner) or forecast "
                                        "sequences (forecaster) with a checkpoint")
    pr.add_argument("checkpoint")
    pr.add_argument("videos", nargs="*", metavar="INPUT",
                    help="videos to label, images/videos to caption; for a forecaster: .npy sequences or radar folders "
                         "(default: its test split)")
    pr.add_argument("--beam", type=int, default=1, help="captioner: beam size (1: greedy)")
    pr.add_argument("--max-length", type=int, default=20, help="captioner: most words per caption")
    pr.add_argument("--output-dir", help="forecaster: folder for PNG/GIF/plots (default: <run>/predictions)")
    pr.add_argument("--num", type=int, default=4, help="forecaster: sequences per input to draw")
    pr.add_argument("--topk", type=int, default=5)
    pr.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="classifier: bf16 autocast (faster on CPUs with AMX/AVX-512 BF16, and on GPUs)")
    pr.add_argument("--output", "-o", help="write the results as JSON")
    pr.add_argument("--timeline", dest="timeline", action="store_true", default=None,
                    help="per-second labels (default: for videos longer than 10 s)")
    pr.add_argument("--no-timeline", dest="timeline", action="store_false")
    pr.add_argument("--window", type=float, help="seconds of video per timeline clip")
    pr.add_argument("--attention", metavar="DIR",
                    help="attention models: write per-video MP4 and GIF overlays of where the model looks into DIR; "
                         "captioners: a PNG per input with the attention behind every word")
    pr.add_argument("--device", default="cpu")

    m = sub.add_parser("models", help="list registered models")
    m.add_argument("pattern", nargs="?", default="*")

    sub.add_parser("configs", help="list the configs shipped with vidrnn")

    sa = sub.add_parser("sample", help="generate text with a character-level language model checkpoint")
    sa.add_argument("checkpoint")
    sa.add_argument("--prime", default="\n", help="text to start from (\\n for a newline; default a newline)")
    sa.add_argument("--length", type=int, default=500, help="characters to generate")
    sa.add_argument("--temperature", type=float, default=1.0, help="> 0; lower: likelier, more repetitive (0: greedy)")
    sa.add_argument("--top-k", type=int, help="sample among the k most likely characters only")
    sa.add_argument("--greedy", action="store_true", help="always the most likely character")
    sa.add_argument("--seed", type=int, help="same seed, same text")
    sa.add_argument("--output", "-o", help="also write the text to a file")
    sa.add_argument("--device", default="cpu")

    un = sub.add_parser("units", help="find hidden units that track properties of a text (quotes, brackets, "
                                      "indentation, line position) and draw them")
    un.add_argument("checkpoint")
    un.add_argument("--text", required=True, help="UTF-8 text to read (e.g. Python source for the code properties)")
    un.add_argument("--out", required=True, help="folder for units.json and the HTML/PNG of each property's best unit")
    un.add_argument("--split", choices=["val", "test"],
                    help="read only this held-out part of --text, cut by position as the model's run cut it")
    un.add_argument("--max-chars", type=int, default=30000, help="characters of the text to analyse")
    un.add_argument("--show-chars", type=int, default=2000, help="characters shown in each HTML page and PNG")

    gr = sub.add_parser("gradients", help="plot ||dL_T/dh_t|| against T - t: vanishing/exploding vs holding gradients")
    gr.add_argument("models", nargs="+", metavar="CKPT|MODEL",
                    help="language-model checkpoints (trained on the same text) or model names (untrained)")
    gr.add_argument("--text", help="text to measure on (default: the first checkpoint's training text)")
    gr.add_argument("--out", required=True, help="folder for gradient_flow.png and gradient_flow.json")
    gr.add_argument("--scale", type=float, nargs="*", default=[],
                    help="also measure with every W_hh rescaled to these largest singular values (e.g. 0.9 3)")
    gr.add_argument("--model-args", nargs="*", default=[], metavar="key=value",
                    help="builder arguments for models given by name, e.g. nonlinearity=relu hidden_size=512")
    gr.add_argument("--length", type=int, default=100, help="steps back from the loss")
    gr.add_argument("--windows", type=int, default=32, help="places of the text averaged over")
    gr.add_argument("--max-chars", type=int, default=200000, help="characters of the text to draw windows from")
    gr.add_argument("--seed", type=int, default=0)

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
    x.add_argument("--shard", type=int, help="this process's shard (0-based; default 0, or RANK under torchrun)")
    x.add_argument("--num-shards", type=int, help="processes/GPUs splitting the videos (default 1, or WORLD_SIZE "
                                                  "under torchrun)")
    x.add_argument("--device", default="cpu")
    x.add_argument("--on-error", choices=["skip", "raise"], default="skip")
    x.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: autocast (2-3x faster on CPUs with AMX/AVX-512 BF16, and on GPUs)")
    x.add_argument("--seek", choices=["exact", "keyframe"], default="exact",
                   help="keyframe: approximate, take the nearest keyframe (long videos; real times are stored)")
    x.add_argument("--seek-tolerance", type=float, metavar="SECONDS",
                   help="--seek keyframe: farthest keyframe to take; other times are decoded exactly")
    x.add_argument("--prefetch", type=int, default=64, help="frames decoded ahead in a background thread (0: off)")

    xf = sub.add_parser("extract-flow", help="cache the optical flow (two-stream 8-bit storage) of a dataset or of "
                                             "videos, for the flow stream (data.source: flow_cache)")
    xf.add_argument("videos", nargs="*", help="video files (default: every video of --config's data)")
    xf.add_argument("--out", required=True, help="cache directory (resumable: finished videos are skipped)")
    xf.add_argument("--config", "-c", help="config whose data section lists the videos")
    xf.add_argument("--set", dest="overrides", action="append", default=[], metavar="key=value")
    xf.add_argument("--fps", type=float, default=15.0, help="frames/s between which flow is computed (Ng et al.: 15)")
    xf.add_argument("--decode-size", type=int, default=180, help="shorter side of the frames, pixels")
    xf.add_argument("--method", default="dis", help="dis (default), farneback or tvl1 (OpenCV contrib)")
    xf.add_argument("--bound", type=float, default=20.0, help="clip in pixels before quantising to 8 bits")
    xf.add_argument("--shard", type=int, default=0)
    xf.add_argument("--num-shards", type=int, default=1)
    xf.add_argument("--on-error", choices=["skip", "raise"], default="skip")
    xf.add_argument("--no-progress", action="store_true", help="no progress bar")

    xy = sub.add_parser("export-yt8m", help="write a feature cache as YouTube-8M frame-level TFRecord shards")
    xy.add_argument("cache", help="a vidrnn extract-features folder (pooled vectors)")
    xy.add_argument("--out", required=True, help="output folder for <prefix>NNNN.tfrecord")
    xy.add_argument("--videos-per-shard", type=int, default=1000)

    st = sub.add_parser("stream", help="label a video as it is read (recurrent classifiers): one line per window, "
                                       "the recurrent state carried, constant memory")
    st.add_argument("checkpoint")
    st.add_argument("video")
    st.add_argument("--every", default="1s", help="seconds per output line (default 1s)")
    st.add_argument("--fps", type=float, help="frames per second fed to the model (default: the checkpoint's "
                                              "fixed sampling rate, else 4)")
    st.add_argument("--output", "-o", help="also write the lines as JSON Lines (a new file)")
    st.add_argument("--device", default="cpu")
    st.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast (faster on CPUs "
                                                                                  "with AMX/AVX-512 BF16 and on GPUs)")

    ex = sub.add_parser("export", help="export a recurrent classifier to ONNX: the frame encoder and the recurrent "
                                       "step with the state as inputs/outputs")
    ex.add_argument("checkpoint")
    ex.add_argument("--format", default="onnx", help="onnx (recurrent classifiers: encoder + step graphs; forecasters: "
                                                     "step + forecast) or torchscript (any classifier, one graph "
                                                     "traced at the checkpoint's clip length)")
    ex.add_argument("--out", required=True, help="output folder (an existing export there is not overwritten)")

    sv = sub.add_parser("serve", help="a local web page: labels and attention of a video, a caption with its "
                                      "attention, a radar or Moving MNIST forecast beside the truth")
    sv.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload accepted (default 200 MB)")

    fu = sub.add_parser("fuse", help="late fusion of two classifiers (an RGB and a flow stream): the weighted "
                                     "average of their class probabilities, the weight picked on validation")
    fu.add_argument("first", metavar="RGB_CKPT")
    fu.add_argument("second", metavar="FLOW_CKPT")
    fu.add_argument("--weights", help="W1:W2, e.g. 1:2 (flow weighted 2/3, LRCN's best); default: chosen on "
                                      "the validation split")
    fu.add_argument("--batch-size", type=int, default=8)
    fu.add_argument("--device", default="cpu")
    fu.add_argument("--output", "-o", help="write the numbers as JSON")

    fs = sub.add_parser("fusion-search", help="sample fusion strategies from a trained template, score them on the "
                                              "validation split, write the ranking and the best as a config")
    fs.add_argument("checkpoint")
    fs.add_argument("--samples", "-n", type=int, default=100, help="strategies to sample (default 100)")
    fs.add_argument("--seed", type=int, default=0)
    fs.add_argument("--out", help="output folder (default: fusion_search beside the checkpoints folder)")
    fs.add_argument("--config", "-c", help="YAML whose sections override the checkpoint's config")
    fs.add_argument("overrides", nargs="*", metavar="key=value")
    fr = sub.add_parser("fusion-report", help="draw trained templates' per-layer unit probabilities (PNG); several "
                                              "checkpoints: also side by side")
    fr.add_argument("checkpoint", nargs="+")
    fr.add_argument("--out", help="output folder (default for one checkpoint: fusion_report beside the checkpoints "
                                  "folder; required for several)")
    fr.add_argument("--labels", help="comma-separated names of the checkpoints (default: their run directories)")
    return p


COMMANDS = {"fit": cmd_fit, "validate": cmd_evaluate, "test": cmd_evaluate, "predict": cmd_predict,
            "models": cmd_models, "configs": cmd_configs, "extract-features": cmd_extract, "sample": cmd_sample,
            "extract-flow": cmd_extract_flow, "export-yt8m": cmd_export_yt8m,
            "units": cmd_units, "gradients": cmd_gradients, "fusion-search": cmd_fusion_search,
            "fusion-report": cmd_fusion_report, "stream": cmd_stream, "export": cmd_export,
            "serve": cmd_serve, "fuse": cmd_fuse}


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
