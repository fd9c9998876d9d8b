"""Feature caches: train temporal models from per-frame features computed once.

"Beyond Short Snippets" (Ng et al., CVPR 2015, arXiv:1503.08909) samples 1 frame/s from
videos minutes long and trains deep LSTMs and pooling layers on CNN features. Decoding and
encoding dominate that cost, so :func:`vidrnn.inference.features.extract_features` (``vidrnn
extract-features``) does it once, into a cache laid out as:

* frames are sampled at a fixed rate (:class:`~vidrnn.io.sampling.FixedRateSampler`), decoded
  by seeking, transformed with the eval transform and encoded in batches of ``batch_size``
  frames, written straight into a memory-mapped ``.npy`` file: memory stays bounded by one
  batch whatever the video's length;
* each video's ``<key>.npy`` (float16 ``(T, D)``, or ``(T, C, h, w)`` conv maps) and
  ``<key>.json`` (frame times in seconds, duration, source path) appear atomically, the JSON
  last, so an interrupted run resumes where it stopped (finished videos are skipped);
* ``shard``/``num_shards`` split the videos between processes or GPUs (video ``i`` goes to
  shard ``i % num_shards``);
* ``meta.json`` records the encoder, sampler, transform and the data config the videos came
  from; ``encoder.pt`` holds the encoder's weights, so a model trained on the cache can be
  saved with the exact encoder and later predict from raw video.

:class:`FeatureDataset` reads the cache with ``np.load(mmap_mode="r")``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vidrnn.data.annotations import VideoSample

log = logging.getLogger(__name__)

__all__ = ["FeatureDataset", "load_cache_meta", "CACHE_META_KEYS"]

#: meta.json settings that must agree when more videos are added to an existing cache
CACHE_META_KEYS = ("encoder", "kind", "sampler", "transform", "decode_size", "dtype", "precision")


def load_cache_meta(cache: str | os.PathLike) -> dict:
    """The ``meta.json`` of a feature cache.

    Raises:
        FileNotFoundError: not a feature cache (no ``meta.json``).
    """
    p = Path(cache) / "meta.json"
    if not p.is_file():
        raise FileNotFoundError(f"feature cache not found: {p} is missing (run `vidrnn extract-features --out {cache}`)")
    return json.loads(p.read_text())


class FeatureDataset(Dataset):
    """Cached per-frame features of annotated videos (memory-mapped).

    Args:
        cache: the cache directory.
        samples: the videos (as annotated when the cache was made).
        training: take a random window of ``num_frames`` frames; otherwise every frame, as
            consecutive windows of ``num_frames`` (the views whose predictions are averaged),
            or as one view when ``num_frames`` is None.
        num_frames: frames per clip; None = the whole video.

    Items: ``{"features": float32 (V, T, ...), "label", "index"}``; a video missing from the
    cache gives ``{"skipped": path, "error": ...}`` like a bad video.
    """

    folder, what = "features", "feature"  #: the cache's sub-folder of per-video arrays; what it holds

    def __init__(self, cache: str | os.PathLike, samples: Sequence[VideoSample], *, training: bool,
                 num_frames: int | None = None):
        self.cache = Path(cache)
        self.meta = load_cache_meta(cache)
        self.samples = list(samples)
        self.training = training
        self.num_frames = num_frames

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(features (N, ...) memory-mapped float16, times (N,) seconds)`` of sample ``i``,
        restricted to the sample's segment.

        Raises:
            FileNotFoundError: the video is not in the cache.
        """
        s = self.samples[i]
        js = self.cache / self.folder / f"{s.key}.json"
        if not js.is_file():
            raise FileNotFoundError(f"{s.path} is not in the {self.what} cache {self.cache} "
                                    f"(run vidrnn extract-{self.folder})")
        info = json.loads(js.read_text())
        feats = np.load(self.cache / self.folder / f"{s.key}.npy", mmap_mode="r")
        times = np.asarray(info["times"])
        dur = info["duration"] if s.end is None else min(s.end, info["duration"])
        a = s.start + s.frac[0] * (dur - s.start)
        b = s.start + s.frac[1] * (dur - s.start)
        keep = np.nonzero((times >= a - 1e-6) & (times < b + 1e-6))[0]
        if len(keep) == 0:
            keep = np.array([int(np.argmin(np.abs(times - (a + b) / 2)))])
        return feats[keep[0]:keep[-1] + 1], times[keep[0]:keep[-1] + 1]

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        try:
            feats, _ = self.load(i)
        except FileNotFoundError as e:
            log.warning("%s", e)
            return {"skipped": s.path, "error": str(e)}
        views = self.views(len(feats), self.num_frames)
        x = torch.from_numpy(np.stack([np.asarray(feats[v], dtype=np.float32) for v in views]))  # (V, T, ...)
        return {"features": x, "label": s.label, "index": i}

    def views(self, n: int, T: int | None) -> list[np.ndarray]:
        """Indices of the clips of a video of ``n`` cached steps: training, one random window of
        ``T``; evaluation, consecutive windows covering every step (the last ends at the end);
        ``T=None``: everything. Short videos repeat their last step."""
        if T is None:
            return [np.arange(n)]
        if self.training:
            start = int(torch.randint(0, max(n - T, 0) + 1, ()).item())
            return [np.minimum(np.arange(start, start + T), n - 1)]
        starts = list(range(0, max(n - T, 0) + 1, T))
        if starts[-1] + T < n:
            starts.append(n - T)  # the last window ends at the last frame
        return [np.minimum(np.arange(s0, s0 + T), n - 1) for s0 in starts]
