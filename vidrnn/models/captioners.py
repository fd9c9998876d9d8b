"""Captioners: one base class for every image and video captioning model, and the models that
need no attention over regions -- the plain CNN-to-LSTM baseline (Show and Tell, with the image
fed once or at every step), S2VT and the temporal-attention video decoder.

Every captioner is a recurrent decoder written as one step,
``_step(tokens (B,), state) -> (logits (B, V), state, extras)``, over a state made from the
image or video by ``initial_state(media)``. The base class turns that into

* ``forward(media, captions, sample_prob=0)`` -- teacher forcing: the true previous word (or,
  with probability ``sample_prob``, the model's own previous prediction: scheduled sampling,
  Bengio et al. 2015) at every step; a :class:`CaptionOutput`;
* ``decode_step`` / ``generate`` -- greedy decoding and batched beam search
  (:mod:`vidrnn.layers.decoding`);
* ``attend(media, tokens)`` -- the attention weights behind a given caption (the figures of
  ``vidrnn predict --attention``).

Token conventions: :class:`vidrnn.data.captions.CaptionVocabulary` (``<pad>`` = 0).

Models here:

* :class:`ShowAndTell` -- the baseline: a CNN's pooled vector, an LSTM decoder (Vinyals, Toshev,
  Bengio, Erhan, "Show and Tell", CVPR 2015): ``feed="first"`` gives the image once, as the
  LSTM's input before ``<start>`` (their setting); ``feed="every"`` concatenates it to the word
  embedding at every step (Mao et al.'s m-RNN / Donahue et al.'s LRCN captioner).
* :class:`S2VT` -- Venugopalan, Rohrbach, Donahue, Mooney, Darrell, Saenko, "Sequence to
  Sequence -- Video to Text", ICCV 2015: two stacked LSTMs; in the encoding stage the first
  reads the frame features and the second gets its output and a padding word (zeros); in the
  decoding stage the first gets padding frames (zeros) and the second its output and the
  previous word. Both LSTMs start from Keras's initialisation (Glorot input weights, orthogonal
  recurrent weights, forget-gate bias ``forget_bias`` = 1; :func:`~vidrnn.layers.rnn_cells.init_lstm`;
  the paper, in Caffe, does not say): with torch's default the gradient reaching the frame encoder
  was ~1000x smaller than the temporal-attention decoder's, and the model learned one caption
  that ignores the video (train loss flat at the language prior for 30 epochs on Digit Events).
* :class:`TemporalAttentionCaptioner` -- Yao, Torabi, Cho, Ballas, Pal, Larochelle, Courville,
  "Describing Videos by Exploiting Temporal Structure", ICCV 2015: the decoder attends over all
  frames at every word. The steps are Luong, Pham, Manning (EMNLP 2015): an LSTM encoder's
  states ``h̄_s``; decoder state ``h_t``; ``score = h_t · h̄_s`` (dot product), softmax over
  frames, context ``c_t = sum_s a_{t,s} h̄_s``, ``h̃_t = tanh(W_c [c_t; h_t])``, ``p(y_t) =
  softmax(W_s h̃_t)``, and ``h̃_t`` fed with the next word (input feeding).
  Deviation from Yao et al.: Luong's dot-product score instead of their additive one
  (``score="additive"`` gives theirs) and no 3D-CNN local features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn as nn

from vidrnn.layers.attention import AdditiveAttention, DotProductAttention, LuongOutput
from vidrnn.layers.decoding import beam_search, greedy_decode
from vidrnn.layers.encoders import FrameEncoder
from vidrnn.layers.reinforce import PolicyTerms
from vidrnn.layers.rnn_cells import init_lstm
from vidrnn.models.base import TINY_VECTOR_ENCODER, EncoderSpec, Trainable, build_encoder
from vidrnn.registry import register_model

__all__ = ["CaptionOutput", "Captioner", "ShowAndTell", "S2VT", "TemporalAttentionCaptioner",
           "caption_attention_penalty"]


@dataclass
class CaptionOutput:
    """What a captioner returns under teacher forcing.

    Attributes:
        logits: ``(B, T - 1, V)``, the prediction of token ``t + 1`` from tokens ``<= t``.
        attention: ``(B, T - 1, L)`` weights over the ``L`` regions or frames (rows sum to 1),
            or None for models without attention.
        aux_losses: named losses to add to the cross-entropy (the attention penalty), each a scalar.
        policy: hard attention in training: the REINFORCE terms (the task calls
            ``policy.surrogate(reward)`` with the caption's log-likelihood as reward).
    """

    logits: torch.Tensor
    attention: torch.Tensor | None = None
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    policy: PolicyTerms | None = None


def caption_attention_penalty(weights: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_i (1 - sum_t alpha_{t,i})^2`` per caption, over the real steps (Xu et al. eq. 14).

    Shape:
        weights ``(B, T, L)``, step_mask ``(B, T)`` bool (True: a real step) -> ``(B,)``.
    """
    if step_mask is not None:
        weights = weights * step_mask[..., None].to(weights.dtype)
    return (1.0 - weights.sum(dim=1)).square().sum(dim=-1)


class Captioner(nn.Module):
    """Base class of the captioners (see the module docstring).

    Subclasses set ``media`` (``"image"``: input ``(B, 3, H, W)``; ``"video"``: ``(B, T, 3, H,
    W)``, both in [0, 1]) and ``attends_to`` (``"regions"``, ``"frames"`` or None) and define
    :meth:`initial_state` and :meth:`_step`.

    Args:
        vocab_size: V (the four special tokens included).
        pad: the padding index.
    """

    media: str = "image"
    attends_to: str | None = None

    def __init__(self, vocab_size: int, pad: int = 0):
        super().__init__()
        if vocab_size < 5:
            raise ValueError(f"vocab_size must cover the 4 special tokens and a word, got {vocab_size}")
        self.vocab_size, self.pad = int(vocab_size), int(pad)

    # -- to define -------------------------------------------------------------------------
    def initial_state(self, media: torch.Tensor):
        """The decoder state for a batch of images or videos (every tensor's first dim is B)."""
        raise NotImplementedError

    def _advance(self, tokens: torch.Tensor, state) -> tuple[object, object, dict]:
        """One word up to the output layer: ``(features, state, extras)``; :meth:`_output` maps
        ``features`` (a tensor or a tuple of tensors, first dim B) to logits. ``extras`` may hold
        ``alpha (B, L)`` and, for hard attention in training, ``log_prob`` and ``entropy`` ``(B,)``."""
        raise NotImplementedError

    def _output(self, features):
        """Logits ``(..., V)`` from :meth:`_advance`'s features, for one step ``(B, ...)`` or
        all steps at once ``(B, T, ...)`` (default: ``self.out(features)``)."""
        return self.out(features)

    def _step(self, tokens: torch.Tensor, state) -> tuple[torch.Tensor, object, dict]:
        """One word: ``(logits (B, V), state, extras)``."""
        features, state, extras = self._advance(tokens, state)
        return self._output(features), state, extras

    def aux_losses(self, attention: torch.Tensor | None, captions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Losses added to the cross-entropy (none by default)."""
        return {}

    def policy(self, log_prob: torch.Tensor, entropy: torch.Tensor) -> PolicyTerms | None:
        """The REINFORCE terms of a sampling model (None by default)."""
        return None

    # -- shared ----------------------------------------------------------------------------
    def check_media(self, media: torch.Tensor) -> None:
        """Raise ValueError unless ``media`` is a batch of this model's kind of input."""
        if self.media == "image" and (media.dim() != 4 or media.shape[1] != 3):
            raise ValueError(f"{type(self).__name__} captions images: expected (B, 3, H, W) RGB in [0, 1], got shape "
                             f"{tuple(media.shape)}")
        if self.media == "video" and (media.dim() not in (3, 5) or (media.dim() == 5 and media.shape[2] != 3)):
            raise ValueError(f"{type(self).__name__} captions videos: expected (B, T, 3, H, W) RGB in [0, 1] (or cached "
                             f"features (B, T, D)), got shape {tuple(media.shape)}")

    def forward(self, media: torch.Tensor, captions: torch.Tensor, *, sample_prob: float = 0.0) -> CaptionOutput:
        """Teacher forcing over ``captions (B, T)`` (starting with ``<start>``, padded with
        ``<pad>``); with probability ``sample_prob`` per word and caption the model's own previous
        prediction (argmax) replaces the true previous word (scheduled sampling)."""
        self.check_media(media)
        state = self.initial_state(media)
        steps, alphas, log_probs, entropies = [], [], [], []
        prev = None
        for t in range(captions.shape[1] - 1):
            tokens = captions[:, t]
            if sample_prob > 0 and prev is not None:
                own = torch.rand(tokens.shape, device=tokens.device) < sample_prob
                tokens = torch.where(own, prev.argmax(-1), tokens)
            if sample_prob > 0:  # the next input needs this step's prediction
                out, state, extras = self._step(tokens, state)
                prev = out.detach()
            else:  # teacher forcing: the output layer runs once over all steps, after the loop
                out, state, extras = self._advance(tokens, state)
            steps.append(out)
            if "alpha" in extras:
                alphas.append(extras["alpha"])
            if "log_prob" in extras:
                log_probs.append(extras["log_prob"])
                entropies.append(extras["entropy"])
        attention = torch.stack(alphas, 1) if alphas else None
        real = captions[:, 1:] != self.pad  # the steps that predict a real token
        policy = None
        if log_probs:  # only the real steps' samples count
            lp, ent = torch.stack(log_probs, 1), torch.stack(entropies, 1)
            policy = self.policy((lp * real).sum(1), (ent * real).sum(1))
        if sample_prob > 0:
            logits = torch.stack(steps, 1)
        elif isinstance(steps[0], tuple):
            logits = self._output(tuple(torch.stack(parts, 1) for parts in zip(*steps)))
        else:
            logits = self._output(torch.stack(steps, 1))
        return CaptionOutput(logits, attention, self.aux_losses(attention, captions), policy)

    def decode_step(self, tokens: torch.Tensor, state):
        """One decoding step for :mod:`vidrnn.layers.decoding`: ``(log_probs (N, V), state)``."""
        logits, state, _ = self._step(tokens, state)
        return torch.log_softmax(logits.float(), dim=-1), state

    @torch.no_grad()
    def generate(self, media: torch.Tensor, *, start: int, end: int, beam_size: int = 1, max_length: int = 20,
                 length_penalty: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions by greedy decoding (``beam_size=1``) or beam search.

        Returns:
            ``(tokens (B, L), score (B,))``: the words after ``<start>`` up to and including
            ``<end>`` (``<pad>`` after it); the summed log-probability (greedy) or the
            length-normalised beam score.
        """
        self.check_media(media)
        state = self.initial_state(media)
        B = media.shape[0]
        if beam_size == 1:
            return greedy_decode(self.decode_step, state, B, start=start, end=end, max_length=max_length,
                                 pad=self.pad)
        return beam_search(self.decode_step, state, B, start=start, end=end, max_length=max_length,
                           beam_size=beam_size, length_penalty=length_penalty, pad=self.pad)

    @torch.no_grad()
    def attend(self, media: torch.Tensor, tokens: torch.Tensor, *, start: int) -> torch.Tensor | None:
        """The attention weights ``(B, n, L)`` with which the model reads each of the ``n`` words
        of ``tokens (B, n)`` (generated words after the ``start`` token), or None without attention."""
        if self.attends_to is None:
            return None
        first = torch.full_like(tokens[:, :1], start)
        return self.forward(media, torch.cat([first, tokens], 1)).attention


def _decoder_output(hidden_size: int, vocab_size: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, vocab_size))


# ============================================================================ Show and Tell (baseline)
class ShowAndTell(Captioner):
    """The plain CNN-to-LSTM captioner, the baseline of attention (see the module docstring).

    Args:
        encoder: the CNN (its pooled vector of size D).
        vocab_size: V.
        feed: ``"first"`` (the image projected to the embedding size is the LSTM's input at a
            step before ``<start>``; Vinyals et al.) or ``"every"`` (``[E y_{t-1}; W_I v]`` at
            every step).
        embed_dim, hidden_size: word embedding and LSTM sizes.
        dropout: before the output layer.

    Shape:
        ``forward(images (B, 3, H, W), captions (B, T))`` -> :class:`CaptionOutput` (no attention).
    """

    def __init__(self, encoder: FrameEncoder, vocab_size: int, *, feed: Literal["first", "every"] = "first",
                 embed_dim: int = 512, hidden_size: int = 512, dropout: float = 0.5, pad: int = 0):
        super().__init__(vocab_size, pad)
        if feed not in ("first", "every"):
            raise ValueError(f"feed={feed!r}: expected 'first' or 'every'")
        self.encoder, self.feed = encoder, feed
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad)
        self.image_proj = nn.Linear(encoder.feature_dim, embed_dim)
        self.lstm = nn.LSTMCell(embed_dim * (2 if feed == "every" else 1), hidden_size)
        self.out = _decoder_output(hidden_size, vocab_size, dropout)

    def initial_state(self, images):
        v = self.image_proj(self.encoder(images[:, None])[:, 0])  # (B, E)
        if self.feed == "first":  # the image is the input of step -1
            h, c = self.lstm(v)
            return h, c
        zero = v.new_zeros(v.shape[0], self.lstm.hidden_size)
        return zero, zero, v

    def _advance(self, tokens, state):
        e = self.embed(tokens)
        if self.feed == "every":
            h, c, v = state
            h, c = self.lstm(torch.cat([e, v], -1), (h, c))
            return h, (h, c, v), {}
        h, c = self.lstm(e, state)
        return h, (h, c), {}


# ============================================================================ S2VT
class S2VT(Captioner):
    """Sequence to Sequence -- Video to Text (see the module docstring).

    Args:
        encoder: the per-frame CNN (pooled vectors of size D); with a feature cache, the
            cache's vectors.
        vocab_size: V.
        embed_dim: word embedding size; frame_dim: the frame features' projection size.
        hidden_size: both LSTMs' size.
        dropout: on the frame features and before the output layer.
        forget_bias: the LSTMs' initial forget-gate bias (see the module docstring; the other
            weights are initialised as in Keras).

    Shape:
        ``forward(video (B, T, 3, H, W), captions (B, L))`` -> :class:`CaptionOutput`.
    """

    media = "video"

    def __init__(self, encoder: FrameEncoder, vocab_size: int, *, embed_dim: int = 500, frame_dim: int = 500,
                 hidden_size: int = 1000, dropout: float = 0.5, forget_bias: float = 1.0, pad: int = 0):
        super().__init__(vocab_size, pad)
        self.encoder = encoder
        self.frame_proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(encoder.feature_dim, frame_dim))
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad)
        self.lstm1 = nn.LSTMCell(frame_dim, hidden_size)
        self.lstm2 = nn.LSTMCell(hidden_size + embed_dim, hidden_size)
        self.out = _decoder_output(hidden_size, vocab_size, dropout)
        init_lstm(self, forget_bias)

    def initial_state(self, video):
        x = self.frame_proj(self.encoder(video))  # (B, T, F)
        B = x.shape[0]
        h1 = c1 = x.new_zeros(B, self.lstm1.hidden_size)
        h2 = c2 = x.new_zeros(B, self.lstm2.hidden_size)
        no_word = x.new_zeros(B, self.embed.embedding_dim)  # encoding stage: <pad> words
        for t in range(x.shape[1]):
            h1, c1 = self.lstm1(x[:, t], (h1, c1))
            h2, c2 = self.lstm2(torch.cat([h1, no_word], -1), (h2, c2))
        return h1, c1, h2, c2

    def _advance(self, tokens, state):
        h1, c1, h2, c2 = state
        no_frame = h1.new_zeros(h1.shape[0], self.lstm1.input_size)  # decoding stage: <pad> frames
        h1, c1 = self.lstm1(no_frame, (h1, c1))
        h2, c2 = self.lstm2(torch.cat([h1, self.embed(tokens)], -1), (h2, c2))
        return h2, (h1, c1, h2, c2), {}


# ============================================================================ temporal attention
class TemporalAttentionCaptioner(Captioner):
    """An attention decoder over the frames of a video (see the module docstring).

    Args:
        encoder: the per-frame CNN (pooled vectors of size D), or a feature cache's vectors.
        vocab_size: V.
        embed_dim: word embedding size.
        hidden_size: the encoder LSTM's and the decoder LSTM's size.
        score: ``"dot"`` (Luong: ``h_t · h̄_s``) or ``"additive"`` (Yao et al./Bahdanau:
            ``v^T tanh(W h_t + U h̄_s)``).
        dropout: on the frame features and before the output layer.

    Shape:
        ``forward(video (B, T, 3, H, W), captions (B, L))`` -> :class:`CaptionOutput` with
        ``attention (B, L - 1, T)``, the weight of every frame for every word.
    """

    media = "video"
    attends_to = "frames"

    def __init__(self, encoder: FrameEncoder, vocab_size: int, *, embed_dim: int = 256, hidden_size: int = 512,
                 score: Literal["dot", "additive"] = "dot", dropout: float = 0.5, pad: int = 0):
        super().__init__(vocab_size, pad)
        if score not in ("dot", "additive"):
            raise ValueError(f"score={score!r}: expected 'dot' or 'additive'")
        self.encoder = encoder
        self.frames = nn.Sequential(nn.Dropout(dropout), nn.Linear(encoder.feature_dim, hidden_size))
        self.encoder_lstm = nn.LSTM(hidden_size, hidden_size, batch_first=True)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad)
        self.decoder = nn.LSTMCell(embed_dim + hidden_size, hidden_size)  # [E y_{t-1}; h̃_{t-1}] (input feeding)
        self.score = DotProductAttention() if score == "dot" else AdditiveAttention(hidden_size, hidden_size,
                                                                                    hidden_size)
        self.combine = LuongOutput(hidden_size, hidden_size, hidden_size)
        self.out = _decoder_output(hidden_size, vocab_size, dropout)

    def initial_state(self, video):
        states, (h, c) = self.encoder_lstm(self.frames(self.encoder(video)))  # (B, T, H)
        h, c = h[0], c[0]
        return h, c, torch.zeros_like(h), states

    def _advance(self, tokens, state):
        h, c, h_tilde, states = state
        h, c = self.decoder(torch.cat([self.embed(tokens), h_tilde], -1), (h, c))
        context, alpha = self.score(h, states)  # (B, H), (B, T)
        h_tilde = self.combine(context, h)
        return h_tilde, (h, c, h_tilde, states), {"alpha": alpha}


# ============================================================================ builders
@register_model(task="captioning")
def show_tell(vocab_size: int, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
              trainable: Trainable = "none", feed: Literal["first", "every"] = "first", embed_dim: int = 512,
              hidden_size: int = 512, dropout: float = 0.5) -> ShowAndTell:
    """CNN-to-LSTM captioner without attention (Vinyals et al. 2015), the baseline of Show, Attend and Tell"""
    return ShowAndTell(build_encoder(encoder, pretrained, trainable), vocab_size, feed=feed, embed_dim=embed_dim,
                       hidden_size=hidden_size, dropout=dropout)


@register_model(task="captioning")
def show_tell_tiny(vocab_size: int, *, encoder: EncoderSpec = None, pretrained: bool = False,
                   trainable: Trainable = "all", feed: Literal["first", "every"] = "first", embed_dim: int = 32,
                   hidden_size: int = 64, dropout: float = 0.0) -> ShowAndTell:
    """CNN-to-LSTM captioner without attention, tiny CNN, for tests"""
    return ShowAndTell(build_encoder(encoder, pretrained, trainable, TINY_VECTOR_ENCODER), vocab_size, feed=feed,
                       embed_dim=embed_dim, hidden_size=hidden_size, dropout=dropout)


@register_model(task="captioning")
def s2vt(vocab_size: int, *, encoder: EncoderSpec = "efficientnet_lite0", pretrained: bool = True,
         trainable: Trainable = "none", embed_dim: int = 500, frame_dim: int = 500, hidden_size: int = 1000,
         dropout: float = 0.5, forget_bias: float = 1.0) -> S2VT:
    """S2VT video captioner: two stacked LSTMs, encoding then decoding (Venugopalan et al. 2015)"""
    return S2VT(build_encoder(encoder, pretrained, trainable), vocab_size, embed_dim=embed_dim, frame_dim=frame_dim,
                hidden_size=hidden_size, dropout=dropout, forget_bias=forget_bias)


@register_model(task="captioning")
def s2vt_tiny(vocab_size: int, *, encoder: EncoderSpec = None, pretrained: bool = False, trainable: Trainable = "all",
              embed_dim: int = 32, frame_dim: int = 32, hidden_size: int = 64, dropout: float = 0.0,
              forget_bias: float = 1.0) -> S2VT:
    """S2VT video captioner, tiny CNN, for tests"""
    return S2VT(build_encoder(encoder, pretrained, trainable, TINY_VECTOR_ENCODER), vocab_size, embed_dim=embed_dim,
                frame_dim=frame_dim, hidden_size=hidden_size, dropout=dropout, forget_bias=forget_bias)


@register_model(task="captioning")
def temporal_attention_captioner(vocab_size: int, *, encoder: EncoderSpec = "efficientnet_lite0",
                                 pretrained: bool = True, trainable: Trainable = "none", embed_dim: int = 256,
                                 hidden_size: int = 512, score: Literal["dot", "additive"] = "dot",
                                 dropout: float = 0.5) -> TemporalAttentionCaptioner:
    """Video captioner attending over frames with Luong's steps (Yao et al. 2015; Luong et al. 2015)"""
    return TemporalAttentionCaptioner(build_encoder(encoder, pretrained, trainable), vocab_size, embed_dim=embed_dim,
                                      hidden_size=hidden_size, score=score, dropout=dropout)


@register_model(task="captioning")
def temporal_attention_captioner_tiny(vocab_size: int, *, encoder: EncoderSpec = None, pretrained: bool = False,
                                      trainable: Trainable = "all", embed_dim: int = 32, hidden_size: int = 64,
                                      score: Literal["dot", "additive"] = "dot",
                                      dropout: float = 0.0) -> TemporalAttentionCaptioner:
    """Temporal-attention video captioner, tiny CNN, for tests"""
    return TemporalAttentionCaptioner(build_encoder(encoder, pretrained, trainable, TINY_VECTOR_ENCODER), vocab_size,
                                      embed_dim=embed_dim, hidden_size=hidden_size, score=score, dropout=dropout)
