"""Training speed of the 2-layer character-level LSTM: torch's fused ``nn.LSTM`` vs vidrnn's
equation cells (:class:`vidrnn.layers.rnn_cells.LSTM`, the same maths step by step in Python),
printed as one table.

The model is ``char_lstm_shakespeare``'s (2 x 512, embedding 64, dropout 0.3; ``--hidden`` to
change), trained as ``vidrnn fit`` trains it (AdamW 2e-3, B = 64 streams x T = 128 characters
per chunk, state carried and detached at chunk edges, gradient norm clipped at 5) on
tinyshakespeare, each implementation starting from the same initial weights.

Rows, one per implementation:

* characters/s of training (forward + backward + optimiser step; median over the timed steps
  after two warm-up steps);
* validation loss (nats/char, the val split's first ``--val-chars`` characters, 16 streams)
  after training for ``--seconds`` of wall time each: the "val loss reached per minute";
* the ratio of each row's characters/s to the fused path's, measured in the same run.

Usage: python benchmarks/bench_char_lm.py [--seconds 60] [--hidden 512] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from _shared import SHARED_DATA
from vidrnn import create_model
from vidrnn.data.text import StreamChunks, TextDataModule
from vidrnn.tasks.language_model import clip_gradients, detach_state

TEXT = SHARED_DATA / "text"


@torch.no_grad()
def val_loss(model, ids: torch.Tensor, streams: int = 16, seq_len: int = 128) -> float:
    model.eval()
    ds = StreamChunks(ids, streams, seq_len, drop_last=False)
    state, total, n = None, 0.0, 0
    for k in range(len(ds)):
        b = ds[k]
        logits, state = model(b["input"], state)
        total += float(F.cross_entropy(logits.flatten(0, 1), b["target"].flatten(), reduction="sum"))
        n += b["target"].numel()
    model.train()
    return total / n


def train_for(model, ds: StreamChunks, seconds: float, lr: float) -> tuple[float, int, float]:
    """Train until ``seconds`` have passed; ``(median chars/s, steps, wall seconds)``."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    state, times, k, t_start = None, [], 0, time.perf_counter()
    while time.perf_counter() - t_start < seconds:
        b = ds[k % len(ds)]
        if k % len(ds) == 0:
            state = None
        t0 = time.perf_counter()
        logits, state = model(b["input"], detach_state(state))
        state = detach_state(state)
        loss = F.cross_entropy(logits.flatten(0, 1), b["target"].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(model.parameters(), "norm", 5.0)
        opt.step()
        if k >= 2:
            times.append(time.perf_counter() - t0)
        k += 1
    chars = ds.batch_size * ds.seq_len
    return chars / statistics.median(times or [float("nan")]), k, time.perf_counter() - t_start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="wall time of training per implementation")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--val-chars", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="a 10 s smoke run of a 2 x 128 model")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.hidden, args.val_chars = 10.0, 128, 5000
    if args.threads:
        torch.set_num_threads(args.threads)
    dm = TextDataModule({"path": str(TEXT / "tinyshakespeare.txt")})
    train = dm.splits["train"]
    val_ids = dm.ids["val"][: args.val_chars]
    torch.manual_seed(0)
    fused = create_model("char_lstm", vocab_size=len(dm.vocab), hidden_size=args.hidden, num_layers=2, dropout=0.3)
    init = {k: v.clone() for k, v in fused.state_dict().items()}
    rows = []
    for impl in ("fused", "equations"):
        model = fused if impl == "fused" else fused.with_equations()
        model.load_state_dict(init)
        torch.manual_seed(1)
        cps, steps, wall = train_for(model, train, args.seconds, 2e-3)
        rows.append((impl, cps, steps, wall, val_loss(model, val_ids)))
    n = sum(p.numel() for p in fused.parameters())
    print(f"char-level LSTM 2 x {args.hidden} ({n:,} parameters), B=64 x T=128 chunks, tinyshakespeare; "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(f"{'implementation':<16}{'chars/s':>10}{'ratio':>8}{'steps':>7}{'seconds':>9}"
          f"{'val loss (nats/char)':>22}")
    ref = rows[0][1]
    for impl, cps, steps, wall, vl in rows:
        print(f"{impl:<16}{cps:>10.0f}{cps / ref:>8.2f}{steps:>7}{wall:>9.1f}{vl:>22.4f}")
    print(f"val loss after {args.seconds:.0f} s of training each (first {len(val_ids):,} val characters, "
          "state carried); ratio: chars/s relative to the fused nn.LSTM")


if __name__ == "__main__":
    main()
