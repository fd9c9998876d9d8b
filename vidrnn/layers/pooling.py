"""Temporal pooling of per-frame features (Ng et al. 2015, "Beyond Short Snippets", Fig. 2).

Functions on tensors whose dim 1 is time: ``(B, T, ...)``.
"""

from __future__ import annotations

import torch

__all__ = ["temporal_max", "windowed_max", "num_windows"]


def temporal_max(x: torch.Tensor) -> torch.Tensor:
    """Max over time. Shape: ``(B, T, ...)`` -> ``(B, ...)``."""
    return x.max(dim=1).values


def num_windows(T: int, window: int, stride: int) -> int:
    """Windows of ``window`` frames every ``stride`` frames over ``T`` frames (>= 1; a clip
    shorter than one window is one window)."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window}, {stride}")
    return max(1, (T - window) // stride + 1)


def windowed_max(x: torch.Tensor, window: int = 10, stride: int = 5) -> torch.Tensor:
    """Max over local windows of time (frames ``[k*stride, k*stride + window)``).

    Shape:
        ``(B, T, ...)`` -> ``(B, W, ...)`` with ``W = num_windows(T, window, stride)``; a clip
        shorter than ``window`` gives one window over all its frames.
    """
    T = x.shape[1]
    w = min(window, T)
    n = num_windows(T, w, stride)
    win = x.unfold(1, w, stride)[:, :n]  # (B, W, ..., w)
    return win.max(dim=-1).values
