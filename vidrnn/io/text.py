"""Reading text for character-level language models: a UTF-8 file with clear errors, and the
vocabulary (index <-> character). No Lightning here: sampling from a trained model needs only
this and the model (:mod:`vidrnn.inference.generate`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vidrnn.errors import DataError
from vidrnn.io.files import write_text

__all__ = ["read_text", "Vocabulary", "unigram_entropy", "save_vocab"]


def read_text(path: str | os.PathLike, max_chars: int | None = None) -> str:
    """The text of a UTF-8 file (the first ``max_chars`` characters if given).

    Raises:
        FileNotFoundError: no such file. DataError: empty, or not UTF-8 (names the offset).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"text file not found: {p}")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start} is not valid UTF-8; "
                        "convert the file, e.g. iconv -f latin1 -t utf-8)") from None
    if not text:
        raise DataError(f"{p}: empty text file (a language model needs text to learn from)")
    return text[:max_chars] if max_chars else text


class Vocabulary:
    """Characters <-> indices (sorted distinct characters; char-rnn's vocabulary has no unknown
    symbol, so text to encode must use only these characters).

    Args:
        chars: the characters in index order.

    Raises:
        ValueError: repeated characters, or fewer than 2.
    """

    def __init__(self, chars):
        self.chars = list(chars)
        if len(set(self.chars)) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise ValueError("a vocabulary is a list of distinct single characters")
        if len(self.chars) < 2:
            raise ValueError(f"a vocabulary needs at least 2 characters, got {self.chars!r}")
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> "Vocabulary":
        """The distinct characters of ``text``, sorted."""
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.chars == other.chars

    def missing(self, text: str) -> list[str]:
        """The characters of ``text`` that are not in the vocabulary (sorted)."""
        return sorted(set(text) - set(self.index))

    def encode(self, text: str, what: str = "text") -> torch.Tensor:
        """``(len(text),)`` int64 indices.

        Raises:
            DataError: characters outside the vocabulary (``what`` names the text in the message).
        """
        bad = self.missing(text)
        if bad:
            shown = ", ".join(repr(c) for c in bad[:10]) + (" ..." if len(bad) > 10 else "")
            raise DataError(f"{what}: {len(bad)} character(s) not in the model's vocabulary of {len(self)}: {shown}")
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids) -> str:
        """Indices (any iterable of ints, or a tensor) -> text."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return "".join(self.chars[int(i)] for i in ids)

    def to_json(self) -> list[str]:
        """The characters in index order (what the constructor takes; saved in checkpoints)."""
        return list(self.chars)


def unigram_entropy(ids: torch.Tensor, vocab_size: int) -> float:
    """Entropy in nats/character of the character frequencies of ``ids``: the loss of the best
    model that ignores context (a language model must do better)."""
    p = torch.bincount(ids, minlength=vocab_size).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def save_vocab(vocab: Vocabulary, path: str | os.PathLike) -> None:
    """Write ``vocab`` as a JSON list of characters (atomically)."""
    write_text(path, json.dumps(vocab.to_json(), ensure_ascii=False))
