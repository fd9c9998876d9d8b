"""Speed of the ConvLSTM encoder–forecaster on this machine, printed as one table.

Shapes are those of Moving MNIST in Shi et al. 2015 (arXiv:1506.04214): a batch of clips of
10 input + 10 output frames of 64x64x1 pixels folded into 16x16x16 patches (4x4), the paper's
best network ``convlstm_5x5_5x5_128_5x5_64_5x5_64`` (ConvLSTM 128-64-64, 5x5 kernels).

Rows:

1. vidrnn's :class:`~vidrnn.models.encoder_forecaster.EncoderForecaster`, fp32: forward +
   backward time per batch (median of ``--repeats`` after one warm-up), clips/s, GFLOP/s.
2. The same under ``torch.autocast(device, dtype=torch.bfloat16)`` (what Lightning's
   ``bf16-mixed`` precision does).
3. and 4. The reference: the common ConvLSTM cell that concatenates ``[x_t, h_{t-1}]`` and runs
   one convolution per step (ndrplz/ConvLSTM_pytorch style, one kernel size for both), assembled
   into the same encoder–forecaster (same layers, channels, 5x5 kernels, forecaster's first
   layer without input, per-channel peepholes), in fp32 and bf16. At start the reference gets
   vidrnn's weights (its concat kernel = ``cat(conv_x.weight, conv_h.weight)`` along input
   channels) and the outputs and weight gradients of both are compared.
5. The measured conv2d peak: one large forward ``F.conv2d`` with the shape of the biggest
   state-to-state convolution folded over batch x time, in fp32 and bf16 (tensors already in
   that dtype); the last column of rows 1-4 is their GFLOP/s as a share of this peak.

The timed cases run round-robin (one repeat of each case in turn), so a slow drift of the
machine spreads over all rows instead of biasing one.

FLOPs are convolution FLOPs only (2 x multiply-adds), counted analytically from the model's
layers and cross-checked once against ``torch.utils.flop_counter.FlopCounterMode`` on a forward
pass. Forward + backward is counted as 3 x forward (the usual convention; the true count is a
little lower because the input frames and the encoder's zero initial states need no gradient;
FlopCounterMode's fwd+bwd count is printed too). Elementwise gate maths are not counted.

Usage: python benchmarks/bench_forecasting.py [--device cpu|cuda] [--repeats 5] [--batch 8]
       [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from vidrnn import create_model
from vidrnn.layers.conv_cells import ConvLSTMCell
from vidrnn.models.encoder_forecaster import EncoderForecaster

MODEL = "convlstm_5x5_5x5_128_5x5_64_5x5_64"


def machine(device: str) -> str:
    cpu, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    cpu = cpu or platform.processor()
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    s = (f"{platform.node()} | {cpu} | {os.cpu_count()} cores | torch {torch.__version__} "
         f"({torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
         f"bf16 instructions: {', '.join(bf16) or 'none'}) | Python {platform.python_version()}")
    if device == "cuda":
        s += f" | {torch.cuda.get_device_name()} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"
    return s


# ============================================================================ reference
class RefConvLSTMCell(nn.Module):
    """The common ConvLSTM cell: one convolution of ``cat([x, h])`` per step (ndrplz style).

    Same maths as :class:`vidrnn.layers.conv_cells.ConvLSTMCell` with equal input and state kernels:
    gate order i, f, g, o, per-channel peepholes (i, f look at ``c_prev``, o at the new ``c``).
    ``in_channels=0``: no input, the convolution sees ``h`` alone.

    Shape:
        ``x (B, C, H, W)`` or None, state ``(h, c)`` each ``(B, F, H, W)`` -> ``(h, c)``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 5):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                              padding=kernel_size // 2, bias=True)
        self.weight_ci = nn.Parameter(torch.zeros(hidden_channels, 1, 1))
        self.weight_cf = nn.Parameter(torch.zeros(hidden_channels, 1, 1))
        self.weight_co = nn.Parameter(torch.zeros(hidden_channels, 1, 1))

    def forward(self, x: torch.Tensor | None, state: tuple[torch.Tensor, torch.Tensor]):
        h, c = state
        combined = h if x is None else torch.cat([x, h], dim=1)  # (B, C+F, H, W)
        i, f, g, o = torch.split(self.conv(combined), self.hidden_channels, dim=1)
        i = torch.sigmoid(i + self.weight_ci * c)
        f = torch.sigmoid(f + self.weight_cf * c)
        c = f * c + i * torch.tanh(g)
        o = torch.sigmoid(o + self.weight_co * c)
        return o * torch.tanh(c), c


class RefEncoderForecaster(nn.Module):
    """Shi et al. 2015's encoder–forecaster built from :class:`RefConvLSTMCell`, stepping every
    layer one frame at a time (no hoisted input convolution).

    Shape:
        ``x (B, T_in, C, H, W)`` -> logits ``(B, T_out, C, H, W)``.
    """

    def __init__(self, in_channels: int = 1, hidden_channels=(128, 64, 64), *, kernel_size: int = 5,
                 patch_size: int = 4, num_output: int = 10):
        super().__init__()
        hidden = list(hidden_channels)
        d = in_channels * patch_size ** 2
        self.patch_size, self.num_output = patch_size, num_output
        self.encoder = nn.ModuleList(RefConvLSTMCell(d if i == 0 else hidden[i - 1], hidden[i], kernel_size)
                                     for i in range(len(hidden)))
        self.forecaster = nn.ModuleList(RefConvLSTMCell(0 if i == 0 else hidden[i - 1], hidden[i], kernel_size)
                                        for i in range(len(hidden)))
        self.output = nn.Conv2d(sum(hidden), d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C, H, W = x.shape
        p = self.patch_size
        seq = F.pixel_unshuffle(x.reshape(B * T, C, H, W), p).unflatten(0, (B, T))  # (B, T, C*p*p, h, w)
        states = []
        for cell in self.encoder:
            z = seq.new_zeros(B, cell.hidden_channels, *seq.shape[-2:])
            state, outs = (z, z), []
            for t in range(T):
                state = cell(seq[:, t], state)
                outs.append(state[0])
            seq = torch.stack(outs, dim=1)  # (B, T, F, h, w)
            states.append(state)
        inp, hs = None, []
        for cell, state in zip(self.forecaster, states):
            outs = []
            for t in range(self.num_output):
                state = cell(None if inp is None else inp[:, t], state)
                outs.append(state[0])
            inp = torch.stack(outs, dim=1)  # (B, T_out, F, h, w)
            hs.append(inp)
        feats = torch.cat(hs, dim=2).flatten(0, 1)  # (B*T_out, ΣF, h, w)
        y = F.pixel_shuffle(self.output(feats), p)  # (B*T_out, C, H, W)
        return y.unflatten(0, (B, self.num_output))


@torch.no_grad()
def copy_weights(src: EncoderForecaster, dst: RefEncoderForecaster) -> None:
    """vidrnn -> reference: concat kernel = cat(conv_x.weight, conv_h.weight) along input channels."""
    for layers, ref_cells in ((src.encoder, dst.encoder), (src.forecaster, dst.forecaster)):
        for layer, ref in zip(layers, ref_cells):
            cell = layer.cell
            w = cell.conv_h.weight if cell.conv_x is None else torch.cat([cell.conv_x.weight, cell.conv_h.weight], 1)
            ref.conv.weight.copy_(w)
            ref.conv.bias.copy_(cell.bias)
            for name in ("weight_ci", "weight_cf", "weight_co"):
                getattr(ref, name).copy_(getattr(cell, name))
    dst.output.load_state_dict(src.output.state_dict())


# ============================================================================ FLOPs
def conv_flops(conv: nn.Conv2d, n: int, height: int, width: int) -> int:
    """FLOPs (2 x MACs) of ``conv`` on ``n`` maps of ``height x width`` (stride 1, 'same' padding)."""
    if conv.stride != (1, 1) or any(2 * p + 1 != k for p, k in zip(conv.padding, conv.kernel_size)):
        raise ValueError(f"{conv}: expected a stride-1 'same' convolution")
    kh, kw = conv.kernel_size
    return 2 * n * height * width * conv.out_channels * (conv.in_channels // conv.groups) * kh * kw


def encoder_forecaster_flops(model: EncoderForecaster, batch: int, t_in: int, t_out: int, height: int,
                             width: int) -> int:
    """Forward convolution FLOPs of a ConvLSTM :class:`EncoderForecaster` on one batch.

    Encoder layers run ``t_in`` steps, forecaster layers ``t_out``; input-to-state convolutions
    only where the layer has an input; plus the 1x1 output convolution on every output frame.
    """
    if model.forecaster_input != "none":
        raise ValueError("only forecaster_input='none' is counted")
    h, w = height // model.patch_size, width // model.patch_size
    total = 0
    for layers, steps in ((model.encoder, t_in), (model.forecaster, t_out)):
        for layer in layers:
            cell = layer.cell
            if not isinstance(cell, ConvLSTMCell):
                raise ValueError(f"only ConvLSTM layers are counted, got {type(cell).__name__}")
            if cell.conv_x is not None:
                total += conv_flops(cell.conv_x, batch * steps, h, w)
            total += conv_flops(cell.conv_h, batch * steps, h, w)
    return total + conv_flops(model.output, batch * t_out, h, w)


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ============================================================================ timing
def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_round_robin(cases: dict, repeats: int, warmup: int, device: str) -> dict[str, float]:
    """Median seconds per call of each case, repeats interleaved across cases."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str, dtype: torch.dtype):
    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            logits = model(x)
        F.binary_cross_entropy_with_logits(logits.float(), y).backward()
    return step


def check_equivalence(model: EncoderForecaster, ref: RefEncoderForecaster, device: str, t_in: int) -> str:
    """Outputs and first-layer kernel gradients of vidrnn and the reference (fp32, batch 2)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, t_in, 1, 64, 64, generator=g).to(device)
    y = (torch.rand(2, model.num_output, 1, 64, 64, generator=g) > 0.8).float().to(device)
    model.zero_grad(set_to_none=True)
    ref.zero_grad(set_to_none=True)
    out, out_ref = model(x), ref(x)
    F.binary_cross_entropy_with_logits(out, y).backward()
    F.binary_cross_entropy_with_logits(out_ref, y).backward()
    d_out = (out - out_ref).abs().max().item()
    c0 = model.encoder[0].cell
    g_vid = torch.cat([c0.conv_x.weight.grad, c0.conv_h.weight.grad], 1)
    g_ref = ref.encoder[0].conv.weight.grad
    d_grad = ((g_vid - g_ref).abs().max() / g_ref.abs().max()).item()
    ok = torch.allclose(out, out_ref, atol=1e-4, rtol=1e-4) and d_grad < 1e-3
    model.zero_grad(set_to_none=True)
    ref.zero_grad(set_to_none=True)
    msg = (f"reference check (fp32, batch 2): max |logits - reference| = {d_out:.1e} (tol 1e-4), "
           f"encoder layer 1 kernel gradient max rel. diff = {d_grad:.1e} (tol 1e-3): {'OK' if ok else 'MISMATCH'}")
    if not ok:
        raise SystemExit(msg)
    return msg


def conv_peak(device: str, repeats: int, warmup: int, n: int) -> dict[torch.dtype, tuple[float, int]]:
    """GFLOP/s of one forward conv2d (n, 128, 16, 16) * (512, 128, 5, 5), per dtype."""
    x = torch.randn(n, 128, 16, 16, device=device)
    w = torch.randn(512, 128, 5, 5, device=device) * 0.02
    flops = 2 * n * 16 * 16 * 512 * 128 * 25
    cases = {}
    for dt in (torch.float32, torch.bfloat16):
        xd, wd = x.to(dt), w.to(dt)
        cases[dt] = (lambda xd=xd, wd=wd: F.conv2d(xd, wd, padding=2))
    with torch.no_grad():
        med = time_round_robin(cases, repeats, warmup, device)
    return {dt: (flops / med[dt] / 1e9, flops) for dt in cases}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per row (default 5; --quick: 1)")
    ap.add_argument("--batch", type=int, default=None, help="clips per batch (default 8; --quick: 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="smoke run: batch 1, one repeat")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available on this machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (1 if args.quick else 5)
    batch = args.batch or (1 if args.quick else 8)
    warmup = 1 if args.device == "cpu" else 3
    dev = args.device
    t_in = t_out = 10
    size = 64

    torch.manual_seed(0)
    model = create_model(MODEL, num_output=t_out).to(dev).train()
    ref = RefEncoderForecaster(1, model.hidden_channels, kernel_size=5, patch_size=model.patch_size,
                               num_output=t_out).to(dev).train()
    copy_weights(model, ref)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == sum(p.numel() for p in ref.parameters())

    print(f"machine: {machine(dev)}")
    print(f"shapes: batch {batch} clips x ({t_in} input + {t_out} output) frames of 1x{size}x{size} pixels "
          f"-> {size // model.patch_size}x{size // model.patch_size}x{model.patch_size ** 2} patches "
          f"({model.patch_size}x{model.patch_size}); {MODEL}: ConvLSTM "
          f"{'-'.join(map(str, model.hidden_channels))}, 5x5 input-to-state and state-to-state kernels, "
          f"{n_params:,} parameters; loss BCE-with-logits; no optimiser step")
    print(check_equivalence(model, ref, dev, t_in))

    x = torch.rand(batch, t_in, 1, size, size, device=dev)
    y = (torch.rand(batch, t_out, 1, size, size, device=dev) > 0.8).float()
    fwd = encoder_forecaster_flops(model, batch, t_in, t_out, size, size)
    with torch.no_grad():
        fwd_counted = counted_flops(lambda: model(x))
        fwd_counted_ref = counted_flops(lambda: ref(x))
    fb_counted = counted_flops(train_step(model, x, y, dev, torch.float32))
    model.zero_grad(set_to_none=True)
    fb = 3 * fwd
    print(f"FLOPs: convolutions only, 2 x multiply-adds. Forward per batch: {fwd / 1e9:.2f} GFLOP analytic "
          f"(FlopCounterMode: vidrnn {fwd_counted / 1e9:.2f}, reference {fwd_counted_ref / 1e9:.2f}"
          f"{'' if fwd == fwd_counted == fwd_counted_ref else ' -- DIFFERS'}). Forward + backward counted as "
          f"3 x forward = {fb / 1e9:.2f} GFLOP (FlopCounterMode fwd+bwd: {fb_counted / 1e9:.2f}; "
          f"no input gradient for the frames and the encoder's zero initial states)")

    cases = {
        ("vidrnn ConvLSTM (input conv hoisted)", torch.float32): train_step(model, x, y, dev, torch.float32),
        ("vidrnn ConvLSTM (input conv hoisted)", torch.bfloat16): train_step(model, x, y, dev, torch.bfloat16),
        ("reference: conv(cat[x, h]) per step", torch.float32): train_step(ref, x, y, dev, torch.float32),
        ("reference: conv(cat[x, h]) per step", torch.bfloat16): train_step(ref, x, y, dev, torch.bfloat16),
    }
    med = time_round_robin(cases, repeats, warmup, dev)
    peak_n = batch * t_in
    peak = conv_peak(dev, max(repeats, 3), warmup, peak_n)

    names = {torch.float32: "fp32", torch.bfloat16: "bf16"}
    base = med[("reference: conv(cat[x, h]) per step", torch.float32)]
    print(f"\nConvLSTM encoder-forecaster, forward + backward per batch on {dev} "
          f"(median of {repeats} after {warmup} warm-up; bf16 = torch.autocast bf16, as Lightning's bf16-mixed)")
    head = ("implementation", "dtype", "ms/batch", "clips/s", "GFLOP/s", "x ref fp32", "% conv peak")
    rows = []
    for (name, dt), sec in med.items():
        gf = fb / sec / 1e9
        rows.append((name, names[dt], f"{sec * 1e3:.0f}", f"{batch / sec:.2f}", f"{gf:.1f}",
                     f"{base / sec:.2f}", f"{100 * gf / peak[dt][0]:.0f}%"))
    for dt in (torch.float32, torch.bfloat16):
        gf, flops = peak[dt]
        rows.append((f"conv2d peak: F.conv2d ({peak_n},128,16,16)*(512,128,5,5) fwd", names[dt],
                     f"{flops / gf / 1e6:.0f}", "", f"{gf:.1f}", "", "100%"))
    w = max(len(r[0]) for r in rows) + 2
    print(f"{head[0]:<{w}}{head[1]:<6}" + "".join(f"{h:>12}" for h in head[2:]))
    for r in rows:
        print(f"{r[0]:<{w}}{r[1]:<6}" + "".join(f"{c:>12}" for c in r[2:]))
    print(f"conv2d bf16 / fp32 peak: {peak[torch.bfloat16][0] / peak[torch.float32][0]:.2f}x")


if __name__ == "__main__":
    main()
