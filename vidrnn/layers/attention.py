"""Attention layers: every one returns ``(context, weights)`` and takes a key padding mask.

* :class:`DotProductAttention` -- ``score = q·k`` ("dot", Luong et al. 2015), optionally
  scaled by ``1/sqrt(d)`` (Vaswani et al. 2017).
* :class:`GeneralAttention` -- ``score = q^T W k`` ("general", Luong et al. 2015).
* :class:`AdditiveAttention` -- ``score = v^T tanh(W q + U k)`` (Bahdanau, Cho, Bengio 2015,
  arXiv:1409.0473; the ``f_att`` MLP of Xu et al. 2015, arXiv:1502.03044; Luong's "concat"
  is the same function with ``[W U]`` as one matrix).
* :class:`LuongOutput` -- the attentional state ``h̃ = tanh(W_c [c; h])`` (Luong, Pham,
  Manning 2015, "Effective Approaches to Attention-based Neural Machine Translation",
  arXiv:1508.04025).
* :class:`MapPositions` -- adds a learned function of each region's place in a map to its
  features, so that what is attended also says where it is (CoordConv-style, Liu et al. 2018,
  arXiv:1807.03247, with Fourier features of the coordinates).
* :class:`MultiHeadAttention` -- scaled dot-product multi-head attention on
  ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels where available).

Conventions: queries ``(B, D_q)`` (one query) or ``(B, L, D_q)``; keys ``(B, N, D_k)``; values
``(B, N, D_v)`` (default: the keys). ``key_padding_mask (B, N)`` is True at positions to
ignore (torch's convention, as ``nn.MultiheadAttention``): they get exactly zero weight. A
query whose keys are all masked gets all-zero weights and a zero context (not NaN).
Weights are non-negative and sum to 1 over the keys otherwise.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["masked_softmax", "DotProductAttention", "GeneralAttention", "AdditiveAttention", "LuongOutput",
           "MapPositions", "MultiHeadAttention", "ATTENTION"]


def masked_softmax(scores: torch.Tensor, key_padding_mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` with masked positions at exactly 0; all-masked rows give zeros.

    Args:
        scores: ``(..., N)`` attention logits.
        key_padding_mask: bool, broadcastable to ``scores``, True = ignore; or None.

    Raises:
        ValueError: a mask that is not boolean.
    """
    if key_padding_mask is None:
        return scores.softmax(dim)
    if key_padding_mask.dtype != torch.bool:
        raise ValueError(f"key_padding_mask must be a bool tensor (True = ignore), got {key_padding_mask.dtype}")
    scores = scores.masked_fill(key_padding_mask, float("-inf"))
    w = scores.softmax(dim)
    return w.masked_fill(key_padding_mask, 0.0).nan_to_num(0.0)  # all-masked rows: 0/0 -> 0


def _prepare(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor | None, mask: torch.Tensor | None):
    if keys.dim() != 3:
        raise ValueError(f"keys: expected (B, N, D_k), got {tuple(keys.shape)}")
    single = query.dim() == 2
    q = query[:, None] if single else query  # (B, L, D_q)
    if q.dim() != 3 or q.shape[0] != keys.shape[0]:
        raise ValueError(f"query: expected (B, D_q) or (B, L, D_q) with B = {keys.shape[0]}, got {tuple(query.shape)}")
    v = keys if values is None else values
    if v.shape[:2] != keys.shape[:2]:
        raise ValueError(f"values {tuple(v.shape)} must match keys {tuple(keys.shape)} in (B, N)")
    m = None
    if mask is not None:
        if mask.shape != keys.shape[:2]:
            raise ValueError(f"key_padding_mask: expected (B, N) = {tuple(keys.shape[:2])}, got {tuple(mask.shape)}")
        m = mask[:, None, :]  # (B, 1, N)
    return q, v, m, single


def _finish(scores: torch.Tensor, v: torch.Tensor, m, single: bool):
    w = masked_softmax(scores, m)  # (B, L, N)
    ctx = torch.bmm(w.to(v.dtype), v)  # (B, L, D_v)
    return (ctx[:, 0], w[:, 0]) if single else (ctx, w)


class DotProductAttention(nn.Module):
    """``score(q, k) = q·k`` (Luong "dot"); ``scaled=True`` divides by ``sqrt(D)``.

    Shape:
        query ``(B, D)`` or ``(B, L, D)``, keys ``(B, N, D)``, values ``(B, N, D_v)`` ->
        ``(context (B[, L], D_v), weights (B[, L], N))``.
    """

    def __init__(self, *, scaled: bool = False):
        super().__init__()
        self.scaled = scaled

    def forward(self, query, keys, values=None, key_padding_mask=None):
        q, v, m, single = _prepare(query, keys, values, key_padding_mask)
        if q.shape[-1] != keys.shape[-1]:
            raise ValueError(f"dot-product attention needs D_q == D_k, got {q.shape[-1]} and {keys.shape[-1]}")
        scores = torch.bmm(q, keys.transpose(1, 2))  # (B, L, N)
        if self.scaled:
            scores = scores / math.sqrt(q.shape[-1])
        return _finish(scores, v, m, single)


class GeneralAttention(nn.Module):
    """``score(q, k) = q^T W k`` (Luong "general").

    Args:
        query_dim: D_q. key_dim: D_k.

    Shape:
        as :class:`DotProductAttention`, with ``D_q`` and ``D_k`` free.
    """

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        self.W = nn.Linear(key_dim, query_dim, bias=False)

    def forward(self, query, keys, values=None, key_padding_mask=None):
        q, v, m, single = _prepare(query, keys, values, key_padding_mask)
        scores = torch.bmm(q, self.W(keys).transpose(1, 2))  # (B, L, N)
        return _finish(scores, v, m, single)


class AdditiveAttention(nn.Module):
    """``score(q, k) = v^T tanh(W q + U k + b)`` (Bahdanau et al.; Xu et al.'s ``f_att``).

    Deviation: ``U`` has a bias ``b`` (the papers' equations have none; it shifts every key's
    score inside the tanh, which the paper's formulas can express only through ``W q``).
    ``W`` and ``v`` have no bias (a bias on ``v`` cancels in the softmax).

    Args:
        query_dim: D_q. key_dim: D_k. hidden_dim: size of the tanh layer.

    Shape:
        as :class:`DotProductAttention`, with ``D_q`` and ``D_k`` free.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int = 128):
        super().__init__()
        self.W = nn.Linear(query_dim, hidden_dim, bias=False)
        self.U = nn.Linear(key_dim, hidden_dim, bias=True)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """``U k`` for ``keys (B, N, D_k)``; pass it as ``projected_keys`` when the same keys
        serve many queries (one projection for a whole sequence)."""
        return self.U(keys)

    def forward(self, query, keys, values=None, key_padding_mask=None, *, projected_keys=None):
        q, v, m, single = _prepare(query, keys, values, key_padding_mask)
        uk = self.U(keys) if projected_keys is None else projected_keys  # (B, N, H)
        scores = self.v(torch.tanh(self.W(q)[:, :, None, :] + uk[:, None])).squeeze(-1)  # (B, L, N)
        return _finish(scores, v, m, single)


class LuongOutput(nn.Module):
    """Attentional output ``h̃ = tanh(W_c [c; h])`` (Luong et al. 2015, eq. 5).

    Shape:
        context ``(..., D_c)``, query ``(..., D_q)`` -> ``(..., out_dim)``.
    """

    def __init__(self, context_dim: int, query_dim: int, out_dim: int):
        super().__init__()
        self.W_c = nn.Linear(context_dim + query_dim, out_dim, bias=False)

    def forward(self, context: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.W_c(torch.cat([context, query], dim=-1)))


class MultiHeadAttention(nn.Module):
    """Scaled dot-product multi-head attention on ``F.scaled_dot_product_attention``.

    Args:
        embed_dim: model size E (= query size), split into ``num_heads`` heads.
        num_heads: h (E must be divisible by h).
        key_dim, value_dim: sizes of keys/values (default E).
        dropout: attention dropout (training only).
        need_weights: also compute the head-averaged weights (an extra ``(B, L, N)`` softmax;
            the context still comes from the fused kernel).

    Shape:
        query ``(B, D_q)`` or ``(B, L, E)``, keys ``(B, N, D_k)``, values ``(B, N, D_v)`` ->
        ``(context (B[, L], E), weights (B[, L], N) averaged over heads, or None)``.
    """

    def __init__(self, embed_dim: int, num_heads: int = 1, *, key_dim: int | None = None,
                 value_dim: int | None = None, dropout: float = 0.0, need_weights: bool = True):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.embed_dim, self.num_heads, self.dropout, self.need_weights = embed_dim, num_heads, dropout, need_weights
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(key_dim or embed_dim, embed_dim)
        self.v_proj = nn.Linear(value_dim or key_dim or embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, query, keys, values=None, key_padding_mask=None):
        q, v, m, single = _prepare(query, keys, values, key_padding_mask)
        B, L, _ = q.shape
        h = self.num_heads
        d = self.embed_dim // h

        def heads(x):  # (B, S, E) -> (B, h, S, d)
            return x.unflatten(-1, (h, d)).transpose(1, 2)

        qh, kh, vh = heads(self.q_proj(q)), heads(self.k_proj(keys)), heads(self.v_proj(v))
        attn_mask = None if m is None else ~m[:, None]  # (B, 1, 1, N), True = attend
        p = self.dropout if self.training else 0.0
        ctx = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=attn_mask, dropout_p=p)  # (B, h, L, d)
        if m is not None:  # all-masked rows: SDPA gives NaN; define them as zero
            ctx = ctx.masked_fill(m.all(-1)[:, None, :, None], 0.0)
        out = self.out_proj(ctx.transpose(1, 2).reshape(B, L, self.embed_dim))  # (B, L, E)
        w = None
        if self.need_weights:
            scores = qh @ kh.transpose(-1, -2) / math.sqrt(d)  # (B, h, L, N)
            w = masked_softmax(scores, None if m is None else m[:, None]).mean(1)  # (B, L, N)
        if single:
            return out[:, 0], (None if w is None else w[:, 0])
        return out, w


class MapPositions(nn.Module):
    """Adds ``W phi(y, x)`` to each cell of a map, ``phi`` the cell's coordinates in [-1, 1] and
    their sines and cosines at ``frequencies`` multiples of pi.

    Without it a soft-attention context ``sum_i alpha_i a_i`` says *what* was attended but not
    *where* (a CNN's region features carry their place only through zero padding at the border),
    so words like "at the top left" must be guessed; with it they can be read off the context.
    Works for any map size (the function is of the coordinates, not a table per cell).

    Args:
        channels: C, the map's channels.
        frequencies: number of sine/cosine frequencies per axis.

    Shape:
        ``(..., C, h, w)`` -> ``(..., C, h, w)``.
    """

    def __init__(self, channels: int, frequencies: int = 4):
        super().__init__()
        self.frequencies = int(frequencies)
        self.proj = nn.Linear(2 + 4 * self.frequencies, channels)

    def encoding(self, h: int, w: int, device=None, dtype=None) -> torch.Tensor:
        """``phi`` for an ``h x w`` map: ``(h, w, 2 + 4 * frequencies)``."""
        ys, xs = (torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype) if n > 1
                  else torch.zeros(1, device=device, dtype=dtype) for n in (h, w))
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)  # (h, w, 2)
        k = math.pi * torch.arange(1, self.frequencies + 1, device=device, dtype=dtype)
        angles = (grid[..., None] * k).flatten(-2)  # (h, w, 2F)
        return torch.cat([grid, angles.sin(), angles.cos()], dim=-1)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        h, w = maps.shape[-2:]
        pos = self.proj(self.encoding(h, w, maps.device, maps.dtype))  # (h, w, C)
        return maps + pos.permute(2, 0, 1)


ATTENTION = {"dot": DotProductAttention, "general": GeneralAttention, "additive": AdditiveAttention,
             "concat": AdditiveAttention, "multihead": MultiHeadAttention}
