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
* ``yt8m`` -- YouTube-8M frame- or video-level TFRecord shards (``data.yt8m``: the shard globs
  of each split, the number of classes, the vocabulary): multi-label, streamed; the models
  read the features through ``model.encoder: {name: precomputed, feature_dim: 1152}``.
* ``flow_cache`` -- an optical-flow cache made by ``vidrnn extract-flow --config`` (``cache``;
  clips of ``num_frames`` inputs, ``flow.stack`` fields each, ``transform.size`` crops): the
  flow stream trained without computing flow every epoch.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidrnn.data.annotations import (VideoSample, read_annotation_list, read_charades_csv, read_hmdb51_split,
                                     read_kinetics_csv, read_ucf101_split, scan_video_folder)
from vidrnn.data.clip_dataset import VideoClipDataset, collate_clips, encode_clips
from vidrnn.data.digits import DistractorDigits, MovingDigits, MultiLabelDigits
from vidrnn.data.flow import FlowClips
from vidrnn.data.transforms import ClipTransformConfig, build_clip_transform
from vidrnn.errors import ConfigError
from vidrnn.io.flow import FlowSettings
from vidrnn.io.sampling import DEFAULT_SAMPLER, SamplerSettings, build_sampler
from vidrnn.schema import keep_source_section, validate_section

log = logging.getLogger(__name__)

__all__ = ["VideoDataModule", "VideoDataSettings", "validate_data_settings", "resolve_annotations"]

@dataclass
class DigitsSettings:
    """``data.digits``: the embedded Moving Digits (:class:`~vidrnn.data.digits.MovingDigits`)."""

    num_train: int = 2000
    num_val: int = 400
    num_test: int = 400
    num_frames: int = 8
    size: int = 32
    seed: int = 0
    label: Literal["direction", "digit"] = "direction"


@dataclass
class DistractorSettings:
    """``data.distractors``: the embedded distractor task (:class:`~vidrnn.data.digits.DistractorDigits`)."""

    num_train: int = 4000
    num_val: int = 400
    num_test: int = 400
    num_frames: int = 8
    size: int = 40
    digit_size: int = 12
    num_distractors: int = 2
    seed: int = 0


@dataclass
class MultiLabelDigitsSettings:
    """``data.multilabel_digits``: embedded dense multi-label data (:class:`~vidrnn.data.digits.MultiLabelDigits`)."""

    num_train: int = 4000
    num_val: int = 400
    num_test: int = 400
    num_frames: int = 16
    size: int = 32
    digit_size: int = 14
    max_events: int = 3
    max_duration: int = 8
    occlusion: float = 0.4
    seed: int = 0


@dataclass
class YT8MSettings:
    """``data.yt8m``: YouTube-8M TFRecord shards (:class:`~vidrnn.data.yt8m.YT8MShards`).

    Attributes:
        train, val, test: glob patterns (or lists of them) of each split's shards.
        num_classes: K (3862 in the 2018 release, 4716 in 2017's).
        level: ``frame`` (1 frame/s sequences) or ``video`` (the mean features).
        features: feature lists, concatenated (rgb 1024 + audio 128 = 1152).
        max_frames: first seconds kept per video (the starter code: 300).
        shuffle_buffer: training videos mixed before batching.
        vocabulary: the dataset's ``vocabulary.csv`` (class names); default ``class_<i>``.
    """

    train: str | list[str] | None = None
    val: str | list[str] | None = None
    test: str | list[str] | None = None
    num_classes: int = 3862
    level: Literal["frame", "video"] = "frame"
    features: list[str] = field(default_factory=lambda: ["rgb", "audio"])
    max_frames: int | None = 300
    shuffle_buffer: int = 256
    vocabulary: str | None = None


@dataclass
class FolderSplit:
    """``data.split`` of ``source: folder``: how train/val/test are made.

    Attributes:
        mode: ``videos`` (a per-class random split of the videos), ``folders`` (``root/train``,
            ``root/val``, ``root/test``) or ``temporal`` (fractions of each video's duration).
        val, test: ``videos``: the fractions of each class's videos (default 0.2 each);
            ``temporal``: ``[start, end]`` fractions of each video.
        train: ``temporal``: ``[start, end]``.
        seed: ``videos``: the shuffle seed.
    """

    mode: Literal["videos", "folders", "temporal"] = "videos"
    val: float | list[float] | None = None
    test: float | list[float] | None = None
    train: list[float] | None = None
    seed: int = 0


SOURCES = ("digits", "distractors", "multilabel_digits", "folder", "list", "ucf101", "hmdb51", "kinetics", "charades",
           "features", "flow_cache", "yt8m")


@dataclass
class VideoDataSettings:
    """The ``data:`` section of a classification run (the defaults of every data setting).

    Attributes:
        source: where the videos and labels come from (see the module docstring).
        digits, distractors, multilabel_digits: settings of the embedded sources (only the
            chosen source's section may be given).
        yt8m: ``source: yt8m``: YouTube-8M shards (:class:`YT8MSettings`).
        root: the video folder (``folder``, ``list``, ``ucf101``, ``hmdb51``, ``kinetics``, ``charades``).
        label_from: ``folder``: the class is the ``parent`` folder or the file's ``stem``.
        split: ``folder``: a :class:`FolderSplit`; ``ucf101``/``hmdb51``: the official split 1-3.
        split_dir: ``ucf101``/``hmdb51``: the folder of the official split files.
        train_list, val_list, test_list: ``list``: files of ``path label [start end]`` lines.
        train_csv, val_csv, test_csv: ``kinetics``/``charades`` annotation files.
        classes_file: ``charades``: ``Charades_v1_classes.txt``.
        classes: fix the class names and their order (default: sorted as found).
        cache: ``features``: a feature cache made by ``vidrnn extract-features``;
            ``flow_cache``: a flow cache made by ``vidrnn extract-flow``.
        num_frames: ``features``: frames per clip (null: every cached frame of a video);
            ``flow_cache``: model inputs per clip (default 16).
        sampler: frames of a training clip: ``{name: uniform|segments|dense|fps, ...}`` (see
            :mod:`vidrnn.io.sampling`); given without ``name``, its keys update the default.
        test_sampler: the same for evaluation and prediction (default: ``sampler``).
        transform: :class:`~vidrnn.data.transforms.ClipTransformConfig` settings.
        decode_size: shorter side (pixels) frames are decoded at; null: full size.
        crop_fraction: training: sample from a random window of this fraction of each video.
        stream: video stream index (default: the best one).
        batch_size: videos per batch.
        num_workers: DataLoader worker processes.
        on_error: a video that cannot be decoded is ``skip``-ped (logged, counted) or ``raise``-s.
        decode_budget: seconds of decoding per clip before a video is given up as bad (a
            pathological file is abandoned, not waited on); null: no limit.
        flow: train the flow stream: a :class:`~vidrnn.io.flow.FlowSettings` (``{method: dis,
            stack: 1, bound: 20}``); every clip becomes the optical flow between its consecutive
            sampled frames (:class:`~vidrnn.data.flow.FlowClips`), ``(T - L, 2L, H, W)``. The
            model's encoder then needs ``in_channels: 2L`` (the ``*_flow`` models set it).
    """

    source: Literal["digits", "distractors", "multilabel_digits", "folder", "list", "ucf101", "hmdb51", "kinetics",
                    "charades", "features", "flow_cache", "yt8m"] = "digits"
    digits: DigitsSettings | None = None
    distractors: DistractorSettings | None = None
    multilabel_digits: MultiLabelDigitsSettings | None = None
    yt8m: YT8MSettings | None = None
    root: str | None = None
    label_from: Literal["parent", "stem"] = "parent"
    split: int | FolderSplit | None = None
    split_dir: str | None = None
    train_list: str | None = None
    val_list: str | None = None
    test_list: str | None = None
    train_csv: str | None = None
    val_csv: str | None = None
    test_csv: str | None = None
    classes_file: str | None = None
    classes: list[str] | None = None
    cache: str | None = None
    num_frames: int | None = None
    sampler: SamplerSettings = field(default_factory=lambda: dict(DEFAULT_SAMPLER))
    test_sampler: SamplerSettings | None = None
    transform: ClipTransformConfig = field(default_factory=ClipTransformConfig)
    decode_size: int | None = 128
    crop_fraction: float = 1.0
    stream: int | None = None
    batch_size: int = 8
    num_workers: int = 2
    on_error: Literal["skip", "raise"] = "skip"
    decode_budget: float | None = 120.0
    flow: FlowSettings | None = None


_EMBEDDED_SETTINGS = {"digits": DigitsSettings, "distractors": DistractorSettings,
                      "multilabel_digits": MultiLabelDigitsSettings}
#: sub-sections that belong to one source (``data.digits`` for ``source: digits``)
_SOURCE_SETTINGS = {**_EMBEDDED_SETTINGS, "yt8m": YT8MSettings}
SOURCE_SECTIONS = tuple(_SOURCE_SETTINGS)
#: keys a data module adds to its resolved settings (not settings a user gives)
DERIVED_KEYS = ("feature_kind",)


def validate_data_settings(given: dict | None, where: str = "data") -> dict:
    """The ``data`` section of a classification run, checked and completed with the defaults.

    Only the chosen embedded source's section is kept (``data.digits`` for ``source: digits``);
    a sampler given without ``name`` updates the default sampler.

    Raises:
        ConfigError: an unknown key (closest named), a wrong type, or the section of another
            embedded source.
    """
    given = {k: v for k, v in dict(given or {}).items() if k not in DERIVED_KEYS}
    sampler = given.get("sampler")
    if isinstance(sampler, dict) and "name" not in sampler:
        given["sampler"] = {**DEFAULT_SAMPLER, **sampler}
    return keep_source_section(validate_section(VideoDataSettings, given, where), _SOURCE_SETTINGS, where)


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
        split = cfg.get("split")
        if split is not None and not isinstance(split, dict):
            raise ConfigError(f"data.split: for data.source='folder' expected {{mode: videos|folders|temporal, ...}}, "
                              f"got {split!r}")
        split = {"mode": "videos", "seed": 0, **{k: v for k, v in (split or {}).items() if v is not None}}
        if split["mode"] == "videos":
            split = {"val": 0.2, "test": 0.2, **split}
            for part in ("val", "test"):
                if not isinstance(split[part], (int, float)):
                    raise ConfigError(f"data.split.{part}: mode 'videos' takes a fraction of the videos, got "
                                      f"{split[part]!r}")
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
        k = cfg.get("split") or 1
        if not isinstance(k, int) or not 1 <= k <= 3:
            raise ConfigError(f"data.split: the official {src} split is 1, 2 or 3, got {k!r}")
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


def _yt8m_classes(vocabulary: str | None, num_classes: int) -> list[str]:
    """Class names from YouTube-8M's ``vocabulary.csv`` (``Index,...,Name,...``), else ``class_<i>``.

    Raises:
        FileNotFoundError: no such file. ConfigError: no ``Index``/``Name`` columns, or an index
        outside ``0..num_classes-1``.
    """
    names = [f"class_{i}" for i in range(num_classes)]
    if not vocabulary:
        return names
    import csv

    p = Path(vocabulary)
    if not p.is_file():
        raise FileNotFoundError(f"data.yt8m.vocabulary: {p} not found")
    with p.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "Index" not in rows[0] or "Name" not in rows[0]:
        raise ConfigError(f"data.yt8m.vocabulary: {p} needs the columns Index and Name (YouTube-8M's vocabulary.csv)")
    for r in rows:
        i = int(r["Index"])
        if not 0 <= i < num_classes:
            raise ConfigError(f"data.yt8m.vocabulary: {p} has Index {i}, outside 0..{num_classes - 1} "
                              "(data.yt8m.num_classes)")
        names[i] = r["Name"] or names[i]
    return names


class VideoDataModule(L.LightningDataModule):
    """Datasets and loaders for one ``data:`` config (checked and completed with the defaults
    of :class:`VideoDataSettings`).

    Attributes after construction: ``classes`` (list of class names), ``splits`` (dict of
    datasets; a split with no samples is absent), ``multilabel`` (labels are multi-hot).

    Raises:
        ConfigError: bad settings (:func:`validate_data_settings`), or as :func:`resolve_annotations`.
        FileNotFoundError: as :func:`resolve_annotations`.
    """

    def __init__(self, cfg: dict | None = None):
        super().__init__()
        self.cfg = validate_data_settings(cfg)
        self._build_splits()
        if self.cfg.get("flow") and self.cfg["source"] != "flow_cache":
            c = self.cfg
            if c["source"] in ("features", "distractors") or self.multilabel:
                raise ConfigError(f"data.flow: flow clips are made from video clips with one label, not from "
                                  f"data.source={c['source']!r}")
            settings = FlowSettings(**c["flow"])
            self.splits = {k: FlowClips(v, settings) for k, v in self.splits.items()}

    def _build_splits(self) -> None:
        c = self.cfg
        self.splits: dict[str, Dataset] = {}
        self.multilabel = False
        if c["source"] in _EMBEDDED:
            Data = _EMBEDDED[c["source"]]
            d = c[c["source"]]
            kw = {k: v for k, v in d.items() if k not in ("num_train", "num_val", "num_test")}
            self.splits = {"train": Data("train", d["num_train"], **kw),
                           "val": Data("val", d["num_val"], **kw),
                           "test": Data("test", d["num_test"], **kw)}
            self.classes = list(self.splits["train"].classes)
            self.multilabel = bool(getattr(Data, "multilabel", False))
            self.cfg["transform"] = {**(c.get("transform") or {}), "size": d["size"]}
            return
        if c["source"] == "flow_cache":
            self._flow_cache_splits()
            return
        if c["source"] == "yt8m":
            self._yt8m_splits()
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
            self.splits[part] = self._clip_dataset(samples, sampler if training else test_sampler, training)

    def _yt8m_splits(self) -> None:
        from vidrnn.data.yt8m import YT8MShards, expand_shards

        y = self.cfg["yt8m"]
        if not y.get("train") and not y.get("test"):
            raise ConfigError("data.yt8m: give the shards of the splits (data.yt8m.train, .val, .test: glob patterns)")
        self.multilabel = True
        K = int(y["num_classes"])
        self.classes = _yt8m_classes(y.get("vocabulary"), K)
        for part in ("train", "val", "test"):
            if y.get(part):
                self.splits[part] = YT8MShards(expand_shards(y[part], f"data.yt8m.{part}"), K, training=part == "train",
                                               level=y["level"], features=y["features"], max_frames=y["max_frames"],
                                               shuffle_buffer=int(y["shuffle_buffer"]))

    def _flow_cache_splits(self) -> None:
        from vidrnn.data.features import load_cache_meta
        from vidrnn.data.flow import FlowCacheDataset

        c = self.cfg
        if not c.get("cache"):
            raise ConfigError("data.cache is required for data.source='flow_cache' (a vidrnn extract-flow folder)")
        meta = load_cache_meta(c["cache"])
        if "method" not in meta:
            raise ConfigError(f"data.cache={c['cache']}: a feature cache, not a flow cache (source: features)")
        if not meta.get("data"):
            raise ConfigError(f"flow cache {c['cache']} was made from a list of videos without labels; "
                              "extract it with --config to train from it")
        if not meta.get("decode_size"):
            raise ConfigError(f"flow cache {c['cache']} holds full-size frames (extract-flow --decode-size 0/null): "
                              "predicting from video needs the frame size the flow was computed at; extract it "
                              "with a --decode-size")
        annotations, self.classes = resolve_annotations(meta["data"])
        stack = int((c.get("flow") or {}).get("stack", 1))
        T = int(c.get("num_frames") or 16)
        size = int((c.get("transform") or {}).get("size") or 112)
        # what predict needs to compute the same flow from raw video: frames at the cache's rate
        self.cfg.update(flow={"method": meta["method"], "stack": stack, "bound": meta["bound"]},
                        sampler={"name": "fps", "fps": meta["fps"], "num_frames": T + stack},
                        test_sampler={"name": "fps", "fps": meta["fps"], "num_frames": T + stack},
                        decode_size=meta["decode_size"], transform={"size": size, "resize": meta["decode_size"]},
                        num_frames=T)
        for part, samples in annotations.items():
            if samples:
                self.splits[part] = FlowCacheDataset(c["cache"], samples, training=part == "train", num_frames=T,
                                                     stack=stack, size=size)

    def _clip_dataset(self, samples, sampler, training: bool) -> VideoClipDataset:
        c = self.cfg
        return VideoClipDataset(
            samples, sampler, build_clip_transform(c["transform"], training=training), training=training,
            crop_fraction=float(c["crop_fraction"]) if training else 1.0, decode_size=c["decode_size"],
            stream=c["stream"], on_error=c["on_error"], num_labels=len(self.classes) if self.multilabel else None,
            decode_budget=c["decode_budget"])

    def encode_once(self, encode, *, folder: str | Path | None = None, device="cpu") -> dict[str, float]:
        """Replace every split's videos by ``encode(video)`` computed once (a frozen encoder):
        training then reads features (``classification.cache_encoder``).

        The training split is first rebuilt to give the same clips every epoch (its sampler at
        test time: segment centres, the whole annotated segment, the eval transform).

        Args:
            encode: ``(N, T, 3, H, W) -> (N, T, ...)``.
            folder: keep the features as ``.npy`` files under it (one folder per split);
                ``None``: in memory.
            device: where ``encode`` runs.

        Returns:
            Seconds spent per split.

        Raises:
            ConfigError: the data are a feature cache already.
        """
        c = self.cfg
        if c["source"] == "features":
            raise ConfigError("classification.cache_encoder: data.source is a feature cache already (no encoder to cache)")
        times = {}
        for part, ds in list(self.splits.items()):
            clips = ds.base if isinstance(ds, FlowClips) else ds
            if isinstance(clips, VideoClipDataset) and clips.training:
                fixed = self._clip_dataset(clips.samples, clips.sampler, training=False)
                ds = FlowClips(fixed, ds.settings) if isinstance(ds, FlowClips) else fixed
            where = None
            if folder is not None:
                where = Path(folder) / part
                where.mkdir(parents=True, exist_ok=True)
            t0 = time.time()
            self.splits[part] = encode_clips(ds, encode, batch_size=int(c["batch_size"]),
                                             num_workers=int(c["num_workers"]), folder=where, device=device)
            times[part] = round(time.time() - t0, 2)
        return times

    @property
    def settings(self) -> dict:
        """The resolved data settings (saved in checkpoints: sampler, transform, decode size)."""
        return dict(self.cfg)

    def _loader(self, part: str, shuffle: bool) -> DataLoader | None:
        if part not in self.splits:
            return None
        c = self.cfg
        nw = int(c["num_workers"])
        iterable = isinstance(self.splits[part], torch.utils.data.IterableDataset)  # streamed: it shuffles itself
        return DataLoader(self.splits[part], batch_size=int(c["batch_size"]), shuffle=shuffle and not iterable,
                          num_workers=nw,
                          collate_fn=collate_clips, persistent_workers=nw > 0, pin_memory=torch.cuda.is_available(),
                          drop_last=False)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        loader = self._loader("val", False)  # no truth test: a streamed split's loader has no length
        return [] if loader is None else loader

    def test_dataloader(self):
        loader = self._loader("test", False)
        return [] if loader is None else loader
