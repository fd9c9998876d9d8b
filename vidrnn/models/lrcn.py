"""LRCN and the deep LSTM of "Beyond Short Snippets".

* :class:`LRCN` -- Donahue, Hendricks, Guadarrama, Rohrbach, Venugopalan, Saenko, Darrell,
  "Long-term Recurrent Convolutional Networks for Visual Recognition and Description",
  CVPR 2015, arXiv:1411.4389. A 2D CNN encodes each frame, an LSTM (256 units for RGB) runs
  over the frame features, a softmax at every step, and the clip's prediction is the average
  of the per-step predictions (option: the last step only). Deviations: the CNN is any
  :class:`~vidrnn.layers.encoders.FrameEncoder` (CaffeNet fc6 in the paper); dropout on the
  features before the LSTM is configurable.
* :class:`DeepLSTM` -- Ng, Hausknecht, Vijayanarasimhan, Vinyals, Monga, Toderici, "Beyond
  Short Snippets: Deep Networks for Video Classification", CVPR 2015, arXiv:1503.08909:
  stacked LSTMs (5 layers of 512 cells) over frame features sampled at 1 frame/s, a
  prediction at every frame, combined by a weighted sum whose weights grow linearly from 0
  to 1 over the video (``aggregate="linear"``; "last", "max" and "mean" are the paper's other
  options). The same weights weight the per-frame training loss.

Both accept ``cell="peephole"`` to use the FC-LSTM with peephole connections.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from vidrnn.layers.rnn_cells import StackedRNN
from vidrnn.layers.encoders import FrameEncoder
from vidrnn.models.base import (TINY_VECTOR_ENCODER, Aggregate, EncoderSpec, FrameOutputClassifier, Trainable,
                                build_encoder)
from vidrnn.registry import register_model

__all__ = ["LRCN", "DeepLSTM"]


class LRCN(FrameOutputClassifier):
    """CNN per frame -> LSTM -> per-step softmax, averaged over time (Donahue et al. 2015).

    Args:
        encoder: the frame encoder (feature size D).
        num_classes: K.
        hidden_size: LSTM units H (paper: 256 for RGB, 1024 for flow).
        num_layers: stacked LSTM layers.
        dropout: dropout on the frame features and between LSTM layers.
        cell: ``"lstm"`` (fused ``nn.LSTM``) or ``"peephole"``.
        aggregate: ``"mean"`` (paper), ``"last"``, ``"max"`` or ``"linear"``.

    Shape:
        video ``(B, T, 3, H, W)`` (or cached features ``(B, T, D)``) -> :class:`ClassifierOutput`
        with ``logits (B, K)`` and ``frame_logits (B, T, K)``.
    """

    def __init__(self, encoder: FrameEncoder, num_classes: int, *, hidden_size: int = 256, num_layers: int = 1,
                 dropout: float = 0.0, cell: str = "lstm", aggregate: str = "mean"):
        super().__init__(encoder, num_classes, aggregate)
        self.dropout = nn.Dropout(dropout)
        self.rnn = StackedRNN(encoder.feature_dim, hidden_size, num_layers=num_layers, cell=cell, dropout=dropout)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Frame features ``(B, T, D)`` -> LSTM outputs ``(B, T, H)``."""
        out, _ = self.rnn(self.dropout(feats))
        return out

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, H)`` -> per-step logits ``(B, T, K)``."""
        return self.fc(self.dropout(x))

    streaming = True

    def step(self, video: torch.Tensor, state=None):
        """The next frames ``(B, t, 3, H, W)`` (or features ``(B, t, D)``) from ``state`` (None at
        the start; then the per-layer ``(h, c)`` this returns) -> ``(frame_logits (B, t, K),
        state)``."""
        out, state = self.rnn(self.dropout(self.encode(video)), state)
        return self.forward_head(out), state


class DeepLSTM(LRCN):
    """Deep LSTM over frame features with a prediction at every frame (Ng et al. 2015).

    Same arguments as :class:`LRCN`, with the paper's defaults: 5 layers of 512 cells,
    dropout 0.5, linearly weighted aggregation.
    """

    def __init__(self, encoder: FrameEncoder, num_classes: int, *, hidden_size: int = 512, num_layers: int = 5,
                 dropout: float = 0.5, cell: str = "lstm", aggregate: str = "linear"):
        if not 1 <= num_layers <= 5:
            raise ValueError(f"num_layers must be 1 to 5 for DeepLSTM, got {num_layers}")
        super().__init__(encoder, num_classes, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout,
                         cell=cell, aggregate=aggregate)


@register_model
def lrcn(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
         trainable: Trainable = "none", hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.5,
         cell: Literal["lstm", "peephole"] = "lstm", aggregate: Aggregate = "mean") -> LRCN:
    """LRCN with an ImageNet EfficientNet-Lite0 frame encoder (frozen by default) and 256 LSTM units."""
    return LRCN(build_encoder(encoder, pretrained, trainable), num_classes, hidden_size=hidden_size,
                num_layers=num_layers, dropout=dropout, cell=cell, aggregate=aggregate)


@register_model
def lrcn_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
              trainable: Trainable = "all", hidden_size: int = 32, num_layers: int = 1, dropout: float = 0.0,
              cell: Literal["lstm", "peephole"] = "lstm", aggregate: Aggregate = "mean") -> LRCN:
    """LRCN with the tiny CNN and 32 LSTM units (tests, the embedded dataset)."""
    return LRCN(build_encoder(encoder, pretrained, trainable, TINY_VECTOR_ENCODER), num_classes,
                hidden_size=hidden_size, num_layers=num_layers, dropout=dropout, cell=cell, aggregate=aggregate)


@register_model
def deep_lstm(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
              trainable: Trainable = "none", hidden_size: int = 512, num_layers: int = 5, dropout: float = 0.5,
              cell: Literal["lstm", "peephole"] = "lstm", aggregate: Aggregate = "linear") -> DeepLSTM:
    """Ng et al. 2015: 5 LSTM layers of 512 cells over (1 frame/s) frame features."""
    return DeepLSTM(build_encoder(encoder, pretrained, trainable), num_classes, hidden_size=hidden_size,
                    num_layers=num_layers, dropout=dropout, cell=cell, aggregate=aggregate)


@register_model
def deep_lstm_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                   trainable: Trainable = "all", hidden_size: int = 16, num_layers: int = 2, dropout: float = 0.0,
                   cell: Literal["lstm", "peephole"] = "lstm", aggregate: Aggregate = "linear") -> DeepLSTM:
    """DeepLSTM with the tiny CNN, 2 layers of 16 cells (tests)."""
    return DeepLSTM(build_encoder(encoder, pretrained, trainable, TINY_VECTOR_ENCODER), num_classes,
                    hidden_size=hidden_size, num_layers=num_layers, dropout=dropout, cell=cell, aggregate=aggregate)
