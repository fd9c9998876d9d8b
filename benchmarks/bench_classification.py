"""Speed of the video-classification pipeline on this machine, printed as tables.

1. Decode + sample throughput (frames/s) per sampler on the real clips in
   ../shared/data/videos.
2. Training throughput (clips/s, forward + backward + AdamW step) for lrcn_tiny and for LRCN
   with EfficientNet-Lite0 (frozen, and with the last two stages fine-tuned).

The 1 frame/s sampler against decoding every frame, the keyframe mode, feature extraction and
the frozen-encoder paths are in ``bench_frame_path.py``, each beside its reference.

Usage: python benchmarks/bench_classification.py [--data ../shared/data] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from _shared import add_data_argument
from vidrnn import create_model
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
    add_data_argument(ap)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--decode-size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--frames", type=int, default=8)
    args = ap.parse_args()
    data = Path(args.data) / "videos"
    videos = sorted((data / "clips").iterdir()) + sorted((data / "asl").glob("*.mkv"))
    print(f"machine: {machine()}")
    print(f"shapes: decode shorter side {args.decode_size}px; training batch {args.batch} clips x {args.frames} frames")
    table(f"decode + sample, {len(videos)} real videos (best of {args.repeats})", ("sampler", "frames", "seconds", "frames/s"),
          bench_samplers(videos, args.repeats, args.decode_size))
    table("training step (forward + backward + AdamW)", ("model", "clips", "seconds", "clips/s"),
          bench_training(args.repeats, args.batch, args.frames))


if __name__ == "__main__":
    main()
