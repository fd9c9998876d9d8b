"""Shared pieces of the video classifiers: the frame-encoder front end and the aggregation of
per-frame predictions.

Every classifier takes a video ``(B, T, 3, H, W)`` float in [0, 1] and returns video-level
logits ``(B, K)``; :meth:`VideoClassifier.forward_cached` takes precomputed encoder outputs
instead (a feature cache): per-frame vectors ``(B, T, D)`` when ``input_kind == "vector"``,
conv maps ``(B, T, C, h, w)`` when ``input_kind == "map"``. Models with a prediction at every
frame (LRCN, deep LSTMs) also offer :meth:`forward_frames` ``(B, T, K)`` and the weights
that combine them (:meth:`frame_weights`), which the training task uses for the per-frame loss.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vidrnn.layers.encoders import FrameEncoder, create_frame_encoder

AGGREGATIONS = ("mean", "last", "max", "linear")


def build_encoder(encoder: str | dict | FrameEncoder, pretrained: bool, trainable) -> FrameEncoder:
    """A :class:`FrameEncoder` from a name, a settings dict or an encoder."""
    if isinstance(encoder, FrameEncoder):
        return encoder
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
    if kind == "last":
        w = torch.zeros(T, device=device)
        w[-1] = 1.0
    elif kind == "linear" and T > 1:
        w = torch.linspace(0.0, 1.0, T, device=device)
    else:
        w = torch.ones(T, device=device)
    return w / w.sum()


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
        """Encoder output for ``video``: ``(B, T, D)`` or ``(B, T, C, h, w)`` per ``input_kind``."""
        return self.encoder(video) if self.input_kind == "vector" else self.encoder.forward_maps(video)

    def check_cached(self, feats: torch.Tensor) -> None:
        want = 3 if self.input_kind == "vector" else 5
        if feats.dim() != want:
            shape = "(B, T, D)" if want == 3 else "(B, T, C, h, w)"
            raise ValueError(f"{type(self).__name__} expects cached {self.input_kind} features {shape}, got shape {tuple(feats.shape)}")

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_cached(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` from precomputed encoder outputs (see module docstring)."""
        self.check_cached(feats)
        return self.forward_head(self.forward_features(feats))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Video-level logits ``(B, K)`` for ``video (B, T, 3, H, W)`` in [0, 1]."""
        return self.forward_head(self.forward_features(self.encode(video)))


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

    def aggregate(self, frame_logits: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``(B, T, K)`` -> video log-probabilities ``(B, K)``; multi-label models:
        the logit of the weighted mean of the per-step sigmoid probabilities."""
        if self.multilabel:
            w = self.frame_weights(frame_logits.shape[1], frame_logits.device).to(frame_logits.dtype)
            p = (frame_logits.sigmoid() * w[None, :, None]).sum(1).clamp(1e-6, 1 - 1e-6)
            return torch.log(p) - torch.log1p(-p)
        logp = frame_logits.log_softmax(-1)  # (B, T, K)
        if self.aggregate_mode == "max":
            agg = logp.max(dim=1).values
            return agg - agg.logsumexp(-1, keepdim=True)
        w = self.frame_weights(frame_logits.shape[1], frame_logits.device).to(logp.dtype)
        # log Σ_t w_t p_t, computed stably; zero weights contribute nothing.
        return (logp + w.clamp_min(1e-30).log()[None, :, None]).logsumexp(dim=1)

    def forward_frames(self, video: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``(B, T, K)`` for ``video (B, T, 3, H, W)``."""
        return self.forward_head(self.forward_features(self.encode(video)))

    def forward_frames_cached(self, feats: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``(B, T, K)`` from cached features ``(B, T, D)``."""
        self.check_cached(feats)
        return self.forward_head(self.forward_features(feats))

    def forward_cached(self, feats: torch.Tensor) -> torch.Tensor:
        return self.aggregate(self.forward_frames_cached(feats))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.aggregate(self.forward_frames(video))
