"""Saving matplotlib figures: atomically (a temporary file, then a rename), headless (Agg)."""

from __future__ import annotations

import os
from pathlib import Path

from vidrnn.io.files import atomic_write

__all__ = ["pyplot", "save_figure"]


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 100, close: bool = True, **savefig) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (closing it unless ``close=False``)."""
    path = Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", **savefig)
    if close:
        pyplot().close(fig)
    return path
