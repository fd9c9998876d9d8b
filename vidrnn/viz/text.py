"""Text coloured by a hidden unit's activation, as the figures of Karpathy, Johnson and Fei-Fei
2015 (an HTML page and a PNG), and the gradient-flow plot of ``vidrnn gradients``.

Colours: activations in [-1, 1] (tanh of an LSTM cell, or any values scaled by their largest
magnitude) from blue (-1) through white (0) to red (+1).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from vidrnn.viz.figures import pyplot, save_figure

__all__ = ["activation_colors", "text_activation_html", "text_activation_png", "gradient_flow_png"]


def activation_colors(values: np.ndarray) -> np.ndarray:
    """``(N, 3)`` RGB in [0, 1]: blue for -1, white for 0, red for +1 (values clipped to [-1, 1])."""
    v = np.clip(np.asarray(values, np.float64), -1, 1)[:, None]
    white, red, blue = np.ones(3), np.array([0.84, 0.19, 0.15]), np.array([0.19, 0.39, 0.80])
    return np.where(v >= 0, white + v * (red - white), white + (-v) * (blue - white))


def text_activation_html(text: str, values: np.ndarray, title: str = "") -> str:
    """An HTML page showing ``text`` with each character's background coloured by ``values`` in [-1, 1]."""
    rgb = (activation_colors(values) * 255).round().astype(int)
    spans = []
    for ch, (r, g, b), v in zip(text, rgb, values):
        shown = "\u21b5\n" if ch == "\n" else html.escape(ch)
        spans.append(f'<span style="background:rgb({r},{g},{b})" title="{float(v):+.3f}">{shown}</span>')
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif} pre{font-family:monospace;font-size:13px;line-height:1.35}</style>"
            "</head><body><h3>" + html.escape(title) + "</h3><p>blue: -1, white: 0, red: +1 (hover a character "
            "for its value)</p><pre>" + "".join(spans) + "</pre></body></html>\n")


def text_activation_png(text: str, values: np.ndarray, path: str | os.PathLike, title: str = "",
                        max_lines: int = 40, max_columns: int = 100) -> Path:
    """Draw ``text`` (its first ``max_lines`` lines, each cut at ``max_columns``) on a grid of
    character cells coloured by ``values`` in [-1, 1], and save it as a PNG (atomically)."""
    plt = pyplot()

    rows: list[list[tuple[str, float]]] = [[]]
    for ch, v in zip(text, values):
        if ch == "\n":
            rows[-1].append(("\u21b5", float(v)))
            rows.append([])
            if len(rows) > max_lines:
                break
        elif len(rows[-1]) < max_columns:
            rows[-1].append((ch, float(v)))
    rows = [r for r in rows[:max_lines]]
    width = max([len(r) for r in rows] + [1])
    grid = np.ones((len(rows), width, 3))
    for y, row in enumerate(rows):
        if row:
            grid[y, : len(row)] = activation_colors(np.array([v for _, v in row]))
    fig, ax = plt.subplots(figsize=(0.11 * width + 0.4, 0.2 * len(rows) + 0.7))
    ax.imshow(grid, aspect="auto", interpolation="nearest", extent=(-0.5, width - 0.5, len(rows) - 0.5, -0.5))
    for y, row in enumerate(rows):
        for x, (ch, _) in enumerate(row):
            if not ch.isspace():
                ax.text(x, y, ch, ha="center", va="center", family="monospace", fontsize=7.5)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def gradient_flow_png(curves: dict[str, list[float]], path: str | os.PathLike, title: str = "") -> Path:
    """Plot ``||dL_T/dh_t||`` against ``T - t`` (log scale) for each named curve; save a PNG."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, ys in curves.items():
        ys = np.asarray(ys, np.float64)
        ax.semilogy(np.arange(len(ys)), np.where(ys > 0, ys, np.nan), label=name,
                    linestyle="--" if "scaled" in name else "-")
    ax.set_xlabel("T - t (steps back from the loss)")
    ax.set_ylabel("||dL_T / dh_t||")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
