"""The clip dataset of video classification: decode, sample and transform clips of annotated
videos (:mod:`vidrnn.data.annotations` says which videos), and collate them into batches.

A video that fails to decode is skipped with a warning (``on_error="skip"``, the default) and
reported in the batch so the run can count it; ``on_error="raise"`` raises instead.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vidrnn.data.annotations import VideoSample, action_labels
from vidrnn.errors import VideoDecodeError
from vidrnn.io.decode import DecodeLimits, VideoReader
from vidrnn.io.sampling import FrameSampler

log = logging.getLogger(__name__)

__all__ = ["VideoClipDataset", "collate_clips"]


class VideoClipDataset(Dataset):
    """Decoded, sampled, transformed clips of annotated videos.

    Args:
        samples: the annotated videos.
        sampler: which frames make a clip (see :mod:`vidrnn.io.sampling`).
        transform: uint8 ``(T, C, H, W)`` -> float ``(T, C, S, S)``.
        training: random sampling and a random temporal crop (``crop_fraction``).
        crop_fraction: in training, sample from a random window of this fraction of each
            sample's segment (temporal jittering); 1.0 = the whole segment.
        decode_size: shorter side (pixels) frames are scaled to while decoding (cheaper than
            decoding at full size and resizing later); ``None`` keeps the decoded size.
        stream: video stream index (None = the best one).
        on_error: ``"skip"`` (warn, and report the path in the batch) or ``"raise"``.
        num_labels: multi-label data (samples with ``actions``): the number of classes K.
        decode_budget: seconds of decoding per clip before the file is abandoned as a bad
            video (:class:`~vidrnn.io.decode.DecodeLimits`; None: no limit).

    Items are dicts: ``video`` float ``(V, T, C, S, S)`` (V views, 1 in training),
    ``label`` int, ``index`` int; or ``{"skipped": path, "error": message}`` for a bad video.
    Multi-label (``num_labels``): ``label`` float ``(K,)`` multi-hot over all the video's
    actions, and ``frame_labels`` float ``(V, T, K)``: the actions under way at each sampled
    frame.
    """

    def __init__(
        self,
        samples: Sequence[VideoSample],
        sampler: FrameSampler,
        transform: Callable[[torch.Tensor], torch.Tensor],
        *,
        training: bool,
        crop_fraction: float = 1.0,
        decode_size: int | None = None,
        stream: int | None = None,
        on_error: str = "skip",
        num_labels: int | None = None,
        decode_budget: float | None = 120.0,
    ):
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error={on_error!r}: expected 'skip' or 'raise'")
        if not 0.0 < crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        self.samples = list(samples)
        self.sampler = sampler
        self.transform = transform
        self.training = training
        self.crop_fraction = crop_fraction
        self.decode_size = decode_size
        self.stream = stream
        self.on_error = on_error
        self.num_labels = num_labels
        self.limits = DecodeLimits(budget=decode_budget)

    def __len__(self) -> int:
        return len(self.samples)

    def segment(self, s: VideoSample, duration: float, rng: np.random.Generator) -> tuple[float, float]:
        """The ``[start, end)`` seconds to sample from, after fractions and temporal jitter."""
        end = duration if s.end is None else min(s.end, duration)
        start = max(0.0, s.start)
        length = max(end - start, 0.0)
        a, b = start + s.frac[0] * length, start + s.frac[1] * length
        if self.training and self.crop_fraction < 1.0:
            w = (b - a) * self.crop_fraction
            a = a + rng.random() * ((b - a) - w)
            b = a + w
        return a, b

    def load(self, i: int, rng: np.random.Generator | None = None, *, return_times: bool = False):
        """Decoded clip views of sample ``i``: uint8 ``(V, T, 3, H, W)`` (and their times in
        seconds ``(V, T)`` with ``return_times``)."""
        s = self.samples[i]
        rng = rng or np.random.default_rng()
        with VideoReader(s.path, stream=self.stream, size=self.decode_size, threads=1, limits=self.limits) as r:
            ts = r.frame_timestamps() if self.sampler.needs_timestamps else None
            duration = r.info.duration if ts is None else max(r.info.duration, float(ts[-1]))
            a, b = self.segment(s, duration, rng)
            try:
                times = self.sampler.sample(ts, duration, training=self.training, rng=rng, start=a, end=b)
            except ValueError as e:
                raise VideoDecodeError(s.path, str(e)) from e
            frames, _ = r.get_frames_at(times.reshape(-1), **self.sampler.decode_options)
        frames = frames.unflatten(0, times.shape)  # (V, T, 3, H, W)
        return (frames, times) if return_times else frames

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        rng = np.random.default_rng(torch.randint(0, 2**62, ()).item()) if self.training else np.random.default_rng(i)
        try:
            views, times = self.load(i, rng, return_times=True)
        except (VideoDecodeError, FileNotFoundError, OSError) as e:
            if self.on_error == "raise":
                raise
            log.warning("skipping bad video %s: %s", s.path, e)
            return {"skipped": s.path, "error": str(e)}
        video = torch.stack([self.transform(v) for v in views])  # (V, T, C, S, S)
        if self.num_labels is None:
            return {"video": video, "label": s.label, "index": i}
        label = torch.zeros(self.num_labels)
        label[[c for c, _, _ in s.actions]] = 1.0  # video level: every action of the video
        return {"video": video, "label": label, "frame_labels": action_labels(s.actions, times, self.num_labels),
                "index": i}


def collate_clips(items: list[dict]) -> dict:
    """Batch dataset items, dropping skipped ones.

    Items carry ``video`` (V, T, C, H, W) clips or cached ``features`` (V, T, ...); clips of
    different lengths T are padded to the longest by repeating their last frame.

    Returns:
        ``video`` or ``features`` ``(sum V, T, ...)`` (every view of every video, in order),
        ``views`` int64 ``(B,)`` views per video, ``label`` int64 ``(B,)`` (float ``(B, K)``
        multi-hot when the items' labels are tensors), ``index`` int64 ``(B,)``, ``skipped``
        list of paths that failed to load; ``box`` ``(B, T, 4)`` when the items carry target
        boxes; ``frame_labels`` ``(sum V, T, K)`` when they carry per-frame multi-hot labels,
        with ``frame_mask`` bool ``(sum V, T)``: False at padded steps.
    """
    good = [it for it in items if "skipped" not in it]
    skipped = [it["skipped"] for it in items if "skipped" in it]
    key = "features" if good and "features" in good[0] else "video"
    empty = torch.zeros(0, dtype=torch.long)
    if not good:
        return {"video": None, "views": empty, "label": empty, "index": empty, "skipped": skipped}
    xs = [it[key] for it in good]
    T = max(x.shape[1] for x in xs)
    out = {
        key: torch.cat([_pad_time(x, T) for x in xs]),
        "views": torch.tensor([len(x) for x in xs]),
        "label": (torch.stack([torch.as_tensor(it["label"], dtype=torch.float32) for it in good])
                  if torch.is_tensor(good[0]["label"]) and good[0]["label"].dim() > 0
                  else torch.tensor([int(it["label"]) for it in good])),
        "index": torch.tensor([it["index"] for it in good]),
        "skipped": skipped,
    }
    if "box" in good[0]:  # target boxes (B, T, 4) of datasets that have them (DistractorDigits)
        out["box"] = torch.stack([it["box"] for it in good])
    if "frame_size" in good[0]:  # encoded clips: the (H, W) of the frames behind the features
        out["frame_size"] = tuple(good[0]["frame_size"])
    if "frame_labels" in good[0]:  # per-frame multi-hot labels of every view (sum V, T, K), padded as the clips
        out["frame_labels"] = torch.cat([_pad_time(it["frame_labels"], T) for it in good])
        out["frame_mask"] = torch.cat([(torch.arange(T) < x.shape[1]).expand(len(x), T) for x in xs])
    return out


def _pad_time(x: torch.Tensor, T: int) -> torch.Tensor:
    """``(V, t, ...)`` -> ``(V, T, ...)`` by repeating the last step."""
    return x if x.shape[1] == T else torch.cat([x, x[:, -1:].expand(-1, T - x.shape[1], *x.shape[2:])], 1)


class EncodedClips(Dataset):
    """A clip dataset's items with the video replaced by a frozen encoder's output, computed once.

    Made by :func:`encode_clips`; items are those of the source dataset with ``features``
    ``(V, T, ...)`` (float16, in memory or memory-mapped ``.npy`` files) instead of ``video``;
    videos the source skipped stay skipped.
    """

    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        it = dict(self.items[i])
        f = it.get("features")
        if isinstance(f, str):  # on disk
            f = np.load(f, mmap_mode="r")
        if f is not None:
            it["features"] = torch.from_numpy(np.asarray(f, dtype=np.float32))
        return it


def encode_clips(dataset: Dataset, encode, *, batch_size: int, num_workers: int = 0, folder: str | None = None,
                 device: str | torch.device = "cpu") -> EncodedClips:
    """Decode every item of ``dataset`` once and keep ``encode(video)`` instead of the video.

    Args:
        dataset: items with ``video`` ``(V, T, 3, H, W)`` (:class:`VideoClipDataset` or an
            embedded dataset); deterministic items (eval sampling and transform) make sense here.
        encode: ``(N, T, 3, H, W) -> (N, T, ...)`` (a frozen encoder; run under inference mode).
        batch_size, num_workers: of the decoding DataLoader.
        folder: keep the features as ``.npy`` files there (memory-mapped when read);
            ``None``: in memory.
        device: where ``encode`` runs.
    """
    from pathlib import Path

    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=_as_list)
    items: list[dict] = []
    for chunk in loader:
        feats: dict[int, torch.Tensor] = {}
        groups: dict[tuple, list[int]] = {}  # items with clips of one shape are encoded together
        for j, it in enumerate(chunk):
            if "skipped" not in it:
                groups.setdefault(tuple(it["video"].shape[1:]), []).append(j)
        for members in groups.values():
            video = torch.cat([chunk[j]["video"] for j in members]).to(device)  # every view of these items
            with torch.inference_mode():
                out = torch.cat([encode(v) for v in video.split(batch_size)]).to("cpu", torch.float16)
            for j, f in zip(members, out.split([len(chunk[j]["video"]) for j in members])):
                feats[j] = f
        for j, it in enumerate(chunk):
            if "skipped" in it:
                items.append(it)
                continue
            it = {key: v for key, v in it.items() if key != "video"}
            it["frame_size"] = tuple(chunk[j]["video"].shape[-2:])  # (H, W) the encoder saw
            f = feats[j].numpy()
            if folder is not None:
                p = Path(folder) / f"{len(items)}.npy"
                np.save(p, f)
                it["features"] = str(p)
            else:
                it["features"] = f
            items.append(it)
    return EncodedClips(items)


def _as_list(items: list[dict]) -> list[dict]:
    return items
