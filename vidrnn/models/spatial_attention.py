"""Spatial attention LSTM for video classification (soft and hard attention).

Sharma, Kiros, Salakhutdinov, "Action Recognition using Visual Attention", ICLR 2016 workshop,
arXiv:1511.04119. The frame encoder's last conv map gives ``K x K`` region features ``X_{t,i}``;
a location softmax from the previous hidden state,
``l_{t,i} = exp(W_i^T h_{t-1}) / Σ_j exp(W_j^T h_{t-1})``, weights them,
``x_t = Σ_i l_{t,i} X_{t,i}``; an LSTM reads ``x_t``; ``h_0, c_0`` come from MLPs (tanh) of the
features averaged over time and regions; a softmax at every step, averaged over time; the loss
adds the doubly stochastic penalty ``λ Σ_i (1 − Σ_t l_{t,i})²`` (Xu et al. 2015, eq. 14).

``attention="hard"`` samples one location per step (the stochastic "hard" attention of Xu,
Ba, Kiros, Cho, Courville, Salakhutdinov, Zemel, Bengio, "Show, Attend and Tell", ICML 2015,
arXiv:1502.03044), trained with REINFORCE (:mod:`vidrnn.layers.reinforce`): reward ``log p(y)``,
a moving-average baseline started at the first batch's mean reward, an entropy bonus, and with
probability ``soft_prob`` (0.5 in Xu et al.) the expectation (soft attention) instead of a
sample. At evaluation: the expectation.

Deviations from Sharma et al.:

* one LSTM layer (the paper stacks three);
* the task averages the per-step cross-entropy over the T steps (the paper sums it), which
  scales the attention penalty's weight by T relative to the paper's λ; the penalty is
  averaged over the batch and sums over the clip's own T frames (the paper: 30-frame windows);
* no weight decay term inside the model (the optimiser's ``weight_decay`` plays that role);
* option ``score="content"`` (not in Sharma et al.): each region is scored from its features
  and the hidden state by Xu et al.'s ``f_att`` (:class:`~vidrnn.layers.attention.AdditiveAttention`,
  which has a bias on ``U``), with ``motion_keys=True`` also from its change since the last frame.

The attention weights ``(B, T, map_size²)`` are part of every output
(:class:`~vidrnn.models.base.ClassifierOutput`), with the penalty in ``aux_losses`` and, for
hard attention in training, the REINFORCE terms in ``policy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from vidrnn.layers.attention import AdditiveAttention
from vidrnn.layers.encoders import FrameEncoder
from vidrnn.layers.reinforce import PolicyTerms, RewardBaseline
from vidrnn.models.base import (TINY_MAP_ENCODER, ClassifierOutput, EncoderSpec, FrameOutputClassifier, Trainable,
                                build_encoder)
from vidrnn.registry import register_model

__all__ = ["SpatialAttentionLSTM", "attention_penalty"]


def attention_penalty(weights: torch.Tensor) -> torch.Tensor:
    """Doubly stochastic regulariser ``Σ_i (1 − Σ_t l_{t,i})²`` per sample (Xu et al. 2015, eq. 14).

    Shape:
        weights ``(B, T, N)`` -> ``(B,)``.
    """
    return (1.0 - weights.sum(dim=1)).square().sum(dim=-1)


@dataclass
class _AttentionPass:
    """One pass of the attention LSTM over a clip (internal)."""

    hidden: torch.Tensor  # (B, T, H)
    weights: torch.Tensor  # (B, T, N)
    log_prob: torch.Tensor | None  # (B,) hard attention in training, else None
    entropy: torch.Tensor | None  # (B,)
    state: tuple | None = None  # ((h, c), the last frame's regions (B, 1, N, D)): where a stream continues


class SpatialAttentionLSTM(FrameOutputClassifier):
    """Spatial soft (or hard) attention LSTM (Sharma et al. 2015).

    Args:
        encoder: frame encoder; its last conv map must be ``map_size x map_size``.
        num_classes: K.
        map_size: K x K regions (the location softmax has ``map_size²`` outputs).
        hidden_size: LSTM units (paper: 1024).
        dropout: on the LSTM output before the classifier.
        attention: ``"soft"`` or ``"hard"``.
        penalty: λ of the attention penalty (paper: 1).
        soft_prob: hard attention: probability of using the expectation in training (0.5).
        entropy_weight: hard attention: weight of the entropy bonus.
        baseline_decay: hard attention: moving-average decay of the reward baseline (0.9).
        score: ``"location"`` -- Sharma et al.'s location softmax ``W_i^T h_{t-1}``, blind to the
            regions' content; ``"content"`` -- Xu et al.'s ``v^T tanh(W h_{t-1} + U X_{t,i})``.
        motion_keys: content scores also see ``X_{t,i} − X_{t−1,i}`` (what changed at each
            region; a deviation for tasks where motion says where to look).
        attention_size: hidden size of the content scorer.
        reinforce_scope: hard attention: ``"all"`` (Xu et al.) -- the REINFORCE term reaches
            the attention scorer, the LSTM and the encoder (through the query and the keys);
            ``"attention"`` -- it trains the attention scorer only (query state and keys
            detached, as the location network of Mnih et al. 2014's RAM). On the distractor
            task both learn (20 epochs, one seed each: test top-1 0.64 all, 0.71 attention;
            the configs use ``attention``).

    Shape:
        video ``(B, T, 3, H, W)`` (or cached maps ``(B, T, D, map_size, map_size)``) ->
        :class:`ClassifierOutput` with ``logits (B, K)``, ``frame_logits (B, T, K)`` and
        ``attention (B, T, map_size²)``, row-major over the map.

    Raises:
        ValueError: a map of another size than ``map_size``, unknown ``attention``.
    """

    input_kind = "map"

    def __init__(self, encoder: FrameEncoder, num_classes: int, *, map_size: int = 7, hidden_size: int = 512,
                 dropout: float = 0.5, attention: str = "soft", penalty: float = 1.0, soft_prob: float = 0.5,
                 entropy_weight: float = 0.01, baseline_decay: float = 0.9, score: str = "location",
                 motion_keys: bool = False, attention_size: int = 128, reinforce_scope: str = "all"):
        super().__init__(encoder, num_classes, "mean")
        if attention not in ("soft", "hard"):
            raise ValueError(f"attention={attention!r}: expected 'soft' or 'hard'")
        if score not in ("location", "content"):
            raise ValueError(f"score={score!r}: expected 'location' (Sharma et al.) or 'content' (Xu et al.)")
        if reinforce_scope not in ("attention", "all"):
            raise ValueError(f"reinforce_scope={reinforce_scope!r}: expected 'attention' or 'all'")
        self.reinforce_scope = reinforce_scope
        D, N = encoder.map_channels, map_size * map_size
        self.map_size, self.attention, self.penalty = map_size, attention, penalty
        self.score, self.motion_keys = score, motion_keys
        if score == "content":  # Xu et al.'s f_att: v^T tanh(W h + U a_i), keys optionally with X_t - X_{t-1}
            self.att = AdditiveAttention(hidden_size, 2 * D if motion_keys else D, attention_size)
        self.soft_prob, self.entropy_weight, self.baseline_decay = soft_prob, entropy_weight, baseline_decay
        self.cell = nn.LSTMCell(D, hidden_size)
        self.loc = nn.Linear(hidden_size, N) if score == "location" else None  # W_i^T h_{t-1}: location logits
        self.init_h = nn.Linear(D, hidden_size)
        self.init_c = nn.Linear(D, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, num_classes)
        self.reward_baseline = RewardBaseline(baseline_decay)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        old = prefix + "reward_baseline"  # checkpoints before vidrnn 0.2 kept the value as one buffer
        if old in state_dict:
            state_dict[old + ".value"] = state_dict.pop(old)
            state_dict.setdefault(old + ".started", torch.tensor(True))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward_features(self, maps: torch.Tensor) -> torch.Tensor:
        """Conv maps ``(B, T, D, h, w)`` -> LSTM outputs ``(B, T, H)``."""
        return self._attend(maps).hidden

    def _attend(self, maps: torch.Tensor, carried: tuple | None = None, *, init_frames: int | None = None
                ) -> _AttentionPass:
        """One pass over ``maps (B, T, D, h, w)``. The LSTM starts from ``carried`` = ``((h, c),
        the previous frame's regions)`` (streaming), else from Sharma et al.'s initialisation
        by the mean region feature of the first ``init_frames`` frames (None: all of them)."""
        B, T, D, h, w = maps.shape
        if (h, w) != (self.map_size, self.map_size):
            raise ValueError(f"{type(self).__name__} was built for {self.map_size}x{self.map_size} feature maps, got "
                             f"{h}x{w}: set map_size={h} or change the input size")
        X = maps.flatten(3).transpose(2, 3)  # (B, T, N, D) region features
        if carried is None:
            mean = X[:, :init_frames].mean(dim=(1, 2))  # (B, D)
            state = (torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))
            before = X[:, :1]  # motion keys: zero change at the first frame
        else:
            state, before = carried
        hard = self.attention == "hard" and self.training
        if self.score == "content":
            keys = X
            if self.motion_keys:  # what changed since the previous frame (zero at t = 0)
                keys = torch.cat([X, X - torch.cat([before.to(X.dtype), X[:, :-1]], dim=1)], dim=-1)  # (B, T, N, 2D)
            uk = self.att.project_keys(keys)  # (B, T, N, A): all steps at once
            if hard and self.reinforce_scope == "attention":  # the policy's own keys, cut from the encoder
                uk_policy = self.att.project_keys(keys.detach())
        outs, weights, log_probs, entropies = [], [], [], []
        for t in range(T):
            logits = self._scores(state[0], uk[:, t] if self.score == "content" else None)  # (B, N)
            l_t = logits.softmax(-1)
            if hard:
                if self.reinforce_scope == "attention":  # REINFORCE reaches the attention scorer only
                    logits = self._scores(state[0].detach(), uk_policy[:, t] if self.score == "content" else None)
                dist = torch.distributions.Categorical(logits=logits)
                s = dist.sample()  # (B,)
                use_soft = torch.rand(B, device=maps.device) < self.soft_prob
                x_hard = X[torch.arange(B, device=maps.device), t, s]  # (B, D)
                x_soft = torch.einsum("bn,bnd->bd", l_t, X[:, t])
                x_t = torch.where(use_soft[:, None], x_soft, x_hard)
                log_probs.append(torch.where(use_soft, torch.zeros_like(s, dtype=l_t.dtype), dist.log_prob(s)))
                entropies.append(dist.entropy())
            else:
                x_t = torch.einsum("bn,bnd->bd", l_t, X[:, t])  # expectation over locations
            state = self.cell(x_t, state)
            outs.append(state[0])
            weights.append(l_t)
        return _AttentionPass(hidden=torch.stack(outs, dim=1),  # (B, T, H)
                              weights=torch.stack(weights, dim=1),  # (B, T, N)
                              log_prob=torch.stack(log_probs, 1).sum(1) if hard else None,  # (B,)
                              entropy=torch.stack(entropies, 1).sum(1) if hard else None,
                              state=(state, X[:, -1:]))

    streaming = True

    def step(self, video: torch.Tensor, state=None):
        """The next frames ``(B, t, 3, H, W)`` (or maps ``(B, t, D, h, w)``) from ``state`` (None at
        the start) -> ``(frame_logits (B, t, K), state)``; attention weights of the last call are
        kept in ``last_attention`` ``(B, t, N)``.

        Deviation, stated: Sharma et al. initialise the LSTM from the mean feature of the whole
        video, which a stream does not know yet; the first call initialises it from its own
        frames (give a first chunk of a few seconds). Later chunks continue from the carried
        state, so the outputs equal the offline pass initialised from that first chunk
        (``_attend(maps, init_frames=t0)``).
        """
        p = self._attend(self.encode(video), state)
        self.last_attention = p.weights
        return self.forward_head(p.hidden), p.state

    def _scores(self, h: torch.Tensor, keys_t: torch.Tensor | None) -> torch.Tensor:
        """Location logits ``(B, N)`` from the query ``h (B, H)`` (and projected keys ``(B, N, A)``)."""
        if self.score == "location":
            return self.loc(h)
        return self.att.v(torch.tanh(self.att.W(h)[:, None] + keys_t)).squeeze(-1)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(x))

    def forward(self, video: torch.Tensor) -> ClassifierOutput:
        """Logits, per-frame logits, attention weights and the penalty (see the class docstring)."""
        p = self._attend(self.encode(video))
        aux = {"attention_penalty": self.penalty * attention_penalty(p.weights).mean()} if self.penalty else {}
        policy = None
        if p.log_prob is not None:
            policy = PolicyTerms(p.log_prob, p.entropy, self.entropy_weight, self.reward_baseline)
        return self.output(self.forward_head(p.hidden), attention=p.weights,
                           attention_map=(self.map_size, self.map_size), aux_losses=aux, policy=policy)


# ============================================================================ builders
Score = Literal["location", "content"]
Scope = Literal["all", "attention"]


@register_model
def soft_attention_lstm(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0",
                        pretrained: bool = True, trainable: Trainable = "none", map_size: int = 7,
                        hidden_size: int = 512, dropout: float = 0.5, penalty: float = 1.0, score: Score = "location",
                        motion_keys: bool = False, attention_size: int = 128) -> SpatialAttentionLSTM:
    """Sharma et al. 2015: soft spatial attention over 7x7 regions of an ImageNet CNN (EfficientNet-Lite0, 224 px)."""
    return SpatialAttentionLSTM(build_encoder(encoder, pretrained, trainable), num_classes, map_size=map_size,
                                hidden_size=hidden_size, dropout=dropout, attention="soft", penalty=penalty,
                                score=score, motion_keys=motion_keys, attention_size=attention_size)


@register_model
def soft_attention_lstm_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                             trainable: Trainable = "all", map_size: int = 4, hidden_size: int = 32,
                             dropout: float = 0.0, penalty: float = 1.0, score: Score = "location",
                             motion_keys: bool = False, attention_size: int = 128) -> SpatialAttentionLSTM:
    """Soft attention LSTM with the tiny CNN (4x4 maps of 32x32 frames; tests, embedded data)."""
    return SpatialAttentionLSTM(build_encoder(encoder, pretrained, trainable, TINY_MAP_ENCODER), num_classes,
                                map_size=map_size, hidden_size=hidden_size, dropout=dropout, attention="soft",
                                penalty=penalty, score=score, motion_keys=motion_keys, attention_size=attention_size)


@register_model
def hard_attention_lstm(num_classes: int = 101, *, encoder: EncoderSpec = "efficientnet_lite0",
                        pretrained: bool = True, trainable: Trainable = "none", map_size: int = 7,
                        hidden_size: int = 512, dropout: float = 0.5, penalty: float = 1.0, soft_prob: float = 0.5,
                        entropy_weight: float = 0.01, baseline_decay: float = 0.9, score: Score = "location",
                        motion_keys: bool = False, attention_size: int = 128,
                        reinforce_scope: Scope = "all") -> SpatialAttentionLSTM:
    """Sharma et al. 2015 / Xu et al. 2015: hard (sampled) spatial attention trained with REINFORCE."""
    return SpatialAttentionLSTM(build_encoder(encoder, pretrained, trainable), num_classes, map_size=map_size,
                                hidden_size=hidden_size, dropout=dropout, attention="hard", penalty=penalty,
                                soft_prob=soft_prob, entropy_weight=entropy_weight, baseline_decay=baseline_decay,
                                score=score, motion_keys=motion_keys, attention_size=attention_size,
                                reinforce_scope=reinforce_scope)


@register_model
def hard_attention_lstm_tiny(num_classes: int = 4, *, encoder: EncoderSpec = None, pretrained: bool = False,
                             trainable: Trainable = "all", map_size: int = 4, hidden_size: int = 32,
                             dropout: float = 0.0, penalty: float = 1.0, soft_prob: float = 0.5,
                             entropy_weight: float = 0.01, baseline_decay: float = 0.9, score: Score = "location",
                             motion_keys: bool = False, attention_size: int = 128,
                             reinforce_scope: Scope = "all") -> SpatialAttentionLSTM:
    """Hard attention LSTM with the tiny CNN (tests, embedded data)."""
    return SpatialAttentionLSTM(build_encoder(encoder, pretrained, trainable, TINY_MAP_ENCODER), num_classes,
                                map_size=map_size, hidden_size=hidden_size, dropout=dropout, attention="hard",
                                penalty=penalty, soft_prob=soft_prob, entropy_weight=entropy_weight,
                                baseline_decay=baseline_decay, score=score, motion_keys=motion_keys,
                                attention_size=attention_size, reinforce_scope=reinforce_scope)
