"""Where does spatial attention go? Attention mass inside a target box relative to its area."""

from __future__ import annotations

import torch

__all__ = ["attention_mass_ratio"]


def attention_mass_ratio(weights: torch.Tensor, boxes: torch.Tensor, map_size: tuple[int, int],
                         frame_size: tuple[int, int]) -> torch.Tensor:
    """Attention mass inside the target box divided by the box's share of the frame.

    Each attention cell spreads its weight uniformly over the pixels it covers (the map is a
    regular ``h x w`` grid over the frame); the mass inside a box is the weight of each cell
    times the fraction of the cell inside the box. 1.0 means no better than uniform attention;
    ``frame area / box area`` is the maximum (all mass inside the box).

    Args:
        weights: spatial attention ``(B, T, h*w)``, row-major, summing to 1 over the cells.
        boxes: target boxes ``(B, T, 4)`` = ``(y0, x0, y1, x1)`` in pixels, end-exclusive.
        map_size: ``(h, w)`` cells. frame_size: ``(H, W)`` pixels.

    Returns:
        ``(B,)``: the ratio averaged over the T frames of each clip.

    Raises:
        ValueError: shapes that do not match.
    """
    B, T, N = weights.shape
    h, w = map_size
    H, W = frame_size
    if N != h * w or boxes.shape != (B, T, 4):
        raise ValueError(f"weights {tuple(weights.shape)} and boxes {tuple(boxes.shape)} do not match map {h}x{w}")
    ys = torch.arange(h + 1, device=weights.device, dtype=torch.float32) * (H / h)  # cell edges, pixels
    xs = torch.arange(w + 1, device=weights.device, dtype=torch.float32) * (W / w)
    b = boxes.float().clamp_min(0)
    oy = (torch.minimum(ys[None, None, 1:], b[..., 2:3]) - torch.maximum(ys[None, None, :-1], b[..., 0:1])).clamp_min(0)
    ox = (torch.minimum(xs[None, None, 1:], b[..., 3:4]) - torch.maximum(xs[None, None, :-1], b[..., 1:2])).clamp_min(0)
    frac = (oy[..., :, None] * ox[..., None, :]) / ((H / h) * (W / w))  # (B, T, h, w) cell fraction inside box
    mass = (weights.float() * frac.flatten(2)).sum(-1)  # (B, T)
    share = ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])).clamp_min(1e-9) / (H * W)
    return (mass / share).mean(1)
