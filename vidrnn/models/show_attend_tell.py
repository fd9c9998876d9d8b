"""Show, Attend and Tell (Xu, Ba, Kiros, Cho, Courville, Salakhutdinov, Zemel, Bengio, ICML 2015,
arXiv:1502.03044): an image captioner whose LSTM decoder attends over the regions of a CNN's
last convolutional map. Soft (deterministic) attention; hard attention is still to come.

* Annotations ``a_1..a_L``: the frame encoder's last map ``(C, h, w)`` as ``L = h w`` vectors of
  size ``D = C`` (any :class:`~vidrnn.layers.encoders.FrameEncoder`: EfficientNet-Lite0, timm,
  the tiny CNN).
* Initial state: ``h_0 = tanh(f_init_h(mean_i a_i))``, ``c_0 = tanh(f_init_c(mean_i a_i))``
  (the paper's MLPs as one linear layer each; tanh keeps the state in the LSTM's range).
* Attention: ``e_{t,i} = f_att(a_i, h_{t-1})``, the MLP ``v^T tanh(W h + U a_i)``
  (:class:`~vidrnn.layers.attention.AdditiveAttention`), ``alpha_t = softmax(e_t)``,
  ``z_t = beta_t sum_i alpha_{t,i} a_i`` with the gating scalar ``beta_t = sigma(f_beta(h_{t-1}))``
  (their section 4.2.1).
* Decoder: ``(h_t, c_t) = LSTM([E y_{t-1}; z_t], (h_{t-1}, c_{t-1}))``; the deep output layer
  ``p(y_t) ∝ exp(L_o(E y_{t-1} + L_h h_t + L_z z_t))`` (their eq. 7) with dropout before ``L_o``.
* The doubly stochastic regulariser ``lambda sum_i (1 - sum_t alpha_{t,i})^2`` (eq. 14,
  ``lambda = penalty``, 1 by default) over the caption's real (non-padding) steps, returned in
  :attr:`CaptionOutput.aux_losses`.

Deviation: the paper's ``f_init`` are MLPs with a hidden layer; here one linear layer each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from vidrnn.layers.attention import AdditiveAttention
from vidrnn.layers.decoding import beam_search, greedy_decode
from vidrnn.layers.encoders import FrameEncoder
from vidrnn.models.base import TINY_MAP_ENCODER, EncoderSpec, Trainable, build_encoder
from vidrnn.registry import register_model

__all__ = ["CaptionOutput", "ShowAttendTell", "caption_attention_penalty"]


@dataclass
class CaptionOutput:
    """What a captioner returns under teacher forcing.

    Attributes:
        logits: ``(B, T - 1, V)``, the prediction of token ``t + 1`` from tokens ``<= t``.
        attention: ``(B, T - 1, L)`` weights over the ``L`` regions (rows sum to 1).
        aux_losses: named losses to add to the cross-entropy (the attention penalty), each a scalar.
    """

    logits: torch.Tensor
    attention: torch.Tensor | None = None
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)


def caption_attention_penalty(weights: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_i (1 - sum_t alpha_{t,i})^2`` per caption, over the real steps (Xu et al. eq. 14).

    Shape:
        weights ``(B, T, L)``, step_mask ``(B, T)`` bool (True: a real step) -> ``(B,)``.
    """
    if step_mask is not None:
        weights = weights * step_mask[..., None].to(weights.dtype)
    return (1.0 - weights.sum(dim=1)).square().sum(dim=-1)


class ShowAttendTell(nn.Module):
    """Soft-attention image captioner (see the module docstring).

    Args:
        encoder: the CNN giving the annotation map.
        vocab_size: V (with ``<pad>`` = 0, ``<start>``, ``<end>``, ``<unk>``; see
            :class:`vidrnn.data.captions.CaptionVocabulary`).
        embed_dim: m, the word embedding size.
        hidden_size: n, the LSTM's size.
        attention_dim: hidden size of ``f_att``.
        dropout: before the deep output layer.
        penalty: lambda of the doubly stochastic regulariser (0: off).
        pad: the padding index (its embedding is zero and it is ignored by the penalty).

    Shape:
        ``forward(images (B, 3, H, W) in [0, 1], captions (B, T) int64 starting with <start>)``
        -> :class:`CaptionOutput`; ``generate(images, start=, end=, beam_size=, max_length=)`` ->
        ``(tokens (B, L), score (B,))``.
    """

    def __init__(self, encoder: FrameEncoder, vocab_size: int, *, embed_dim: int = 512, hidden_size: int = 512,
                 attention_dim: int = 512, dropout: float = 0.5, penalty: float = 1.0, pad: int = 0):
        super().__init__()
        if vocab_size < 5:
            raise ValueError(f"vocab_size must cover the 4 special tokens and a word, got {vocab_size}")
        self.encoder, self.vocab_size, self.pad, self.penalty = encoder, vocab_size, pad, float(penalty)
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

    def annotations(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> the region vectors ``a (B, L, D)``.

        Raises:
            ValueError: not a batch of RGB images.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W) RGB in [0, 1], got shape {tuple(images.shape)}")
        return self.encoder.forward_spatial(images[:, None])[:, 0]

    def initial_state(self, a: torch.Tensor):
        """The decoder state ``(h_0, c_0, a, U a)`` for annotations ``a (B, L, D)`` (every entry's
        first dimension is B, so beam search can reorder it)."""
        mean = a.mean(dim=1)
        return torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)), a, self.attention.project_keys(a)

    def _step(self, tokens: torch.Tensor, state):
        h, c, a, ua = state
        context, alpha = self.attention(h, a, projected_keys=ua)  # (B, D), (B, L)
        z = torch.sigmoid(self.f_beta(h)) * context
        e = self.embed(tokens)
        h, c = self.lstm(torch.cat([e, z], dim=-1), (h, c))
        logits = self.L_o(self.dropout(e + self.L_h(h) + self.L_z(z)))
        return logits, (h, c, a, ua), alpha

    def forward(self, images: torch.Tensor, captions: torch.Tensor) -> CaptionOutput:
        a = self.annotations(images)
        state = self.initial_state(a)
        logits, alphas = [], []
        for t in range(captions.shape[1] - 1):  # teacher forcing: the true previous word
            out, state, alpha = self._step(captions[:, t], state)
            logits.append(out)
            alphas.append(alpha)
        logits, alphas = torch.stack(logits, 1), torch.stack(alphas, 1)
        aux = {}
        if self.penalty:
            real = captions[:, 1:] != self.pad  # the steps that predict a real token
            aux["attention_penalty"] = self.penalty * caption_attention_penalty(alphas, real).mean()
        return CaptionOutput(logits, alphas, aux)

    def decode_step(self, tokens: torch.Tensor, state):
        """One decoding step for :mod:`vidrnn.layers.decoding`: ``(log_probs (N, V), state)``."""
        logits, state, _ = self._step(tokens, state)
        return torch.log_softmax(logits.float(), dim=-1), state

    @torch.no_grad()
    def generate(self, images: torch.Tensor, *, start: int, end: int, beam_size: int = 1, max_length: int = 20,
                 length_penalty: float = 1.0):
        """Captions by greedy decoding (``beam_size=1``) or beam search: ``(tokens (B, L), score (B,))``."""
        state = self.initial_state(self.annotations(images))
        if beam_size == 1:
            return greedy_decode(self.decode_step, state, images.shape[0], start=start, end=end,
                                 max_length=max_length, pad=self.pad)
        return beam_search(self.decode_step, state, images.shape[0], start=start, end=end, max_length=max_length,
                           beam_size=beam_size, length_penalty=length_penalty, pad=self.pad)


@register_model(task="captioning")
def show_attend_tell(vocab_size: int, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
                     trainable: Trainable = "none", embed_dim: int = 512, hidden_size: int = 512,
                     attention_dim: int = 512, dropout: float = 0.5, penalty: float = 1.0) -> ShowAttendTell:
    """Show, Attend and Tell, soft attention (Xu et al. 2015), EfficientNet-Lite0 regions"""
    return ShowAttendTell(build_encoder(encoder, pretrained, trainable), vocab_size, embed_dim=embed_dim,
                          hidden_size=hidden_size, attention_dim=attention_dim, dropout=dropout, penalty=penalty)


@register_model(task="captioning")
def show_attend_tell_tiny(vocab_size: int, *, encoder: EncoderSpec = None, pretrained: bool = False,
                          trainable: Trainable = "all", embed_dim: int = 32, hidden_size: int = 64,
                          attention_dim: int = 32, dropout: float = 0.0, penalty: float = 1.0) -> ShowAttendTell:
    """Show, Attend and Tell, soft attention, with the tiny CNN (4x4 regions) for tests"""
    return ShowAttendTell(build_encoder(encoder, pretrained, trainable, TINY_MAP_ENCODER), vocab_size,
                          embed_dim=embed_dim, hidden_size=hidden_size, attention_dim=attention_dim, dropout=dropout,
                          penalty=penalty)
