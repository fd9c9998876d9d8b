"""``model.compile: true`` (``torch.compile``, inductor) against eager mode, one table.

Training steps (forward + backward + AdamW) of the ConvLSTM forecaster (Shi et al. 2015 on Moving
MNIST shapes: 10 frames in, 10 out, 64x64, patch 4; ``convlstm_tiny`` and the paper's 2-layer
``convlstm_5x5_5x5_128_5x5_64_5x5_64`` narrowed by ``--hidden``) and of LRCN (frozen
EfficientNet-Lite0 at 160 px, 8 clips x 8 frames; and ``lrcn_tiny`` at 112 px), plus inference
(forward only) of each. Eager and compiled runs are measured in the same process; the compile
time (first call) is reported separately.

Usage: python benchmarks/bench_compile.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from bench_classification import best_of, machine
from bench_frame_path import print_table
from vidrnn import create_model


def _cases():
    mm = torch.rand(4, 10, 1, 64, 64)
    yield ("convlstm_tiny (4 seq, 10->10, 64x64)", lambda: create_model("convlstm_tiny", num_output=10), mm,
           lambda m, x: F.binary_cross_entropy_with_logits(m(x), torch.rand_like(m(x).detach())))
    yield ("encoder_forecaster convlstm 64-64 (4 seq, 10->10, 64x64)",
           lambda: create_model("encoder_forecaster", cell="convlstm", hidden_channels=[64, 64], num_output=10), mm,
           lambda m, x: F.binary_cross_entropy_with_logits(m(x), torch.rand_like(m(x).detach())))
    yield ("lrcn_tiny (8 clips x 8 frames, 112 px)", lambda: create_model("lrcn_tiny", num_classes=20),
           torch.rand(8, 8, 3, 112, 112), lambda m, x: m(x).logits.logsumexp(-1).mean())
    yield ("lrcn, frozen EfficientNet-Lite0 (8 x 8, 160 px)",
           lambda: create_model("lrcn", num_classes=20, encoder="efficientnet_lite0", trainable="none"),
           torch.rand(8, 8, 3, 160, 160), lambda m, x: m(x).logits.logsumexp(-1).mean())


def _time(fn, repeats):
    fn()  # warm-up
    return best_of(fn, repeats)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    rows = []
    for name, build, x, loss_fn in _cases():
        res = {}
        for compiled in (False, True):
            torch.manual_seed(0)
            model = build().train()
            if compiled:
                model.compile()
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

            def train_step():
                loss = loss_fn(model, x)
                opt.zero_grad()
                loss.backward()
                opt.step()

            def infer():
                with torch.inference_mode():
                    model.eval()(x)
                model.train()

            t0 = time.perf_counter()
            train_step()
            infer()
            first = time.perf_counter() - t0
            res[compiled] = (_time(train_step, args.repeats), _time(infer, args.repeats), first)
        (te, ie, fe), (tc, ic, fc) = res[False], res[True]
        rows.append([name, f"{te * 1e3:.0f}", f"{tc * 1e3:.0f}", f"{te / tc:.2f}x", f"{ie * 1e3:.0f}",
                     f"{ic * 1e3:.0f}", f"{ie / ic:.2f}x", f"{fc - fe:.0f}"])
    print_table(f"model.compile: true vs eager (best of {args.repeats}; ms per step; speed-up = eager / compiled)",
                ["model", "train eager", "train compiled", "speed-up", "infer eager", "infer compiled", "speed-up",
                 "compile s"], rows)


if __name__ == "__main__":
    main()
