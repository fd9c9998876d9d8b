"""The LightningDataModule behind ``vidrnn fit/validate/test``: builds train/val/test datasets
from the ``data:`` section of a config.

``source`` picks the annotations (see :mod:`vidrnn.data.annotations` for the formats):

* ``digits`` -- the embedded Moving Digits dataset (no files needed).
* ``distractors`` -- the embedded distractor task (:class:`vidrnn.data.digits.DistractorDigits`):
  the label is the class of the one moving digit among still ones; items carry its box.
* ``multilabel_digits`` -- embedded dense multi-label detection
  (:class:`vidrnn.data.digits.MultiLabelDigits`): multi-hot labels per frame and per video.
* ``folder`` -- ``root`` with ``root/class/video`` (``label_from: parent``) or
  ``root/label.ext`` (``label_from: stem``). ``split`` says how to make train/val/test:
  ``{mode: videos, val: 0.2, test: 0.2, seed: 0}`` (a per-class random split of the videos),
  ``{mode: folders}`` (``root/train``, ``root/val``, ``root/test`` each in the class layout),
  or ``{mode: temporal, train: [a, b], val: [c, d], test: [e, f]}`` (fractions of each video's
  duration: temporal crops of the same videos, for datasets with one video per class).
* ``list`` -- ``train_list``, ``val_list``, ``test_list`` files of ``path label`` lines.
* ``ucf101`` / ``hmdb51`` -- ``root``, ``split_dir``, ``split`` (1-3): official train list for
  training, official test list for validation and test.
* ``kinetics`` -- ``root`` and ``train_csv``, ``val_csv``, ``test_csv``.
* ``charades`` -- multi-label: ``root`` (``Charades_v1_480``), ``train_csv``, ``val_csv``,
  ``test_csv`` (``Charades_v1_{train,test}.csv``) and ``classes_file``
  (``Charades_v1_classes.txt``); items carry per-frame action labels.
* ``features`` -- a feature cache made by ``vidrnn extract-features`` (``cache``), which
  remembers the annotations it was made from.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidrnn.data.digits import DistractorDigits, MovingDigits, MultiLabelDigits
from vidrnn.data.transforms import build_clip_transform
from vidrnn.data.annotations import (VideoSample, read_annotation_list, read_charades_csv, read_hmdb51_split,
                                     read_kinetics_csv, read_ucf101_split, scan_video_folder)
from vidrnn.data.clip_dataset import VideoClipDataset, collate_clips
from vidrnn.errors import ConfigError
from vidrnn.io.sampling import build_sampler

log = logging.getLogger(__name__)

__all__ = ["VideoDataModule", "DATA_DEFAULTS", "resolve_annotations"]

DATA_DEFAULTS: dict[str, Any] = {
    "source": "digits",
    "digits": {"num_train": 2000, "num_val": 400, "num_test": 400, "num_frames": 8, "size": 32, "seed": 0},
    "distractors": {"num_train": 4000, "num_val": 400, "num_test": 400, "num_frames": 8, "size": 40,
                    "digit_size": 12, "num_distractors": 2, "seed": 0},
    "multilabel_digits": {"num_train": 4000, "num_val": 400, "num_test": 400, "num_frames": 16, "size": 32,
                          "digit_size": 14, "max_events": 3, "max_duration": 8, "occlusion": 0.4, "seed": 0},
    "sampler": {"name": "uniform", "num_frames": 8},
    "test_sampler": None,
    "transform": {"size": 112},
    "decode_size": 128,
    "crop_fraction": 1.0,
    "stream": None,
    "batch_size": 8,
    "num_workers": 2,
    "on_error": "skip",
}

Splits = dict[str, list[VideoSample]]
_MULTILABEL_SOURCES = {"charades"}  # annotation sources whose videos carry several labels
_EMBEDDED = {"digits": MovingDigits, "distractors": DistractorDigits, "multilabel_digits": MultiLabelDigits}


def _stratified_split(samples: list[VideoSample], val: float, test: float, seed: int) -> Splits:
    by_class: dict[int, list[VideoSample]] = defaultdict(list)
    for s in samples:
        by_class[s.label].append(s)
    rng = np.random.default_rng(seed)
    out: Splits = {"train": [], "val": [], "test": []}
    for label in sorted(by_class):
        items = by_class[label]
        order = rng.permutation(len(items))
        n_test = int(round(len(items) * test))
        n_val = int(round(len(items) * val))
        if len(items) - n_test - n_val < 1:
            raise ConfigError(f"class {label} has {len(items)} videos: too few to split val={val} test={test}; "
                              "use split mode 'temporal' for one video per class")
        for k, j in enumerate(order):
            part = "test" if k < n_test else "val" if k < n_test + n_val else "train"
            out[part].append(items[j])
    return out


def _frac(seg, name) -> tuple[float, float]:
    try:
        a, b = float(seg[0]), float(seg[1])
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"data.split.{name} must be [start, end] fractions, got {seg!r}") from None
    if not 0.0 <= a < b <= 1.0:
        raise ConfigError(f"data.split.{name} must satisfy 0 <= start < end <= 1, got {seg!r}")
    return a, b


def resolve_annotations(cfg: dict) -> tuple[Splits, list[str]]:
    """Train/val/test :class:`VideoSample` lists and class names for a ``data:`` config.

    Raises:
        ConfigError: missing or inconsistent settings (names the key).
        FileNotFoundError: a folder or annotation file that does not exist.
    """
    src = cfg.get("source")

    def need(key):
        if cfg.get(key) in (None, ""):
            raise ConfigError(f"data.{key} is required for data.source={src!r}")
        return cfg[key]

    classes = cfg.get("classes")
    if src == "folder":
        split = {"mode": "videos", **(cfg.get("split") or {})}
        if split["mode"] == "videos":
            split = {"val": 0.2, "test": 0.2, "seed": 0, **split}
        root = Path(need("root"))
        label_from = cfg.get("label_from", "parent")
        if split["mode"] == "folders":
            out, classes_found = {}, classes
            for part in ("train", "val", "test"):
                if (root / part).is_dir():
                    out[part], classes_found = scan_video_folder(root / part, label_from=label_from, classes=classes_found)
                else:
                    out[part] = []
            if not out["train"]:
                raise ConfigError(f"data.split.mode=folders but {root / 'train'} is missing or empty")
            return out, classes_found
        samples, classes = scan_video_folder(root, label_from=label_from, classes=classes)
        if split["mode"] == "videos":
            return _stratified_split(samples, float(split["val"]), float(split["test"]), int(split["seed"])), classes
        if split["mode"] == "temporal":
            out = {}
            for part in ("train", "val", "test"):
                seg = split.get(part)
                out[part] = [] if seg is None else [replace(s, frac=_frac(seg, part)) for s in samples]
            return out, classes
        raise ConfigError(f"data.split.mode={split['mode']!r}: expected 'videos', 'folders' or 'temporal'")
    if src == "list":
        out, classes_found = {}, classes
        for part in ("train", "val", "test"):
            f = cfg.get(f"{part}_list")
            if f:
                out[part], classes_found = read_annotation_list(f, root=cfg.get("root"), classes=classes_found)
            else:
                out[part] = []
        if not out["train"]:
            raise ConfigError("data.train_list is required for data.source='list'")
        return out, classes_found
    if src in ("ucf101", "hmdb51"):
        reader = read_ucf101_split if src == "ucf101" else read_hmdb51_split
        root = need("root")
        split_dir = cfg.get("split_dir") or (None if src == "ucf101" else need("split_dir"))
        k = int(cfg.get("split", 1) if not isinstance(cfg.get("split"), dict) else 1)
        train, classes = reader(root, split_dir, split=k, subset="train")
        test, _ = reader(root, split_dir, split=k, subset="test")
        return {"train": train, "val": test, "test": test}, classes
    if src in ("kinetics", "charades"):  # one CSV per split under one video root
        root = need("root")
        if src == "kinetics":
            def read(f, known):
                return read_kinetics_csv(f, root, classes=known)
        else:
            def read(f, known):
                return read_charades_csv(f, root, classes_file=cfg.get("classes_file"), classes=known)
        train, classes = read(need("train_csv"), classes)
        out = {"train": train}
        for part in ("val", "test"):
            f = cfg.get(f"{part}_csv")
            out[part] = read(f, classes)[0] if f else []
        return out, classes
    raise ConfigError(f"data.source={src!r}: expected digits, distractors, multilabel_digits, folder, list, ucf101, "
                      "hmdb51, kinetics, charades or features")


class VideoDataModule(L.LightningDataModule):
    """Datasets and loaders for one ``data:`` config (merged over :data:`DATA_DEFAULTS`).

    Attributes after construction: ``classes`` (list of class names), ``splits`` (dict of
    datasets; a split with no samples is absent), ``multilabel`` (labels are multi-hot).

    Raises:
        ConfigError, FileNotFoundError: as :func:`resolve_annotations`.
    """

    def __init__(self, cfg: dict):
        super().__init__()
        from vidrnn.config import merge

        # Nested settings merge over the defaults (``data.transform.size=64`` keeps the other
        # transform settings); a sampler given with another name replaces the default one.
        self.cfg = merge(DATA_DEFAULTS, {k: v for k, v in cfg.items() if k not in ("sampler", "test_sampler")})
        for key in ("sampler", "test_sampler"):
            given = cfg.get(key)
            base = DATA_DEFAULTS[key]
            if isinstance(given, dict) and "name" not in given and isinstance(base, dict):
                given = {**base, **given}
            self.cfg[key] = given if key in cfg else base
        c = self.cfg
        self.splits: dict[str, Dataset] = {}
        self.multilabel = False
        if c["source"] in _EMBEDDED:
            Data = _EMBEDDED[c["source"]]
            d = {**DATA_DEFAULTS[c["source"]], **(c.get(c["source"]) or {})}
            self.cfg[c["source"]] = d
            kw = {k: v for k, v in d.items() if k not in ("num_train", "num_val", "num_test")}
            self.splits = {"train": Data("train", d["num_train"], **kw),
                           "val": Data("val", d["num_val"], **kw),
                           "test": Data("test", d["num_test"], **kw)}
            self.classes = list(Data.classes)
            self.multilabel = bool(getattr(Data, "multilabel", False))
            self.cfg["transform"] = {**(c.get("transform") or {}), "size": d["size"]}
            return
        if c["source"] == "features":
            from vidrnn.data.features import FeatureDataset, load_cache_meta

            if not c.get("cache"):
                raise ConfigError("data.cache is required for data.source='features'")
            meta = load_cache_meta(c["cache"])
            if not meta.get("data"):
                raise ConfigError(f"feature cache {c['cache']} was made from a list of videos without labels; "
                                  "extract it with --config to train from it")
            if meta["data"].get("source") in _MULTILABEL_SOURCES:
                raise ConfigError(f"feature cache {c['cache']} was made from multi-label data "
                                  f"({meta['data']['source']}); train from the videos instead")
            annotations, self.classes = resolve_annotations(meta["data"])
            # The video pipeline that made the features: what predict needs to run on raw video.
            self.cfg.update(sampler=meta["sampler"], test_sampler=meta["sampler"], transform=meta["transform"],
                            decode_size=meta["decode_size"], feature_kind=meta["kind"])
            for part, samples in annotations.items():
                if samples:
                    self.splits[part] = FeatureDataset(c["cache"], samples, training=part == "train",
                                                       num_frames=c.get("num_frames"))
            return
        annotations, self.classes = resolve_annotations(c)
        self.multilabel = c["source"] in _MULTILABEL_SOURCES
        sampler = build_sampler(c["sampler"])
        test_sampler = build_sampler(c["test_sampler"] or c["sampler"])
        for part, samples in annotations.items():
            if not samples:
                continue
            training = part == "train"
            self.splits[part] = VideoClipDataset(
                samples, sampler if training else test_sampler, build_clip_transform(c["transform"], training=training),
                training=training, crop_fraction=float(c["crop_fraction"]) if training else 1.0,
                decode_size=c["decode_size"], stream=c["stream"], on_error=c["on_error"],
                num_labels=len(self.classes) if self.multilabel else None)

    @property
    def settings(self) -> dict:
        """The resolved data settings (saved in checkpoints: sampler, transform, decode size)."""
        return dict(self.cfg)

    def _loader(self, part: str, shuffle: bool) -> DataLoader | None:
        if part not in self.splits:
            return None
        c = self.cfg
        nw = int(c["num_workers"])
        return DataLoader(self.splits[part], batch_size=int(c["batch_size"]), shuffle=shuffle, num_workers=nw,
                          collate_fn=collate_clips, persistent_workers=nw > 0, pin_memory=torch.cuda.is_available(),
                          drop_last=False)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False) or []

    def test_dataloader(self):
        return self._loader("test", False) or []
