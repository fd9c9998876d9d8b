"""Optical-flow clips for the flow stream of two-stream models (LRCN, "Beyond Short Snippets").

:class:`FlowClips` turns the RGB clips of any clip dataset (the embedded Moving Digits, video
folders, annotation lists) into flow clips as they are loaded: the clip's frames, sampled and
augmented as for the RGB stream (a flipped clip gives the flipped flow), go through
:func:`vidrnn.io.flow.flow_clip` -- dense flow between consecutive sampled frames, clipped to
±bound pixels on the unit scale, stacked L fields deep. Use a sampler of closely spaced frames
(``dense``, or ``fps`` at 10-15 frames/s; Ng et al. computed flow at 15 fps) so that consecutive
sampled frames are a flow step apart.
"""

from __future__ import annotations

import logging

import torch
from torch.utils.data import Dataset

from vidrnn.io.flow import FlowSettings, flow_clip

log = logging.getLogger(__name__)

__all__ = ["FlowClips"]


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
