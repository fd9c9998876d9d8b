"""Captions for image and video captioning: tokenisation, the word vocabulary and readers of the
caption files people have.

* :func:`tokenize` -- lower-case words and numbers (Karpathy's preprocessing of COCO/Flickr
  captions: punctuation dropped).
* :class:`CaptionVocabulary` -- words seen at least ``min_count`` times plus ``<pad>`` (index
  0), ``<start>``, ``<end>`` and ``<unk>``; ``encode`` wraps a caption in ``<start>`` ...
  ``<end>``, ``decode`` stops at ``<end>``; saved with a run as JSON.
* Readers, each returning :class:`CaptionItem` s (a media file, its reference captions, its
  split): :func:`read_karpathy_split` (``dataset_coco.json``, ``dataset_flickr8k.json``,
  ``dataset_flickr30k.json`` with their image folder), :func:`read_coco_captions` (COCO
  ``captions_train2014.json`` / ``captions_val2014.json``), :func:`read_caption_list` (a JSON
  list of ``{image_name, captions}``, e.g. ``captions/magic_mscoco_test_predictions.json``).
  Items whose media file is missing are skipped and counted (``on_missing="skip"``) or make
  the reader fail naming the first of them (``"raise"``); an item without a non-empty caption
  is an error naming it.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch

from vidrnn.errors import DataError
from vidrnn.io.files import write_text

__all__ = ["PAD", "START", "END", "UNK", "tokenize", "CaptionVocabulary", "CaptionItem", "CaptionSet",
           "read_karpathy_split", "read_coco_captions", "read_caption_list"]

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


@dataclass
class CaptionItem:
    """One image or video with its reference captions."""

    path: Path
    captions: list[str]
    split: str = "train"
    id: str = ""


@dataclass
class CaptionSet:
    """What a reader found: the items, and the items skipped because their file is missing."""

    items: list[CaptionItem]
    missing: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[CaptionItem]:
        """The items of one split (``train``, ``val``, ``test``; Karpathy's ``restval`` counts as train)."""
        return [it for it in self.items if it.split == name]


def _load_json(path: str | os.PathLike, what: str):
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: not a JSON {what} ({e})") from None


def _finish(items: list[CaptionItem], source: Path, on_missing: str) -> CaptionSet:
    if on_missing not in ("skip", "raise"):
        raise ValueError(f"on_missing={on_missing!r}: expected 'skip' or 'raise'")
    for it in items:
        captions = [c for c in it.captions if isinstance(c, str) and tokenize(c)]
        if not captions:
            raise DataError(f"{source}: item {it.id or it.path.name} has no non-empty caption")
        it.captions = captions
    kept = [it for it in items if it.path.is_file()]
    missing = [str(it.path) for it in items if not it.path.is_file()]
    if missing and on_missing == "raise":
        raise DataError(f"{source}: {len(missing)} of {len(items)} media files are missing, e.g. {missing[0]}")
    if not kept:
        raise DataError(f"{source}: none of its {len(items)} media files exist (e.g. {missing[0] if missing else '-'})")
    return CaptionSet(kept, missing)


def read_karpathy_split(path: str | os.PathLike, image_root: str | os.PathLike, *,
                        on_missing: str = "skip") -> CaptionSet:
    """Karpathy's split file (``dataset_coco.json``, ``dataset_flickr8k.json``,
    ``dataset_flickr30k.json``): ``{"images": [{"filepath"?, "filename", "split", "sentences":
    [{"raw"}], ...}]}``; images under ``image_root/<filepath>/<filename>``; ``restval`` is train.

    Raises:
        FileNotFoundError, DataError: a missing or malformed file, an image without captions, or
        (``on_missing="raise"``) missing images.
    """
    data = _load_json(path, "Karpathy split file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{path}: expected Karpathy's format {{\"images\": [...]}}")
    items = []
    for im in data["images"]:
        try:
            rel = Path(im.get("filepath", "")) / im["filename"]
            caps = [s.get("raw") or " ".join(s.get("tokens", [])) for s in im["sentences"]]
            split = "train" if im["split"] == "restval" else im["split"]
        except (KeyError, TypeError, AttributeError) as e:
            raise DataError(f"{path}: an image entry lacks {e} (expected filename, split, sentences)") from None
        items.append(CaptionItem(Path(image_root) / rel, caps, split, str(im.get("cocoid", im.get("imgid", rel)))))
    return _finish(items, Path(path), on_missing)


def read_coco_captions(path: str | os.PathLike, image_root: str | os.PathLike, *, split: str = "train",
                       on_missing: str = "skip") -> CaptionSet:
    """COCO's ``captions_<set>.json``: ``{"images": [{"id", "file_name"}], "annotations":
    [{"image_id", "caption"}]}``; images under ``image_root/<file_name>``; every item gets ``split``.

    Raises:
        FileNotFoundError, DataError: as :func:`read_karpathy_split`.
    """
    data = _load_json(path, "COCO captions file")
    try:
        files = {im["id"]: im["file_name"] for im in data["images"]}
        caps: dict = {}
        for a in data["annotations"]:
            caps.setdefault(a["image_id"], []).append(a["caption"])
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: expected COCO's captions format (images, annotations); missing {e}") from None
    items = [CaptionItem(Path(image_root) / files[i], caps.get(i, []), split, str(i)) for i in files]
    return _finish(items, Path(path), on_missing)


def read_caption_list(path: str | os.PathLike, image_root: str | os.PathLike, *, on_missing: str = "skip") -> CaptionSet:
    """A JSON list of ``{"image_name", "captions": [...], "split"?}`` (the format of
    ``captions/magic_mscoco_test_predictions.json``); images under ``image_root/<image_name>``.

    Raises:
        FileNotFoundError, DataError: as :func:`read_karpathy_split`.
    """
    data = _load_json(path, "caption list")
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {{image_name, captions}}")
    try:
        items = [CaptionItem(Path(image_root) / x["image_name"], list(x["captions"]), x.get("split", "test"),
                             x["image_name"]) for x in data]
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: an entry lacks {e} (expected image_name and captions)") from None
    return _finish(items, Path(path), on_missing)
