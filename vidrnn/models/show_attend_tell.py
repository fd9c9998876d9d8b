"""Show, Attend and Tell (Xu, Ba, Kiros, Cho, Courville, Salakhutdinov, Zemel, Bengio, ICML 2015,
arXiv:1502.03044): an image captioner whose LSTM decoder attends over the regions of a CNN's
last convolutional map, with soft (deterministic) or hard (stochastic) attention.

* Annotations ``a_1..a_L``: the frame encoder's last map ``(C, h, w)`` as ``L = h w`` vectors of
  size ``D = C`` (any :class:`~vidrnn.layers.encoders.FrameEncoder`: EfficientNet-Lite0, timm,
  the tiny CNN).
* Initial state: ``h_0 = tanh(f_init_h(mean_i a_i))``, ``c_0 = tanh(f_init_c(mean_i a_i))``
  (the paper's MLPs as one linear layer each; tanh keeps the state in the LSTM's range).
* Attention: ``e_{t,i} = f_att(a_i, h_{t-1})``, the MLP ``v^T tanh(W h + U a_i)``
  (:class:`~vidrnn.layers.attention.AdditiveAttention`), ``alpha_t = softmax(e_t)``.
  Soft: ``z_t = beta_t sum_i alpha_{t,i} a_i`` with the gating scalar
  ``beta_t = sigma(f_beta(h_{t-1}))`` (their section 4.2.1). Hard (``attention="hard"``, in
  training): one region ``s_t ~ Multinoulli(alpha_t)`` per word, ``z_t = beta_t a_{s_t}``, trained
  with REINFORCE (:mod:`vidrnn.layers.reinforce`, the estimator of the spatial-attention
  classifier): reward the caption's log-likelihood, a moving-average baseline (decay 0.9), an
  entropy bonus (``entropy_weight``) and, with probability ``soft_prob`` per word (0.5 in the
  paper's section 4.1), the soft expectation instead of a sample. At evaluation hard attention
  uses the expectation, as soft attention does (deviation: the paper samples or takes the
  expectation; the expectation is deterministic, so beam search is well defined).
* Decoder: ``(h_t, c_t) = LSTM([E y_{t-1}; z_t], (h_{t-1}, c_{t-1}))``; the deep output layer
  ``p(y_t) ∝ exp(L_o(E y_{t-1} + L_h h_t + L_z z_t))`` (their eq. 7) with dropout before ``L_o``.
* The doubly stochastic regulariser ``lambda sum_i (1 - sum_t alpha_{t,i})^2`` (eq. 14,
  ``lambda = penalty``, 1 by default) over the caption's real (non-padding) steps, returned in
  :attr:`CaptionOutput.aux_losses`, divided by the caption's number of real steps ``C``: the
  paper adds it to the caption's *summed* negative log-likelihood, the captioning task
  averages the cross-entropy over tokens, so dividing by ``C`` keeps the paper's balance
  between the two (without it the penalty weighs ``C`` times more and pushes attention towards
  uniform).

Option (off by default, not in the paper): ``positions=True`` adds a learned function of each
region's coordinates to its annotation (:class:`~vidrnn.layers.attention.MapPositions`), so the
context vector says where it was taken from, for captions that name places.

Deviation: the paper's ``f_init`` are MLPs with a hidden layer; here one linear layer each.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from vidrnn.layers.attention import AdditiveAttention, MapPositions
from vidrnn.layers.encoders import FrameEncoder
from vidrnn.layers.reinforce import PolicyTerms, RewardBaseline
from vidrnn.models.base import TINY_MAP_ENCODER, EncoderSpec, Trainable, build_encoder
from vidrnn.models.captioners import CaptionOutput, Captioner, caption_attention_penalty
from vidrnn.registry import register_model

__all__ = ["CaptionOutput", "ShowAttendTell", "caption_attention_penalty"]


class ShowAttendTell(Captioner):
    """Soft- or hard-attention image captioner (see the module docstring).

    Args:
        encoder: the CNN giving the annotation map.
        vocab_size: V (with ``<pad>`` = 0, ``<start>``, ``<end>``, ``<unk>``; see
            :class:`vidrnn.data.captions.CaptionVocabulary`).
        embed_dim: m, the word embedding size.
        hidden_size: n, the LSTM's size.
        attention_dim: hidden size of ``f_att``.
        dropout: before the deep output layer.
        penalty: lambda of the doubly stochastic regulariser (0: off).
        attention: ``"soft"`` or ``"hard"``.
        soft_prob: hard attention: probability of the soft expectation instead of a sample, per word.
        entropy_weight: hard attention: weight of the entropy bonus.
        baseline_decay: hard attention: decay of the moving-average reward baseline.
        positions: add a learned function of each region's place to its annotation (see the
            module docstring).
        pad: the padding index (its embedding is zero and it is ignored by the penalty).

    Shape:
        ``forward(images (B, 3, H, W) in [0, 1], captions (B, T) int64 starting with <start>)``
        -> :class:`CaptionOutput` with ``attention (B, T - 1, L)``; ``generate(images, start=,
        end=, beam_size=, max_length=)`` -> ``(tokens (B, n), score (B,))``.
    """

    media = "image"
    attends_to = "regions"

    def __init__(self, encoder: FrameEncoder, vocab_size: int, *, embed_dim: int = 512, hidden_size: int = 512,
                 attention_dim: int = 512, dropout: float = 0.5, penalty: float = 1.0,
                 attention: Literal["soft", "hard"] = "soft", soft_prob: float = 0.5, entropy_weight: float = 0.01,
                 baseline_decay: float = 0.9, positions: bool = False, pad: int = 0):
        super().__init__(vocab_size, pad)
        if attention not in ("soft", "hard"):
            raise ValueError(f"attention={attention!r}: expected 'soft' or 'hard'")
        if not 0.0 <= soft_prob <= 1.0:
            raise ValueError(f"soft_prob must be in [0, 1], got {soft_prob}")
        self.encoder, self.penalty = encoder, float(penalty)
        self.attention_kind, self.soft_prob, self.entropy_weight = attention, float(soft_prob), float(entropy_weight)
        D = encoder.map_channels
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad)
        self.init_h = nn.Linear(D, hidden_size)
        self.init_c = nn.Linear(D, hidden_size)
        self.attention = AdditiveAttention(hidden_size, D, attention_dim)
        self.f_beta = nn.Linear(hidden_size, 1)
        self.lstm = nn.LSTMCell(embed_dim + D, hidden_size)
        self.L_h = nn.Linear(hidden_size, embed_dim)
        self.L_z = nn.Linear(D, embed_dim)
        self.L_o = nn.Linear(embed_dim, vocab_size)
        self.dropout = nn.Dropout(dropout)
        self.reward_baseline = RewardBaseline(baseline_decay)
        self.positions = MapPositions(D) if positions else None

    def annotations(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> the region vectors ``a (B, L, D)``.

        Raises:
            ValueError: not a batch of RGB images.
        """
        self.check_media(images)
        maps = self.encoder.forward_maps(images[:, None])[:, 0]  # (B, D, h, w)
        if self.positions is not None:
            maps = self.positions(maps)
        return maps.flatten(2).transpose(1, 2)  # (B, h*w, D), row-major

    def initial_state(self, images: torch.Tensor):
        """The decoder state ``(h_0, c_0, a, U a)`` for images ``(B, 3, H, W)`` (every entry's
        first dimension is B, so beam search can reorder it)."""
        a = self.annotations(images)
        mean = a.mean(dim=1)
        return torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)), a, self.attention.project_keys(a)

    def _advance(self, tokens: torch.Tensor, state):
        h, c, a, ua = state
        context, alpha = self.attention(h, a, projected_keys=ua)  # (B, D), (B, L)
        extras = {"alpha": alpha}
        if self.attention_kind == "hard" and self.training:
            dist = torch.distributions.Categorical(probs=alpha)
            s = dist.sample()  # (B,) one region per word
            use_soft = torch.rand(s.shape, device=s.device) < self.soft_prob
            sampled = a[torch.arange(a.shape[0], device=a.device), s]
            context = torch.where(use_soft[:, None], context, sampled)
            extras["log_prob"] = torch.where(use_soft, torch.zeros_like(alpha[:, 0]), dist.log_prob(s))
            extras["entropy"] = dist.entropy()
        z = torch.sigmoid(self.f_beta(h)) * context
        e = self.embed(tokens)
        h, c = self.lstm(torch.cat([e, z], dim=-1), (h, c))
        return (e, h, z), (h, c, a, ua), extras

    def _output(self, features):
        e, h, z = features  # the deep output layer, eq. 7
        return self.L_o(self.dropout(e + self.L_h(h) + self.L_z(z)))

    def aux_losses(self, attention, captions):
        if not self.penalty:
            return {}
        real = captions[:, 1:] != self.pad  # the steps that predict a real token
        per_caption = caption_attention_penalty(attention, real) / real.sum(1).clamp(min=1)  # paper's scale (docstring)
        return {"attention_penalty": self.penalty * per_caption.mean()}

    def policy(self, log_prob, entropy):
        return PolicyTerms(log_prob, entropy, self.entropy_weight, self.reward_baseline)


Attention = Literal["soft", "hard"]


@register_model(task="captioning")
def show_attend_tell(vocab_size: int, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
                     trainable: Trainable = "none", attention: Attention = "soft", embed_dim: int = 512,
                     hidden_size: int = 512, attention_dim: int = 512, dropout: float = 0.5, penalty: float = 1.0,
                     soft_prob: float = 0.5, entropy_weight: float = 0.01,
                     baseline_decay: float = 0.9, positions: bool = False) -> ShowAttendTell:
    """Show, Attend and Tell, soft or hard attention (Xu et al. 2015), EfficientNet-Lite0 regions"""
    return ShowAttendTell(build_encoder(encoder, pretrained, trainable), vocab_size, embed_dim=embed_dim,
                          hidden_size=hidden_size, attention_dim=attention_dim, dropout=dropout, penalty=penalty,
                          attention=attention, soft_prob=soft_prob, entropy_weight=entropy_weight,
                          baseline_decay=baseline_decay, positions=positions)


@register_model(task="captioning")
def show_attend_tell_tiny(vocab_size: int, *, encoder: EncoderSpec = None, pretrained: bool = False,
                          trainable: Trainable = "all", attention: Attention = "soft", embed_dim: int = 32,
                          hidden_size: int = 64, attention_dim: int = 32, dropout: float = 0.0, penalty: float = 1.0,
                          soft_prob: float = 0.5, entropy_weight: float = 0.01,
                          baseline_decay: float = 0.9, positions: bool = False) -> ShowAttendTell:
    """Show, Attend and Tell, soft or hard attention, with the tiny CNN (4x4 regions) for tests"""
    return ShowAttendTell(build_encoder(encoder, pretrained, trainable, TINY_MAP_ENCODER), vocab_size,
                          embed_dim=embed_dim, hidden_size=hidden_size, attention_dim=attention_dim, dropout=dropout,
                          penalty=penalty, attention=attention, soft_prob=soft_prob, entropy_weight=entropy_weight,
                          baseline_decay=baseline_decay, positions=positions)
