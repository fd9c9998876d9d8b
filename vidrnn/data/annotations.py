"""Annotation readers for video classification: which videos, with which labels.

Annotation sources, all giving a list of :class:`VideoSample` and the class names:
    * :func:`scan_video_folder` -- ``root/class_name/video.ext`` (torchvision/MMAction2
      ``VideoFolder`` layout), or ``root/label.ext`` with the label in the file name.
    * :func:`read_annotation_list` -- text lines ``path label [start end]`` (label an index
      or a class name; times in seconds), the MMAction2 list format.
    * :func:`read_ucf101_split` -- UCF101's official ``classInd.txt``, ``trainlist0N.txt``,
      ``testlist0N.txt`` (Soomro et al., arXiv:1212.0402).
    * :func:`read_hmdb51_split` -- HMDB51's ``<class>_test_split<N>.txt`` files (1 = train,
      2 = test, 0 = unused).
    * :func:`read_kinetics_csv` -- Kinetics CSV (``label,youtube_id,time_start,time_end,split``)
      with clips named ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` (the ActivityNet
      downloader's naming), under ``root/<label>/`` or directly under ``root``.
    * :func:`read_charades_csv` -- Charades (Sigurdsson et al. 2016) ``Charades_v1_*.csv``:
      multi-label, every action a class with start and end times (``c092 11.90 21.20;...``).

The clips themselves: :class:`vidrnn.data.clip_dataset.VideoClipDataset`.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".gif", ".ogv", ".flv", ".wmv")

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoSample",
    "scan_video_folder",
    "read_annotation_list",
    "read_ucf101_split",
    "read_hmdb51_split",
    "read_kinetics_csv",
    "read_charades_csv",
    "action_labels",
]


@dataclass(frozen=True)
class VideoSample:
    """One annotated video (or a temporal segment of one).

    Attributes:
        path: the video file.
        label: class index.
        start, end: segment in seconds (``end=None``: to the end of the video).
        frac: segment as fractions of the video's duration, applied after start/end
            (used for temporal train/val crops of the same video).
        actions: multi-label videos: ``(class index, start s, end s)`` of every action
            (``label`` is then -1).
    """

    path: str
    label: int
    start: float = 0.0
    end: float | None = None
    frac: tuple[float, float] = (0.0, 1.0)
    actions: tuple[tuple[int, float, float], ...] = ()

    @property
    def key(self) -> str:
        """A file-system-safe identifier of the video (for feature caches)."""
        return _safe_key(self.path)


def _safe_key(path: str) -> str:
    import hashlib

    p = Path(path)
    digest = hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:10]
    return f"{p.stem[:80]}-{digest}"


def _is_video(p: Path, extensions: Sequence[str]) -> bool:
    return p.is_file() and p.suffix.lower() in extensions and not p.name.startswith(".")


def scan_video_folder(
    root: str | os.PathLike,
    *,
    label_from: str = "parent",
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    classes: Sequence[str] | None = None,
) -> tuple[list[VideoSample], list[str]]:
    """Videos under ``root`` with labels from the folder names or the file names.

    Args:
        root: the dataset folder.
        label_from: ``"parent"`` for ``root/class_name/video.ext``; ``"stem"`` for
            ``root/class_name.ext`` (one video per class, e.g. the ASL sign clips).
        extensions: file suffixes that count as videos (lower case).
        classes: fixed class list (e.g. from a checkpoint); default: sorted names found.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no videos found, or a class not in ``classes``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder not found: {root}")
    if label_from == "parent":
        files = sorted(p for p in root.glob("*/*") if _is_video(p, extensions))
        names = [p.parent.name for p in files]
    elif label_from == "stem":
        files = sorted(p for p in root.iterdir() if _is_video(p, extensions))
        names = [p.stem for p in files]
    else:
        raise ValueError(f"label_from={label_from!r}: expected 'parent' or 'stem'")
    if not files:
        layout = "root/class_name/video" if label_from == "parent" else "root/label.ext"
        raise ValueError(f"no videos ({', '.join(extensions)}) found in {root} (expected the layout {layout})")
    classes = list(classes) if classes is not None else sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise ValueError(f"{root}: classes {unknown[:5]} are not in the given class list")
    return [VideoSample(str(f), index[n]) for f, n in zip(files, names)], classes


def read_annotation_list(
    file: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[list[VideoSample], list[str]]:
    """Read ``path label [start end]`` lines (``#`` comments and blank lines ignored).

    Labels are class indices if all are integers, else class names. Paths are relative to
    ``root`` (default: the list file's folder).

    Raises:
        FileNotFoundError: the list file is missing.
        ValueError: a malformed line (the message gives file and line number).
    """
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"annotation list not found: {file}")
    root = Path(root) if root is not None else file.parent
    rows = []
    for n, line in enumerate(file.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) not in (2, 4):
            raise ValueError(f"{file}:{n}: expected 'path label' or 'path label start end', got {line!r}")
        try:
            seg = (float(parts[2]), float(parts[3])) if len(parts) == 4 else (0.0, None)
        except ValueError:
            raise ValueError(f"{file}:{n}: start/end must be seconds, got {parts[2:]}") from None
        rows.append((parts[0], parts[1], seg, n))
    if not rows:
        raise ValueError(f"{file}: no annotations")
    numeric = all(r[1].lstrip("-").isdigit() for r in rows)
    if classes is None:
        if numeric:
            k = max(int(r[1]) for r in rows) + 1
            classes = [str(i) for i in range(k)]
        else:
            classes = sorted({r[1] for r in rows})
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for path, lab, seg, n in rows:
        if numeric:
            y = int(lab)
            if not 0 <= y < len(classes):
                raise ValueError(f"{file}:{n}: label {y} outside 0..{len(classes) - 1}")
        else:
            if lab not in index:
                raise ValueError(f"{file}:{n}: label {lab!r} is not a known class")
            y = index[lab]
        out.append(VideoSample(str(root / path), y, seg[0], seg[1]))
    return out, classes


def read_ucf101_split(
    root: str | os.PathLike,
    split_dir: str | os.PathLike | None = None,
    *,
    split: int = 1,
    subset: str = "train",
) -> tuple[list[VideoSample], list[str]]:
    """UCF101 official split ``split`` (1-3), ``subset`` "train" or "test".

    Args:
        root: folder holding ``ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi`` etc.
        split_dir: folder of ``classInd.txt``/``trainlist0N.txt``/``testlist0N.txt``
            (the ``ucfTrainTestlist`` folder); default ``root/ucfTrainTestlist``.

    Raises:
        FileNotFoundError: a split file is missing.
        ValueError: bad ``split``/``subset`` or a malformed line.
    """
    if split not in (1, 2, 3) or subset not in ("train", "test"):
        raise ValueError(f"UCF101 split must be 1, 2 or 3 and subset 'train' or 'test', got {split}, {subset!r}")
    root = Path(root)
    split_dir = Path(split_dir) if split_dir is not None else root / "ucfTrainTestlist"
    ind = split_dir / "classInd.txt"
    if not ind.is_file():
        raise FileNotFoundError(f"UCF101 class index not found: {ind}")
    classes = []
    for n, line in enumerate(ind.read_text().splitlines(), 1):
        if line.strip():
            i, name = line.split()
            if int(i) != len(classes) + 1:
                raise ValueError(f"{ind}:{n}: expected class index {len(classes) + 1}, got {i}")
            classes.append(name)
    lst = split_dir / f"{subset}list0{split}.txt"
    if not lst.is_file():
        raise FileNotFoundError(f"UCF101 split file not found: {lst}")
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for n, line in enumerate(lst.read_text().splitlines(), 1):
        if not line.strip():
            continue
        rel = line.split()[0]
        cls = rel.split("/")[0]
        if cls not in index:
            raise ValueError(f"{lst}:{n}: class folder {cls!r} not in {ind}")
        out.append(VideoSample(str(root / rel), index[cls]))
    return out, classes


def read_hmdb51_split(
    root: str | os.PathLike,
    split_dir: str | os.PathLike,
    *,
    split: int = 1,
    subset: str = "train",
) -> tuple[list[VideoSample], list[str]]:
    """HMDB51 official split ``split`` (1-3) from ``<class>_test_split<N>.txt`` files.

    Each line is ``video.avi id`` with id 1 = train, 2 = test, 0 = not used; videos live in
    ``root/<class>/video.avi``.

    Raises:
        FileNotFoundError: no split files for ``split`` in ``split_dir``.
    """
    if split not in (1, 2, 3) or subset not in ("train", "test"):
        raise ValueError(f"HMDB51 split must be 1, 2 or 3 and subset 'train' or 'test', got {split}, {subset!r}")
    split_dir = Path(split_dir)
    files = sorted(split_dir.glob(f"*_test_split{split}.txt"))
    if not files:
        raise FileNotFoundError(f"no HMDB51 split files *_test_split{split}.txt in {split_dir}")
    want = "1" if subset == "train" else "2"
    classes = [f.name[: -len(f"_test_split{split}.txt")] for f in files]
    out = []
    for y, (cls, f) in enumerate(zip(classes, files)):
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == want:
                out.append(VideoSample(str(Path(root) / cls / parts[0]), y))
    return out, classes


def read_kinetics_csv(
    csv_file: str | os.PathLike,
    root: str | os.PathLike,
    *,
    classes: Sequence[str] | None = None,
    extensions: Sequence[str] = (".mp4", ".mkv", ".webm"),
    skip_missing: bool = True,
) -> tuple[list[VideoSample], list[str]]:
    """Kinetics-style CSV annotations.

    Columns ``label, youtube_id, time_start, time_end`` (others ignored). The clip file is
    ``<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>`` in ``root/<label>/`` or ``root/``;
    if only the full YouTube video ``<youtube_id>.<ext>`` is there, the sample is that file's
    ``[time_start, time_end)`` segment.

    Args:
        skip_missing: skip rows whose file is absent (Kinetics always has missing videos),
            logging how many; if False, raise.

    Raises:
        FileNotFoundError: the CSV, or (``skip_missing=False``) a clip, is missing.
        ValueError: required columns absent.
    """
    csv_file, root = Path(csv_file), Path(root)
    if not csv_file.is_file():
        raise FileNotFoundError(f"Kinetics CSV not found: {csv_file}")
    with open(csv_file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    need = {"label", "youtube_id", "time_start", "time_end"}
    if not rows or not need <= set(rows[0]):
        raise ValueError(f"{csv_file}: expected columns {sorted(need)}, found {sorted(rows[0]) if rows else 'no rows'}")
    classes = list(classes) if classes is not None else sorted({r["label"] for r in rows})
    index = {c: i for i, c in enumerate(classes)}
    out, missing = [], 0
    for r in rows:
        s, e = int(float(r["time_start"])), int(float(r["time_end"]))
        stem = f"{r['youtube_id']}_{s:06d}_{e:06d}"
        found = None
        for folder in (root / r["label"], root / r["label"].replace(" ", "_"), root):
            for ext in extensions:
                if (folder / (stem + ext)).is_file():
                    found = (folder / (stem + ext), 0.0, None)
                    break
                if (folder / (r["youtube_id"] + ext)).is_file():
                    found = (folder / (r["youtube_id"] + ext), float(s), float(e))
                    break
            if found:
                break
        if found is None:
            if not skip_missing:
                raise FileNotFoundError(f"{csv_file}: no video file for {stem} under {root}")
            missing += 1
            continue
        if r["label"] not in index:
            raise ValueError(f"{csv_file}: label {r['label']!r} is not in the class list")
        out.append(VideoSample(str(found[0]), index[r["label"]], found[1], found[2]))
    if missing:
        log.warning("%s: %d of %d videos are missing under %s and were skipped", csv_file, missing, len(rows), root)
    return out, classes


def read_charades_csv(
    csv_file: str | os.PathLike,
    root: str | os.PathLike,
    *,
    classes_file: str | os.PathLike | None = None,
    classes: Sequence[str] | None = None,
    extensions: Sequence[str] = (".mp4", ".webm", ".mkv", ".avi"),
    skip_missing: bool = True,
) -> tuple[list[VideoSample], list[str]]:
    """Charades annotations (Sigurdsson et al., ECCV 2016; 157 action classes, multi-label).

    The CSV (``Charades_v1_train.csv`` / ``Charades_v1_test.csv``) has columns ``id`` and
    ``actions``: ``;``-separated ``<code> <start s> <end s>`` (e.g. ``c092 11.90 21.20``; may
    be empty); the video is ``root/<id>.<ext>`` (``Charades_v1_480/``). The classes file
    (``Charades_v1_classes.txt``) has lines ``c000 Holding some clothes``; class names are its
    descriptions in file order. Without it, the classes are action codes: ``classes`` (e.g.
    those of the training CSV, so that every split indexes alike) or the codes found in this
    CSV, sorted.

    Returns:
        ``(samples, classes)``: one :class:`VideoSample` per video with ``label=-1`` and
        ``actions`` as ``(class index, start, end)``.

    Raises:
        FileNotFoundError: the CSV or classes file, or (``skip_missing=False``) a video, is
            missing.
        ValueError: no ``id``/``actions`` columns, a malformed action (file and row named), or
            an action code the classes file does not list.
    """
    csv_file, root = Path(csv_file), Path(root)
    if not csv_file.is_file():
        raise FileNotFoundError(f"Charades CSV not found: {csv_file}")
    with open(csv_file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"id", "actions"} <= set(rows[0]):
        raise ValueError(f"{csv_file}: expected columns 'id' and 'actions', found "
                         f"{sorted(rows[0]) if rows else 'no rows'}")
    parsed = []
    for n, r in enumerate(rows, 2):  # row 1 is the header
        acts = []
        for a in filter(None, (x.strip() for x in (r["actions"] or "").split(";"))):
            parts = a.split()
            try:
                acts.append((parts[0], float(parts[1]), float(parts[2])))
            except (IndexError, ValueError):
                raise ValueError(f"{csv_file}:{n}: action {a!r} is not '<code> <start> <end>'") from None
        parsed.append((r["id"], acts))
    if classes_file is not None:
        cf = Path(classes_file)
        if not cf.is_file():
            raise FileNotFoundError(f"Charades classes file not found: {cf}")
        lines = [ln.split(None, 1) for ln in cf.read_text().splitlines() if ln.strip()]
        codes = [ln[0] for ln in lines]
        classes = [ln[1].strip() if len(ln) > 1 else ln[0] for ln in lines]
    else:
        codes = list(classes) if classes is not None else sorted({c for _, acts in parsed for c, _, _ in acts})
        classes = list(codes)
    index = {c: i for i, c in enumerate(codes)}
    out, missing = [], 0
    for vid, acts in parsed:
        unknown = [c for c, _, _ in acts if c not in index]
        if unknown:
            raise ValueError(f"{csv_file}: video {vid}: action code {unknown[0]!r} is not in the classes "
                             f"({classes_file or 'given class codes'})")
        path = next((root / (vid + ext) for ext in extensions if (root / (vid + ext)).is_file()), None)
        if path is None:
            if not skip_missing:
                raise FileNotFoundError(f"{csv_file}: no video file {vid}{{{','.join(extensions)}}} under {root}")
            missing += 1
            continue
        out.append(VideoSample(str(path), -1, actions=tuple((index[c], a, b) for c, a, b in acts)))
    if missing:
        log.warning("%s: %d of %d videos are missing under %s and were skipped", csv_file, missing, len(rows), root)
    return out, classes


def action_labels(actions: Sequence[tuple[int, float, float]], times: np.ndarray | torch.Tensor,
                  num_classes: int) -> torch.Tensor:
    """Multi-hot labels of the frames at ``times``: class ``c`` is on while an action of ``c``
    lasts (``start <= time <= end``).

    Shape:
        times ``(...)`` seconds -> ``(..., num_classes)`` float.
    """
    t = torch.as_tensor(np.asarray(times, dtype=np.float64))
    out = torch.zeros(*t.shape, num_classes)
    for c, a, b in actions:
        out[..., c] = torch.maximum(out[..., c], ((t >= a) & (t <= b)).float())
    return out
