"""Spatial attention LSTM for video classification (soft and hard attention).

:class:`SoftAttentionLSTM` -- Sharma, Kiros, Salakhutdinov, "Action Recognition using Visual
Attention", ICLR 2016 workshop, arXiv:1511.04119. The frame encoder's last conv map gives
``K x K`` region features ``X_{t,i}``; a location softmax from the previous hidden state,
``l_{t,i} = exp(W_i^T h_{t-1}) / Σ_j exp(W_j^T h_{t-1})``, weights them,
``x_t = Σ_i l_{t,i} X_{t,i}``; an LSTM reads ``x_t``; ``h_0, c_0`` come from MLPs (tanh) of the
features averaged over time and regions; a softmax at every step, averaged over time; the
loss adds the doubly stochastic penalty ``λ Σ_i (1 − Σ_t l_{t,i})²`` (Xu et al. 2015).
``attention="hard"`` samples one location per step (Xu et al.'s stochastic "hard"
attention), trained with REINFORCE: reward ``log p(y)``, a moving-average baseline
``b ← 0.9 b + 0.1 mean(r)`` (started at the first batch's mean reward), an entropy bonus, and with probability ``soft_prob`` (0.5 in
the paper) the expectation (soft attention) instead of a sample. At evaluation: the
expectation. Deviation: the penalty is averaged over the batch, and the paper's λ is 1
per video of 30 frames; we keep ``Σ_t`` over the clip's own T frames. Option (not in Sharma
et al.): ``score="content"`` scores each region from its features and the hidden state (Xu
et al.'s ``f_att``), with ``motion_keys=True`` also from its change since the last frame.

Models with attention accept ``return_attention=True`` in :meth:`forward` /
:meth:`forward_frames` and then also return the weights: spatial ``(B, T, N)`` or temporal
``(B, T, W)`` (W = window); the last forward's weights are also kept in ``last_attention``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vidrnn.layers.attention import AdditiveAttention
from vidrnn.layers.encoders import FrameEncoder
from vidrnn.models.base import FrameOutputClassifier, build_encoder
from vidrnn.registry import register_model

__all__ = ["SoftAttentionLSTM", "attention_penalty", "reinforce_surrogate"]


def attention_penalty(weights: torch.Tensor) -> torch.Tensor:
    """Doubly stochastic regulariser ``Σ_i (1 − Σ_t l_{t,i})²`` per sample (Xu et al. 2015, eq. 14).

    Shape:
        weights ``(B, T, N)`` -> ``(B,)``.
    """
    return (1.0 - weights.sum(dim=1)).square().sum(dim=-1)


def reinforce_surrogate(log_prob: torch.Tensor, reward: torch.Tensor, baseline: torch.Tensor | float = 0.0,
                        entropy: torch.Tensor | None = None, entropy_weight: float = 0.0) -> torch.Tensor:
    """Loss whose gradient is the REINFORCE estimate of ``−∇ E[reward]`` (Williams 1992), per sample.

    ``−(r − b) · log π(s)`` with ``r`` and ``b`` treated as constants, minus an entropy bonus.

    Shape:
        log_prob ``(B, ...)`` summed over the trailing axes; reward ``(B,)`` -> ``(B,)``.
    """
    lp = log_prob.flatten(1).sum(1) if log_prob.dim() > 1 else log_prob
    loss = -(reward - baseline).detach() * lp
    if entropy is not None and entropy_weight:
        ent = entropy.flatten(1).sum(1) if entropy.dim() > 1 else entropy
        loss = loss - entropy_weight * ent
    return loss


class SoftAttentionLSTM(FrameOutputClassifier):
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
        video ``(B, T, 3, H, W)`` -> logits ``(B, K)``; ``forward_frames`` -> ``(B, T, K)``;
        attention ``(B, T, map_size²)``, row-major over the map.

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
        self.register_buffer("reward_baseline", torch.zeros(()))
        self.register_buffer("baseline_initialised", torch.zeros((), dtype=torch.bool), persistent=False)
        self.last_attention: torch.Tensor | None = None
        self._log_probs = self._entropy = None

    def forward_features(self, maps: torch.Tensor) -> torch.Tensor:
        """Conv maps ``(B, T, D, h, w)`` -> LSTM outputs ``(B, T, H)``; sets ``last_attention``."""
        B, T, D, h, w = maps.shape
        if (h, w) != (self.map_size, self.map_size):
            raise ValueError(f"{type(self).__name__} was built for {self.map_size}x{self.map_size} feature maps, got "
                             f"{h}x{w}: set map_size={h} or change the input size")
        X = maps.flatten(3).transpose(2, 3)  # (B, T, N, D) region features
        mean = X.mean(dim=(1, 2))  # (B, D)
        state = (torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))
        hard = self.attention == "hard" and self.training
        if self.score == "content":
            keys = X
            if self.motion_keys:  # what changed since the previous frame (zero at t = 0)
                keys = torch.cat([X, X - torch.cat([X[:, :1], X[:, :-1]], dim=1)], dim=-1)  # (B, T, N, 2D)
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
        self.last_attention = torch.stack(weights, dim=1)  # (B, T, N)
        self._log_probs = torch.stack(log_probs, 1) if hard else None  # (B, T)
        self._entropy = torch.stack(entropies, 1) if hard else None
        return torch.stack(outs, dim=1)  # (B, T, H)

    def _scores(self, h: torch.Tensor, keys_t: torch.Tensor | None) -> torch.Tensor:
        """Location logits ``(B, N)`` from the query ``h (B, H)`` (and projected keys ``(B, N, A)``)."""
        if self.score == "location":
            return self.loc(h)
        return self.att.v(torch.tanh(self.att.W(h)[:, None] + keys_t)).squeeze(-1)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(x))

    def forward_frames(self, video: torch.Tensor, return_attention: bool = False):
        out = super().forward_frames(video)
        return (out, self.last_attention) if return_attention else out

    def forward(self, video: torch.Tensor, return_attention: bool = False):
        out = self.aggregate(super().forward_frames(video))
        return (out, self.last_attention) if return_attention else out

    def auxiliary_loss(self, nll: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Extra training loss after a forward pass: λ·penalty, plus REINFORCE for hard attention.

        Args:
            nll: per-sample negative log-likelihood of the true class ``(B,)`` (the reward is
                ``−nll``).

        Returns:
            ``(loss scalar, {"attention_penalty": ..., "reward_baseline": ...})`` for logging.
        """
        logs = {}
        loss = nll.new_zeros(())
        if self.last_attention is not None and self.penalty:
            pen = attention_penalty(self.last_attention).mean()
            loss = loss + self.penalty * pen
            logs["attention_penalty"] = pen.detach()
        if self._log_probs is not None:
            reward = -nll.detach()
            if not bool(self.baseline_initialised):  # start the baseline at the first rewards, not at 0
                self.reward_baseline.fill_(float(reward.mean()))
                self.baseline_initialised.fill_(True)
            loss = loss + reinforce_surrogate(self._log_probs, reward, self.reward_baseline, self._entropy,
                                              self.entropy_weight).mean()
            with torch.no_grad():
                self.reward_baseline.mul_(self.baseline_decay).add_((1 - self.baseline_decay) * reward.mean())
            logs["reward_baseline"] = self.reward_baseline.clone()
        return loss, logs



# ============================================================================ builders
def _tiny_map_encoder():
    return {"name": "tiny", "channels": [8, 16, 32], "pool": "avg"}


@register_model
def soft_attention_lstm(num_classes: int = 101, *, encoder="efficientnet_lite0", pretrained: bool = True,
                        trainable="none", map_size: int = 7, hidden_size: int = 512, **kw) -> SoftAttentionLSTM:
    """Sharma et al. 2015: soft spatial attention over 7x7 regions of an ImageNet CNN (EfficientNet-Lite0, 224 px)."""
    return SoftAttentionLSTM(build_encoder(encoder, pretrained, trainable), num_classes, map_size=map_size,
                             hidden_size=hidden_size, **kw)


@register_model
def soft_attention_lstm_tiny(num_classes: int = 4, *, encoder=None, pretrained: bool = False, trainable="all",
                             map_size: int = 4, hidden_size: int = 32, **kw) -> SoftAttentionLSTM:
    """Soft attention LSTM with the tiny CNN (4x4 maps of 32x32 frames; tests, embedded data)."""
    return soft_attention_lstm(num_classes, encoder=encoder or _tiny_map_encoder(), pretrained=pretrained,
                               trainable=trainable, map_size=map_size, hidden_size=hidden_size, **{"dropout": 0.0, **kw})


@register_model
def hard_attention_lstm(num_classes: int = 101, **kw) -> SoftAttentionLSTM:
    """Sharma et al. 2015 / Xu et al. 2015: hard (sampled) spatial attention trained with REINFORCE."""
    return soft_attention_lstm(num_classes, attention="hard", **kw)


@register_model
def hard_attention_lstm_tiny(num_classes: int = 4, **kw) -> SoftAttentionLSTM:
    """Hard attention LSTM with the tiny CNN (tests, embedded data)."""
    return soft_attention_lstm_tiny(num_classes, attention="hard", **kw)
