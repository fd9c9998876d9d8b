"""Attention pictures: spatial heatmaps over frames and a strip of temporal weights under them.

Functions take tensors (frames in [0, 1], attention weights) and never reach into models.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidrnn.io.write import write_gif, write_mp4

__all__ = ["overlay_heatmap", "attention_frames", "write_attention_video"]


def overlay_heatmap(frames: torch.Tensor, weights: torch.Tensor, map_size: tuple[int, int], *, alpha: float = 0.5,
                    cmap: str = "jet", scale: str = "frame") -> np.ndarray:
    """Spatial attention upsampled to frame size, coloured and blended over the frames.

    ``scale="frame"``: each frame's weights are scaled by their own maximum before colouring,
    so the most attended region is always at the top of the colour map; ``"all"``: by the
    maximum over all frames, so a frame whose attention is spread out looks spread out.

    Args:
        frames: ``(T, 3, H, W)`` in [0, 1].
        weights: ``(T, h*w)`` spatial attention (row-major).
        map_size: ``(h, w)``.
        alpha: heatmap opacity.
        cmap: a matplotlib colour map name.

    Returns:
        uint8 ``(T, H, W, 3)``.

    Raises:
        ValueError: shapes that do not fit together.
    """
    from matplotlib import colormaps

    T, _, H, W = frames.shape
    h, w = map_size
    if weights.shape != (T, h * w):
        raise ValueError(f"weights {tuple(weights.shape)}: expected (T={T}, {h}*{w})")
    att = weights.float().reshape(T, 1, h, w)
    att = F.interpolate(att, size=(H, W), mode="bilinear", align_corners=False)[:, 0]  # (T, H, W)
    if scale not in ("frame", "all"):
        raise ValueError(f"scale={scale!r}: expected 'frame' or 'all'")
    peak = att.flatten(1).amax(1) if scale == "frame" else att.amax().expand(T)
    att = att / peak.clamp_min(1e-12)[:, None, None]
    heat = colormaps[cmap](att.clamp(0, 1).cpu().numpy())[..., :3]  # (T, H, W, 3)
    img = frames.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    return ((1 - alpha) * img + alpha * heat).clip(0, 1).__mul__(255).round().astype(np.uint8)


def attention_frames(frames: torch.Tensor, *, spatial: torch.Tensor | None = None,
                     map_size: tuple[int, int] | None = None, temporal: torch.Tensor | None = None,
                     title: str = "", title_colour=(255, 255, 255), scale: int = 1) -> np.ndarray:
    """Frames with the spatial heatmap, a title bar and a strip of temporal attention weights.

    The strip under each frame has one cell per frame of the clip: for temporal attention
    ``(T, W)`` (weight of frames ``t-W+1..t`` at step t), the cells show step t's weights; with
    no temporal attention they show the time line. The current frame is outlined.

    Args:
        frames: ``(T, 3, H, W)`` in [0, 1].
        spatial: ``(T, h*w)`` or None; map_size: ``(h, w)`` for it.
        temporal: ``(T, W)`` or None.
        title: text over every frame (e.g. predicted and true label).
        title_colour: RGB of the title text.
        scale: integer upscaling of small frames (nearest).

    Returns:
        uint8 ``(T, H', W', 3)``.
    """
    from PIL import Image, ImageDraw

    T = frames.shape[0]
    if spatial is not None:
        img = overlay_heatmap(frames, spatial, map_size)
    else:
        img = (frames.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    if scale > 1:
        img = img.repeat(scale, 1).repeat(scale, 2)
    H, W = img.shape[1:3]
    bar, strip = 18, 16
    out = []
    tw = None if temporal is None else temporal.float().cpu().numpy()
    for t in range(T):
        canvas = Image.new("RGB", (W, H + bar + strip), (0, 0, 0))
        canvas.paste(Image.fromarray(img[t]), (0, bar))
        d = ImageDraw.Draw(canvas)
        d.text((3, 3), title, fill=tuple(title_colour))
        cell = W / T
        for j in range(T):
            if tw is not None:
                k = j - (t - tw.shape[1] + 1)  # position of frame j in step t's window
                v = float(tw[t, k]) if 0 <= k < tw.shape[1] else 0.0
            else:
                v = 1.0 if j <= t else 0.15
            g = int(40 + 215 * v)
            x0, y0 = int(j * cell), H + bar
            d.rectangle([x0, y0, int((j + 1) * cell) - 1, y0 + strip - 1], fill=(g, g, 40))
            if j == t:
                d.rectangle([x0, y0, int((j + 1) * cell) - 1, y0 + strip - 1], outline=(255, 255, 255))
        out.append(np.asarray(canvas))
    return np.stack(out)


def write_attention_video(frames: torch.Tensor, out_stem: str | os.PathLike, *, fps: float = 4.0,
                          **kwargs) -> tuple[Path, Path]:
    """Write :func:`attention_frames` as ``<out_stem>.mp4`` and ``<out_stem>.gif`` (atomically).

    Returns:
        ``(mp4 path, gif path)``.
    """
    comp = attention_frames(frames, **kwargs)
    stem = Path(out_stem)
    return (write_mp4(comp, stem.with_suffix(".mp4"), fps=fps), write_gif(comp, stem.with_suffix(".gif"), fps=fps))
