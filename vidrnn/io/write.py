"""Writing frames to GIF (Pillow) and MP4 (PyAV) for visualisations; files are written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidrnn.io.files import atomic_write

__all__ = ["write_gif", "write_mp4"]


def _frames_uint8(frames) -> np.ndarray:
    a = np.asarray(frames)
    if a.ndim == 3:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 4 or a.shape[-1] != 3 or len(a) == 0:
        raise ValueError(f"frames: expected (T, H, W, 3) or (T, H, W), T >= 1, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return a


def write_gif(frames, path: str | os.PathLike, *, fps: float = 4.0, loop: int = 0) -> Path:
    """Write frames as an animated GIF.

    Args:
        frames: ``(T, H, W, 3)`` or ``(T, H, W)``; uint8, or floats in [0, 1].
        path: the ``.gif`` file (written to a temporary name, then renamed).
        fps: frames per second.
        loop: GIF loop count (0 = forever).

    Raises:
        ValueError: frames of another shape.
    """
    from PIL import Image

    a = _frames_uint8(frames)
    path = Path(path)
    images = [Image.fromarray(f) for f in a]
    with atomic_write(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(round(1000 / fps)), loop=loop)
    return path


def write_mp4(frames, path: str | os.PathLike, *, fps: float = 4.0, codec: str = "libx264") -> Path:
    """Write frames as H.264 MP4 with PyAV (frame sides rounded down to even numbers).

    Args:
        frames: ``(T, H, W, 3)`` or ``(T, H, W)``; uint8, or floats in [0, 1].
        path: the ``.mp4`` file (written to a temporary name, then renamed).
        fps: frames per second.

    Raises:
        ValueError: frames of another shape.
    """
    from fractions import Fraction

    import av

    a = _frames_uint8(frames)
    a = a[:, : a.shape[1] // 2 * 2, : a.shape[2] // 2 * 2]
    path = Path(path)
    with atomic_write(path) as tmp, av.open(str(tmp), "w", format="mp4") as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        s.width, s.height, s.pix_fmt = a.shape[2], a.shape[1], "yuv420p"
        for f in a:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
