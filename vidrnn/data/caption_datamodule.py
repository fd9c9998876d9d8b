"""Data for captioning runs: the ``data:`` section of a captioning config, datasets of images or
videos with their reference captions, and the Lightning data module.

Sources (``data.source``):

* ``digit_scenes`` / ``digit_events`` -- the embedded tasks of :mod:`vidrnn.data.digit_captions`
  (images of digits in places; clips of two events), no download;
* ``karpathy`` -- Karpathy's ``dataset_{coco,flickr8k,flickr30k}.json`` with ``root`` the image
  folder (its splits);
* ``coco`` -- COCO's ``captions_*.json`` with ``root`` the image folder;
* ``caption_list`` -- a JSON list of ``{image_name, captions}`` (e.g.
  ``captions/magic_mscoco_test_predictions.json``) with ``root`` the image folder;
* ``msvd`` / ``msrvtt`` -- video captions (:func:`vidrnn.data.captions.read_msvd_captions`,
  :func:`~vidrnn.data.captions.read_msrvtt_captions`) with ``root`` the video folder.

Files without their own splits (``coco``, ``caption_list`` without ``split`` fields) are split by
a seeded permutation into ``val_fraction`` / ``test_fraction``; ``memorise: true`` puts every
item in all three splits (a memorisation check, e.g. the 12 COCO example images).

Training items pair a medium with one of its references, drawn anew each time; evaluation
items carry all references. A caption file's missing media are skipped and counted by the
reader; a medium that cannot be read (a broken JPEG, a video that does not decode) is skipped
when its batch is made, logged, and reported by the task (``skipped``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidrnn.data.captions import CaptionItem, CaptionVocabulary
from vidrnn.errors import ConfigError, DataError, VideoDecodeError
from vidrnn.schema import validate_section

__all__ = ["CaptionDataSettings", "validate_caption_data_settings", "CaptionDataModule", "read_image",
           "read_clip", "collate_captions", "EMBEDDED", "VIDEO_SOURCES"]

log = logging.getLogger(__name__)

EMBEDDED = ("digit_scenes", "digit_events")
VIDEO_SOURCES = ("digit_events", "msvd", "msrvtt")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

Source = Literal["digit_scenes", "digit_events", "karpathy", "coco", "caption_list", "msvd", "msrvtt"]


@dataclass
class CaptionDataSettings:
    """The ``data:`` section of a captioning run.

    Attributes:
        source: where the images/videos and captions come from (see the module docstring).
        captions: the caption file (file sources).
        root: the folder of the images or videos (file sources).
        num_train, num_val, num_test: samples per split (embedded sources).
        size: embedded sources: image/frame side in pixels (a multiple of 3).
        image_size: file sources: images and frames are resized to this square side.
        num_frames: videos: frames per clip (embedded clips: even; files: spread uniformly).
        val_fraction, test_fraction: files without splits: the parts kept for val and test.
        memorise: every item in train, val and test (a memorisation check, not a result).
        features: video sources read from files: a feature cache of the videos (``vidrnn
            extract-features VIDEO... --out DIR``); clips are ``num_frames`` cached frame
            features spread uniformly, and the model gets the cache's encoder (so its
            checkpoint still captions raw video).
        min_count: words seen fewer times in the training captions become ``<unk>``.
        max_length: words kept per training caption.
        batch_size: training batch size; eval_batch_size: validation and test.
        num_workers: DataLoader worker processes.
        on_missing: a caption file's missing media: ``skip`` (counted) or ``raise``.
        seed: the embedded data's seed and the split permutation's.
    """

    source: Source = "digit_scenes"
    captions: str | None = None
    root: str | None = None
    num_train: int = 2000
    num_val: int = 200
    num_test: int = 200
    size: int = 48
    image_size: int = 224
    num_frames: int = 8
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    memorise: bool = False
    features: str | None = None
    min_count: int = 1
    max_length: int = 20
    batch_size: int = 32
    eval_batch_size: int = 64
    num_workers: int = 0
    on_missing: Literal["skip", "raise"] = "skip"
    seed: int = 0


def validate_caption_data_settings(given: dict | None, where: str = "data") -> dict:
    """The ``data`` section of a captioning run, checked and completed with the defaults.

    Raises:
        ConfigError: an unknown key (closest named), a wrong type, a value out of range, or a
            file source without ``captions`` and ``root``.
    """
    s = validate_section(CaptionDataSettings, given, where)
    for key in ("num_train", "num_val", "num_test", "size", "image_size", "num_frames", "min_count", "max_length",
                "batch_size", "eval_batch_size"):
        if s[key] < (0 if key in ("num_val", "num_test") else 1):
            raise ConfigError(f"{where}.{key}: expected a positive int, got {s[key]}")
    if s["num_workers"] < 0:
        raise ConfigError(f"{where}.num_workers: expected an int >= 0, got {s['num_workers']}")
    for key in ("val_fraction", "test_fraction"):
        if not 0 <= s[key] < 0.5:
            raise ConfigError(f"{where}.{key}: expected a fraction in [0, 0.5), got {s[key]}")
    if s["source"] in EMBEDDED:
        if s["size"] % 3 or s["size"] < 15:
            raise ConfigError(f"{where}.size: the embedded digits need a multiple of 3 >= 15, got {s['size']}")
        if s["source"] == "digit_events" and (s["num_frames"] < 4 or s["num_frames"] % 2):
            raise ConfigError(f"{where}.num_frames: Digit Events need an even number >= 4, got {s['num_frames']}")
    if s["features"] and (s["source"] not in VIDEO_SOURCES or s["source"] in EMBEDDED):
        raise ConfigError(f"{where}.features: a feature cache serves video files (msvd, msrvtt), not the "
                          f"{s['source']!r} source")
    if s["source"] not in EMBEDDED:
        for key in ("captions", "root"):
            if not s[key]:
                raise ConfigError(f"{where}.{key}: the {s['source']!r} source needs {where}.captions (the caption "
                                  f"file) and {where}.root (the folder of its {'videos' if s['source'] in VIDEO_SOURCES else 'images'})")
    return s


# ---------------------------------------------------------------------------- reading media
def read_image(path: str | Path, size: int) -> torch.Tensor:
    """An image file as float ``(3, size, size)`` RGB in [0, 1] (resized, aspect not kept).

    Pillow's decompression-bomb guard stays on (an image declaring more than
    ``PIL.Image.MAX_IMAGE_PIXELS`` pixels is refused).

    Raises:
        FileNotFoundError: no such file. DataError: not a readable image (names the file).
    """
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image not found: {p}")
    try:
        with Image.open(p) as im:
            im = im.convert("RGB")
            im.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise DataError(f"{p}: not a readable image ({e.__class__.__name__}: {e})") from None
    x = TF.to_image(im)  # (3, H, W) uint8
    x = TF.resize(x, [size, size], antialias=True)
    return TF.to_dtype(x, torch.float32, scale=True)


def read_clip(path: str | Path, num_frames: int, size: int) -> torch.Tensor:
    """``num_frames`` frames spread uniformly over a video, float ``(T, 3, size, size)`` in [0, 1].

    Raises:
        FileNotFoundError: no such file. VideoDecodeError: the video cannot be decoded.
    """
    from torchvision.transforms.v2 import functional as TF

    from vidrnn.io.decode import VideoReader
    from vidrnn.io.sampling import UniformSampler

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"video not found: {p}")
    with VideoReader(p) as r:
        try:
            times = UniformSampler(num_frames).sample(r.frame_timestamps(), r.info.duration)[0]
        except ValueError as e:
            raise VideoDecodeError(p, str(e)) from None
        frames = r.get_frames_at(times)[0]  # (T, 3, H, W) uint8
    frames = TF.resize(frames, [size, size], antialias=True)
    return frames.float() / 255.0


def read_media(path: str | Path, *, video: bool | None = None, num_frames: int = 8, size: int = 224) -> torch.Tensor:
    """An image ``(3, S, S)`` or a video clip ``(T, 3, S, S)`` in [0, 1]; ``video=None`` decides by the
    file extension (images: :data:`IMAGE_EXTENSIONS`)."""
    if video is None:
        video = Path(path).suffix.lower() not in IMAGE_EXTENSIONS
    return read_clip(path, num_frames, size) if video else read_image(path, size)


# ---------------------------------------------------------------------------- datasets
class _Embedded(Dataset):
    """Items of Digit Scenes / Digit Events as caption items (made on the fly, cheap)."""

    def __init__(self, data, video: bool):
        self.data, self.video = data, video

    def __len__(self):
        return len(self.data)

    def ident(self, i: int) -> str:
        return f"{self.data.split}/{i}"

    def media(self, i: int) -> tuple[torch.Tensor, list[str], str]:
        item = self.data[i]
        return item["video" if self.video else "image"], item["captions"], f"{self.data.split}/{i}"


def read_cached_clip(cache: str | Path, path: str | Path, num_frames: int) -> torch.Tensor:
    """``num_frames`` cached frame features of a video spread uniformly, float32 ``(T, D)``.

    Raises:
        FileNotFoundError: the video is not in the cache (names the video and the cache).
    """
    from vidrnn.data.annotations import VideoSample
    from vidrnn.io.sampling import UniformSampler

    key = VideoSample(str(path), 0).key
    npy = Path(cache) / "features" / f"{key}.npy"
    if not (Path(cache) / "features" / f"{key}.json").is_file():
        raise FileNotFoundError(f"{path} is not in the feature cache {cache} (run vidrnn extract-features)")
    feats = np.load(npy, mmap_mode="r")
    idx = UniformSampler(num_frames).sample_indices(len(feats), training=False, rng=np.random.default_rng())[0]
    return torch.from_numpy(np.asarray(feats[idx], dtype=np.float32))


class _Files(Dataset):
    """Caption items read from files (or, for videos, from a feature cache)."""

    def __init__(self, items: list[CaptionItem], video: bool, num_frames: int, size: int, cache: str | None = None):
        self.items, self.video, self.num_frames, self.size, self.cache = items, video, num_frames, size, cache

    def __len__(self):
        return len(self.items)

    def ident(self, i: int) -> str:
        return str(self.items[i].path)

    def media(self, i: int) -> tuple[torch.Tensor, list[str], str]:
        it = self.items[i]
        if self.cache:
            return read_cached_clip(self.cache, it.path, self.num_frames), it.captions, str(it.path)
        return read_media(it.path, video=self.video, num_frames=self.num_frames, size=self.size), it.captions, str(it.path)


class CaptionDataset(Dataset):
    """Media with captions. Training items: ``{"media", "caption" (n,) int64 (one reference drawn
    at random, ``<start>`` ... ``<end>``), "references", "id"}``; evaluation items the same with the
    first reference as ``caption``. A medium that cannot be read gives ``{"skipped": id, "error": msg}``.
    """

    def __init__(self, source, vocab: CaptionVocabulary, *, training: bool, max_length: int):
        self.source, self.vocab, self.training, self.max_length = source, vocab, training, max_length

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i: int) -> dict:
        try:
            media, refs, ident = self.source.media(i)
        except (DataError, VideoDecodeError, FileNotFoundError) as e:
            ident = self.source.ident(i)
            log.warning("skipping %s: %s", ident, e)
            return {"skipped": ident, "error": str(e)}
        k = int(torch.randint(len(refs), ())) if self.training else 0
        return {"media": media, "caption": self.vocab.encode(refs[k], self.max_length), "references": list(refs),
                "id": ident}


def collate_captions(items: list[dict], pad: int = 0) -> dict:
    """Batch caption items, dropping skipped ones.

    Returns:
        ``{"media": (B, ...), "captions": (B, n_max) int64 padded with pad, "references": [[str]],
        "ids": [str], "skipped": [str]}`` (``media`` None when every item was skipped).
    """
    good = [it for it in items if "skipped" not in it]
    skipped = [it["skipped"] for it in items if "skipped" in it]
    if not good:
        return {"media": None, "captions": None, "references": [], "ids": [], "skipped": skipped}
    n = max(len(it["caption"]) for it in good)
    caps = torch.full((len(good), n), pad, dtype=torch.long)
    for k, it in enumerate(good):
        caps[k, :len(it["caption"])] = it["caption"]
    return {"media": torch.stack([it["media"] for it in good]), "captions": caps,
            "references": [it["references"] for it in good], "ids": [it["id"] for it in good], "skipped": skipped}


def _split_items(items: list[CaptionItem], s: dict) -> dict[str, list[CaptionItem]]:
    """Train/val/test lists: the file's own splits, else a seeded permutation (or everything
    everywhere when memorising)."""
    if s["memorise"]:
        return {"train": items, "val": items, "test": items}
    own = {it.split for it in items}
    if "train" in own and len(own) > 1:  # the file's own splits (Karpathy's, MSVD's, MSR-VTT's)
        return {k: [it for it in items if it.split == k] for k in ("train", "val", "test")}
    order = np.random.default_rng(s["seed"]).permutation(len(items))
    n_val, n_test = int(round(len(items) * s["val_fraction"])), int(round(len(items) * s["test_fraction"]))
    parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    return {k: [items[j] for j in sorted(v)] for k, v in parts.items()}


def _read_items(s: dict):
    from vidrnn.data import captions as C

    readers = {"karpathy": C.read_karpathy_split, "coco": C.read_coco_captions, "caption_list": C.read_caption_list,
               "msvd": C.read_msvd_captions, "msrvtt": C.read_msrvtt_captions}
    return readers[s["source"]](s["captions"], s["root"], on_missing=s["on_missing"])


def test_items(cfg: dict) -> list[CaptionItem]:
    """The test split's items of a file-based ``data`` section (empty for the embedded sources).

    Raises:
        ConfigError, FileNotFoundError, DataError: as :class:`CaptionDataModule`.
    """
    s = validate_caption_data_settings(cfg)
    if s["source"] in EMBEDDED:
        return []
    return _split_items(_read_items(s).items, s)["test"]


class CaptionDataModule(L.LightningDataModule):
    """Train/val/test caption data for :class:`~vidrnn.tasks.captioning.CaptioningTask`.

    Args:
        cfg: the ``data`` section (:class:`CaptionDataSettings`).
        vocab: the vocabulary to encode with (a trained model's); default: built from the
            training captions with ``min_count``.
        only: build just this split (evaluating a trained model).

    Attributes:
        settings, vocab, splits (``{split: CaptionDataset}``), video (whether the media are
        videos), missing (media files named by the caption file but absent).

    Raises:
        FileNotFoundError, DataError, ConfigError: a missing or malformed caption file, no
        media found, an empty split.
    """

    def __init__(self, cfg: dict, vocab: CaptionVocabulary | None = None, only: str | None = None):
        super().__init__()
        s = validate_caption_data_settings(cfg)
        self.settings, self.video = s, s["source"] in VIDEO_SOURCES
        self.missing: list[str] = []
        if s["source"] in EMBEDDED:
            from vidrnn.data.digit_captions import DigitEvents, DigitScenes

            sizes = {"train": s["num_train"], "val": s["num_val"], "test": s["num_test"]}
            make = (lambda k, n: DigitEvents(k, n, num_frames=s["num_frames"], size=s["size"], seed=s["seed"])) \
                if self.video else (lambda k, n: DigitScenes(k, n, size=s["size"], seed=s["seed"]))
            sources = {k: _Embedded(make(k, n), self.video) for k, n in sizes.items() if n}
            train_refs = (lambda: [c for i in range(s["num_train"]) for c in sources["train"].data.make(i)["captions"]])
        else:
            found = _read_items(s)
            self.missing = found.missing
            parts = _split_items(found.items, s)
            sources = {k: _Files(v, self.video, s["num_frames"], s["image_size"], s["features"])
                       for k, v in parts.items() if v}
            if "train" not in sources and (only is None or vocab is None):
                raise DataError(f"{s['captions']}: no training items (splits found: {sorted(parts)})")
            train_refs = (lambda: [c for it in sources["train"].items for c in it.captions])
        if only is not None and only not in sources:
            raise ConfigError(f"the data has no {only} split")
        self.vocab = vocab or CaptionVocabulary.build(train_refs(), s["min_count"])
        self.splits = {k: CaptionDataset(src, self.vocab, training=k == "train", max_length=s["max_length"])
                       for k, src in sources.items() if only is None or k == only}

    def describe(self) -> str:
        """One line: source, items per split, vocabulary size, missing files."""
        parts = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        what = "clips" if self.video else "images"
        missing = f"; {len(self.missing)} missing files skipped" if self.missing else ""
        return f"{self.settings['source']} ({parts} {what}; vocabulary of {len(self.vocab)} words{missing})"

    def _loader(self, split: str, train: bool) -> DataLoader:
        s = self.settings
        return DataLoader(self.splits[split], batch_size=s["batch_size"] if train else s["eval_batch_size"],
                          shuffle=train, num_workers=s["num_workers"], collate_fn=collate_captions,
                          persistent_workers=s["num_workers"] > 0)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False) if "val" in self.splits else []

    def test_dataloader(self):
        return self._loader("test", False) if "test" in self.splits else []
