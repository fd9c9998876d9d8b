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
  list of ``{image_name, captions}``, e.g. ``captions/magic_mscoco_test_predictions.json``);
  for videos :func:`read_msvd_captions` (MSVD's ``AllVideoDescriptions.txt`` or ``MSR Video
  Description Corpus.csv``) and :func:`read_msrvtt_captions` (MSR-VTT's
  ``train_val_videodatainfo.json`` / ``videodatainfo_2017.json``).
  Items whose media file is missing are skipped and counted (``on_missing="skip"``) or make
  the reader fail naming the first of them (``"raise"``); an item without a non-empty caption
  is an error naming it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from vidrnn.errors import DataError
from vidrnn.io.captions import END, PAD, SPECIALS, START, UNK, CaptionVocabulary, tokenize

__all__ = ["PAD", "START", "END", "UNK", "SPECIALS", "tokenize", "CaptionVocabulary", "CaptionItem", "CaptionSet",
           "read_karpathy_split", "read_coco_captions", "read_caption_list", "read_msvd_captions",
           "read_msrvtt_captions"]

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


#: MSVD's standard split (Venugopalan et al. 2015, Yao et al. 2015): the first 1,200 clips for
#: training, the next 100 for validation, the last 670 for testing, in the order of the corpus
MSVD_SPLIT = (1200, 100, 670)
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov")


def _find_video(root: Path, stem: str) -> Path:
    for ext in VIDEO_EXTENSIONS:
        if (root / (stem + ext)).is_file():
            return root / (stem + ext)
    return root / (stem + VIDEO_EXTENSIONS[0])  # missing: reported with this name


def read_msvd_captions(path: str | os.PathLike, video_root: str | os.PathLike, *, on_missing: str = "skip",
                       language: str = "English") -> CaptionSet:
    """MSVD (the Microsoft Research Video Description Corpus, Chen & Dolan 2011) captions.

    Two formats: ``AllVideoDescriptions.txt`` (lines ``<YouTubeID>_<start>_<end> <caption>``,
    ``#`` comments) or ``MSR Video Description Corpus.csv`` (columns ``VideoID, Start, End,
    ..., Language, Description``; only ``language`` rows kept). Videos are
    ``video_root/<YouTubeID>_<start>_<end>.avi`` (or ``.mp4``, ...). Splits: the standard
    1,200 / 100 / 670 clips in the order of first appearance (:data:`MSVD_SPLIT`).

    Raises:
        FileNotFoundError, DataError: as :func:`read_karpathy_split`.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"MSVD caption file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not a UTF-8 MSVD caption file ({e})") from None
    caps: dict[str, list[str]] = {}
    if p.suffix.lower() == ".csv":
        import csv

        rows = csv.DictReader(text.splitlines())
        need = {"VideoID", "Start", "End", "Language", "Description"}
        if not rows.fieldnames or not need <= set(rows.fieldnames):
            raise DataError(f"{p}: expected MSVD's CSV columns {sorted(need)}, got {rows.fieldnames}")
        for r in rows:
            if r["Language"] == language:
                caps.setdefault(f"{r['VideoID']}_{r['Start']}_{r['End']}", []).append(r["Description"] or "")
    else:
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            vid, _, caption = line.partition(" ")
            if not caption:
                raise DataError(f"{p}:{n}: expected '<video id> <caption>', got {line!r}")
            caps.setdefault(vid, []).append(caption)
    if not caps:
        raise DataError(f"{p}: no captions found")
    n_train, n_val, _ = MSVD_SPLIT
    split = lambda k: "train" if k < n_train else "val" if k < n_train + n_val else "test"  # noqa: E731
    items = [CaptionItem(_find_video(Path(video_root), vid), c, split(k), vid) for k, (vid, c) in enumerate(caps.items())]
    return _finish(items, p, on_missing)


def read_msrvtt_captions(path: str | os.PathLike, video_root: str | os.PathLike, *, on_missing: str = "skip") -> CaptionSet:
    """MSR-VTT (Xu, Mei, Yao, Rui, CVPR 2016) captions: ``{"videos": [{"video_id", "split"}],
    "sentences": [{"video_id", "caption"}]}`` (``train_val_videodatainfo.json``,
    ``test_videodatainfo.json``, ``videodatainfo_2017.json``); videos are
    ``video_root/<video_id>.mp4``; the split ``validate`` is val.

    Raises:
        FileNotFoundError, DataError: as :func:`read_karpathy_split`.
    """
    data = _load_json(path, "MSR-VTT caption file")
    try:
        splits = {v["video_id"]: v.get("split", "train") for v in data["videos"]}
        caps: dict = {}
        for x in data["sentences"]:
            caps.setdefault(x["video_id"], []).append(x["caption"])
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: expected MSR-VTT's format (videos, sentences); missing {e}") from None
    items = [CaptionItem(_find_video(Path(video_root), v), caps.get(v, []), "val" if sp == "validate" else sp, v)
             for v, sp in splits.items()]
    return _finish(items, Path(path), on_missing)
