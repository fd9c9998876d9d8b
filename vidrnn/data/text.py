"""Text for character-level language models: the split by position and the stateful batch
layout of char-rnn (reading the file and the vocabulary: :mod:`vidrnn.io.text`, re-exported here).

* :func:`read_text` -- a UTF-8 text file, with clear errors for a missing, empty or
  non-UTF-8 file.
* :class:`Vocabulary` -- the sorted distinct characters of a text, index <-> character; saved
  with a run (``vocab.json``) and in its checkpoints.
* :func:`split_by_position` -- train / val / test as the first part, the next ``val_fraction``
  and the last ``test_fraction`` of the text (no shuffling: the splits are contiguous text).
* :class:`StreamChunks` -- the split cut into ``B`` parallel contiguous streams (stream ``b``
  is the ``b``-th of ``B`` equal consecutive pieces), each cut into chunks of ``T``
  characters; item ``k`` is chunk ``k`` of every stream, so stream ``b`` of batch ``k + 1``
  continues stream ``b`` of batch ``k`` and a language model carries its hidden state from one
  batch to the next (truncated BPTT, Karpathy's char-rnn layout).
* :class:`TextDataModule` -- the three splits for Lightning (the ``data:`` section of a
  language-modelling config, :class:`TextDataSettings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from vidrnn.errors import ConfigError, DataError
from vidrnn.io.text import Vocabulary, read_text, save_vocab, unigram_entropy
from vidrnn.schema import validate_section

__all__ = ["read_text", "Vocabulary", "save_vocab", "split_by_position", "StreamChunks", "TextDataSettings",
           "validate_text_data_settings", "TextDataModule", "unigram_entropy"]


def split_by_position(n: int, val_fraction: float, test_fraction: float) -> dict[str, slice]:
    """``{"train", "val", "test"}`` slices of a text of ``n`` characters: first part, next
    ``val_fraction``, last ``test_fraction`` (a zero fraction gives no split).

    Raises:
        ValueError: fractions outside [0, 1) or summing to 1 or more.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction={val_fraction}, test_fraction={test_fraction}: expected fractions in [0, 1) "
                         "summing to less than 1")
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    n_train = n - n_val - n_test
    out = {"train": slice(0, n_train)}
    if n_val:
        out["val"] = slice(n_train, n_train + n_val)
    if n_test:
        out["test"] = slice(n_train + n_val, n)
    return out


class StreamChunks(Dataset):
    """``B`` parallel contiguous streams of a text, cut into chunks of ``T`` characters.

    With ``n = (N - 1) // B`` characters per stream, stream ``b`` is ``ids[b n : (b+1) n]``
    (the ``N - 1 - B n`` left-over characters at the end are dropped); its targets are the same
    positions shifted by one. Item ``k`` is ``{"input": (B, T), "target": (B, T), "chunk": k}``;
    the last chunk is shorter when ``n`` is not a multiple of ``T`` and ``drop_last`` is False
    (evaluation uses every character).

    Args:
        ids: ``(N,)`` int64 character indices.
        batch_size: B streams.
        seq_len: T, characters per chunk (the truncated-BPTT length).
        drop_last: drop a final partial chunk (training).

    Raises:
        DataError: too short to give every stream one chunk.
    """

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int, *, drop_last: bool = True):
        n = (len(ids) - 1) // batch_size
        if n < (seq_len if drop_last else 1):
            raise DataError(f"{len(ids)} characters are too few for {batch_size} streams of at least "
                            f"{seq_len if drop_last else 1} characters each; use fewer streams (batch size) or a "
                            "shorter seq_len")
        self.batch_size, self.seq_len, self.per_stream = batch_size, seq_len, n
        self.inputs = ids[: batch_size * n].view(batch_size, n)
        self.targets = ids[1: batch_size * n + 1].view(batch_size, n)
        self.num_chunks = n // seq_len if drop_last else math.ceil(n / seq_len)

    def __len__(self) -> int:
        return self.num_chunks

    def __getitem__(self, k: int) -> dict:
        if not 0 <= k < self.num_chunks:
            raise IndexError(k)
        s = slice(k * self.seq_len, (k + 1) * self.seq_len)
        return {"input": self.inputs[:, s], "target": self.targets[:, s], "chunk": k}

    @property
    def num_characters(self) -> int:
        """Characters predicted in one pass over all chunks."""
        return self.batch_size * min(self.per_stream, self.num_chunks * self.seq_len)


@dataclass
class TextDataSettings:
    """The ``data:`` section of a language-modelling run.

    Attributes:
        path: a UTF-8 text file (relative paths: to the working directory).
        batch_size: B parallel streams per training batch (char-rnn: 50).
        seq_len: T characters per chunk, the truncated-BPTT length (char-rnn: 50).
        eval_batch_size: streams for validation and test (fewer streams: longer context).
        val_fraction: the part of the text after the training part used for validation.
        test_fraction: the last part of the text, for testing.
        max_chars: use only the first characters of the file (quick runs), or null for all.
    """

    path: str
    batch_size: int = 64
    seq_len: int = 128
    eval_batch_size: int = 16
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    max_chars: int | None = None


def validate_text_data_settings(given: dict | None, where: str = "data") -> dict:
    """The ``data`` section of a language-modelling run, checked and completed with the defaults.

    Raises:
        ConfigError: an unknown key (closest named), a wrong type, a missing path or a value out of range.
    """
    s = validate_section(TextDataSettings, given, where)
    for key in ("batch_size", "seq_len", "eval_batch_size"):
        if s[key] < 1:
            raise ConfigError(f"{where}.{key}: expected a positive int, got {s[key]}")
    for key in ("val_fraction", "test_fraction"):
        if not 0 <= s[key] < 0.5:
            raise ConfigError(f"{where}.{key}: expected a fraction in [0, 0.5), got {s[key]}")
    if s["max_chars"] is not None and s["max_chars"] < 2:
        raise ConfigError(f"{where}.max_chars: expected at least 2 characters or null, got {s['max_chars']}")
    return s


class TextDataModule(L.LightningDataModule):
    """Train/val/test streams of one text file, for :class:`~vidrnn.tasks.language_model.LanguageModelTask`.

    Args:
        cfg: the ``data`` section (:class:`TextDataSettings`).
        vocab: the vocabulary to encode with (a trained model's); default: the text's own.
        only: build just this split (evaluating a trained model: the other splits need not
            fit the streams nor the vocabulary).

    Attributes:
        settings: the resolved settings. vocab: the :class:`Vocabulary`. splits: ``{split:
        StreamChunks}``. ids: ``{split: (N,) indices}``.

    Raises:
        FileNotFoundError, DataError: a missing, empty or non-UTF-8 file, characters outside
        ``vocab``, or a split too short for its streams.
    """

    def __init__(self, cfg: dict, vocab: Vocabulary | None = None, only: str | None = None):
        super().__init__()
        s = validate_text_data_settings(cfg)
        self.settings = s
        text = read_text(s["path"], s["max_chars"])
        self.vocab = vocab or Vocabulary.from_text(text)
        self.ids, self.splits = {}, {}
        for split, sl in split_by_position(len(text), s["val_fraction"], s["test_fraction"]).items():
            if only is not None and split != only:
                continue
            part = self.vocab.encode(text[sl], what=f"{s['path']} ({split} split)")
            train = split == "train"
            B = s["batch_size"] if train else max(1, min(s["eval_batch_size"], len(part) - 1))
            try:
                self.splits[split] = StreamChunks(part, B, s["seq_len"], drop_last=train)
            except DataError as e:
                raise DataError(f"{s['path']}: the {split} split ({len(part)} characters): {e}") from None
            self.ids[split] = part

    def describe(self) -> str:
        """One line: file, characters per split, vocabulary size."""
        parts = ", ".join(f"{k} {len(v):,}" for k, v in self.ids.items())
        return f"{self.settings['path']} ({parts} characters; vocabulary of {len(self.vocab)})"

    def _loader(self, split: str) -> DataLoader:
        return DataLoader(self.splits[split], batch_size=None, shuffle=False)  # order is the point: state carries

    def train_dataloader(self):
        return self._loader("train")

    def val_dataloader(self):
        return self._loader("val") if "val" in self.splits else []

    def test_dataloader(self):
        return self._loader("test") if "test" in self.splits else []
