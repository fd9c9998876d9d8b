"""Caption words: tokenisation and the word vocabulary of captioners (kept in :mod:`vidrnn.io` so
that tasks and inference can decode without the data package; re-exported by
:mod:`vidrnn.data.captions`).

* :func:`tokenize` -- lower-case words and numbers (Karpathy's preprocessing of COCO/Flickr
  captions: punctuation dropped).
* :class:`CaptionVocabulary` -- words seen at least ``min_count`` times plus ``<pad>`` (index
  0), ``<start>``, ``<end>`` and ``<unk>``; ``encode`` wraps a caption in ``<start>`` ...
  ``<end>``, ``decode`` stops at ``<end>``; saved with a run as JSON.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import torch

from vidrnn.errors import DataError
from vidrnn.io.files import write_text

__all__ = ["PAD", "START", "END", "UNK", "SPECIALS", "tokenize", "CaptionVocabulary"]

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)


def tokenize(caption: str) -> list[str]:
    """Lower-case words and numbers of a caption (``"A man's red moped."`` -> ``["a", "man's",
    "red", "moped"]``)."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", caption.lower())


class CaptionVocabulary:
    """Word <-> index, with ``<pad>`` = 0, ``<start>`` = 1, ``<end>`` = 2, ``<unk>`` = 3.

    Args:
        words: the words after the four special tokens, in index order.

    Raises:
        ValueError: a repeated word, or a special token among ``words``.
    """

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if len(set(words)) != len(words) or set(words) & set(SPECIALS):
            raise ValueError("vocabulary words must be distinct and not special tokens")
        self.itos = list(SPECIALS) + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad, self.start, self.end, self.unk = (self.stoi[s] for s in SPECIALS)

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> "CaptionVocabulary":
        """The words occurring at least ``min_count`` times in ``captions`` (most frequent first,
        ties alphabetical); rarer words become ``<unk>``."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts = Counter(w for c in captions for w in tokenize(c))
        if not counts:
            raise DataError("captions: no words to build a vocabulary from")
        return cls([w for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count])

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other) -> bool:
        return isinstance(other, CaptionVocabulary) and self.itos == other.itos

    def encode(self, caption: str, max_length: int | None = None) -> torch.Tensor:
        """``[<start>, w_1, ..., w_n, <end>]`` as int64 (unknown words -> ``<unk>``; at most
        ``max_length`` words kept).

        Raises:
            DataError: a caption without any word.
        """
        words = tokenize(caption)
        if not words:
            raise DataError(f"empty caption {caption!r}: no words")
        words = words[:max_length] if max_length else words
        return torch.tensor([self.start] + [self.stoi.get(w, self.unk) for w in words] + [self.end])

    def decode(self, ids) -> str:
        """Words up to the first ``<end>``, without ``<start>``/``<pad>``."""
        out = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if int(i) == self.end:
                break
            if int(i) not in (self.start, self.pad):
                out.append(self.itos[int(i)])
        return " ".join(out)

    def to_json(self) -> list[str]:
        """The words after the special tokens (what the constructor takes)."""
        return self.itos[len(SPECIALS):]

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as a JSON list of words (atomically)."""
        write_text(path, json.dumps({"specials": list(SPECIALS), "words": self.to_json()}, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CaptionVocabulary":
        """Read a vocabulary written by :meth:`save`.

        Raises:
            DataError: not such a file.
        """
        try:
            data = json.loads(Path(path).read_text())
            return cls(data["words"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}: not a caption vocabulary ({e})") from None
