"""The search for interpretable hidden units (Karpathy, Johnson and Fei-Fei 2015, "Visualizing and
Understanding Recurrent Networks", arXiv:1506.02078): what ``vidrnn units`` calls.

A trained character-level language model reads a text; every hidden unit of every layer (for
LSTMs: the cell state ``c`` and the hidden state ``h``, for RNN/GRU: ``h``) gives one activation
per character. Each unit is scored by the Pearson correlation ``r`` between its activation and
a property of the text (:mod:`vidrnn.data.text_properties`: inside a string literal, bracket
depth, indentation depth, column in the line, inside a quotation); the best unit (largest
``|r|``) of each property is reported and drawn: the text coloured by its activation (an HTML
page and a PNG, as the paper's figures: blue negative, white 0, red positive, scaled by the
largest magnitude over the shown text, since trained LSTM cells often lie far beyond the range
where the paper's ``tanh(c)`` would show any contrast).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from vidrnn.io.text import Vocabulary
from vidrnn.data.text_properties import CODE_PROPERTIES, PROSE_PROPERTIES, text_properties
from vidrnn.io.files import write_json, write_text

__all__ = ["unit_activations", "correlate_units", "find_units", "looks_like_code"]


@torch.inference_mode()
def unit_activations(model, vocab: Vocabulary, text: str, chunk: int = 1000) -> tuple[np.ndarray, list[str]]:
    """Every hidden unit's activation at every character of ``text``.

    The model reads the text as one stream, from a zero state, ``chunk`` characters at a time
    (the state carried), with the equation cells (:meth:`~vidrnn.models.char_lm.CharLM.steps`).

    Returns:
        ``(activations (len(text), U) float32, names)``, names like ``"layer1.cell[37]"`` /
        ``"layer2.hidden[5]"`` (layers counted from 1).

    Raises:
        DataError: characters outside the model's vocabulary.
    """
    ids = vocab.encode(text, what="--text")
    eq = model.with_equations().eval() if model.implementation != "equations" else model.eval()
    device = next(eq.parameters()).device
    state, parts = None, []
    for start in range(0, len(ids), chunk):
        _, state, steps = eq.steps(ids[start: start + chunk].to(device)[None], state)
        cols = []
        for per_step in steps:  # one layer
            if eq.cell == "lstm":
                cols.append(torch.stack([c for _, c in per_step], 1)[0])
            cols.append(torch.stack([s[0] if isinstance(s, tuple) else s for s in per_step], 1)[0])
        parts.append(torch.cat(cols, dim=-1).float().cpu())
    acts = torch.cat(parts).numpy()
    H = eq.hidden_size
    names = []
    for layer in range(eq.num_layers):
        kinds = ("cell", "hidden") if eq.cell == "lstm" else ("hidden",)
        names += [f"layer{layer + 1}.{k}[{u}]" for k in kinds for u in range(H)]
    return acts, names


def correlate_units(acts: np.ndarray, prop: np.ndarray, block: int = 256) -> np.ndarray:
    """Pearson ``r`` of each unit's activations ``acts (N, U)`` with ``prop (N,)``; NaN where
    either is constant (float64, ``block`` units at a time to bound memory)."""
    p = prop.astype(np.float64)
    p = p - p.mean()
    out = np.empty(acts.shape[1])
    for j in range(0, acts.shape[1], block):
        a = acts[:, j: j + block].astype(np.float64)
        a -= a.mean(0)
        denom = np.sqrt((a ** 2).sum(0) * (p ** 2).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            out[j: j + block] = np.where(denom > 0, (p @ a) / denom, np.nan)
    return out


def _window(prop: np.ndarray, text: str, length: int) -> int:
    """Start of the ``length``-character window (at a line start) where ``prop`` varies most."""
    if len(text) <= length:
        return 0
    starts = [0] + [i + 1 for i, ch in enumerate(text[: len(text) - length]) if ch == "\n"]
    step = max(1, len(starts) // 200)
    return max(starts[::step], key=lambda s: float(np.std(prop[s: s + length])))


def _display_values(acts: np.ndarray) -> np.ndarray:
    """Activations divided by their largest magnitude over the shown text, so 0 stays white and
    the sign is the colour (LSTM cells often exceed |c| = 3, where the paper's ``tanh(c)``
    would be one flat colour)."""
    scale = float(np.abs(acts).max())
    return acts / scale if scale > 0 else np.zeros_like(acts)


def looks_like_code(text: str) -> bool:
    """Whether ``text`` reads as Python source (several ``def``/``class``/``import`` lines)."""
    return len(re.findall(r"^\s*(?:def|class|import|from)\s", text, re.M)) >= 3


def find_units(model, text: str, out_dir: str | os.PathLike, *, properties=None, max_chars: int = 30000,
               show_chars: int = 2000, top: int = 5) -> dict:
    """Rank the hidden units of a language model by how well they track properties of ``text``
    and draw the best unit of each property.

    Args:
        model: a loaded character-level model (:func:`vidrnn.inference.checkpoint.load_model`;
            its vocabulary in ``model.vidrnn.vocab``).
        text: the text to read (its first ``max_chars`` characters).
        out_dir: where ``units.json`` and ``<property>.html`` / ``<property>.png`` go.
        properties: names from :mod:`vidrnn.data.text_properties` (default: the code
            properties for Python source, else the prose ones).
        show_chars: characters shown in each HTML page and PNG.
        top: units listed per property.

    Returns:
        ``{"characters", "units", "properties": {name: {"best_unit", "r", "abs_r", "top":
        [{"unit", "r"}], "html", "png"} | {"constant": true}}}`` (also written to ``units.json``).

    Raises:
        DataError: characters of ``text`` outside the model's vocabulary.
    """
    from vidrnn.viz.text import text_activation_html, text_activation_png

    if max_chars < 1 or show_chars < 1:
        raise ValueError(f"max_chars and show_chars must be positive, got {max_chars} and {show_chars}")
    text = text[:max_chars]
    vocab = Vocabulary(model.vidrnn.vocab)
    acts, names = unit_activations(model, vocab, text)
    if not properties:
        properties = CODE_PROPERTIES if looks_like_code(text) else PROSE_PROPERTIES
    props = text_properties(text, properties)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {"characters": len(text), "units": len(names), "model": model.vidrnn.name, "properties": {}}
    for pname, values in props.items():
        r = correlate_units(acts, values)
        if np.all(np.isnan(r)):
            report["properties"][pname] = {"constant": True}
            continue
        order = np.argsort(-np.nan_to_num(np.abs(r), nan=-1.0))
        best = int(order[0])
        start = _window(values, text, show_chars)
        shown = text[start: start + show_chars]
        vals = _display_values(acts[start: start + show_chars, best])
        peak = float(np.abs(acts[start: start + show_chars, best]).max())
        title = (f"{pname}: {names[best]}, r = {r[best]:+.3f} over {len(text):,} characters "
                 f"(blue -{peak:.2f}, white 0, red +{peak:.2f})")
        html_path = out / f"{pname}.html"
        write_text(html_path, text_activation_html(shown, vals, title))
        png_path = text_activation_png(shown, vals, out / f"{pname}.png", title)
        report["properties"][pname] = {
            "best_unit": names[best], "r": round(float(r[best]), 4), "abs_r": round(float(abs(r[best])), 4),
            "top": [{"unit": names[int(i)], "r": round(float(r[int(i)]), 4)} for i in order[:top]],
            "html": str(html_path), "png": str(png_path)}
    write_json(out / "units.json", report)
    return report
