"""Speed of the video-classification pipeline on this machine, printed as tables.

1. Decode + sample throughput (frames/s) per sampler on the real clips in
   ../shared/data/videos, and the 1 frame/s sampler (seeking) against decoding every frame
   and keeping one per second (the reference, timed in the same run).
2. Feature extraction (decode at 1 frame/s + encode) frames/s for the tiny CNN and
   EfficientNet-Lite0.
3. Training throughput (clips/s, forward + backward + AdamW step) for lrcn_tiny and for LRCN
   with EfficientNet-Lite0 (frozen, and with the last two stages fine-tuned).

Usage: python benchmarks/bench_classification.py [--data ../shared/data] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidrnn import create_model
from vidrnn.inference.features import extract_features
from vidrnn.io import VideoReader
from vidrnn.io.sampling import DenseSampler, FixedRateSampler, SegmentSampler, UniformSampler


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import av

    return (f"{platform.node()} | {cpu} | {os.cpu_count()} cores | torch {torch.__version__} "
            f"({torch.get_num_threads()} threads) | PyAV {av.__version__} | Python {platform.python_version()}")


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_samplers(videos: list[Path], repeats: int, decode_size: int) -> list[tuple]:
    samplers = {
        "uniform (16)": UniformSampler(16),
        "segments (TSN, 16, train)": SegmentSampler(16),
        "dense (16 x 2, train)": DenseSampler(16, frame_interval=2),
        "fps (1 frame/s)": FixedRateSampler(1.0),
    }
    rows = []
    rng = np.random.default_rng(0)
    for name, s in samplers.items():
        n_frames = [0]

        def run():
            n_frames[0] = 0
            for v in videos:
                with VideoReader(v, size=decode_size, threads=1) as r:
                    ts = r.frame_timestamps() if s.needs_timestamps else None
                    times = s.sample(ts, r.info.duration, training=True, rng=rng).reshape(-1)
                    frames, _ = r.get_frames_at(times)
                    n_frames[0] += len(frames)

        sec = best_of(run, repeats)
        rows.append((name, n_frames[0], sec, n_frames[0] / sec))
    return rows


def bench_fps_vs_all(video: Path, repeats: int, decode_size: int) -> list[tuple]:
    with VideoReader(video) as r:
        duration = r.info.duration
    times = FixedRateSampler(1.0).sample(None, duration)[0]

    def seek():
        with VideoReader(video, size=decode_size, threads=1) as r:
            r.get_frames_at(times)

    def decode_all():  # reference: decode every frame, keep the one shown at each second
        with VideoReader(video, size=decode_size, threads=1) as r:
            want, k, kept, prev = list(times), 0, [], None
            for frame, t in r._decode_from(r._start_pts):  # no RGB conversion of frames not kept
                while k < len(want) and t > want[k] + 1e-6:
                    kept.append(r._to_tensor(prev[0]))
                    k += 1
                prev = (frame, t)
            while k < len(want):
                kept.append(r._to_tensor(prev[0]))
                k += 1
            assert len(kept) == len(times)

    t_seek = best_of(seek, repeats)
    t_all = best_of(decode_all, repeats)
    return [("decode every frame, keep 1/s (reference)", len(times), t_all, 1.0),
            ("fps sampler, seeking", len(times), t_seek, t_all / t_seek)]


def _keyframes(reader):
    import av

    with av.open(str(reader.path)) as c:
        s = c.streams[reader.info.stream_index]
        return [(float(p.pts * s.time_base), True) for p in c.demux(s) if p.is_keyframe and p.pts is not None]


def bench_extraction(video: Path, repeats: int) -> list[tuple]:
    rows = []
    for enc, size in (("tiny", 112), ("efficientnet_lite0", 224)):
        def run():
            with tempfile.TemporaryDirectory() as d:
                st = extract_features(d, videos=[str(video)], encoder=enc, fps=1.0, size=size, decode_size=256,
                                      batch_size=32)
                run.frames = st["frames"]

        sec = best_of(run, repeats)
        rows.append((f"{enc} @ {size}px", run.frames, sec, run.frames / sec))
    return rows


def bench_training(repeats: int, batch: int, frames: int) -> list[tuple]:
    cases = [
        ("lrcn_tiny", dict(num_classes=20), 112),
        ("lrcn + EfficientNet-Lite0 frozen", dict(num_classes=20, encoder="efficientnet_lite0", trainable="none"), 160),
        ("lrcn + EfficientNet-Lite0 last 2 stages", dict(num_classes=20, encoder="efficientnet_lite0", trainable=2), 160),
    ]
    rows = []
    for name, kw, size in cases:
        model = create_model("lrcn_tiny" if name == "lrcn_tiny" else "lrcn", **kw).train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        x = torch.rand(batch, frames, 3, size, size)
        y = torch.randint(0, 20, (batch,))

        def step():
            fl = model(x).frame_logits
            loss = torch.nn.functional.cross_entropy(fl.flatten(0, 1), y.repeat_interleave(frames))
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()  # warm-up
        sec = best_of(step, repeats)
        rows.append((f"{name} ({size}px)", batch, sec, batch / sec))
    return rows


def table(title: str, head: tuple, rows: list[tuple]) -> None:
    print(f"\n{title}")
    w = max(len(r[0]) for r in rows) + 2
    print(f"{head[0]:<{w}}{head[1]:>10}{head[2]:>12}{head[3]:>14}")
    for r in rows:
        print(f"{r[0]:<{w}}{r[1]:>10}{r[2]:>12.3f}{r[3]:>14.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("VIDRNN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--decode-size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--frames", type=int, default=8)
    args = ap.parse_args()
    data = Path(args.data) / "videos"
    videos = sorted((data / "clips").iterdir()) + sorted((data / "asl").glob("*.mkv"))
    long_video = data / "clips" / "one-by-one-person-detection.mp4"
    print(f"machine: {machine()}")
    print(f"shapes: decode shorter side {args.decode_size}px; training batch {args.batch} clips x {args.frames} frames")
    table(f"decode + sample, {len(videos)} real videos (best of {args.repeats})", ("sampler", "frames", "seconds", "frames/s"),
          bench_samplers(videos, args.repeats, args.decode_size))
    for name in ("one-by-one-person-detection.mp4", "car-detection.mp4", "bottle-detection.mp4"):
        v = data / "clips" / name
        with VideoReader(v) as r:
            i = r.info
            ts = r.frame_timestamps()
            keys = [t for t, _ in _keyframes(r)]
        gop = float(np.mean(np.diff(keys))) if len(keys) > 1 else i.duration
        table(f"1 frame/s from {name} ({i.duration:.0f} s, {i.fps:.1f} fps, {i.width}x{i.height}, {len(ts)} frames, "
              f"keyframe every {gop:.1f} s)", ("method", "frames", "seconds", "x reference"),
              bench_fps_vs_all(v, args.repeats, args.decode_size))
    table(f"feature extraction at 1 frame/s, {long_video.name}", ("encoder", "frames", "seconds", "frames/s"),
          bench_extraction(long_video, 1))
    table("training step (forward + backward + AdamW)", ("model", "clips", "seconds", "clips/s"),
          bench_training(args.repeats, args.batch, args.frames))


if __name__ == "__main__":
    main()
