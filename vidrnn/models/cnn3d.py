"""3D CNN video classifiers: space and time fused inside the convolutions.

* :class:`C3D` -- Tran, Bourdev, Fergus, Torresani, Paluri, "Learning Spatiotemporal Features
  with 3D Convolutional Networks", ICCV 2015: eight 3x3x3 convolutions (64, 128, 256, 256, 512,
  512, 512, 512), five max-poolings (the first 1x2x2, the others 2x2x2), fc6/fc7 of 4,096 and the
  classifier. Deviation: an adaptive average pooling to ``1 x 4 x 4`` before fc6 (the paper's
  16 x 112 x 112 clips give exactly that map), so that other clip sizes work; a temporal pooling
  is skipped once the clip has one time step left.
* :class:`VideoResNet` -- R3D-18, MC3-18 and R(2+1)D-18 of Tran, Wang, Torresani, Ray, LeCun,
  Paluri, "A Closer Look at Spatiotemporal Convolutions for Action Recognition", CVPR 2018:
  ResNet-18 with 3x3x3 convolutions everywhere (R3D), 3x3x3 in the first group and 1x3x3 above
  (MC3: "mixed convolutions", 3D only low), or every 3x3x3 factorised into 1x3x3 + 3x1x1
  (R(2+1)D). Module names and shapes are torchvision's ``r3d_18``, ``mc3_18`` and
  ``r2plus1d_18``, so their state dicts (and Kinetics-400 checkpoints saved from them) load as
  they are: ``weights=PATH``.
* :class:`P3DResNet` -- Qiu, Yao, Mei, "Learning Spatio-Temporal Representation with Pseudo-3D
  Residual Networks", ICCV 2017: a bottleneck ResNet whose blocks cycle through P3D-A, -B and
  -C. Deviation: ResNet-50 depth by default (``layers=[3, 4, 6, 3]``; the paper's P3D ResNet is
  built on ResNet-152, ``layers=[3, 8, 36, 3]``).

Input ``(B, T, 3, H, W)`` float in [0, 1] (vidrnn's clip layout), normalised with the
Kinetics mean and std of torchvision's video models and transposed once to ``(B, 3, T, H, W)``;
output :class:`~vidrnn.models.base.ClassifierOutput` with video-level logits. These models have
no per-frame encoder, so a feature cache does not apply to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrnn.layers.conv3d import CONV_BUILDERS, BasicBlock3D, BasicStem, P3DBlock, R2Plus1dStem
from vidrnn.models.base import ClassifierOutput
from vidrnn.registry import register_model

__all__ = ["Clip3DClassifier", "C3D", "VideoResNet", "P3DResNet", "load_weights", "KINETICS_MEAN", "KINETICS_STD"]

#: torchvision's video models' input normalisation (Kinetics-400)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


class Clip3DClassifier(nn.Module):
    """Base class: normalises and transposes the clip once, runs :meth:`forward_3d` on
    ``(B, 3, T, H, W)`` and wraps the logits.

    Args:
        num_classes: K.
        mean, std: per-channel input normalisation (not saved in the state dict, so that
            torchvision's state dicts match key for key).
    """

    input_kind = "clip"
    #: the memory order of the activations (``torch.channels_last_3d``: set with the weights'
    #: by ``classification.channels_last``)
    memory_format = torch.contiguous_format

    def __init__(self, num_classes: int, mean=KINETICS_MEAN, std=KINETICS_STD):
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1, 1), persistent=False)

    def forward_3d(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``(B, 3, T, H, W)`` -> logits ``(B, K)``."""
        raise NotImplementedError

    def forward(self, video: torch.Tensor) -> ClassifierOutput:
        """``(B, T, 3, H, W)`` in [0, 1] -> :class:`ClassifierOutput` with ``logits (B, K)``.

        Raises:
            ValueError: not a batch of RGB clips.
        """
        if video.dim() != 5 or video.shape[2] != 3:
            raise ValueError(f"{type(self).__name__} classifies clips: expected (B, T, 3, H, W) RGB in [0, 1], got "
                             f"shape {tuple(video.shape)}")
        x = video.transpose(1, 2)  # (B, 3, T, H, W), once
        # the transposed strides slow Conv3d: one copy into the memory order the weights use
        x = ((x - self.mean.to(x.dtype)) / self.std.to(x.dtype)).contiguous(memory_format=self.memory_format)
        return ClassifierOutput(self.forward_3d(x))


def _pool(x: torch.Tensor, temporal: bool) -> torch.Tensor:
    kt = 2 if temporal and x.shape[2] >= 2 else 1
    return F.max_pool3d(x, (kt, 2, 2), (kt, 2, 2), ceil_mode=True)


class C3D(Clip3DClassifier):
    """C3D (see the module docstring).

    Args:
        num_classes: K.
        widths: channels of conv1a, conv2a, conv3a/b, conv4a/b, conv5a/b (five values).
        fc_dim: size of fc6 and fc7 (4,096 in the paper).
        dropout: before fc7 and the classifier (0.5 in the paper).

    Shape: ``(B, T, 3, H, W)`` -> logits ``(B, K)``; H, W >= 16.
    """

    def __init__(self, num_classes: int = 487, *, widths=(64, 128, 256, 512, 512), fc_dim: int = 4096,
                 dropout: float = 0.5):
        super().__init__(num_classes)
        if len(widths) != 5:
            raise ValueError(f"widths={list(widths)}: expected 5 channel counts (conv1 to conv5)")
        w1, w2, w3, w4, w5 = widths

        def conv(cin, cout):
            return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))

        self.conv1 = conv(3, w1)
        self.conv2 = conv(w1, w2)
        self.conv3 = nn.Sequential(conv(w2, w3), conv(w3, w3))
        self.conv4 = nn.Sequential(conv(w3, w4), conv(w4, w4))
        self.conv5 = nn.Sequential(conv(w4, w5), conv(w5, w5))
        self.pool5 = nn.AdaptiveAvgPool3d((1, 4, 4))
        self.fc6 = nn.Linear(w5 * 16, fc_dim)
        self.fc7 = nn.Linear(fc_dim, fc_dim)
        self.fc8 = nn.Linear(fc_dim, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward_3d(self, x):
        x = _pool(self.conv1(x), temporal=False)
        for block in (self.conv2, self.conv3, self.conv4):
            x = _pool(block(x), temporal=True)
        x = self.pool5(self.conv5(x)).flatten(1)
        x = self.dropout(F.relu(self.fc6(x)))
        x = self.dropout(F.relu(self.fc7(x)))
        return self.fc8(x)


class VideoResNet(Clip3DClassifier):
    """R3D / MC3 / R(2+1)D (see the module docstring), torchvision's module names.

    Args:
        conv_makers: the convolution of each of the four groups (``"3d"``, ``"2+1d"``, ``"2d"``
            or the classes of :mod:`vidrnn.layers.conv3d`).
        layers: blocks per group (``[2, 2, 2, 2]``: 18 layers).
        stem: ``"basic"`` (3x7x7) or ``"r2plus1d"`` (1x7x7 + 3x1x1).
        num_classes: K.
        widths: channels of the four groups (64, 128, 256, 512).
        dropout: before the classifier (0: none, as torchvision).

    Shape: ``(B, T, 3, H, W)`` -> logits ``(B, K)``.
    """

    def __init__(self, conv_makers, layers=(2, 2, 2, 2), stem: Literal["basic", "r2plus1d"] = "basic",
                 num_classes: int = 400, *, widths=(64, 128, 256, 512), dropout: float = 0.0):
        super().__init__(num_classes)
        makers = [CONV_BUILDERS[m] if isinstance(m, str) else m for m in conv_makers]
        if len(makers) != 4 or len(layers) != 4 or len(widths) != 4:
            raise ValueError("conv_makers, layers and widths need one entry per group (4)")
        if stem not in ("basic", "r2plus1d"):
            raise ValueError(f"stem={stem!r}: expected 'basic' or 'r2plus1d'")
        self.in_planes = widths[0]
        self.stem = BasicStem(widths[0]) if stem == "basic" else R2Plus1dStem(widths[0], mid=max(1, widths[0] * 45 // 64))
        self.layer1 = self._make_layer(makers[0], widths[0], layers[0], stride=1)
        self.layer2 = self._make_layer(makers[1], widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(makers[2], widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(makers[3], widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def _make_layer(self, conv_builder, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_planes != planes:
            downsample = nn.Sequential(nn.Conv3d(self.in_planes, planes, kernel_size=1,
                                                 stride=conv_builder.get_downsample_stride(stride), bias=False),
                                       nn.BatchNorm3d(planes))
        out = [BasicBlock3D(self.in_planes, planes, conv_builder, stride, downsample)]
        self.in_planes = planes
        out += [BasicBlock3D(planes, planes, conv_builder) for _ in range(1, blocks)]
        return nn.Sequential(*out)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``(B, 3, T, H, W)`` -> the last group's map ``(B, C, T', H', W')``."""
        x = self.stem(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
        return x

    def forward_3d(self, x):
        return self.fc(self.dropout(self.avgpool(self.features(x)).flatten(1)))


class P3DResNet(Clip3DClassifier):
    """Pseudo-3D ResNet (see the module docstring): a 1x7x7 stem (stride ``(1, 2, 2)``) and a
    1x3x3 max-pooling, four groups of P3D blocks cycling A, B, C, the temporal size halved at
    the first block of groups 2-4, global average pooling, dropout and the classifier.

    Args:
        num_classes: K.
        layers: blocks per group.
        widths: bottleneck channels of the groups (outputs are 4x).
        dropout: before the classifier.

    Shape: ``(B, T, 3, H, W)`` -> logits ``(B, K)``.
    """

    def __init__(self, num_classes: int = 400, *, layers=(3, 4, 6, 3), widths=(64, 128, 256, 512),
                 dropout: float = 0.5):
        super().__init__(num_classes)
        stem = widths[0]
        self.stem = nn.Sequential(nn.Conv3d(3, stem, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
                                  nn.BatchNorm3d(stem), nn.ReLU(inplace=True),
                                  nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        blocks, cin, k = [], stem, 0
        for g, (n, planes) in enumerate(zip(layers, widths)):
            for i in range(n):
                first = i == 0 and g > 0
                blocks.append(P3DBlock(cin, planes, "ABC"[k % 3], stride=2 if first else 1,
                                       temporal_stride=2 if first else 1))
                cin, k = planes * P3DBlock.expansion, k + 1
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)

    def forward_3d(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(self.dropout(x.mean(dim=(2, 3, 4))))


def load_weights(model: nn.Module, path: str | Path | None, *, subset: bool = False) -> nn.Module:
    """Load a state dict saved from this architecture (e.g. torchvision's Kinetics-400
    ``r2plus1d_18`` file, or a vidrnn checkpoint's ``state_dict``) into ``model``. The
    classifier is kept from ``model`` when its shape differs (fine-tuning to other classes).
    ``subset``: the file may hold more than the model (a fusion template's weights for one of
    its strategies); every key of the model must still be in it. Nothing is downloaded.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a state dict of this architecture (names the file and the
            first missing or mismatched keys).
    """
    if path is None:
        return model
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights={str(path)!r}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated file, a pickle with code, not a torch file
        raise ValueError(f"weights={str(path)!r}: not a readable state dict ({type(e).__name__}: {e})") from None
    if isinstance(state, dict) and "state_dict" in state:  # a Lightning/vidrnn checkpoint
        state = {k.removeprefix("model."): v for k, v in state["state_dict"].items()}
    if not isinstance(state, dict):
        raise ValueError(f"weights={str(path)!r}: expected a state dict, got {type(state).__name__}")
    own = model.state_dict()
    head = [k for k in state if k in own and state[k].shape != own[k].shape]
    missing = [k for k in own if k not in state]
    unexpected = [] if subset else [k for k in state if k not in own]
    if missing or unexpected or any(not k.startswith(("fc.", "fc8.")) for k in head):
        bad = (missing + unexpected + head)[:4]
        raise ValueError(f"weights={str(path)!r}: not a state dict of {type(model).__name__} "
                         f"({len(missing)} missing, {len(unexpected)} unexpected, {len(head)} mismatched keys, e.g. "
                         f"{bad})")
    model.load_state_dict({k: (own[k] if k in head else v) for k, v in state.items() if k in own})
    return model


# ============================================================================ builders
_R3D = ("3d", "3d", "3d", "3d")
_MC3 = ("3d", "2d", "2d", "2d")
_R21 = ("2+1d", "2+1d", "2+1d", "2+1d")
_TINY_WIDTHS = (8, 16, 32, 64)


@register_model
def r3d_18(num_classes: int = 400, *, weights: str | None = None, dropout: float = 0.0) -> VideoResNet:
    """R3D-18: ResNet-18 with 3x3x3 convolutions (Tran et al. 2018); torchvision's r3d_18 weights load"""
    return load_weights(VideoResNet(_R3D, (2, 2, 2, 2), "basic", num_classes, dropout=dropout), weights)


@register_model
def r3d_18_tiny(num_classes: int = 4, *, weights: str | None = None, dropout: float = 0.0) -> VideoResNet:
    """R3D-18's structure with 8-64 channels and one block per group, for tests"""
    return load_weights(VideoResNet(_R3D, (1, 1, 1, 1), "basic", num_classes, widths=_TINY_WIDTHS,
                                    dropout=dropout), weights)


@register_model
def mc3_18(num_classes: int = 400, *, weights: str | None = None, dropout: float = 0.0) -> VideoResNet:
    """MC3-18: 3x3x3 convolutions in the first group, 1x3x3 above (Tran et al. 2018); torchvision's weights load"""
    return load_weights(VideoResNet(_MC3, (2, 2, 2, 2), "basic", num_classes, dropout=dropout), weights)


@register_model
def mc3_18_tiny(num_classes: int = 4, *, weights: str | None = None, dropout: float = 0.0) -> VideoResNet:
    """MC3-18's structure with 8-64 channels and one block per group, for tests"""
    return load_weights(VideoResNet(_MC3, (1, 1, 1, 1), "basic", num_classes, widths=_TINY_WIDTHS,
                                    dropout=dropout), weights)


@register_model
def r2plus1d_18(num_classes: int = 400, *, weights: str | None = None, dropout: float = 0.0) -> VideoResNet:
    """R(2+1)D-18: every 3x3x3 factorised into 1x3x3 + 3x1x1 (Tran et al. 2018); torchvision's weights load"""
    return load_weights(VideoResNet(_R21, (2, 2, 2, 2), "r2plus1d", num_classes, dropout=dropout), weights)


@register_model
def r2plus1d_18_tiny(num_classes: int = 4, *, weights: str | None = None, dropout: float = 0.0) -> VideoResNet:
    """R(2+1)D-18's structure with 8-64 channels and one block per group, for tests"""
    return load_weights(VideoResNet(_R21, (1, 1, 1, 1), "r2plus1d", num_classes, widths=_TINY_WIDTHS,
                                    dropout=dropout), weights)


@register_model
def c3d(num_classes: int = 487, *, weights: str | None = None, fc_dim: int = 4096, dropout: float = 0.5) -> C3D:
    """C3D: eight 3x3x3 convolutions, five poolings, two 4096-d layers (Tran et al. 2015)"""
    return load_weights(C3D(num_classes, fc_dim=fc_dim, dropout=dropout), weights)


@register_model
def c3d_tiny(num_classes: int = 4, *, weights: str | None = None, fc_dim: int = 64, dropout: float = 0.0) -> C3D:
    """C3D's structure with 8-64 channels and 64-d fully connected layers, for tests"""
    return load_weights(C3D(num_classes, widths=(8, 16, 32, 64, 64), fc_dim=fc_dim, dropout=dropout), weights)


@register_model
def p3d(num_classes: int = 400, *, weights: str | None = None, layers: list[int] = (3, 4, 6, 3),
        dropout: float = 0.5) -> P3DResNet:
    """Pseudo-3D ResNet: bottleneck blocks cycling P3D-A, -B, -C (Qiu et al. 2017), ResNet-50 depth"""
    return load_weights(P3DResNet(num_classes, layers=tuple(layers), dropout=dropout), weights)


@register_model
def p3d_tiny(num_classes: int = 4, *, weights: str | None = None, layers: list[int] = (1, 1, 1, 1),
             dropout: float = 0.0) -> P3DResNet:
    """Pseudo-3D ResNet with 4-32 bottleneck channels and one block per group (A, B, C, A), for tests"""
    return load_weights(P3DResNet(num_classes, layers=tuple(layers), widths=(4, 8, 16, 32), dropout=dropout), weights)
