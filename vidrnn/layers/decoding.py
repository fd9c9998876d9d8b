"""Decoding token sequences from a recurrent decoder: greedy and batched beam search.

Both work on any decoder written as one step::

    step(tokens (N,) int64, state) -> (log_probs (N, V), state)

where ``state`` is a tensor or a (nested) tuple/list/dict of tensors whose first dimension is
``N`` (for a captioner: the LSTM's ``(h, c)`` and the image's annotation vectors). The search
starts from ``start`` and stops a sequence at ``end``.

Beam search keeps the ``beam_size`` best partial sequences of every item (all items in one
batch of ``B * beam_size`` rows), ranks finished ones by ``sum log p / length ** length_penalty``
(``length_penalty = 0``: the plain sum; 1: the mean per token; ``length`` counts the ``<end>``
token) and always returns a result: a beam that never emits ``<end>`` within ``max_length``
tokens competes with its score at that length (the popular PyTorch captioning tutorial's beam
search returns nothing in that case and crashes).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

__all__ = ["greedy_decode", "beam_search", "map_state"]

Step = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


def map_state(state, fn: Callable[[torch.Tensor], torch.Tensor]):
    """``fn`` applied to every tensor of a (nested) tuple/list/dict state; None stays None."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, dict):
        return {k: map_state(v, fn) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(s, fn) for s in state)
    raise TypeError(f"decoder state: expected tensors in tuples/lists/dicts, got {type(state).__name__}")


def _check(batch_size: int, max_length: int, beam_size: int = 1) -> None:
    if batch_size < 1 or max_length < 1 or beam_size < 1:
        raise ValueError(f"batch_size, max_length and beam_size must be >= 1, got {batch_size}, {max_length}, "
                         f"{beam_size}")


def _pad_after_end(tokens: torch.Tensor, end: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens after the first ``end`` set to ``pad``; and each row's length (the ``end`` included,
    or the full length when there is none)."""
    is_end = tokens == end
    has_end = is_end.any(-1)
    first = torch.where(has_end, is_end.float().argmax(-1), torch.full_like(has_end, tokens.shape[-1] - 1,
                                                                          dtype=torch.long))
    lengths = first + 1
    after = torch.arange(tokens.shape[-1], device=tokens.device) >= lengths[..., None]
    return tokens.masked_fill(after, pad), lengths


@torch.no_grad()
def greedy_decode(step: Step, state, batch_size: int, *, start: int, end: int, max_length: int,
                  pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The most likely token at every step.

    Returns:
        ``(tokens (B, L), log_prob (B,))``: ``L <= max_length`` tokens after ``start``, the first
        ``end`` kept and ``pad`` after it; the summed log-probability up to and including ``end``.

    Raises:
        ValueError: a batch size or maximum length below 1.
    """
    _check(batch_size, max_length)
    device = next((t.device for t in _tensors(state)), torch.device("cpu"))
    last = torch.full((batch_size,), start, dtype=torch.long, device=device)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    total = torch.zeros(batch_size, device=device)
    out = []
    for _ in range(max_length):
        logp, state = step(last, state)
        lp, last = logp.float().max(-1)
        total = total + torch.where(done, torch.zeros_like(lp), lp)
        out.append(last)
        done = done | (last == end)
        if bool(done.all()):
            break
    tokens, _ = _pad_after_end(torch.stack(out, 1), end, pad)
    return tokens, total


def _tensors(state):
    found: list[torch.Tensor] = []
    map_state(state, lambda t: found.append(t) or t)
    return found


@torch.no_grad()
def beam_search(step: Step, state, batch_size: int, *, start: int, end: int, max_length: int,
                beam_size: int = 5, length_penalty: float = 1.0, pad: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched beam search (see the module docstring).

    Args:
        step: the decoder step; state: its initial state, first dimension ``B``.
        batch_size: B.
        start, end, pad: token indices.
        max_length: tokens generated at most (``end`` included).
        beam_size: k (1 is greedy decoding).
        length_penalty: the exponent of the length normalisation.

    Returns:
        ``(tokens (B, L), score (B,))``: the best sequence of each item (``pad`` after its
        ``end``) and its normalised score.

    Raises:
        ValueError: a batch size, maximum length or beam size below 1.
    """
    _check(batch_size, max_length, beam_size)
    B, k = batch_size, beam_size
    state = map_state(state, lambda t: t.repeat_interleave(k, dim=0))  # (B k, ...)
    device = next((t.device for t in _tensors(state)), torch.device("cpu"))
    scores = torch.full((B, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start equal: expand only the first
    seqs = torch.empty(B, k, 0, dtype=torch.long, device=device)
    finished = torch.zeros(B, k, dtype=torch.bool, device=device)
    last = torch.full((B * k,), start, dtype=torch.long, device=device)
    offsets = (torch.arange(B, device=device) * k)[:, None]
    for _ in range(max_length):
        logp, state = step(last, state)
        logp = logp.float().view(B, k, -1)
        V = logp.shape[-1]
        # a finished beam continues only with <end>, at no cost: its score stays what it was
        stay = torch.full_like(logp, float("-inf"))
        stay[..., end] = 0.0
        logp = torch.where(finished[..., None], stay, logp)
        cand = (scores[..., None] + logp).view(B, k * V)
        scores, idx = cand.topk(k, dim=-1)
        beam, token = idx // V, idx % V
        rows = (offsets + beam).view(-1)
        state = map_state(state, lambda t: t.index_select(0, rows))
        seqs = torch.cat([seqs.gather(1, beam[..., None].expand(-1, -1, seqs.shape[-1])), token[..., None]], -1)
        finished = finished.gather(1, beam) | (token == end)
        last = token.view(-1)
        if bool(finished.all()):
            break
    tokens, lengths = _pad_after_end(seqs, end, pad)
    normed = scores / lengths.float() ** length_penalty
    best = normed.argmax(-1)
    pick = best[:, None, None].expand(-1, 1, tokens.shape[-1])
    return tokens.gather(1, pick)[:, 0], normed.gather(1, best[:, None])[:, 0]
