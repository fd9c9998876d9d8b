"""Shared pieces of the video classifiers: the frame-encoder front end, the aggregation of
per-frame predictions, and :class:`ClassifierOutput`, the contract between models and tasks.

Every classifier takes a video ``(B, T, 3, H, W)`` float in [0, 1] and returns a
:class:`ClassifierOutput`: video-level ``logits (B, K)`` and, where the model has them,
per-frame logits and the weights that combine them (the task's per-frame loss uses both),
attention weights, auxiliary losses (the doubly stochastic attention penalty) and the terms of
the REINFORCE estimator (hard attention). The task reads only that output; nothing is kept on
the module between the forward pass and the loss.

Training from a feature cache uses the same ``forward``: the task switches the frame encoder
to read precomputed features (:meth:`~vidrnn.layers.encoders.FrameEncoder.read_cache`):
per-frame vectors ``(B, T, D)`` for ``input_kind == "vector"``, conv maps ``(B, T, C, h, w)``
for ``input_kind == "map"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

import torch
import torch.nn as nn

from vidrnn.layers.encoders import FrameEncoder, FrameEncoderSettings, create_frame_encoder
from vidrnn.layers.reinforce import PolicyTerms

AGGREGATIONS = ("mean", "last", "max", "linear")

#: builder argument types (the config validator reads them)
Aggregate = Literal["mean", "last", "max", "linear"]
Trainable = Union[Literal["all", "none"], int]
EncoderSpec = Union[str, FrameEncoderSettings, None]

#: the tiny CNN of the ``*_tiny`` builders: pooled vectors (flattened 4x4 map -> 64) and conv maps (32 x 4 x 4)
TINY_VECTOR_ENCODER = {"name": "tiny", "feature_dim": 64, "channels": [8, 16, 32]}
TINY_MAP_ENCODER = {"name": "tiny", "channels": [8, 16, 32], "pool": "avg"}


def build_encoder(encoder: str | dict | FrameEncoder | None, pretrained: bool, trainable,
                  default: dict | None = None) -> FrameEncoder:
    """A :class:`FrameEncoder` from a name, a settings dict or an encoder (``None``: ``default``)."""
    if isinstance(encoder, FrameEncoder):
        return encoder
    if encoder is None:
        encoder = dict(default or {})
    if isinstance(encoder, str):
        encoder = {"name": encoder}
    kw = {"pretrained": pretrained, "trainable": trainable, **encoder}
    return create_frame_encoder(**kw)


def aggregation_weights(kind: str, T: int, device=None) -> torch.Tensor:
    """Weights ``(T,)`` over time steps, summing to 1, for ``kind`` in :data:`AGGREGATIONS`.

    ``"linear"``: ``g_t`` growing linearly from 0 at the first step to 1 at the last (Ng et
    al. 2015), normalised; ``"last"``: only the last step; ``"mean"``/``"max"``: uniform
    (used as loss weights; ``"max"`` aggregates predictions by a maximum instead).

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind not in AGGREGATIONS:
        raise ValueError(f"aggregate={kind!r}: expected one of {AGGREGATIONS}")
    return _weights_over(kind, torch.ones(T, device=device))


def _weights_over(kind: str, ones: torch.Tensor) -> torch.Tensor:
    """:func:`aggregation_weights` for ``T = len(ones)``, computed from the tensor alone (no
    Python length), so that a traced or exported graph works at any T."""
    if kind == "last":
        w = (ones.cumsum(0) == ones.sum()).to(ones.dtype)
    elif kind == "linear":
        r = ones.cumsum(0) - 1  # 0, 1, ..., T-1
        w = torch.where(r.max() > 0, r / r.max().clamp_min(1), ones)
    else:
        w = ones
    return w / w.sum()


@dataclass
class ClassifierOutput:
    """What a video classifier returns.

    Attributes:
        logits: ``(B, K)`` video-level logits (log-probabilities are valid logits; multi-label
            models: one independent logit per class).
        frame_logits: ``(B, T, K)`` per-frame logits of models with a prediction at every
            frame (LRCN, deep LSTMs, attention LSTMs), else None.
        frame_weights: ``(T,)`` the weights (summing to 1) that combine the per-frame
            predictions into ``logits``; the task weights the per-frame loss with them.
        attention: attention weights: spatial ``(B, T, N)`` (``N = h*w`` regions, row-major)
            or temporal ``(B, T, W)`` (``W`` = window of recent frames), else None.
        attention_map: ``(h, w)`` of spatial attention; None for temporal attention.
        aux_losses: weighted scalar losses the task adds to its loss (e.g. ``attention_penalty``).
        policy: hard attention: the REINFORCE terms (:class:`~vidrnn.layers.reinforce.PolicyTerms`);
            the task calls ``policy.surrogate(reward)``.
    """

    logits: torch.Tensor
    frame_logits: torch.Tensor | None = None
    frame_weights: torch.Tensor | None = None
    attention: torch.Tensor | None = None
    attention_map: tuple[int, int] | None = None
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    policy: PolicyTerms | None = None


def average_views(logits: torch.Tensor, views: torch.Tensor, multilabel: bool = False) -> torch.Tensor:
    """Video-level log-probabilities from per-view logits.

    Args:
        logits: ``(V_total, K)`` logits of every view, videos one after another.
        views: ``(B,)`` number of views of each video.
        multilabel: independent sigmoid probabilities instead of a softmax over classes.

    Returns:
        ``(B, K)``: log of the mean of the views' softmax (or sigmoid) probabilities.
    """
    probs = logits.float().sigmoid() if multilabel else logits.float().softmax(-1)
    sums = torch.zeros(len(views), logits.shape[-1], device=logits.device).index_add_(
        0, torch.repeat_interleave(torch.arange(len(views), device=logits.device), views.to(logits.device)), probs)
    return (sums / views.to(logits.device)[:, None]).clamp_min(1e-12).log()


class VideoClassifier(nn.Module):
    """Base class: a frame encoder in front of a temporal model.

    Subclasses set ``input_kind`` (``"vector"`` or ``"map"``) and implement
    :meth:`forward_features` on encoder outputs and :meth:`forward_head`.
    """

    input_kind = "vector"

    def __init__(self, encoder: FrameEncoder, num_classes: int):
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.encoder = encoder
        self.num_classes = num_classes

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Encoder output for ``video``: ``(B, T, D)`` or ``(B, T, C, h, w)`` per ``input_kind``
        (the features themselves when the encoder reads a cache)."""
        return self.encoder(video) if self.input_kind == "vector" else self.encoder.forward_maps(video)

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, video: torch.Tensor) -> ClassifierOutput:
        """:class:`ClassifierOutput` with ``logits (B, K)`` for ``video (B, T, 3, H, W)`` in [0, 1]
        (or cached features)."""
        return ClassifierOutput(logits=self.forward_head(self.forward_features(self.encode(video))))


class FrameOutputClassifier(VideoClassifier):
    """A classifier with a prediction at every time step, combined by ``aggregate``.

    ``forward_head`` maps per-step features ``(B, T, H)`` to per-step logits ``(B, T, K)``;
    ``forward`` returns ``log`` of the aggregated per-step probabilities as video logits
    (log-probabilities are valid logits: their softmax is the aggregated distribution).
    """

    def __init__(self, encoder: FrameEncoder, num_classes: int, aggregate: str = "mean"):
        super().__init__(encoder, num_classes)
        aggregation_weights(aggregate, 1)  # validates
        self.aggregate_mode = aggregate

    def frame_weights(self, T: int, device=None) -> torch.Tensor:
        """Per-step weights ``(T,)`` for the loss and the aggregation."""
        return aggregation_weights(self.aggregate_mode, T, device)

    multilabel = False  #: independent sigmoid outputs (set by models that support multi-label)

    def _weights_like(self, frame_logits: torch.Tensor) -> torch.Tensor:
        """:meth:`frame_weights` for ``frame_logits (B, T, K)``, with T taken from the tensor."""
        return _weights_over(self.aggregate_mode, torch.ones_like(frame_logits[0, :, 0]))

    def aggregate(self, frame_logits: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``(B, T, K)`` -> video log-probabilities ``(B, K)``; multi-label models:
        the logit of the weighted mean of the per-step sigmoid probabilities."""
        if self.multilabel:
            w = self._weights_like(frame_logits)
            p = (frame_logits.sigmoid() * w[None, :, None]).sum(1).clamp(1e-6, 1 - 1e-6)
            return torch.log(p) - torch.log1p(-p)
        logp = frame_logits.log_softmax(-1)  # (B, T, K)
        if self.aggregate_mode == "max":
            agg = logp.max(dim=1).values
            return agg - agg.logsumexp(-1, keepdim=True)
        w = self._weights_like(logp)
        # log Σ_t w_t p_t, computed stably; zero weights contribute nothing.
        return (logp + w.clamp_min(1e-30).log()[None, :, None]).logsumexp(dim=1)

    def output(self, frame_logits: torch.Tensor, **extra) -> ClassifierOutput:
        """The :class:`ClassifierOutput` of per-frame logits ``(B, T, K)``: aggregated logits,
        the per-frame logits and their weights, plus ``extra`` fields."""
        T = frame_logits.shape[1]
        return ClassifierOutput(logits=self.aggregate(frame_logits), frame_logits=frame_logits,
                                frame_weights=self.frame_weights(T, frame_logits.device), **extra)

    def forward(self, video: torch.Tensor) -> ClassifierOutput:
        """Video logits and per-frame logits for ``video (B, T, 3, H, W)`` (or cached features)."""
        return self.output(self.forward_head(self.forward_features(self.encode(video))))

    # -- streaming: frames in, per-frame logits out, the recurrent state carried ---------------
    #: whether :meth:`step` is implemented (a model whose recurrence can run chunk by chunk)
    streaming = False

    def init_state(self, batch_size: int = 1):
        """The recurrent state before the first frame (None: zeros, as :meth:`forward` starts)."""
        return None

    def step(self, video: torch.Tensor, state=None):
        """Run the next ``t`` frames ``(B, t, 3, H, W)`` from ``state`` (:meth:`init_state` at the
        start): ``(frame_logits (B, t, K), new state)``. Chunk by chunk this gives the per-frame
        logits of :meth:`forward` on the whole sequence, without re-running the past.

        Raises:
            NotImplementedError: a model without a streaming step.
        """
        raise NotImplementedError(f"{type(self).__name__} has no streaming step")
