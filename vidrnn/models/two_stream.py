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
* :class:`TwoStreamLRCN` (``lrcn_two_stream``) -- both LRCN streams in one model that reads RGB
  frames and computes the flow stream's input itself (:func:`vidrnn.io.flow.flow_clip`, OpenCV,
  no gradient), fused as above. Trained as one model, the cross-entropy is that of the fused
  probabilities (a deviation: the papers train the streams separately, which ``vidrnn fuse``
  does); it predicts and serves from raw video like any classifier. Its frames should be a
  flow step apart (a ``dense`` sampler, or ``fps`` at 10-15 frames/s).
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

__all__ = ["LateFusion", "TwoStreamLRCN", "flow_encoder"]


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


class TwoStreamLRCN(LateFusion):
    """An RGB and a flow LRCN, late-fused, reading RGB frames (see the module docstring).

    Args:
        rgb, flow: the two streams (the flow stream's encoder takes ``2 * stack`` channels).
        flow_weight: the flow stream's share of the fused probabilities (LRCN: 2/3).
        flow_settings: how its input is computed (method, stack L, bound).

    Shape:
        ``forward(video (B, T, 3, H, W))`` in [0, 1], T > L -> ``logits (B, K)`` (log fused
        probabilities).
    """

    input_kind = "clip"  # whole clips: the flow needs consecutive frames, there is no per-frame encoder

    def __init__(self, rgb: nn.Module, flow: nn.Module, *, flow_weight: float = 2 / 3, flow_settings=None):
        from vidrnn.io.flow import FlowSettings

        if not 0.0 <= flow_weight <= 1.0:
            raise ValueError(f"flow_weight must be in [0, 1], got {flow_weight}")
        super().__init__([rgb, flow], [1.0 - flow_weight, flow_weight])
        self.flow_settings = flow_settings or FlowSettings()

    def forward(self, video: torch.Tensor) -> ClassifierOutput:
        from vidrnn.io.flow import flow_clip

        with torch.no_grad():
            flow = torch.stack([torch.from_numpy(flow_clip(v.float().cpu(), self.flow_settings)) for v in video])
        return super().forward(video, flow.to(video.device, video.dtype))  # flow (B, T - L, 2L, H, W)


# ============================================================================ builders
@register_model
def lrcn_two_stream(num_classes: int = 101, *, stack: int = 10, flow_weight: float = 2 / 3,
                    encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
                    rgb_trainable: Trainable = "none", flow_trainable: Trainable = "all", hidden_size: int = 256,
                    dropout: float = 0.5, method: Literal["dis", "farneback", "tvl1"] = "dis") -> TwoStreamLRCN:
    """LRCN's two streams (RGB frozen EfficientNet-Lite0, flow stacks of 10 fields), flow weighted 2/3."""
    from vidrnn.io.flow import FlowSettings

    rgb = LRCN(build_encoder(encoder, pretrained, rgb_trainable), num_classes, hidden_size=hidden_size, dropout=dropout)
    flow = LRCN(flow_encoder(encoder, pretrained, flow_trainable, stack), num_classes, hidden_size=hidden_size,
                dropout=dropout)
    return TwoStreamLRCN(rgb, flow, flow_weight=flow_weight, flow_settings=FlowSettings(method=method, stack=stack))


@register_model
def lrcn_two_stream_tiny(num_classes: int = 4, *, stack: int = 1, flow_weight: float = 2 / 3,
                         encoder: EncoderSpec = None, pretrained: bool = False, hidden_size: int = 32,
                         dropout: float = 0.0, method: Literal["dis", "farneback", "tvl1"] = "dis") -> TwoStreamLRCN:
    """LRCN's two streams on the tiny CNN, one flow field per input (tests, the embedded dataset)."""
    from vidrnn.io.flow import FlowSettings

    rgb = LRCN(build_encoder(encoder, pretrained, "all", TINY_VECTOR_ENCODER), num_classes, hidden_size=hidden_size,
               dropout=dropout)
    flow = LRCN(flow_encoder(encoder, pretrained, "all", stack, TINY_VECTOR_ENCODER), num_classes,
                hidden_size=hidden_size, dropout=dropout)
    return TwoStreamLRCN(rgb, flow, flow_weight=flow_weight, flow_settings=FlowSettings(method=method, stack=stack))



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
