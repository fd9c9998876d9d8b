"""Reading data files that may be gzip-compressed (MNIST IDX files, FMI radar PGMs)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

__all__ = ["read_maybe_gzip"]


def read_maybe_gzip(path: str | os.PathLike, kind: str) -> bytes:
    """The bytes of ``path``, decompressed when they start with the gzip magic ``1f 8b``.

    Args:
        path: the file.
        kind: what the file should be (e.g. ``"IDX file"``), for the error messages.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names ``kind`` and the path).
        ValueError: a gzip stream that cannot be decompressed (truncated or corrupt).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: gzip-compressed {kind} that cannot be decompressed ({e})") from None
    return raw
