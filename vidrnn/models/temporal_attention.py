"""Temporal attention LSTM for video classification and dense multi-label labelling.

:class:`TemporalAttentionLSTM` -- in the manner of MultiLSTM (Yeung, Russakovsky, Jin,
Andriluka, Mori, Fei-Fei, "Every Moment Counts: Dense Detailed Labeling of Actions in
Complex Videos", IJCV 2017, arXiv:1507.05738): at each step the previous hidden state
queries a window of the N most recent frame features (additive attention); the LSTM reads
the attended context (deviation: together with the current frame's features); a
prediction at every frame, or with ``output_window=M`` the paper's multiple outputs (step t
predicts frames t−M+1..t, each frame's logits averaged over the steps that predicted it).
``multilabel=True`` makes per-frame outputs independent sigmoids (``frame_logits`` are their
logits; the video-level output is the logit of their mean), trained against per-frame multi-hot
labels (``data.source: multilabel_digits``, the task's ``frame_mAP``).

Deviations: the LSTM reads the attended context concatenated with the current frame's features
(MultiLSTM: the context alone); one LSTM layer of ``hidden_size`` units (the paper: 512).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrnn.layers.attention import AdditiveAttention
from vidrnn.layers.encoders import FrameEncoder
from vidrnn.models.base import (TINY_VECTOR_ENCODER, ClassifierOutput, EncoderSpec, FrameOutputClassifier, Trainable,
                                build_encoder)
from vidrnn.registry import register_model

__all__ = ["TemporalAttentionLSTM"]


class TemporalAttentionLSTM(FrameOutputClassifier):
    """LSTM that attends over the N most recent frame features at every step (MultiLSTM-style).

    Args:
        encoder: frame encoder (pooled features D).
        num_classes: K.
        window: N, the frames attended (the current one and N−1 before it).
        hidden_size: LSTM units.
        attention_size: hidden size of the additive attention.
        dropout: on the LSTM output.
        multilabel: per-frame sigmoids instead of a softmax (see module docstring).
        output_window: M, MultiLSTM's multiple outputs: the output at step t predicts the
            M frames t−M+1..t, and each frame's score is the mean of the logits predicted for
            it (at steps s..s+M−1, those inside the clip); a frame's score thus also uses up to
            M−1 later frames (offline labelling, as the paper). 1: step t predicts frame t.

    Shape:
        video ``(B, T, 3, H, W)`` (or cached features ``(B, T, D)``) -> :class:`ClassifierOutput`
        with ``logits (B, K)``, ``frame_logits (B, T, K)`` and ``attention (B, T, N)``: weight
        of frame ``t − N + 1 + j`` at step t (0 before the video starts).
    """

    def __init__(self, encoder: FrameEncoder, num_classes: int, *, window: int = 5, hidden_size: int = 256,
                 attention_size: int = 128, dropout: float = 0.0, multilabel: bool = False,
                 output_window: int = 1):
        super().__init__(encoder, num_classes, "mean")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if output_window < 1:
            raise ValueError(f"output_window must be >= 1, got {output_window}")
        D = encoder.feature_dim
        self.window, self.multilabel, self.output_window = window, multilabel, output_window
        self.attn = AdditiveAttention(hidden_size, D, attention_size)
        self.cell = nn.LSTMCell(2 * D, hidden_size)  # [attended context; current frame]
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, num_classes * output_window)

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Frame features ``(B, T, D)`` -> LSTM outputs ``(B, T, H)``."""
        return self._attend(feats)[0]

    def _attend(self, feats: torch.Tensor, state=None) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """LSTM outputs ``(B, T, H)``, attention weights ``(B, T, N)`` and the state after the
        last frame, starting from ``state`` (None: the video's start; else what this returned
        for the frames before: ``((h, c), the last N-1 features, frames seen)``)."""
        B, T, D = feats.shape
        N = self.window
        if state is None:
            h = feats.new_zeros(B, self.cell.hidden_size)
            state = ((h, h), feats.new_zeros(B, N - 1, D), 0)
        hc, recent, seen = state
        padded = torch.cat([recent.to(feats.dtype), feats], dim=1)  # (B, N-1+T, D)
        windows = padded.unfold(1, N, 1).transpose(2, 3)  # (B, T, N, D): frames t-N+1..t
        slot = torch.arange(N, device=feats.device)[None, :] + torch.arange(T, device=feats.device)[:, None]
        pad_mask = slot + seen < N - 1  # (T, N) True before the video starts
        keys_proj = self.attn.project_keys(windows)  # (B, T, N, A), one projection for all steps
        outs, weights = [], []
        for t in range(T):
            ctx, w = self.attn(hc[0], windows[:, t], key_padding_mask=pad_mask[t].expand(B, N),
                               projected_keys=keys_proj[:, t])
            hc = self.cell(torch.cat([ctx, feats[:, t]], dim=-1), hc)
            outs.append(hc[0])
            weights.append(w)
        state = (hc, padded[:, padded.shape[1] - (N - 1):], seen + T)
        return torch.stack(outs, dim=1), torch.stack(weights, dim=1), state  # (B, T, H), (B, T, N)

    @property
    def streaming(self) -> bool:
        """A streaming step exists unless ``output_window > 1`` (which labels a frame with later
        frames: offline only)."""
        return self.output_window == 1

    def step(self, video: torch.Tensor, state=None):
        """The next frames ``(B, t, 3, H, W)`` (or features ``(B, t, D)``) from ``state`` (None at
        the start) -> ``(frame_logits (B, t, K), state)``; the state carries the LSTM's ``(h, c)``
        and the last N-1 frames' features, so the attention window reaches back across chunks.

        Raises:
            NotImplementedError: ``output_window > 1``.
        """
        if not self.streaming:
            raise NotImplementedError(f"{type(self).__name__} with output_window={self.output_window} has no streaming "
                                      "step: each frame's label uses later frames (offline labelling)")
        hidden, _, state = self._attend(self.encode(video), state)
        return self.forward_head(hidden), state

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """LSTM outputs ``(B, T, H)`` -> per-frame logits ``(B, T, K)``."""
        z = self.fc(self.dropout(x))
        M = self.output_window
        if M == 1:
            return z
        B, T, _ = z.shape
        z = z.view(B, T, M, -1)  # slot m of step t predicts frame t - (M - 1) + m
        shifted, counts = [], []
        for m in range(M):
            d = M - 1 - m  # frame s gets slot m from step s + d
            if d < T:
                shifted.append(F.pad(z[:, d:, m], (0, 0, 0, d)))
                counts.append(F.pad(z.new_ones(T - d), (0, d)))
        return torch.stack(shifted).sum(0) / torch.stack(counts).sum(0)[None, :, None]

    def forward(self, video: torch.Tensor) -> ClassifierOutput:
        """Logits, per-frame logits and temporal attention weights (see the class docstring)."""
        hidden, weights, _ = self._attend(self.encode(video))
        return self.output(self.forward_head(hidden), attention=weights)


# ============================================================================ builders
@register_model
def temporal_attention_lstm(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0",
                            pretrained: bool = True, trainable: Trainable = "none", window: int = 5,
                            hidden_size: int = 256, attention_size: int = 128, dropout: float = 0.0,
                            multilabel: bool = False, output_window: int = 1) -> TemporalAttentionLSTM:
    """MultiLSTM-style temporal attention over the 5 most recent frame features."""
    return TemporalAttentionLSTM(build_encoder(encoder, pretrained, trainable), num_classes, window=window,
                                 hidden_size=hidden_size, attention_size=attention_size, dropout=dropout,
                                 multilabel=multilabel, output_window=output_window)


@register_model
def temporal_attention_lstm_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                                 trainable: Trainable = "all", window: int = 3, hidden_size: int = 32,
                                 attention_size: int = 32, dropout: float = 0.0, multilabel: bool = False,
                                 output_window: int = 1) -> TemporalAttentionLSTM:
    """Temporal attention LSTM with the tiny CNN (tests, embedded data)."""
    return TemporalAttentionLSTM(build_encoder(encoder, pretrained, trainable, TINY_VECTOR_ENCODER), num_classes,
                                 window=window, hidden_size=hidden_size, attention_size=attention_size,
                                 dropout=dropout, multilabel=multilabel, output_window=output_window)
