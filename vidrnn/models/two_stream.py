"""Flow streams and their late fusion with the RGB stream (two-stream models).

* The flow streams of LRCN (Donahue et al., "Long-term Recurrent Convolutional Networks for
  Visual Recognition and Description", CVPR 2015, arXiv:1411.4389) and of "Beyond Short
  Snippets" (Ng et al., CVPR 2015, arXiv:1503.08909): the same networks as their RGB streams,
  reading optical flow instead of frames (:mod:`vidrnn.io.flow`; the data side is
  ``data.flow``). Each input is a stack of L flow fields (2L channels): LRCN used single flow
  images (x, y and magnitude as an RGB image), Ng et al. and the temporal segment networks
  stacks of 10 fields; here L is ``stack`` (default 10; the ``*_tiny`` variants 1). The frame
  encoder's first convolution takes the 2L channels, initialised from its ImageNet RGB weights
  averaged over colour (Wang et al., ECCV 2016, arXiv:1608.00859: cross-modality pre-training).
  Deviation from LRCN: flow is stored as the two displacement channels only (no magnitude).
* :class:`LateFusion` -- each stream trained on its own, then the class probabilities averaged
  with weights (LRCN: flow weighted 2/3 in its best setting; Ng et al.: the flow network's
  scores fused with the RGB network's). ``vidrnn fuse`` picks the weight on validation.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn as nn

from vidrnn.layers.encoders import FrameEncoder
from vidrnn.models.base import (TINY_MAP_ENCODER, TINY_VECTOR_ENCODER, Aggregate, ClassifierOutput, EncoderSpec,
                                Trainable, build_encoder)
from vidrnn.models.lrcn import LRCN, DeepLSTM
from vidrnn.models.snippets import ConvPooling
from vidrnn.registry import register_model

__all__ = ["LateFusion", "flow_encoder"]


def flow_encoder(encoder: EncoderSpec, pretrained: bool, trainable, stack: int, default: dict | None = None
                 ) -> FrameEncoder:
    """A frame encoder taking stacks of ``stack`` flow fields (``2 * stack`` channels).

    Raises:
        ValueError: ``stack`` < 1.
    """
    if not (isinstance(stack, int) and stack >= 1):
        raise ValueError(f"stack must be an integer >= 1 (flow fields per input), got {stack!r}")
    if encoder is None:
        encoder = dict(default or {})
    spec = {"name": encoder} if isinstance(encoder, str) else dict(encoder)
    return build_encoder({**spec, "in_channels": 2 * stack}, pretrained, trainable)


class LateFusion(nn.Module):
    """Weighted average of the class probabilities of several streams (late fusion).

    Args:
        streams: classifiers returning :class:`ClassifierOutput` (e.g. an RGB and a flow LRCN).
        weights: one non-negative weight per stream (normalised to sum to 1).

    Shape:
        ``forward(*videos)``: one input per stream, each ``(B, T_s, C_s, H, W)`` -> ``logits``
        ``(B, K)``: the log of the fused probabilities (valid logits: softmax gives them back).

    Raises:
        ValueError: no streams, a weight count that does not match, negative or all-zero weights.
    """

    def __init__(self, streams: Sequence[nn.Module], weights: Sequence[float]):
        super().__init__()
        if not streams or len(streams) != len(weights):
            raise ValueError(f"late fusion needs one weight per stream, got {len(streams)} streams and "
                             f"{len(weights)} weights")
        w = torch.tensor([float(x) for x in weights])
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"fusion weights must be >= 0 and not all 0, got {list(weights)}")
        self.streams = nn.ModuleList(streams)
        self.register_buffer("weights", w / w.sum())

    def fuse(self, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-stream probabilities ``[(B, K)]`` -> fused ``(B, K)``."""
        return sum(w * p for w, p in zip(self.weights, probs))

    def forward(self, *videos: torch.Tensor) -> ClassifierOutput:
        if len(videos) != len(self.streams):
            raise ValueError(f"late fusion of {len(self.streams)} streams takes {len(self.streams)} inputs, "
                             f"got {len(videos)}")
        probs = [s(v).logits.float().softmax(-1) for s, v in zip(self.streams, videos)]
        return ClassifierOutput(logits=self.fuse(probs).clamp_min(1e-12).log())


# ============================================================================ builders
@register_model
def lrcn_flow(num_classes: int = 101, *, stack: int = 10, encoder: EncoderSpec = "efficientnet_lite0",
              pretrained: bool = True, trainable: Trainable = "all", hidden_size: int = 256, num_layers: int = 1,
              dropout: float = 0.5, cell: Literal["lstm", "peephole"] = "lstm", aggregate: Aggregate = "mean") -> LRCN:
    """LRCN's flow stream: stacks of 10 flow fields into EfficientNet-Lite0 (cross-modality init, trained)."""
    return LRCN(flow_encoder(encoder, pretrained, trainable, stack), num_classes, hidden_size=hidden_size,
                num_layers=num_layers, dropout=dropout, cell=cell, aggregate=aggregate)


@register_model
def lrcn_flow_tiny(num_classes: int = 4, *, stack: int = 1, encoder: EncoderSpec = None, pretrained: bool = False,
                   trainable: Trainable = "all", hidden_size: int = 32, num_layers: int = 1, dropout: float = 0.0,
                   cell: Literal["lstm", "peephole"] = "lstm", aggregate: Aggregate = "mean") -> LRCN:
    """LRCN's flow stream on the tiny CNN, one flow field per input (tests, the embedded dataset)."""
    return LRCN(flow_encoder(encoder, pretrained, trainable, stack, TINY_VECTOR_ENCODER), num_classes,
                hidden_size=hidden_size, num_layers=num_layers, dropout=dropout, cell=cell, aggregate=aggregate)


@register_model
def deep_lstm_flow(num_classes: int = 101, *, stack: int = 10, encoder: EncoderSpec = "efficientnet_lite0",
                   pretrained: bool = True, trainable: Trainable = "all", hidden_size: int = 512,
                   num_layers: int = 5, dropout: float = 0.5, cell: Literal["lstm", "peephole"] = "lstm",
                   aggregate: Aggregate = "linear") -> DeepLSTM:
    """Ng et al. 2015's deep LSTM (5 x 512) over a flow stream of 10-field stacks."""
    return DeepLSTM(flow_encoder(encoder, pretrained, trainable, stack), num_classes, hidden_size=hidden_size,
                    num_layers=num_layers, dropout=dropout, cell=cell, aggregate=aggregate)


@register_model
def deep_lstm_flow_tiny(num_classes: int = 4, *, stack: int = 1, encoder: EncoderSpec = None,
                        pretrained: bool = False, trainable: Trainable = "all", hidden_size: int = 16,
                        num_layers: int = 2, dropout: float = 0.0, cell: Literal["lstm", "peephole"] = "lstm",
                        aggregate: Aggregate = "linear") -> DeepLSTM:
    """The deep LSTM's flow stream on the tiny CNN (tests)."""
    return DeepLSTM(flow_encoder(encoder, pretrained, trainable, stack, TINY_VECTOR_ENCODER), num_classes,
                    hidden_size=hidden_size, num_layers=num_layers, dropout=dropout, cell=cell, aggregate=aggregate)


@register_model
def conv_pooling_flow(num_classes: int = 101, *, stack: int = 10, encoder: EncoderSpec = "efficientnet_lite0",
                      pretrained: bool = True, trainable: Trainable = "all", input_size: int = 224,
                      map_size: int | None = 2, hidden_size: int = 512, num_fc: int = 2,
                      dropout: float = 0.5) -> ConvPooling:
    """Ng et al. 2015's Conv Pooling over a flow stream of 10-field stacks."""
    return ConvPooling(flow_encoder(encoder, pretrained, trainable, stack), num_classes, input_size=input_size,
                       map_size=map_size, hidden_size=hidden_size, num_fc=num_fc, dropout=dropout)


@register_model
def conv_pooling_flow_tiny(num_classes: int = 4, *, stack: int = 1, encoder: EncoderSpec = None,
                           pretrained: bool = False, trainable: Trainable = "all", input_size: int = 32,
                           map_size: int | None = None, hidden_size: int = 32, num_fc: int = 2,
                           dropout: float = 0.0) -> ConvPooling:
    """Conv Pooling's flow stream on the tiny CNN (tests)."""
    return ConvPooling(flow_encoder(encoder, pretrained, trainable, stack, TINY_MAP_ENCODER), num_classes,
                       input_size=input_size, map_size=map_size, hidden_size=hidden_size, num_fc=num_fc,
                       dropout=dropout)
