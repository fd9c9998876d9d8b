"""Vanishing and exploding gradients made visible: ``||dL_T/dh_t||`` against ``T - t`` for
recurrent language models (what ``vidrnn gradients`` calls).

Backpropagating the loss at step ``T`` to the hidden state ``k = T - t`` steps earlier multiplies
``k`` Jacobians ``dh_{s}/dh_{s-1}``; for a vanilla RNN that is ``diag(φ'(a_s)) W_hh`` each, so
the gradient behaves like the powers of ``W_hh^T``: it shrinks geometrically when the largest
singular value ``σ_max(W_hh)`` (times ``max φ'``) is below 1 -- a sufficient condition -- and
can grow only when it is above 1 -- a necessary one (Bengio et al. 1994; Pascanu et al. 2013;
clipping is the cure for the growth). How fast it grows is set by the spectral radius (about
``σ_max / 2`` for a random matrix) and by how many units are active: a ReLU RNN explodes once
``σ_max`` is a few times 1, while tanh units saturate (``φ' -> 0``) and a tanh RNN keeps
vanishing even with a large ``W_hh``. The LSTM's cell
path ``c_t = f_t ∘ c_{t-1} + ...`` is additive: its Jacobian is ``diag(f_t)``, so the gradient
holds for as long as the forget gates stay near 1, whatever ``W_hh`` is.

The measurement: ``windows`` random places of a text; the model reads ``warmup`` characters
(no gradient) to reach a typical state, then ``length`` characters with the equation cells,
whose per-step states are the graph's own tensors; ``L_T`` is the cross-entropy of the next
character after the last step, and ``||dL_T/dh_t||`` of every layer (and ``||dL_T/dc_t||`` for
LSTMs) is read for each ``t``. Curves are geometric means over the windows, in float64 (no
underflow for the vanishing ones).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from vidrnn.io.files import write_json
from vidrnn.layers.rnn_cells import largest_singular_values, recurrent_weights

__all__ = ["scale_recurrent_weights", "gradient_flow", "compare_gradient_flow"]


@torch.no_grad()
def scale_recurrent_weights(model: torch.nn.Module, sigma: float) -> None:
    """Rescale every recurrent weight matrix ``W_hh`` of ``model`` in place so that its largest
    singular value is ``sigma``."""
    for w in recurrent_weights(model).values():
        w.mul_(sigma / torch.linalg.matrix_norm(w, ord=2))


def _geometric_mean(norms: torch.Tensor) -> list[float]:
    """``(windows, length)`` norms -> geometric mean per column, columns reversed to ``T - t``."""
    logs = torch.log(norms.clamp_min(1e-300))
    return torch.exp(logs.mean(0)).flip(0).tolist()


def gradient_flow(model, ids: torch.Tensor, *, length: int = 100, windows: int = 32, warmup: int = 100,
                  seed: int = 0, sigma: float | None = None) -> dict:
    """``||dL_T/dh_t||`` for ``T - t = 0 .. length - 1`` (see the module docstring).

    Args:
        model: a :class:`~vidrnn.models.char_lm.CharLM` (not modified: a float64 copy is used).
        ids: ``(N,)`` character indices of a text (``N > warmup + length + 1``).
        sigma: if given, every ``W_hh`` of the copy is rescaled to this largest singular value.

    Returns:
        ``{"h": {layer: [norm per T - t]}, "c": {layer: [...]} (LSTM), "sigma_max": {weight: σ}}``.

    Raises:
        ValueError: a text too short for the windows, or a non-positive length or number of windows.
    """
    if length < 1 or windows < 1 or warmup < 0:
        raise ValueError(f"length and windows must be >= 1 and warmup >= 0, got {length}, {windows}, {warmup}")
    if len(ids) <= warmup + length + 1:
        raise ValueError(f"the text has {len(ids)} characters; need more than warmup + length + 1 = "
                         f"{warmup + length + 1}")
    eq = model.with_equations().double().eval()
    if sigma is not None:
        scale_recurrent_weights(eq, sigma)
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - warmup - length - 1, (windows,), generator=g)
    x = torch.stack([ids[s: s + warmup + length] for s in starts.tolist()])
    y = torch.stack([ids[s + warmup + length] for s in starts.tolist()])
    with torch.no_grad():
        _, state = eq(x[:, :warmup]) if warmup else (None, None)
    logits, _, steps = eq.steps(x[:, warmup:], state)
    for per_step in steps:
        for s in per_step:
            for t in (s if isinstance(s, tuple) else (s,)):
                t.retain_grad()
    F.cross_entropy(logits[:, -1], y, reduction="sum").backward()  # rows are independent windows
    out: dict = {"h": {}, "sigma_max": largest_singular_values(eq)}
    for layer, per_step in enumerate(steps, 1):
        hs = [s[0] if isinstance(s, tuple) else s for s in per_step]
        out["h"][layer] = _geometric_mean(torch.stack([h.grad.norm(dim=-1) for h in hs], 1))
        if eq.cell == "lstm":
            out.setdefault("c", {})[layer] = _geometric_mean(torch.stack([s[1].grad.norm(dim=-1) for s in per_step], 1))
    return out


def compare_gradient_flow(models: dict, ids: torch.Tensor, out_dir: str | os.PathLike, *,
                          sigmas: tuple[float, ...] = (), length: int = 100, windows: int = 32,
                          seed: int = 0) -> dict:
    """Gradient flow of several models on the same text (each as it is, and with ``W_hh``
    rescaled to each of ``sigmas``): ``gradient_flow.png`` (top layer's ``||dL_T/dh_t||``,
    log scale) and ``gradient_flow.json`` (every layer, ``dL_T/dc_t`` for LSTMs, σ_max, and the
    ratio of the gradient ``length - 1`` steps back to the one at ``T``).

    Args:
        models: ``{label: CharLM}``.
        ids: the text as indices in the models' vocabulary.

    Returns:
        The JSON's contents, with ``"png"`` and ``"json"`` paths.
    """
    from vidrnn.viz.text import gradient_flow_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results, curves = {}, {}
    for label, model in models.items():
        for sigma in (None, *sigmas):
            key = label if sigma is None else f"{label}, W_hh scaled to sigma_max={sigma:g}"
            r = gradient_flow(model, ids, length=length, windows=windows, seed=seed, sigma=sigma)
            top = max(r["h"])
            h = r["h"][top]
            r["top_layer"] = top
            r["ratio_first_to_last"] = h[-1] / h[0] if h[0] > 0 else float("nan")
            results[key] = r
            sig = max(v for k, v in r["sigma_max"].items() if k.endswith(f"l{top - 1}"))
            curves[f"{key} (layer {top}, sigma_max {sig:.2f})"] = h
    png = gradient_flow_png(curves, out / "gradient_flow.png",
                            title=f"||dL_T/dh_t|| over {windows} windows of the text (geometric mean)")
    report = {"length": length, "windows": windows, "models": results, "png": str(png),
              "json": str(out / "gradient_flow.json")}
    write_json(out / "gradient_flow.json", report)
    return report
