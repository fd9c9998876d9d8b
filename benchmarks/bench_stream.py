"""Streaming inference over a long video: frames/s end to end and memory over time.

Generates a ``--minutes``-long H.264 video (moving shapes, 320 x 240, ``--video-fps`` frames/s,
a keyframe every 10 s, in a temporary folder), then streams it through an LRCN (ImageNet
EfficientNet-Lite0 frame encoder + 256-cell LSTM, random LSTM weights: speed does not depend on
them) at ``--fps`` frames/s into the model, 224 px, one window per second
(:class:`vidrnn.inference.stream.StreamRunner`), and prints one table:

* end to end: frames/s over the whole video (decode + resize + encoder + LSTM);
* reference, the same run: the bare model (encoder + LSTM step) on ready tensors of the same
  window size, layout and precision, and the ratio;
* the process's resident memory (RSS, from /proc) after minute 1 and at the end, and the growth.

Usage: python benchmarks/bench_stream.py [--minutes 10] [--fps 10] [--video-fps 10]
       [--precision fp32|bf16] [--quick]   (--quick: 1 minute)
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
from vidrnn.inference.checkpoint import ModelInfo
from vidrnn.inference.stream import StreamRunner


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_video(path: Path, minutes: float, fps: int) -> None:
    import av

    n = int(minutes * 60 * fps)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.options = {"preset": "ultrafast", "g": str(10 * fps)}
        yy, xx = np.mgrid[0:240, 0:320]
        for i in range(n):
            img = np.zeros((240, 320, 3), np.uint8)
            img[..., 0] = (xx + 3 * i) % 256
            cx, cy = 160 + 100 * np.sin(i / 37), 120 + 80 * np.cos(i / 23)
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < 900] = (255, 220, 0)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=10.0, help="frames per second fed to the model")
    ap.add_argument("--video-fps", type=int, default=10)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.minutes = 1.0
    torch.manual_seed(0)
    model = create_model("lrcn", num_classes=10)
    model.vidrnn = ModelInfo(name="lrcn", kwargs={}, task="classification", class_names=[str(i) for i in range(10)],
                             multilabel=False, data={"transform": {"size": 224}, "decode_size": 256}, config={},
                             checkpoint="")
    runner = StreamRunner(model, fps=a.fps, every=1.0, precision=a.precision)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "long.mp4"
        t0 = time.perf_counter()
        make_video(video, a.minutes, a.video_fps)
        made = time.perf_counter() - t0
        frames, rss_1min, start = 0, None, time.perf_counter()
        for line in runner.run(video):
            frames += line["frames"]
            if rss_1min is None and line["end"] >= 60.0:
                rss_1min = rss_mb()
        stream_s = time.perf_counter() - start
        rss_end = rss_mb()
    # reference: the bare model on ready tensors, windows of the same size
    t = max(1, int(round(a.fps)))
    x = torch.rand(1, t, 3, 224, 224)
    state, times = model.init_state(1), []
    with torch.inference_mode():
        for i in range(8):
            s = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
                _, state = model.step(x, state)
            if i >= 2:
                times.append(time.perf_counter() - s)
    bare = t / float(np.median(times))
    e2e = frames / stream_s
    print(f"# streaming LRCN (EfficientNet-Lite0 + LSTM 256), 224 px, {a.fps:g} frames/s into the model, "
          f"1 s windows, {a.precision}; {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"# video: {a.minutes:g} min generated (H.264 320x240, {a.video_fps} fps, keyframe every 10 s) in {made:.0f} s")
    print(f"{'measure':<44} {'value':>12} {'reference':>12} {'ratio':>8}")
    print(f"{'end-to-end frames/s (decode + model)':<44} {e2e:12.1f} {bare:12.1f} {e2e / bare:7.2f}x")
    print(f"{'frames streamed / seconds':<44} {frames:12d} {stream_s:12.1f}")
    if rss_1min is not None:
        print(f"{'RSS MB after minute 1 / at the end':<44} {rss_1min:12.0f} {rss_end:12.0f}")
        print(f"{'RSS growth minute 1 -> end (MB)':<44} {rss_end - rss_1min:12.1f}")


if __name__ == "__main__":
    main()
