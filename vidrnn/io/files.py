"""Files: reading data that may be gzip-compressed (MNIST IDX files, FMI radar PGMs), and
writing outputs atomically so that nothing a user has is ever left half-written.

Every file vidrnn writes (checkpoints, configs, summaries, caches, pictures, videos) goes
through :func:`atomic_write`: the content is written to a temporary file in the same folder,
then renamed over the target (``os.replace``, atomic on POSIX and Windows). An interrupted
write leaves the previous file, never a truncated one.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from pathlib import Path
from typing import Any, Iterator

__all__ = ["read_maybe_gzip", "atomic_write", "write_text", "write_json"]


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


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Write ``path`` atomically: yields a temporary path beside it to write to; when the block
    ends without an error the temporary file replaces ``path``, otherwise it is removed.

    The temporary name keeps the target's suffix (``best.ckpt.tmp<pid>.ckpt``), so writers
    that choose the format from the extension (PIL, PyAV, matplotlib) work unchanged; the
    process id keeps concurrent writers (feature-extraction shards) apart.

    Example::

        with atomic_write(run_dir / "summary.json") as tmp:
            tmp.write_text(text)
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`); returns the path."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically; returns the path."""
    return write_text(path, json.dumps(obj, indent=2))
