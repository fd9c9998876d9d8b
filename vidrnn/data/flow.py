"""Optical-flow clips for the flow stream of two-stream models (LRCN, "Beyond Short Snippets").

Two ways to feed a flow stream:

:class:`FlowClips` turns the RGB clips of any clip dataset (the embedded Moving Digits, video
folders, annotation lists) into flow clips as they are loaded: the clip's frames, sampled and
augmented as for the RGB stream (a flipped clip gives the flipped flow), go through
:func:`vidrnn.io.flow.flow_clip` -- dense flow between consecutive sampled frames, clipped to
±bound pixels on the unit scale, stacked L fields deep. Use a sampler of closely spaced frames
(``dense``, or ``fps`` at 10-15 frames/s; Ng et al. computed flow at 15 fps) so that consecutive
sampled frames are a flow step apart.

:class:`FlowCacheDataset` reads flow computed once by ``vidrnn extract-flow``
(:func:`vidrnn.inference.flow.extract_flow`): per video, ``flow/<key>.npy`` uint8 ``(N, 2, H, W)``
(the two-stream 8-bit storage, ±bound px) and ``flow/<key>.json`` (the time of each field's first
frame), memory-mapped. A clip is ``T + L - 1`` consecutive fields stacked L deep, randomly cropped
and flipped in training (a horizontal flip negates x), centre-cropped for evaluation.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vidrnn.data.annotations import VideoSample
from vidrnn.data.features import FeatureDataset
from vidrnn.io.flow import FlowSettings, flow_clip, stack_flow

log = logging.getLogger(__name__)

__all__ = ["FlowClips", "FlowCacheDataset"]


class FlowClips(Dataset):
    """Flow clips computed from the RGB clips of ``base``.

    Args:
        base: a clip dataset whose items carry ``video`` ``(V, T, 3, H, W)`` in [0, 1].
        settings: method, stack L and bound.

    Items: ``base``'s items with ``video`` replaced by ``(V, T - L, 2L, H, W)`` on the unit scale
    (0.5 = no motion); a clip too short for a flow stack is skipped like a bad video
    (``{"skipped": path, "error": ...}``: counted, never ending the epoch).
    """

    def __init__(self, base: Dataset, settings: FlowSettings):
        self.base, self.settings = base, settings

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name):  # the wrapped dataset's attributes (classes, samples, ...)
        if name in ("base", "settings") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def __getitem__(self, i: int) -> dict:
        item = self.base[i]
        if "skipped" in item:
            return item
        try:
            video = torch.stack([torch.from_numpy(flow_clip(v, self.settings)) for v in item["video"]])
        except ValueError as e:
            samples = getattr(self.base, "samples", None)
            where = samples[i].path if samples is not None else f"item {i}"
            log.warning("%s: %s (skipped)", where, e)
            return {"skipped": where, "error": f"{where}: {e}"}
        return {**item, "video": video}


class FlowCacheDataset(FeatureDataset):
    """Flow clips from a ``vidrnn extract-flow`` cache (see the module docstring).

    Args:
        cache: the cache folder.
        samples: the videos (as annotated when the cache was made).
        training: one random window per video, random crop and flip; else consecutive windows
            covering the video (the views whose predictions are averaged), centre crop.
        num_frames: T, model inputs per clip.
        stack: L, fields per input.
        size: side of the square crop, pixels (at most the cached frames' shorter side).

    Items: ``{"video": float (V, T, 2L, size, size) on the unit scale, "label", "index"}``; a
    video missing from the cache gives ``{"skipped": path, "error": ...}``.
    """

    folder, what = "flow", "flow"

    def __init__(self, cache: str | os.PathLike, samples: Sequence[VideoSample], *, training: bool, num_frames: int,
                 stack: int = 1, size: int = 160):
        super().__init__(cache, samples, training=training, num_frames=num_frames)
        self.stack, self.size = int(stack), int(size)

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        try:
            q, _ = self.load(i)  # (N, 2, H, W) uint8, memory-mapped
        except FileNotFoundError as e:
            log.warning("%s", e)
            return {"skipped": s.path, "error": str(e)}
        H, W = q.shape[-2:]
        S = min(self.size, H, W)
        clips = []
        for v in self.views(len(q), self.num_frames + self.stack - 1):
            if self.training:
                y, x = (int(torch.randint(0, n - S + 1, ()).item()) for n in (H, W))
            else:
                y, x = (H - S) // 2, (W - S) // 2
            unit = np.asarray(q[v, :, y:y + S, x:x + S], dtype=np.float32) / 255.0  # (T + L - 1, 2, S, S)
            if self.training and torch.rand(()) < 0.5:
                unit = unit[..., ::-1].copy()
                unit[:, 0] = 1.0 - unit[:, 0]  # mirrored: motion to the right becomes motion to the left
            clips.append(stack_flow(unit, self.stack))
        return {"video": torch.from_numpy(np.stack(clips)), "label": s.label, "index": i}
