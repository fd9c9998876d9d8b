"""Figures of captioning attention: Show, Attend and Tell's per-word attention maps over an image
(their figures 2-3), and a video captioner's weights over the frames for every word."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from vidrnn.viz.attention import overlay_heatmap
from vidrnn.viz.figures import pyplot, save_figure

__all__ = ["word_attention_figure", "frame_attention_figure"]


def word_attention_figure(image: torch.Tensor, words: list[str], weights: torch.Tensor, map_size: tuple[int, int],
                          path: str | os.PathLike, *, title: str = "", columns: int = 5) -> Path:
    """The image, then one panel per generated word: the attention over the regions upsampled
    and blended over the image on one colour scale for the whole caption, the word above it with
    its peak weight relative to uniform attention (``max_i alpha_i * L``: 1.0x means spread
    evenly), written atomically as a PNG.

    Args:
        image: ``(3, H, W)`` in [0, 1].
        words: the n generated words (``<end>`` included if the figure should show it).
        weights: ``(n, h*w)`` attention per word (row-major regions).
        map_size: ``(h, w)``.

    Raises:
        ValueError: ``weights`` does not have one row per word.
    """
    if weights.shape[0] != len(words):
        raise ValueError(f"weights has {weights.shape[0]} rows for {len(words)} words")
    plt = pyplot()
    panels = overlay_heatmap(image[None].expand(len(words), -1, -1, -1), weights, map_size, alpha=0.55, scale="all")
    peaks = (weights.float().amax(-1) * weights.shape[-1]).tolist()
    n = len(words) + 1
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(image.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    axes.flat[0].set_title("input", fontsize=10)
    for k, (word, panel, peak) in enumerate(zip(words, panels, peaks), 1):
        axes.flat[k].imshow(panel)
        axes.flat[k].set_title(f"{word}  ({peak:.1f}x)", fontsize=11)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def frame_attention_figure(frames: torch.Tensor, words: list[str], weights: torch.Tensor,
                           path: str | os.PathLike, *, title: str = "") -> Path:
    """The sampled frames along the top, under them a word x frame grid of the temporal
    attention weights (each row one generated word; PNG, written atomically).

    Args:
        frames: ``(T, 3, H, W)`` in [0, 1].
        words: the n generated words.
        weights: ``(n, T)``.

    Raises:
        ValueError: shapes that do not fit together.
    """
    T = frames.shape[0]
    if weights.shape != (len(words), T):
        raise ValueError(f"weights {tuple(weights.shape)}: expected ({len(words)} words, {T} frames)")
    plt = pyplot()
    fig = plt.figure(figsize=(max(6.0, 1.1 * T), 1.4 + 0.32 * len(words) + 1.2))
    grid = fig.add_gridspec(2, T, height_ratios=[1.2, 0.32 * len(words) + 0.3])
    for t in range(T):
        ax = fig.add_subplot(grid[0, t])
        ax.imshow(frames[t].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
        ax.set_title(f"frame {t}", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    im = ax.imshow(weights.float().cpu().numpy(), aspect="auto", cmap="viridis", vmin=0.0)
    ax.set_yticks(range(len(words)), words, fontsize=9)
    ax.set_xticks(range(T), [str(t) for t in range(T)], fontsize=8)
    ax.set_xlabel("frame")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="attention")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
