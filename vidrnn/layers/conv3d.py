"""Spatiotemporal convolution units and blocks: how a 3D CNN fuses space and time.

Tensors inside are ``(B, C, T, H, W)`` (torch's ``Conv3d`` layout); models transpose the
``(B, T, C, H, W)`` clips of vidrnn once at their boundary.

* :class:`Conv3DSimple` -- a full 3x3x3 convolution (C3D, Tran et al. 2015; R3D, Tran et al. 2018).
* :class:`Conv2Plus1D` -- a 1x3x3 spatial convolution, BatchNorm, ReLU, then a 3x1x1 temporal
  one (R(2+1)D, Tran, Wang, Torresani, Ray, LeCun, Paluri, "A Closer Look at Spatiotemporal
  Convolutions for Action Recognition", CVPR 2018), with :func:`midplanes` channels in between
  so that it has about the parameters of the 3x3x3 convolution it replaces.
* :class:`Conv3DNoTemporal` -- a 1x3x3 convolution (no fusion in time; MC3's upper layers).
* :class:`BasicBlock3D`, :class:`BasicStem`, :class:`R2Plus1dStem` -- the ResNet-18 pieces of
  Tran et al. 2018, with the module names and shapes of torchvision's ``video.resnet`` so that a
  torchvision (Kinetics) state dict loads as it is.
* :class:`P3DBlock` -- the Pseudo-3D bottleneck blocks of Qiu, Yao, Mei, "Learning
  Spatio-Temporal Representation with Pseudo-3D Residual Networks", ICCV 2017: ``"A"``
  (serial: ``T(S(x))``), ``"B"`` (parallel: ``S(x) + T(x)``), ``"C"`` (serial with a shortcut:
  ``S(x) + T(S(x))``), between 1x1x1 reduction and expansion, around an identity shortcut.
* :class:`DropPath` -- timm's stochastic depth (Huang et al. 2016), one keep/drop per sample.
* :class:`VariationalDropPath` -- a path kept with a *learned* probability, trained with the
  concrete (relaxed Bernoulli) distribution (Gal, Hron, Kendall, "Concrete Dropout", NeurIPS 2017),
  as in Zhou, Sun, Zha, Zeng, "Spatiotemporal Fusion in 3D CNNs: A Probabilistic View", CVPR 2020.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
import torch.nn as nn
from timm.layers import DropPath

__all__ = ["midplanes", "Conv3DSimple", "Conv2Plus1D", "Conv3DNoTemporal", "BasicBlock3D", "BasicStem",
           "R2Plus1dStem", "P3DBlock", "DropPath", "VariationalDropPath", "CONV_BUILDERS"]


def midplanes(in_planes: int, out_planes: int) -> int:
    """The channels between R(2+1)D's spatial and temporal convolutions that give it about the
    parameters of a 3x3x3 convolution: ``(in * out * 27) // (in * 9 + 3 * out)`` (Tran et al.
    2018, section 3.5: ``M_i = floor(t d^2 N_{i-1} N_i / (d^2 N_{i-1} + t N_i))``)."""
    return (in_planes * out_planes * 27) // (in_planes * 9 + 3 * out_planes)


class Conv3DSimple(nn.Conv3d):
    """3x3x3 convolution, stride ``(s, s, s)``, no bias. ``mid`` is ignored (uniform builder API).

    Shape: ``(B, in, T, H, W)`` -> ``(B, out, T', H', W')``.
    """

    def __init__(self, in_planes: int, out_planes: int, mid: int | None = None, stride: int = 1, padding: int = 1):
        super().__init__(in_planes, out_planes, kernel_size=3, stride=stride, padding=padding, bias=False)

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class Conv2Plus1D(nn.Sequential):
    """1x3x3 (stride ``(1, s, s)``) -> BatchNorm -> ReLU -> 3x1x1 (stride ``(s, 1, 1)``), no bias.

    Args:
        in_planes, out_planes: channels in and out.
        mid: channels between the two (default :func:`midplanes`).
        stride: spatial and temporal stride.

    Shape: ``(B, in, T, H, W)`` -> ``(B, out, T', H', W')``.
    """

    def __init__(self, in_planes: int, out_planes: int, mid: int | None = None, stride: int = 1, padding: int = 1):
        mid = midplanes(in_planes, out_planes) if mid is None else mid
        super().__init__(
            nn.Conv3d(in_planes, mid, kernel_size=(1, 3, 3), stride=(1, stride, stride), padding=(0, padding, padding),
                      bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_planes, kernel_size=(3, 1, 1), stride=(stride, 1, 1), padding=(padding, 0, 0),
                      bias=False))

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class Conv3DNoTemporal(nn.Conv3d):
    """1x3x3 convolution, stride ``(1, s, s)``, no bias: no fusion in time.

    Shape: ``(B, in, T, H, W)`` -> ``(B, out, T, H', W')``.
    """

    def __init__(self, in_planes: int, out_planes: int, mid: int | None = None, stride: int = 1, padding: int = 1):
        super().__init__(in_planes, out_planes, kernel_size=(1, 3, 3), stride=(1, stride, stride),
                         padding=(0, padding, padding), bias=False)

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return 1, stride, stride


#: the convolution builders by the names configs use
CONV_BUILDERS: dict[str, type[nn.Module]] = {"3d": Conv3DSimple, "2+1d": Conv2Plus1D, "2d": Conv3DNoTemporal}


class BasicBlock3D(nn.Module):
    """ResNet basic block with 3D convolutions (torchvision's ``video.resnet.BasicBlock``
    names: ``conv1 = [conv, bn, relu]``, ``conv2 = [conv, bn]``, ``downsample``).

    Args:
        in_planes, planes: channels in and out.
        conv_builder: :class:`Conv3DSimple`, :class:`Conv2Plus1D` or :class:`Conv3DNoTemporal`.
        stride: of the first convolution.
        downsample: the shortcut's projection (None: identity).
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, conv_builder: Callable[..., nn.Module], stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        mid = midplanes(in_planes, planes)
        self.conv1 = nn.Sequential(conv_builder(in_planes, planes, mid, stride), nn.BatchNorm3d(planes),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv_builder(planes, planes, mid), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + residual)


class BasicStem(nn.Sequential):
    """The R3D/MC3 stem: 3x7x7 convolution, stride ``(1, 2, 2)``, BatchNorm, ReLU."""

    def __init__(self, out_planes: int = 64):
        super().__init__(nn.Conv3d(3, out_planes, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3),
                                   bias=False),
                         nn.BatchNorm3d(out_planes), nn.ReLU(inplace=True))


class R2Plus1dStem(nn.Sequential):
    """The R(2+1)D stem: 1x7x7 (stride ``(1, 2, 2)``) to ``mid`` (45) channels, then 3x1x1."""

    def __init__(self, out_planes: int = 64, mid: int = 45):
        super().__init__(nn.Conv3d(3, mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
                         nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
                         nn.Conv3d(mid, out_planes, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0),
                                   bias=False),
                         nn.BatchNorm3d(out_planes), nn.ReLU(inplace=True))


def _bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm3d(channels), nn.ReLU(inplace=True)]


class P3DBlock(nn.Module):
    """A Pseudo-3D bottleneck residual block (Qiu et al. 2017, figure 3).

    ``x -> 1x1x1 (to planes) -> {A: T(S(.)), B: S(.) + T(.), C: S(.) + T(S(.))} -> 1x1x1 (to
    planes * 4)``, BatchNorm and ReLU after each convolution (the last ReLU after the shortcut
    sum), S = 1x3x3 and T = 3x1x1 convolutions, the shortcut a strided 1x1x1 projection when the
    shape changes.

    Args:
        in_planes: input channels; planes: bottleneck channels (output ``4 * planes``).
        kind: ``"A"``, ``"B"`` or ``"C"``.
        stride: spatial stride (of the first 1x1x1 convolution, as in the paper's code), and
            temporal stride ``temporal_stride``.

    Shape: ``(B, in_planes, T, H, W)`` -> ``(B, 4 * planes, T / temporal_stride, H / stride, W / stride)``.
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, kind: Literal["A", "B", "C"] = "A", stride: int = 1,
                 temporal_stride: int = 1):
        super().__init__()
        if kind not in ("A", "B", "C"):
            raise ValueError(f"kind={kind!r}: expected 'A', 'B' or 'C'")
        self.kind = kind
        out = planes * self.expansion
        st = (temporal_stride, stride, stride)
        self.reduce = nn.Sequential(nn.Conv3d(in_planes, planes, 1, stride=st, bias=False), *_bn_relu(planes))
        self.spatial = nn.Sequential(nn.Conv3d(planes, planes, (1, 3, 3), padding=(0, 1, 1), bias=False),
                                     *_bn_relu(planes))
        self.temporal = nn.Sequential(nn.Conv3d(planes, planes, (3, 1, 1), padding=(1, 0, 0), bias=False),
                                      *_bn_relu(planes))
        self.expand = nn.Sequential(nn.Conv3d(planes, out, 1, bias=False), nn.BatchNorm3d(out))
        self.downsample = None
        if stride != 1 or temporal_stride != 1 or in_planes != out:
            self.downsample = nn.Sequential(nn.Conv3d(in_planes, out, 1, stride=st, bias=False), nn.BatchNorm3d(out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        if self.kind == "A":
            y = self.temporal(self.spatial(y))
        elif self.kind == "B":
            y = self.spatial(y) + self.temporal(y)
        else:
            s = self.spatial(y)
            y = s + self.temporal(s)
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.expand(y) + residual)


class VariationalDropPath(nn.Module):
    """A path (a unit's output, or one dense input) kept with a learned probability ``1 - p``.

    Training: one relaxed Bernoulli "drop" variable per sample, ``z = sigmoid((log p - log(1 - p)
    + log u - log(1 - u)) / temperature)`` with ``u ~ U(0, 1)`` (the concrete distribution of
    Gal et al. 2017, so that ``p`` gets gradients), and ``y = x (1 - z) / (1 - p)``: the
    expected output equals ``x`` (exactly in the limit of temperature 0). Evaluation: a hard 0/1
    mask, ``y = x * mask`` with ``mask`` the buffer :attr:`keep` (1 = kept), which a fusion search
    sets; by default ``keep = 1 - p >= 0.5``. ``enabled = False`` (warm-up) passes ``x`` through in
    training (evaluation still applies the mask).

    :meth:`regulariser` is the path's term of Zhou et al.'s eq. 5: ``p log p + k^2 (1 - p) ||w||^2
    / (2 N)`` for the weights ``w`` of the unit behind the path, length-scale ``k`` and ``N``
    training samples; :meth:`marginal` is ``1 - sqrt(p)``, the probability that the unit is used
    (their eq. 7).

    Args:
        p: initial drop rate, in (0, 1).
        temperature: of the concrete relaxation (0.1 in Gal et al.).
        p_min, p_max: the learned rate is kept in this range (via a sigmoid of a free parameter).

    Shape: ``(B, ...)`` -> ``(B, ...)``.
    """

    def __init__(self, p: float = 0.1, *, temperature: float = 0.1, p_min: float = 1e-3, p_max: float = 0.999):
        super().__init__()
        if not p_min < p < p_max:
            raise ValueError(f"p={p}: expected a drop rate in ({p_min}, {p_max})")
        self.temperature, self.p_min, self.p_max = float(temperature), float(p_min), float(p_max)
        r = (p - p_min) / (p_max - p_min)
        self.p_logit = nn.Parameter(torch.tensor(math.log(r / (1 - r))))
        self.register_buffer("keep", torch.tensor(1.0 if p <= 0.5 else 0.0))
        self.enabled = True

    @property
    def p(self) -> torch.Tensor:
        """The drop rate, a scalar tensor in ``(p_min, p_max)`` (differentiable)."""
        return self.p_min + (self.p_max - self.p_min) * torch.sigmoid(self.p_logit)

    def marginal(self) -> float:
        """``1 - sqrt(p)``: the probability that the path is used (Zhou et al. eq. 7)."""
        return 1.0 - math.sqrt(float(self.p.detach()))

    def set_keep(self, keep: bool | None = None) -> None:
        """Fix the evaluation mask: ``keep`` True/False, or None for ``1 - p >= 0.5``."""
        self.keep.fill_(float((1.0 - float(self.p.detach())) >= 0.5 if keep is None else bool(keep)))

    def regulariser(self, weights: torch.Tensor | float, num_samples: int, length_scale: float = 1e-2) -> torch.Tensor:
        """``p log p + k^2 (1 - p) weights / (2 N)`` with ``weights = ||w||^2`` of the unit behind
        the path (Zhou et al. 2020, eq. 5)."""
        p = self.p
        return p * torch.log(p) + length_scale ** 2 * (1 - p) * weights / (2 * num_samples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:  # the evaluation mask holds whether or not training has reached DropPath
            return x * self.keep.to(x.dtype)
        if not self.enabled:
            return x
        p = self.p
        eps = 1e-7
        u = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=torch.float32).clamp(eps, 1 - eps)
        drop = torch.sigmoid((torch.log(p + eps) - torch.log(1 - p + eps) + torch.log(u) - torch.log(1 - u))
                             / self.temperature)
        return x * ((1 - drop) / (1 - p)).to(x.dtype)
