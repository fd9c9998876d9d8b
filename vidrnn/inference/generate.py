"""Sampling text from a character-level language model (what ``vidrnn sample`` calls).

The model reads the prime text, then each step picks the next character from
``softmax(logits / temperature)`` (optionally only among the ``top_k`` most likely; greedy:
the most likely one) and feeds it back in, carrying the hidden state. Lower temperatures give
likelier, more repetitive text; temperature -> 0 is greedy decoding.
"""

from __future__ import annotations

import math

import torch

from vidrnn.io.text import Vocabulary
from vidrnn.errors import DataError

__all__ = ["sample_text", "next_character"]


def next_character(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                   generator: torch.Generator | None = None) -> int:
    """The index of the next character from ``logits (V,)``: greedy when ``temperature == 0``,
    else a draw from ``softmax(logits / temperature)`` restricted to the ``top_k`` largest.

    Raises:
        ValueError: a negative temperature or ``top_k < 1``.
    """
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0: greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    logits = logits.float()
    if temperature == 0:
        return int(logits.argmax())
    logits = (logits - logits.max()) / temperature  # the likeliest at 0: no overflow for tiny temperatures
    if top_k is not None and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


@torch.inference_mode()
def sample_text(model: torch.nn.Module, vocab: Vocabulary | list[str], prime: str = "\n", length: int = 500, *,
                temperature: float = 1.0, top_k: int | None = None, seed: int | None = None) -> str:
    """``prime`` followed by ``length`` sampled characters.

    Args:
        model: a character-level language model (``forward(tokens (1, T), state) -> (logits, state)``).
        vocab: its vocabulary (``model.vidrnn.vocab`` for a loaded checkpoint).
        prime: text to start from (every character must be in the vocabulary).
        length: characters to generate.
        temperature: > 0 divides the logits; 0 is greedy (always the most likely character).
        top_k: sample only among the ``k`` most likely characters.
        seed: makes the sample reproducible (same seed, same text).

    Raises:
        DataError: an empty prime, or one with characters outside the vocabulary.
        ValueError: a negative length or temperature, or ``top_k < 1``.
    """
    vocab = vocab if isinstance(vocab, Vocabulary) else Vocabulary(vocab)
    if not prime:
        raise DataError("--prime: give at least one character to start from")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0: greedy), got {temperature}")
    ids = vocab.encode(prime, what=f"--prime {prime!r}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits, state = model(ids.to(device)[None], None)
        out = []
        for _ in range(length):
            nxt = next_character(logits[0, -1], temperature=temperature, top_k=top_k, generator=generator)
            out.append(nxt)
            logits, state = model(torch.tensor([[nxt]], device=device), state)
    finally:
        model.train(was_training)
    return prime + vocab.decode(out)
