"""YouTube-8M feature files: TFRecord shards of ``tf.train.Example`` / ``SequenceExample`` protos.

YouTube-8M (Abu-El-Haija et al., "YouTube-8M: A Large-Scale Video Classification Benchmark",
arXiv:1609.08675, 2016) ships precomputed features in TFRecord files:

* **frame level** -- one ``SequenceExample`` per video: context ``id`` (bytes) and ``labels``
  (int64 list); feature lists ``rgb`` (one 1024-byte string per second: Inception features
  after PCA, quantised to 8 bits) and ``audio`` (128 bytes per second, VGGish);
* **video level** -- one ``Example`` per video: ``id``, ``labels``, ``mean_rgb`` (1024 floats)
  and ``mean_audio`` (128 floats).

The bytes are dequantised as the dataset's starter code does (``utils.Dequantize``):
``q * (max - min) / 255 + (max - min) / 512 + min`` with ``[min, max] = [-2, 2]``, so a byte
maps to the centre of its bin in [-2, 2]. Reading and writing go through the ``tfrecord``
package (TFRecord framing, CRC32C written but not checked on reading, and the
``tf.train.Example`` protobuf classes; no TensorFlow). A truncated shard or a record without a required feature raises
:class:`~vidrnn.errors.DataError` naming the file and the record.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from vidrnn.errors import DataError

__all__ = ["dequantize", "quantize", "read_yt8m", "write_yt8m_frames"]


def dequantize(q, max_quantized_value: float = 2.0, min_quantized_value: float = -2.0) -> np.ndarray:
    """uint8 -> float32 in ``[min, max]`` (bin centres), the starter code's ``Dequantize``."""
    rng = max_quantized_value - min_quantized_value
    return (np.asarray(q, dtype=np.float32) * (rng / 255.0) + (rng / 512.0 + min_quantized_value)).astype(np.float32)


def quantize(x, max_quantized_value: float = 2.0, min_quantized_value: float = -2.0) -> np.ndarray:
    """float -> uint8, the inverse of :func:`dequantize` (values outside the range are clipped)."""
    rng = max_quantized_value - min_quantized_value
    q = (np.asarray(x, dtype=np.float32) - (rng / 512.0 + min_quantized_value)) / (rng / 255.0)
    return np.clip(np.rint(q), 0, 255).astype(np.uint8)


def _records(path: Path) -> Iterator[tuple[int, bytes]]:
    from tfrecord.reader import tfrecord_iterator

    compression = "gzip" if path.suffix == ".gz" else None
    it = tfrecord_iterator(str(path), compression_type=compression)
    i = 0
    while True:
        try:
            data = next(it)
        except StopIteration:
            return
        except (RuntimeError, OSError, EOFError, ValueError, zlib.error) as e:  # a truncated or corrupt shard
            raise DataError(f"{path}: record {i} cannot be read ({e}); the shard is truncated or not a TFRecord "
                            "file") from None
        yield i, bytes(data)
        i += 1


def _ints(features, key: str):
    f = features.feature.get(key)
    return [] if f is None else list(f.int64_list.value)


def read_yt8m(path: str | os.PathLike, *, level: str = "frame", features: Sequence[str] = ("rgb", "audio"),
              max_frames: int | None = None) -> Iterator[dict]:
    """The videos of one YouTube-8M shard.

    Args:
        path: a ``.tfrecord`` file (``.gz``: gzip-compressed).
        level: ``"frame"`` (``SequenceExample``) or ``"video"`` (``Example``).
        features: the feature lists to read, concatenated in this order (video level: their
            ``mean_`` versions).
        max_frames: frame level: keep the first ``max_frames`` seconds (the starter code: 300).

    Yields:
        ``{"id": str, "labels": list[int], "features": float32 (T, D)}`` (video level:
        ``(1, D)``), D the sum of the features' sizes (1152 for rgb + audio).

    Raises:
        FileNotFoundError: no such file. DataError: a truncated shard, a record that is not a
        protobuf of the level's kind, or one missing a requested feature (names the file, the
        record and the feature).
    """
    from google.protobuf.message import DecodeError
    from tfrecord import example_pb2

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"YouTube-8M shard not found: {p}")
    if level not in ("frame", "video"):
        raise ValueError(f"level={level!r}: expected 'frame' or 'video'")
    for i, data in _records(p):
        try:
            msg = (example_pb2.SequenceExample if level == "frame" else example_pb2.Example).FromString(data)
        except DecodeError as e:
            raise DataError(f"{p}: record {i} is not a {level}-level YouTube-8M record ({e})") from None
        ctx = msg.context if level == "frame" else msg.features
        vid = ctx.feature.get("id")
        ident = vid.bytes_list.value[0].decode("utf-8", "replace") if vid is not None and vid.bytes_list.value else ""
        cols = []
        for name in features:
            if level == "video":
                f = ctx.feature.get(f"mean_{name}")
                if f is None or not f.float_list.value:
                    raise DataError(f"{p}: record {i} ({ident}) has no 'mean_{name}' feature")
                cols.append(np.asarray(f.float_list.value, dtype=np.float32)[None])
                continue
            fl = msg.feature_lists.feature_list.get(name)
            if fl is None:
                raise DataError(f"{p}: record {i} ({ident}) has no '{name}' feature list")
            frames = fl.feature[:max_frames] if max_frames else fl.feature
            if not frames:
                raise DataError(f"{p}: record {i} ({ident}) has an empty '{name}' feature list")
            try:
                q = np.frombuffer(b"".join(f.bytes_list.value[0] for f in frames), dtype=np.uint8)
                cols.append(dequantize(q.reshape(len(frames), -1)))
            except (IndexError, ValueError):
                raise DataError(f"{p}: record {i} ({ident}) has malformed '{name}' frames (empty or of "
                                "different sizes)") from None
        T = min(len(c) for c in cols)
        yield {"id": ident, "labels": _ints(ctx, "labels"), "features": np.concatenate([c[:T] for c in cols], 1)}


def write_yt8m_frames(path: str | os.PathLike, videos: Iterable[dict], *, features: Sequence[str] = ("rgb",)) -> Path:
    """Write videos as a frame-level YouTube-8M shard (atomically).

    Args:
        path: the ``.tfrecord`` file to write.
        videos: ``{"id": str, "labels": list[int], name: float (T, D_name) for name in
            features}``; each frame is quantised to 8 bits (:func:`quantize`) as in the dataset.
        features: the feature lists to write.

    Returns:
        ``path``.
    """
    from tfrecord.writer import TFRecordWriter

    from vidrnn.io.files import atomic_write

    with atomic_write(path) as tmp:
        w = TFRecordWriter(str(tmp))
        try:
            for v in videos:
                seq = {name: ([quantize(f).tobytes() for f in np.asarray(v[name], np.float32)], "byte")
                       for name in features}
                w.write({"id": (v["id"].encode("utf-8"), "byte"), "labels": (list(map(int, v["labels"])), "int")}, seq)
        finally:
            w.close()
    return Path(path)
