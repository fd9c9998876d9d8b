"""YouTube-8M features as a streaming dataset (frame level: 1 frame/s, 1024-d RGB + 128-d audio).

:class:`YT8MShards` streams the videos of many TFRecord shards (:func:`vidrnn.io.yt8m.read_yt8m`):
each DataLoader worker reads its own share of the shards, training shuffles the shard order and
mixes videos through a buffer, evaluation reads everything in order. Items are
``{"features": (1, T, D), "label": multi-hot (K,), "index", "id"}``: the models read them through
the ``precomputed`` frame encoder (``model.encoder: {name: precomputed, feature_dim: 1152}``).
A shard that cannot be read (truncated, a record without a requested feature) is skipped from
that record on, logged and counted (``skipped_videos``), never ending the epoch.
"""

from __future__ import annotations

import glob
import logging
import random
import zlib
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch.utils.data import IterableDataset, get_worker_info

from vidrnn.errors import ConfigError, DataError
from vidrnn.io.yt8m import read_yt8m

log = logging.getLogger(__name__)

__all__ = ["YT8MShards", "expand_shards"]


def expand_shards(patterns: str | Sequence[str], where: str) -> list[str]:
    """Sorted files matching glob ``patterns`` (a string or a list).

    Raises:
        ConfigError: nothing matches (names the setting and the pattern).
    """
    pats = [patterns] if isinstance(patterns, str) else list(patterns)
    files = sorted({f for p in pats for f in glob.glob(str(Path(p).expanduser()))})
    if not files:
        raise ConfigError(f"{where}: no file matches {pats}")
    return files


class YT8MShards(IterableDataset):
    """Videos streamed from YouTube-8M shards.

    Args:
        files: the shard files.
        num_classes: K (3862 in the 2018 release).
        training: shuffle the shards and the videos (a buffer of ``shuffle_buffer``).
        level: ``"frame"`` or ``"video"``.
        features: the feature lists to concatenate (``("rgb", "audio")``: D = 1152).
        max_frames: keep the first ``max_frames`` seconds (the starter code: 300).
        shuffle_buffer: videos mixed before yielding (training).
    """

    def __init__(self, files: Sequence[str], num_classes: int, *, training: bool, level: str = "frame",
                 features: Sequence[str] = ("rgb", "audio"), max_frames: int | None = 300, shuffle_buffer: int = 256):
        self.files, self.num_classes, self.training = list(files), int(num_classes), training
        self.level, self.features, self.max_frames = level, tuple(features), max_frames
        self.shuffle_buffer = shuffle_buffer

    def _mine(self, seed: int) -> list[str]:
        files = list(self.files)
        if self.training:
            random.Random(seed).shuffle(files)  # the same order in every worker: each takes its share
        info = get_worker_info()
        return files if info is None else files[info.id::info.num_workers]

    def _videos(self, seed: int) -> Iterator[dict]:
        for f in self._mine(seed):
            try:
                for v in read_yt8m(f, level=self.level, features=self.features, max_frames=self.max_frames):
                    yield v
            except (DataError, FileNotFoundError) as e:
                log.warning("%s (the rest of this shard is skipped)", e)
                yield {"skipped": f, "error": str(e)}

    def _item(self, v: dict) -> dict:
        if "skipped" in v:
            return v
        bad = [c for c in v["labels"] if not 0 <= c < self.num_classes]
        if bad:
            return {"skipped": v["id"], "error": f"video {v['id']}: labels {bad} outside 0..{self.num_classes - 1}"}
        label = torch.zeros(self.num_classes)
        label[list(v["labels"])] = 1.0
        return {"features": torch.from_numpy(v["features"])[None], "label": label, "id": v["id"],
                "index": zlib.crc32(v["id"].encode("utf-8"))}

    def __iter__(self) -> Iterator[dict]:
        if not self.training:
            for v in self._videos(0):
                yield self._item(v)
            return
        # a new shard order every pass, the same in every worker of a pass (each reads its share)
        info = get_worker_info()
        self._passes = getattr(self, "_passes", 0) + 1
        base = (info.seed - info.id) if info is not None else torch.initial_seed()
        rng, buf = random.Random(int(torch.randint(0, 2**62, ()))), []
        for v in self._videos(int(base) + self._passes):
            buf.append(v)
            if len(buf) >= self.shuffle_buffer:
                yield self._item(buf.pop(rng.randrange(len(buf))))
        rng.shuffle(buf)
        for v in buf:
            yield self._item(v)
