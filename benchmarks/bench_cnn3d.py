"""Training speed of the 3D CNNs: clips/s of forward + backward + SGD step for vidrnn's
R(2+1)D-18 (full and tiny) against torchvision's ``r2plus1d_18`` (the same network: the ratio
should be about 1.0), in fp32 and bf16 autocast, with the default and the ``channels_last_3d``
memory layout, all measured in the same run on the same inputs.

Clips are 16 x 112 x 112 (the paper's), batch ``--batch`` (default 4 on a CPU, 16 on a GPU).
Each row: median seconds per step over ``--steps`` timed steps after two warm-up steps, clips/s,
the speed-up over torchvision's fp32 default-layout row, and the ratio to torchvision in the same
precision and layout (the same network: ~1.0).

Usage: python benchmarks/bench_cnn3d.py [--steps 5] [--batch N] [--frames 16] [--size 112]
       [--device cpu|cuda] [--quick]   (--quick: 8 x 64 x 64 clips, 2 steps, tiny and full only)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision.models.video as tvv

from vidrnn import create_model


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(model, clips, labels, *, steps, precision, layout, device, vidrnn_layout):
    model = model.to(device).train()
    if layout == "channels_last_3d":  # what classification.channels_last does
        model = model.to(memory_format=torch.channels_last_3d)
        if vidrnn_layout:
            model.memory_format = torch.channels_last_3d
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = clips.to(device)
    if not vidrnn_layout:  # torchvision takes (B, C, T, H, W), normalised by the caller
        x = x.transpose(1, 2).contiguous()
        if layout == "channels_last_3d":
            x = x.to(memory_format=torch.channels_last_3d)
    y = labels.to(device)
    times = []
    for i in range(steps + 2):
        _sync(device)
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
            logits = out.logits if hasattr(out, "logits") else out
            loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    device = torch.device(a.device)
    if a.quick:
        a.frames, a.size, a.steps = 8, 64, 2
    B = a.batch or (16 if device.type == "cuda" else 4)
    torch.manual_seed(0)
    clips = torch.rand(B, a.frames, 3, a.size, a.size)
    labels = torch.randint(0, 400, (B,))
    rows = []
    configs = [("torchvision r2plus1d_18", lambda: tvv.r2plus1d_18(weights=None), False),
               ("vidrnn r2plus1d_18", lambda: create_model("r2plus1d_18"), True),
               ("vidrnn r2plus1d_18_tiny", lambda: create_model("r2plus1d_18_tiny", num_classes=400), True)]
    variants = [("fp32", "default"), ("bf16", "default"), ("fp32", "channels_last_3d"), ("bf16", "channels_last_3d")]
    if a.quick:
        variants = variants[:1]
    for name, make, ours in configs:
        for precision, layout in variants:
            torch.manual_seed(0)
            s = bench(make(), clips, labels, steps=a.steps, precision=precision, layout=layout, device=device,
                      vidrnn_layout=ours)
            rows.append((name, precision, layout, s))
    ref = rows[0][3]
    same = {(p, lay): s for n, p, lay, s in rows if n.startswith("torchvision")}
    print(f"# 3D CNN training step, {B} clips of {a.frames} x {a.size} x {a.size}, {device} "
          f"({platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"{'model':<26} {'precision':<9} {'layout':<17} {'s/step':>8} {'clips/s':>8} {'vs torchvision fp32':>20} "
          f"{'vs torchvision same':>20}")
    for name, precision, layout, s in rows:
        # the same-setting ratio compares the same network only (not the tiny variant)
        vs_same = f"{same[(precision, layout)] / s:19.2f}x" if "tiny" not in name else f"{'-':>20}"
        print(f"{name:<26} {precision:<9} {layout:<17} {s:8.3f} {B / s:8.2f} {ref / s:19.2f}x {vs_same}")


if __name__ == "__main__":
    main()
