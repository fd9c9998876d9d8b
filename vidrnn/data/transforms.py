"""Clip transforms built on torchvision.transforms.v2.

A clip is a uint8 ``(T, C, H, W)`` tensor; it is wrapped as a ``tv_tensors.Video`` so every
random transform draws its parameters once per clip: the same crop, flip and colour jitter
for every frame (video-consistent augmentation). Output: float32 ``(T, C, size, size)`` in
[0, 1]. Mean/std normalisation is not done here: it is a buffer of the frame encoder, so a
checkpoint plus raw frames is enough to predict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

__all__ = ["ClipTransformConfig", "build_clip_transform"]


@dataclass
class ClipTransformConfig:
    """Settings of the train/eval clip transforms (saved in checkpoints).

    Args:
        size: output side in pixels (square crops).
        resize: eval-time shorter side before the centre crop; default ``round(size * 8 / 7)``.
        scale: RandomResizedCrop area range (training).
        ratio: RandomResizedCrop aspect-ratio range (training).
        hflip: random horizontal flips in training (off by default: flipping changes the
            meaning of left/right motion and of signs).
        color_jitter: brightness/contrast/saturation jitter strength in training (0 = off).
    """

    size: int = 112
    resize: int | None = None
    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = False
    color_jitter: float = 0.0

    def __post_init__(self):
        if not isinstance(self.size, int) or self.size <= 0:
            raise ValueError(f"transform size must be a positive int, got {self.size!r}")
        self.scale = tuple(self.scale)  # YAML gives lists
        self.ratio = tuple(self.ratio)

    def to_dict(self) -> dict:
        return asdict(self)


class _AsVideo(torch.nn.Module):
    def forward(self, clip):
        return tv_tensors.Video(clip)


class _ToFloatClip(torch.nn.Module):
    def forward(self, clip):
        return clip.as_subclass(torch.Tensor).to(torch.float32).div_(255.0)


def build_clip_transform(cfg: ClipTransformConfig | dict | None = None, *, training: bool) -> v2.Compose:
    """The train or eval transform for ``cfg``.

    Shape:
        uint8 ``(T, C, H, W)`` -> float32 ``(T, C, size, size)`` in [0, 1].
    """
    if cfg is None:
        cfg = ClipTransformConfig()
    elif isinstance(cfg, dict):
        cfg = ClipTransformConfig(**cfg)
    ops: list = [_AsVideo()]
    if training:
        ops.append(v2.RandomResizedCrop(cfg.size, scale=cfg.scale, ratio=cfg.ratio, antialias=True))
        if cfg.hflip:
            ops.append(v2.RandomHorizontalFlip())
        if cfg.color_jitter:
            j = cfg.color_jitter
            ops.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
    else:
        ops += [v2.Resize(cfg.resize or round(cfg.size * 8 / 7), antialias=True), v2.CenterCrop(cfg.size)]
    ops.append(_ToFloatClip())
    return v2.Compose(ops)
