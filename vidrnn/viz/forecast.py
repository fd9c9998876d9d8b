"""Forecast pictures: input | truth | forecast grids (PNG), side-by-side GIFs, per-lead-time plots.

Everything takes tensors/arrays, never models. Frames are ``(T, C, H, W)`` (C = 1 or 3) with
intensities in [0, 1]; radar frames can be shown in rain rate with ``vmax`` (mm/h).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidrnn.io.write import write_gif
from vidrnn.viz.figures import save_figure

__all__ = ["forecast_grid", "forecast_gif", "lead_time_plot", "COLOUR_SCALES", "colour_frames", "colour_legend"]


def _np(frames) -> np.ndarray:
    a = frames.detach().float().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames, dtype=np.float32)
    if a.ndim != 4:
        raise ValueError(f"frames: expected (T, C, H, W), got shape {a.shape}")
    return a


def _save_fig(fig, path: Path) -> Path:
    return save_figure(fig, path, dpi=100, close=False, bbox_inches="tight")


def forecast_grid(inputs, truth, forecast, path: str | os.PathLike, *, title: str | None = None,
                  cmap: str = "gray", vmax: float = 1.0, step_label: str = "t") -> Path:
    """A PNG with three rows: the input frames, the true future, the forecast.

    Args:
        inputs: ``(T_in, C, H, W)``; truth, forecast: ``(T_out, C, H, W)``.
        path: the ``.png`` to write (atomically).
        title: figure title.
        cmap: colour map for one-channel frames; vmax: the value shown brightest.
        step_label: column label prefix.

    Raises:
        ValueError: arrays of another rank, or truth and forecast of different shapes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, p = _np(inputs), _np(truth), _np(forecast)
    if y.shape != p.shape:
        raise ValueError(f"truth {y.shape} and forecast {p.shape} must have the same shape")
    cols = max(len(x), len(y))
    fig, axes = plt.subplots(3, cols, figsize=(1.3 * cols, 4.2), squeeze=False)
    for r, (name, frames, offset) in enumerate((("input", x, -len(x) + 1), ("truth", y, 1), ("forecast", p, 1))):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(frames):
                f = frames[c]
                img = f[0] if f.shape[0] == 1 else np.clip(f.transpose(1, 2, 0), 0, 1)
                ax.imshow(img, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
                ax.set_title(f"{step_label}{c + offset:+d}" if (c + offset) else f"{step_label}0", fontsize=7)
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    path = _save_fig(fig, Path(path))
    plt.close(fig)
    return path


def forecast_gif(inputs, truth, forecast, path: str | os.PathLike, *, fps: float = 4.0, vmax: float = 1.0,
                 scale: int = 2) -> Path:
    """An animated GIF: the input frames, then truth (left) beside forecast (right).

    A white bar separates the halves; during the input frames the right half repeats the input.
    ``scale`` enlarges pixels (nearest neighbour) for small frames.
    """
    x, y, p = _np(inputs), _np(truth), _np(forecast)

    def rgb(f):  # (C, H, W) -> (H, W, 3) in [0, 1]
        f = np.clip(f / vmax, 0, 1)
        f = np.repeat(f, 3, axis=0) if f.shape[0] == 1 else f
        return f.transpose(1, 2, 0).repeat(scale, 0).repeat(scale, 1)

    bar = np.ones((x.shape[-2] * scale, 2 * scale, 3))
    frames = [np.concatenate([rgb(f), bar, rgb(f)], axis=1) for f in x]
    frames += [np.concatenate([rgb(a), bar, rgb(b)], axis=1) for a, b in zip(y, p)]
    return write_gif(np.stack(frames), path, fps=fps)


def lead_time_plot(series: dict[str, list[float]], path: str | os.PathLike, *, ylabel: str, step: float = 1.0,
                   xlabel: str = "lead time (frames)", title: str | None = None) -> Path:
    """Line plot of metrics per lead time (one line per entry of ``series``; names containing
    ``persistence`` are dashed, ``extrapolation`` dotted). Writes a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, values in series.items():
        xs = np.arange(1, len(values) + 1) * step
        ls = "--" if "persistence" in name else ":" if "extrapolation" in name else "-"
        ax.plot(xs, values, marker="o", ms=3, label=name, ls=ls)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    path = _save_fig(fig, Path(path))
    plt.close(fig)
    return path


#: colour scales for showing frames: name -> (level boundaries, unit shown with them). Values below
#: the first level are "no rain" (white); the rain scales follow the usual radar display levels.
COLOUR_SCALES = {
    "intensity": (tuple(np.linspace(0.0, 1.0, 11).round(2)), "intensity (0-1)"),
    "mm/h": ((0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 100.0), "rain rate (mm/h)"),
    "dBZ": ((10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0), "reflectivity (dBZ)"),
}
_MISSING = np.array([0.55, 0.55, 0.55])  # NaN (no radar coverage): grey


def _scale_colours(scale: str) -> tuple[tuple, np.ndarray]:
    from matplotlib import colormaps

    if scale not in COLOUR_SCALES:
        raise ValueError(f"colour scale {scale!r}: expected one of {', '.join(COLOUR_SCALES)}")
    levels = COLOUR_SCALES[scale][0]
    n = len(levels) - 1
    if scale == "intensity":  # a grey ramp, black = 0
        return levels, np.repeat(((np.arange(n) + 0.5) / n)[:, None], 3, axis=1)
    return levels, colormaps["turbo"](np.linspace(0.15, 0.95, n))[:, :3]


def colour_frames(frames, scale: str = "intensity") -> np.ndarray:
    """One-channel frames coloured by a scale of :data:`COLOUR_SCALES`.

    Args:
        frames: ``(T, H, W)`` or ``(T, 1, H, W)`` values in the scale's unit (intensity in [0, 1],
            rain rate in mm/h, reflectivity in dBZ); NaN = missing (drawn grey).
        scale: ``"intensity"`` (grey ramp), ``"mm/h"`` or ``"dBZ"`` (discrete levels, white below
            the first).

    Returns:
        ``(T, H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: unknown scale or frames of another shape.
    """
    a = frames.detach().float().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames, dtype=np.float32)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise ValueError(f"frames: expected (T, H, W) or (T, 1, H, W), got shape {a.shape}")
    levels, colours = _scale_colours(scale)
    if scale == "intensity":
        rgb = np.repeat(np.clip(np.nan_to_num(a), 0.0, 1.0)[..., None], 3, axis=-1)
    else:
        k = np.digitize(np.nan_to_num(a, nan=-np.inf), levels) - 1  # -1 below the first level
        rgb = np.where((k >= 0)[..., None], colours[np.clip(k, 0, len(colours) - 1)], 1.0)
    rgb = np.where(np.isnan(a)[..., None], _MISSING, rgb)
    return (rgb * 255 + 0.5).astype(np.uint8)


def colour_legend(scale: str = "intensity") -> dict:
    """The legend of a scale: ``{"unit", "levels": [{"from", "to", "colour": "#rrggbb"}]}`` (the
    last level is open above)."""
    levels, colours = _scale_colours(scale)
    rows = []
    for i, c in enumerate(colours):
        hexc = "#" + "".join(f"{int(v * 255 + 0.5):02x}" for v in c)
        rows.append({"from": float(levels[i]), "to": float(levels[i + 1]) if i + 1 < len(colours) else None,
                     "colour": hexc})
    return {"unit": COLOUR_SCALES[scale][1], "levels": rows}
