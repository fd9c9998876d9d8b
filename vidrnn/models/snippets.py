"""Feature pooling over time from "Beyond Short Snippets".

Ng, Hausknecht, Vijayanarasimhan, Vinyals, Monga, Toderici, "Beyond Short Snippets: Deep
Networks for Video Classification", CVPR 2015, arXiv:1503.08909, Section 3.1 and Fig. 2.
A 2D CNN with weights shared across frames gives each frame's final convolutional features;
the architectures differ in where they max-pool over time:

* :class:`ConvPooling` -- max over all frames of the last conv maps, spatial layout kept,
  then fully connected layers and a softmax (the best of the five in the paper).
* :class:`LatePooling` -- two fully connected layers (shared) per frame first, then max over time.
* :class:`SlowPooling` -- max over local windows of 10 frames with stride 5, a fully
  connected layer (shared) per window, then a second max over the windows.
* :class:`LocalPooling` -- max over local windows (10, stride 5), two fully connected layers
  (shared) per window, and one softmax layer over all windows' outputs concatenated (so the
  clip length is fixed at construction).
* :class:`TimeDomainConv` -- a convolution over time on the conv maps (256 kernels of 3x3
  spatial extent spanning 10 frames, frame stride 5), then max over time, fully connected
  layers and softmax.
* :class:`AveragePooling` -- the order-blind baseline: the mean over time of the pooled frame
  vectors and a linear classifier.

"Conv features" are the encoder's last conv map ``(C, h, w)``, flattened per frame for the
fully connected layers. Deviations: ``map_size`` can average-pool the map to a smaller grid
first (``None`` keeps it, as in the paper); fully connected widths are ``hidden_size``
(4096 in the paper) with ReLU and dropout.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrnn.layers.encoders import FrameEncoder
from vidrnn.layers.pooling import num_windows, temporal_max, windowed_max
from vidrnn.models.base import (TINY_MAP_ENCODER, TINY_VECTOR_ENCODER, EncoderSpec, Trainable, VideoClassifier,
                                build_encoder)
from vidrnn.registry import register_model

__all__ = ["ConvPooling", "LatePooling", "SlowPooling", "LocalPooling", "TimeDomainConv", "AveragePooling"]


def _mlp(in_features: int, hidden_size: int, num_layers: int, dropout: float) -> nn.Sequential:
    layers = []
    for i in range(num_layers):
        layers += [nn.Linear(in_features if i == 0 else hidden_size, hidden_size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class _MapClassifier(VideoClassifier):
    """Common front of the conv-map pooling models: optional spatial average pooling of maps."""

    input_kind = "map"

    def __init__(self, encoder: FrameEncoder, num_classes: int, map_size: int | None):
        super().__init__(encoder, num_classes)
        self.map_size = map_size

    def maps(self, maps: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, h, w)`` -> ``(B, T, C, s, s)`` if ``map_size`` else unchanged."""
        if self.map_size is None:
            return maps
        B, T = maps.shape[:2]
        m = F.adaptive_avg_pool2d(maps.flatten(0, 1), self.map_size)  # (B*T, C, s, s)
        return m.unflatten(0, (B, T))

    def flat_dim(self, h: int, w: int) -> int:
        s = (self.map_size, self.map_size) if self.map_size else (h, w)
        return self.encoder.map_channels * s[0] * s[1]


def _map_hw(encoder: FrameEncoder, input_size: int) -> tuple[int, int]:
    """Spatial size of the encoder's map for ``input_size`` x ``input_size`` frames."""
    was = encoder.training
    encoder.eval()
    with torch.no_grad():
        hw = tuple(encoder.encode_frames(torch.zeros(1, encoder.in_channels, input_size, input_size)).shape[-2:])
    encoder.train(was)
    return hw  # type: ignore[return-value]


class ConvPooling(_MapClassifier):
    """Max over time of the conv maps, then fully connected layers and softmax.

    Args:
        encoder, num_classes: as :class:`~vidrnn.models.lrcn.LRCN`.
        input_size: frame side in pixels (fixes the flattened map size).
        map_size: average-pool maps to ``map_size`` x ``map_size`` first (None: keep).
        hidden_size, num_fc, dropout: the fully connected layers.

    Shape:
        video ``(B, T, 3, H, W)`` (or cached maps ``(B, T, C, h, w)``) ->
        :class:`~vidrnn.models.base.ClassifierOutput` with ``logits (B, K)``.
    """

    def __init__(self, encoder, num_classes, *, input_size: int = 112, map_size: int | None = None,
                 hidden_size: int = 512, num_fc: int = 2, dropout: float = 0.5):
        super().__init__(encoder, num_classes, map_size)
        self.mlp = _mlp(self.flat_dim(*_map_hw(encoder, input_size)), hidden_size, num_fc, dropout)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward_features(self, maps):
        return self.mlp(temporal_max(self.maps(maps)).flatten(1))  # (B, hidden)

    def forward_head(self, x):
        return self.fc(x)


class LatePooling(_MapClassifier):
    """Two shared fully connected layers per frame, then max over time, then softmax.

    Args: as :class:`ConvPooling`. Shape: as :class:`ConvPooling`.
    """

    def __init__(self, encoder, num_classes, *, input_size: int = 112, map_size: int | None = None,
                 hidden_size: int = 512, num_fc: int = 2, dropout: float = 0.5):
        super().__init__(encoder, num_classes, map_size)
        self.mlp = _mlp(self.flat_dim(*_map_hw(encoder, input_size)), hidden_size, num_fc, dropout)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward_features(self, maps):
        per_frame = self.mlp(self.maps(maps).flatten(2))  # (B, T, hidden)
        return temporal_max(per_frame)  # (B, hidden)

    def forward_head(self, x):
        return self.fc(x)


class SlowPooling(_MapClassifier):
    """Max over windows (``window`` frames, ``stride``), a shared FC layer per window, max over windows.

    Args: as :class:`ConvPooling`, plus ``window`` (10) and ``stride`` (5) in frames.
    """

    def __init__(self, encoder, num_classes, *, input_size: int = 112, map_size: int | None = None,
                 hidden_size: int = 512, window: int = 10, stride: int = 5, dropout: float = 0.5):
        super().__init__(encoder, num_classes, map_size)
        self.window, self.stride = window, stride
        self.mlp = _mlp(self.flat_dim(*_map_hw(encoder, input_size)), hidden_size, 1, dropout)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward_features(self, maps):
        win = windowed_max(self.maps(maps), self.window, self.stride)  # (B, W, C, s, s)
        return temporal_max(self.mlp(win.flatten(2)))  # (B, hidden)

    def forward_head(self, x):
        return self.fc(x)


class LocalPooling(_MapClassifier):
    """Max over windows, two shared FC layers per window, one softmax over all windows' outputs.

    Args: as :class:`SlowPooling`, plus ``num_frames``: the clip length T, which fixes the
    number of windows (and so the softmax layer's input size).

    Raises:
        ValueError (in forward): a clip whose length is not ``num_frames``.
    """

    def __init__(self, encoder, num_classes, *, num_frames: int = 30, input_size: int = 112,
                 map_size: int | None = None, hidden_size: int = 512, window: int = 10, stride: int = 5,
                 dropout: float = 0.5):
        super().__init__(encoder, num_classes, map_size)
        self.num_frames, self.window, self.stride = num_frames, window, stride
        self.num_windows = num_windows(num_frames, min(window, num_frames), stride)
        self.mlp = _mlp(self.flat_dim(*_map_hw(encoder, input_size)), hidden_size, 2, dropout)
        self.fc = nn.Linear(hidden_size * self.num_windows, num_classes)

    def forward_features(self, maps):
        if maps.shape[1] != self.num_frames:
            raise ValueError(f"LocalPooling was built for clips of num_frames={self.num_frames}, got {maps.shape[1]} frames")
        win = windowed_max(self.maps(maps), self.window, self.stride)  # (B, W, C, s, s)
        return self.mlp(win.flatten(2)).flatten(1)  # (B, W*hidden)

    def forward_head(self, x):
        return self.fc(x)


class TimeDomainConv(_MapClassifier):
    """A temporal convolution (``filters`` kernels, ``kernel_size`` frames x 3x3, frame stride
    ``stride``) on the conv maps, max over time, fully connected layers, softmax.

    Clips shorter than ``kernel_size`` repeat their last frame up to it.

    Args: as :class:`ConvPooling`, plus ``filters`` (256), ``kernel_size`` (10 frames),
    ``stride`` (5 frames).
    """

    def __init__(self, encoder, num_classes, *, input_size: int = 112, map_size: int | None = None,
                 filters: int = 256, kernel_size: int = 10, stride: int = 5, hidden_size: int = 512,
                 num_fc: int = 1, dropout: float = 0.5):
        super().__init__(encoder, num_classes, map_size)
        self.kernel_size = kernel_size
        self.conv = nn.Conv3d(encoder.map_channels, filters, (kernel_size, 3, 3), stride=(stride, 1, 1), padding=(0, 1, 1))
        h, w = _map_hw(encoder, input_size)
        if map_size:
            h = w = map_size
        self.mlp = _mlp(filters * h * w, hidden_size, num_fc, dropout)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward_features(self, maps):
        maps = self.maps(maps)
        T = maps.shape[1]
        if T < self.kernel_size:
            maps = torch.cat([maps, maps[:, -1:].expand(-1, self.kernel_size - T, -1, -1, -1)], dim=1)
        y = F.relu(self.conv(maps.transpose(1, 2)))  # (B, filters, T', h, w)
        return self.mlp(y.max(dim=2).values.flatten(1))  # (B, hidden)

    def forward_head(self, x):
        return self.fc(x)


class AveragePooling(VideoClassifier):
    """Mean over time of the pooled frame vectors, dropout, linear classifier (order-blind baseline).

    Shape: video ``(B, T, 3, H, W)`` (or cached vectors ``(B, T, D)``) -> :class:`~vidrnn.models.base.ClassifierOutput`
    with ``logits (B, K)``.
    """

    def __init__(self, encoder, num_classes, *, dropout: float = 0.5):
        super().__init__(encoder, num_classes)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(encoder.feature_dim, num_classes)

    def forward_features(self, feats):
        return feats.mean(dim=1)  # (B, D)

    def forward_head(self, x):
        return self.fc(self.dropout(x))


# ============================================================================ builders
@register_model
def conv_pooling(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
                 trainable: Trainable = "none",
                 input_size: int = 224, map_size: int | None = 2, hidden_size: int = 512, num_fc: int = 2,
                 dropout: float = 0.5) -> ConvPooling:
    """Conv Pooling (Ng et al. 2015) on a frozen ImageNet EfficientNet-Lite0 at 224 px, its
    7x7 map average-pooled to 2x2 (our deviation: the paper keeps the whole map)."""
    return ConvPooling(build_encoder(encoder, pretrained, trainable), num_classes, input_size=input_size,
                       map_size=map_size, hidden_size=hidden_size, num_fc=num_fc, dropout=dropout)


@register_model
def conv_pooling_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                      trainable: Trainable = "all",
                      input_size: int = 32, map_size: int | None = None, hidden_size: int = 32,
                      num_fc: int = 2, dropout: float = 0.0) -> ConvPooling:
    """Conv Pooling (Ng et al. 2015) on the tiny CNN (tests, the embedded dataset)."""
    return ConvPooling(build_encoder(encoder, pretrained, trainable, TINY_MAP_ENCODER), num_classes,
                       input_size=input_size, map_size=map_size, hidden_size=hidden_size, num_fc=num_fc,
                       dropout=dropout)


@register_model
def late_pooling(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
                 trainable: Trainable = "none",
                 input_size: int = 224, map_size: int | None = 2, hidden_size: int = 512, num_fc: int = 2,
                 dropout: float = 0.5) -> LatePooling:
    """Late Pooling (Ng et al. 2015) on a frozen ImageNet EfficientNet-Lite0 at 224 px, its
    7x7 map average-pooled to 2x2 (our deviation: the paper keeps the whole map)."""
    return LatePooling(build_encoder(encoder, pretrained, trainable), num_classes, input_size=input_size,
                       map_size=map_size, hidden_size=hidden_size, num_fc=num_fc, dropout=dropout)


@register_model
def late_pooling_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                      trainable: Trainable = "all",
                      input_size: int = 32, map_size: int | None = None, hidden_size: int = 32,
                      num_fc: int = 2, dropout: float = 0.0) -> LatePooling:
    """Late Pooling (Ng et al. 2015) on the tiny CNN (tests, the embedded dataset)."""
    return LatePooling(build_encoder(encoder, pretrained, trainable, TINY_MAP_ENCODER), num_classes,
                       input_size=input_size, map_size=map_size, hidden_size=hidden_size, num_fc=num_fc,
                       dropout=dropout)


@register_model
def slow_pooling(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
                 trainable: Trainable = "none",
                 input_size: int = 224, map_size: int | None = 2, hidden_size: int = 512, window: int = 10,
                 stride: int = 5, dropout: float = 0.5) -> SlowPooling:
    """Slow Pooling (Ng et al. 2015) on a frozen ImageNet EfficientNet-Lite0 at 224 px, its
    7x7 map average-pooled to 2x2 (our deviation: the paper keeps the whole map)."""
    return SlowPooling(build_encoder(encoder, pretrained, trainable), num_classes, input_size=input_size,
                       map_size=map_size, hidden_size=hidden_size, window=window, stride=stride, dropout=dropout)


@register_model
def slow_pooling_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                      trainable: Trainable = "all",
                      input_size: int = 32, map_size: int | None = None, hidden_size: int = 32,
                      window: int = 4, stride: int = 2, dropout: float = 0.0) -> SlowPooling:
    """Slow Pooling (Ng et al. 2015) on the tiny CNN (tests, the embedded dataset)."""
    return SlowPooling(build_encoder(encoder, pretrained, trainable, TINY_MAP_ENCODER), num_classes,
                       input_size=input_size, map_size=map_size, hidden_size=hidden_size, window=window,
                       stride=stride, dropout=dropout)


@register_model
def local_pooling(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
                  trainable: Trainable = "none",
                  num_frames: int = 30, input_size: int = 224, map_size: int | None = 2,
                  hidden_size: int = 512, window: int = 10, stride: int = 5, dropout: float = 0.5) -> LocalPooling:
    """Local Pooling (Ng et al. 2015) on a frozen ImageNet EfficientNet-Lite0 at 224 px, its
    7x7 map average-pooled to 2x2 (our deviation: the paper keeps the whole map)."""
    return LocalPooling(build_encoder(encoder, pretrained, trainable), num_classes, num_frames=num_frames,
                        input_size=input_size, map_size=map_size, hidden_size=hidden_size, window=window,
                        stride=stride, dropout=dropout)


@register_model
def local_pooling_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                       trainable: Trainable = "all",
                       num_frames: int = 8, input_size: int = 32, map_size: int | None = None,
                       hidden_size: int = 32, window: int = 4, stride: int = 2, dropout: float = 0.0) -> LocalPooling:
    """Local Pooling (Ng et al. 2015) on the tiny CNN (tests, the embedded dataset)."""
    return LocalPooling(build_encoder(encoder, pretrained, trainable, TINY_MAP_ENCODER), num_classes,
                        num_frames=num_frames, input_size=input_size, map_size=map_size, hidden_size=hidden_size,
                        window=window, stride=stride, dropout=dropout)


@register_model
def time_domain_conv(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
                     trainable: Trainable = "none",
                     input_size: int = 224, map_size: int | None = 2, filters: int = 256,
                     kernel_size: int = 10, stride: int = 5, hidden_size: int = 512, num_fc: int = 1,
                     dropout: float = 0.5) -> TimeDomainConv:
    """Time-Domain Convolution (Ng et al. 2015) on a frozen ImageNet EfficientNet-Lite0 at 224 px, its
    7x7 map average-pooled to 2x2 (our deviation: the paper keeps the whole map)."""
    return TimeDomainConv(build_encoder(encoder, pretrained, trainable), num_classes, input_size=input_size,
                          map_size=map_size, filters=filters, kernel_size=kernel_size, stride=stride,
                          hidden_size=hidden_size, num_fc=num_fc, dropout=dropout)


@register_model
def time_domain_conv_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                          trainable: Trainable = "all",
                          input_size: int = 32, map_size: int | None = None, filters: int = 16,
                          kernel_size: int = 4, stride: int = 2, hidden_size: int = 32, num_fc: int = 1,
                          dropout: float = 0.0) -> TimeDomainConv:
    """Time-Domain Convolution (Ng et al. 2015) on the tiny CNN (tests, the embedded dataset)."""
    return TimeDomainConv(build_encoder(encoder, pretrained, trainable, TINY_MAP_ENCODER), num_classes,
                          input_size=input_size, map_size=map_size, filters=filters, kernel_size=kernel_size,
                          stride=stride, hidden_size=hidden_size, num_fc=num_fc, dropout=dropout)


@register_model
def avg_pooling(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
                trainable: Trainable = "none",
                dropout: float = 0.5) -> AveragePooling:
    """Average pooling over time, the order-blind baseline (EfficientNet-Lite0 frame encoder, frozen)."""
    return AveragePooling(build_encoder(encoder, pretrained, trainable), num_classes, dropout=dropout)


@register_model
def avg_pooling_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                     trainable: Trainable = "all",
                     dropout: float = 0.0) -> AveragePooling:
    """Average pooling over time, the order-blind baseline on the tiny CNN (tests, the embedded dataset)."""
    return AveragePooling(build_encoder(encoder, pretrained, trainable, TINY_VECTOR_ENCODER), num_classes,
                          dropout=dropout)

