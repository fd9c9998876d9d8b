"""Convolutional-recurrent video classifiers (GRU-RCN and ConvLSTM over CNN maps).

:class:`ConvRNNClassifier` -- ConvLSTM (Shi et al. 2015) or ConvGRU (Ballas et al. 2016,
"Delving Deeper into Convolutional Networks for Learning Video Representations", ICLR 2016,
arXiv:1511.06432, GRU-RCN) over the encoder's conv maps; each step's hidden state is
average-pooled and classified, predictions averaged over time. ``levels`` gives several
encoder levels, each with its own recurrent stack and classifier, their predictions averaged
(GRU-RCN on VGG-16 pool2..pool5; here any blocks of the frame encoder). Deviation: the
levels' predictions are averaged at every step, then over time. ``stacked=True`` is the
stacked GRU-RCN: the unit at level l also reads level l−1's hidden state of the same step,
max-pooled to level l's resolution; only the top level classifies (our choice: it has seen
every level below).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrnn.layers.conv_cells import ConvGRU, ConvLSTM
from vidrnn.layers.encoders import FrameEncoder
from vidrnn.models.base import TINY_MAP_ENCODER, EncoderSpec, FrameOutputClassifier, Trainable, build_encoder
from vidrnn.registry import register_model

__all__ = ["ConvRNNClassifier"]


class ConvRNNClassifier(FrameOutputClassifier):
    """ConvLSTM / ConvGRU layers over the encoder's conv maps, per-step predictions averaged.

    Args:
        encoder: frame encoder (maps ``(B, T, C, h, w)``).
        num_classes: K.
        cell: ``"convlstm"`` or ``"convgru"``.
        hidden_channels: channels per recurrent layer.
        kernel_size: state-to-state and input-to-state kernel side.
        dropout: on the pooled states.
        levels: encoder levels (block indices, ``-1`` = the final map) each with its own
            recurrent stack and classifier; the levels' predictions are averaged (GRU-RCN).
            List them from the lowest (largest map) to the highest.
        stacked: stacked GRU-RCN: level l's first recurrent layer also reads the top state of
            level l−1 at the same step (adaptive max pooling to level l's map size); one
            classifier, on the top level. Needs two or more levels.

    Shape:
        video ``(B, T, 3, H, W)`` (or cached maps ``(B, T, C, h, w)`` with one level) ->
        :class:`~vidrnn.models.base.ClassifierOutput` with ``logits (B, K)`` and
        ``frame_logits (B, T, K)``.
    """

    input_kind = "map"

    def __init__(self, encoder: FrameEncoder, num_classes: int, *, cell: str = "convgru",
                 hidden_channels=(64,), kernel_size: int = 3, dropout: float = 0.0, levels=(-1,),
                 stacked: bool = False):
        super().__init__(encoder, num_classes, "mean")
        Layer = {"convlstm": ConvLSTM, "convgru": ConvGRU}.get(cell)
        if Layer is None:
            raise ValueError(f"cell={cell!r}: expected 'convlstm' or 'convgru'")
        self.levels = [int(lv) for lv in levels]
        if not self.levels:
            raise ValueError("levels must name at least one encoder level")
        if stacked and len(self.levels) < 2:
            raise ValueError(f"stacked=True needs two or more levels, got levels={self.levels}")
        self.stacked = stacked
        chans_in = self._level_channels(encoder)
        self.stacks = nn.ModuleList()
        for k, c_in in enumerate(chans_in):
            chans = [c_in + (hidden_channels[-1] if stacked and k > 0 else 0), *hidden_channels]
            self.stacks.append(nn.ModuleList(Layer(chans[i], chans[i + 1], kernel_size=kernel_size)
                                             for i in range(len(hidden_channels))))
        self.dropout = nn.Dropout(dropout)
        self.fcs = nn.ModuleList(nn.Linear(hidden_channels[-1], num_classes)
                                 for _ in (self.levels[-1:] if stacked else self.levels))
        self.hidden = hidden_channels[-1]

    def _level_channels(self, encoder: FrameEncoder) -> list[int]:
        if self.levels == [-1]:
            return [encoder.map_channels]
        with torch.no_grad():  # channels of each level from a small dry run (works on the meta device)
            was = encoder.training
            encoder.eval()
            probe = torch.zeros(1, 1, 3, 64, 64, device=encoder.mean.device)
            maps = encoder.forward_levels(probe, self.levels)
            encoder.train(was)
        sizes = [tuple(m.shape[-2:]) for m in maps]
        if self.stacked and any(b[0] > a[0] or b[1] > a[1] for a, b in zip(sizes, sizes[1:])):
            raise ValueError(f"stacked=True reads each level's state into the next, so levels must go from the "
                             f"largest map to the smallest; levels={self.levels} give maps {sizes}")
        return [m.shape[2] for m in maps]

    def encode(self, video: torch.Tensor):
        if self.levels == [-1]:
            return super().encode(video)
        return self.encoder.forward_levels(video, self.levels)  # [(B, T, C_l, h_l, w_l)]

    def forward_features(self, maps) -> torch.Tensor:
        """Maps ``(B, T, C, h, w)`` (or one per level) -> pooled top-layer states ``(B, T, L*F)``
        (stacked: the top level's, ``(B, T, F)``)."""
        return self._recur(maps, None)[0]

    def _recur(self, maps, state):
        """:meth:`forward_features` from ``state`` (one entry per recurrent layer, level by level;
        None: zeros), also returning the layers' final states."""
        maps = [maps] if torch.is_tensor(maps) else list(maps)
        state = list(state) if state is not None else [None] * sum(len(stack) for stack in self.stacks)
        pooled, below, new = [], None, []
        for x, stack in zip(maps, self.stacks):
            if below is not None:  # stacked: h^{l-1}_t, max-pooled to this level's map size
                B, T = below.shape[:2]
                h = F.adaptive_max_pool2d(below.flatten(0, 1), x.shape[-2:]).unflatten(0, (B, T))
                x = torch.cat([x, h], dim=2)
            for layer in stack:
                x, s = layer(x, state[len(new)])  # (B, T, F, h, w)
                new.append(s)
            below = x if self.stacked else None
            pooled.append(x.mean(dim=(-2, -1)))  # (B, T, F)
        return (pooled[-1] if self.stacked else torch.cat(pooled, dim=-1)), new

    streaming = True

    def step(self, video: torch.Tensor, state=None):
        """The next frames ``(B, t, 3, H, W)`` from ``state`` (None at the start; then the list of
        every recurrent layer's state this returns) -> ``(frame_logits (B, t, K), state)``."""
        feats, state = self._recur(self.encode(video), state)
        return self.forward_head(feats), state

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, L*F)`` -> per-step logits ``(B, T, K)``: log of the levels' averaged softmax
        (GRU-RCN averages the levels' predictions); one level: plain logits."""
        parts = x.split(self.hidden, dim=-1)
        logits = [fc(self.dropout(p)) for fc, p in zip(self.fcs, parts)]
        if len(logits) == 1:
            return logits[0]
        logp = torch.stack([z.log_softmax(-1) for z in logits])  # (L, B, T, K)
        return logp.logsumexp(0) - torch.log(torch.tensor(float(len(logits))))



# ============================================================================ builders
def _conv_rnn(cell: str, encoder, pretrained: bool, trainable, default_encoder: dict | None, num_classes: int,
              **kwargs) -> ConvRNNClassifier:
    return ConvRNNClassifier(build_encoder(encoder, pretrained, trainable, default_encoder), num_classes, cell=cell,
                             **kwargs)


@register_model
def convgru_rcn(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
                trainable: Trainable = "none", hidden_channels: Sequence[int] = (256,), kernel_size: int = 3,
                dropout: float = 0.0, levels: Sequence[int] = (-1,)) -> ConvRNNClassifier:
    """GRU-RCN (Ballas et al. 2016): a ConvGRU over an ImageNet CNN's last conv map (one level by default)."""
    return _conv_rnn("convgru", encoder, pretrained, trainable, None, num_classes, hidden_channels=hidden_channels,
                     kernel_size=kernel_size, dropout=dropout, levels=levels)


@register_model
def convgru_rcn_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                     trainable: Trainable = "all", hidden_channels: Sequence[int] = (16,), kernel_size: int = 3,
                     dropout: float = 0.0, levels: Sequence[int] = (-1,)) -> ConvRNNClassifier:
    """ConvGRU classifier with the tiny CNN (tests, embedded data)."""
    return _conv_rnn("convgru", encoder, pretrained, trainable, TINY_MAP_ENCODER, num_classes,
                     hidden_channels=hidden_channels, kernel_size=kernel_size, dropout=dropout, levels=levels)


@register_model
def stacked_convgru_rcn(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0",
                        pretrained: bool = True, trainable: Trainable = "none", hidden_channels: Sequence[int] = (128,),
                        kernel_size: int = 3, dropout: float = 0.0,
                        levels: Sequence[int] = (-5, -3, -1)) -> ConvRNNClassifier:
    """Stacked GRU-RCN (Ballas et al. 2016): ConvGRUs on three EfficientNet-Lite0 levels, each
    reading the level below."""
    return _conv_rnn("convgru", encoder, pretrained, trainable, None, num_classes, hidden_channels=hidden_channels,
                     kernel_size=kernel_size, dropout=dropout, levels=levels, stacked=True)


@register_model
def stacked_convgru_rcn_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                             trainable: Trainable = "all", hidden_channels: Sequence[int] = (16,),
                             kernel_size: int = 3, dropout: float = 0.0,
                             levels: Sequence[int] = (-2, -1)) -> ConvRNNClassifier:
    """Stacked GRU-RCN with the tiny CNN on its last two levels (tests, embedded data)."""
    return _conv_rnn("convgru", encoder, pretrained, trainable, TINY_MAP_ENCODER, num_classes,
                     hidden_channels=hidden_channels, kernel_size=kernel_size, dropout=dropout, levels=levels,
                     stacked=True)


@register_model
def convlstm_rcn(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
                 trainable: Trainable = "none", hidden_channels: Sequence[int] = (256,), kernel_size: int = 3,
                 dropout: float = 0.0, levels: Sequence[int] = (-1,)) -> ConvRNNClassifier:
    """ConvLSTM (Shi et al. 2015) over an ImageNet CNN's last conv map, per-step predictions averaged."""
    return _conv_rnn("convlstm", encoder, pretrained, trainable, None, num_classes, hidden_channels=hidden_channels,
                     kernel_size=kernel_size, dropout=dropout, levels=levels)


@register_model
def convlstm_rcn_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                      trainable: Trainable = "all", hidden_channels: Sequence[int] = (16,), kernel_size: int = 3,
                      dropout: float = 0.0, levels: Sequence[int] = (-1,)) -> ConvRNNClassifier:
    """ConvLSTM classifier with the tiny CNN (tests, embedded data)."""
    return _conv_rnn("convlstm", encoder, pretrained, trainable, TINY_MAP_ENCODER, num_classes,
                     hidden_channels=hidden_channels, kernel_size=kernel_size, dropout=dropout, levels=levels)
