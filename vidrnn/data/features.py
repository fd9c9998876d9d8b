"""Feature caches: run a frame encoder over videos once, train temporal models from the cache.

"Beyond Short Snippets" (Ng et al., CVPR 2015, arXiv:1503.08909) samples 1 frame/s from
videos minutes long and trains deep LSTMs and pooling layers on CNN features. Decoding and
encoding dominate that cost, so :func:`extract_features` does it once:

* frames are sampled at a fixed rate (:class:`~vidrnn.io.sampling.FixedRateSampler`), decoded
  by seeking, transformed with the eval transform and encoded in batches of ``batch_size``
  frames, written straight into a memory-mapped ``.npy`` file: memory stays bounded by one
  batch whatever the video's length;
* each video's ``<key>.npy`` (float16 ``(T, D)``, or ``(T, C, h, w)`` conv maps) and
  ``<key>.json`` (frame times in seconds, duration, source path) appear atomically, the JSON
  last, so an interrupted run resumes where it stopped (finished videos are skipped);
* ``shard``/``num_shards`` split the videos between processes or GPUs (video ``i`` goes to
  shard ``i % num_shards``);
* ``meta.json`` records the encoder, sampler, transform and the data config the videos came
  from; ``encoder.pt`` holds the encoder's weights, so a model trained on the cache can be
  saved with the exact encoder and later predict from raw video.

:class:`FeatureDataset` reads the cache with ``np.load(mmap_mode="r")``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vidrnn.data.transforms import build_clip_transform
from vidrnn.data.video_folder import VideoSample
from vidrnn.errors import ConfigError, VideoDecodeError
from vidrnn.io.decode import VideoReader
from vidrnn.io.sampling import FixedRateSampler

log = logging.getLogger(__name__)

__all__ = ["extract_features", "FeatureDataset", "load_cache_meta"]

_META_KEYS = ("encoder", "kind", "sampler", "transform", "decode_size", "dtype")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_cache_meta(cache: str | os.PathLike) -> dict:
    """The ``meta.json`` of a feature cache.

    Raises:
        FileNotFoundError: not a feature cache (no ``meta.json``).
    """
    p = Path(cache) / "meta.json"
    if not p.is_file():
        raise FileNotFoundError(f"feature cache not found: {p} is missing (run `vidrnn extract-features --out {cache}`)")
    return json.loads(p.read_text())


def _samples_from(videos: Sequence[str] | None, config: str | None, overrides: Sequence[str]):
    if videos:
        return [VideoSample(str(v), -1) for v in videos], None
    if not config:
        raise ConfigError("extract-features needs video files or --config (whose data section lists the videos)")
    from vidrnn.config import load_config
    from vidrnn.data.datamodule import resolve_annotations

    data = load_config(config, overrides)["data"]
    splits, _ = resolve_annotations(data)
    seen, out = set(), []
    for part in ("train", "val", "test"):
        for s in splits.get(part, []):
            if s.path not in seen:
                seen.add(s.path)
                out.append(VideoSample(s.path, s.label, s.start, s.end))
    return out, data


def extract_features(
    out: str | os.PathLike,
    *,
    videos: Sequence[str] | None = None,
    config: str | None = None,
    overrides: Sequence[str] = (),
    encoder: str = "efficientnet_lite0",
    fps: float = 1.0,
    size: int = 224,
    decode_size: int | None = 256,
    maps: bool = False,
    batch_size: int = 32,
    shard: int = 0,
    num_shards: int = 1,
    device: str = "cpu",
    on_error: str = "skip",
) -> dict:
    """Encode videos at ``fps`` frames/s into the cache ``out`` (see the module docstring).

    Args:
        out: cache directory (created; an existing cache must have the same settings).
        videos: video files; or ``config``: a config whose ``data`` section lists them.
        encoder: frame encoder name (``create_frame_encoder``), ImageNet weights if available.
        fps: sampling rate in frames/s.
        size: centre-crop side fed to the encoder, pixels.
        decode_size: shorter side while decoding, pixels (None: full size).
        maps: store conv maps ``(T, C, h, w)`` instead of pooled vectors ``(T, D)``.
        batch_size: frames per encoder call (bounds memory).
        shard, num_shards: this process's share of the videos.
        device: torch device of the encoder.
        on_error: ``"skip"`` a bad video (logged, counted, retried next run) or ``"raise"``.

    Returns:
        Counts and speed: videos, done, already_done, failed, frames, seconds, frames_per_s.

    Raises:
        ConfigError: settings differ from those of the existing cache, or bad shard numbers.
    """
    from vidrnn.layers.encoders import create_frame_encoder

    if not 0 <= shard < num_shards:
        raise ConfigError(f"--shard {shard} must be in 0..{num_shards - 1} (--num-shards {num_shards})")
    out = Path(out)
    (out / "features").mkdir(parents=True, exist_ok=True)
    samples, data_cfg = _samples_from(videos, config, overrides)
    torch.manual_seed(0)  # encoders without pretrained weights are the same in every shard
    enc = create_frame_encoder(encoder, pretrained=True, trainable="none")
    enc_file = out / "encoder.pt"
    if enc_file.is_file():
        enc.load_state_dict(torch.load(enc_file, map_location="cpu", weights_only=True))
    sampler = FixedRateSampler(fps=fps)
    meta = {"version": 1, "encoder": enc.config, "kind": "map" if maps else "vector", "sampler": sampler.to_dict(),
            "transform": {"size": size}, "decode_size": decode_size, "dtype": "float16", "data": data_cfg}
    meta_file = out / "meta.json"
    if meta_file.is_file():
        old = json.loads(meta_file.read_text())
        diff = [k for k in _META_KEYS if old.get(k) != meta[k]]
        if diff:
            raise ConfigError(f"{out} was made with other settings ({', '.join(f'{k}: {old.get(k)} vs {meta[k]}' for k in diff)}); "
                              "use another --out")
        meta["data"] = old.get("data") or data_cfg
    else:
        if not enc_file.is_file():
            tmp = enc_file.with_name(f"encoder.pt.tmp{os.getpid()}")
            torch.save(enc.state_dict(), tmp)
            os.replace(tmp, enc_file)
        _atomic_write_text(meta_file, json.dumps(meta, indent=2))
    enc = enc.to(device).eval()
    transform = build_clip_transform({"size": size}, training=False)
    stats = {"videos": 0, "done": 0, "already_done": 0, "failed": 0, "frames": 0}
    t0 = time.time()
    for i, s in enumerate(samples):
        if i % num_shards != shard:
            continue
        stats["videos"] += 1
        if (out / "features" / f"{s.key}.json").is_file():
            stats["already_done"] += 1
            continue
        try:
            n = _extract_one(s, out / "features", enc, transform, sampler, decode_size, maps, batch_size, device)
        except (VideoDecodeError, FileNotFoundError, ValueError) as e:
            if on_error == "raise":
                raise
            log.warning("skipping %s: %s", s.path, e)
            stats["failed"] += 1
            continue
        stats["done"] += 1
        stats["frames"] += n
    stats["seconds"] = round(time.time() - t0, 2)
    stats["frames_per_s"] = round(stats["frames"] / max(stats["seconds"], 1e-9), 1)
    return stats


@torch.no_grad()
def _extract_one(s: VideoSample, folder: Path, enc, transform, sampler, decode_size, maps, batch_size, device) -> int:
    with VideoReader(s.path, size=decode_size) as r:
        duration = r.info.duration
        end = duration if s.end is None else min(s.end, duration)
        times = sampler.sample(None, duration, start=max(0.0, s.start), end=end)[0]
        tmp = folder / f"{s.key}.npy.tmp{os.getpid()}"
        arr = None
        batch: list[torch.Tensor] = []
        pts = np.zeros(len(times))
        row = 0

        def flush():
            nonlocal arr, row
            x = transform(torch.stack(batch))[None].to(device)  # (1, n, 3, S, S)
            y = enc.forward_maps(x)[0] if maps else enc(x)[0]  # (n, C, h, w) or (n, D)
            if arr is None:
                arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(times), *y.shape[1:]))
            arr[row:row + len(y)] = y.float().cpu().numpy().astype(np.float16)
            row += len(y)
            batch.clear()

        for k, frame, p in r.iter_frames_at(times):
            pts[k] = p
            batch.append(frame)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    arr.flush()
    del arr
    os.replace(tmp, folder / f"{s.key}.npy")
    info = {"path": s.path, "label": s.label, "duration": duration, "times": [round(float(t), 6) for t in pts]}
    _atomic_write_text(folder / f"{s.key}.json", json.dumps(info))
    return len(times)


class FeatureDataset(Dataset):
    """Cached per-frame features of annotated videos (memory-mapped).

    Args:
        cache: the cache directory.
        samples: the videos (as annotated when the cache was made).
        training: take a random window of ``num_frames`` frames; otherwise every frame, as
            consecutive windows of ``num_frames`` (the views whose predictions are averaged),
            or as one view when ``num_frames`` is None.
        num_frames: frames per clip; None = the whole video.

    Items: ``{"features": float32 (V, T, ...), "label", "index"}``; a video missing from the
    cache gives ``{"skipped": path, "error": ...}`` like a bad video.
    """

    def __init__(self, cache: str | os.PathLike, samples: Sequence[VideoSample], *, training: bool,
                 num_frames: int | None = None):
        self.cache = Path(cache)
        self.meta = load_cache_meta(cache)
        self.samples = list(samples)
        self.training = training
        self.num_frames = num_frames

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(features (N, ...) memory-mapped float16, times (N,) seconds)`` of sample ``i``,
        restricted to the sample's segment.

        Raises:
            FileNotFoundError: the video is not in the cache.
        """
        s = self.samples[i]
        js = self.cache / "features" / f"{s.key}.json"
        if not js.is_file():
            raise FileNotFoundError(f"{s.path} is not in the feature cache {self.cache} (run extract-features)")
        info = json.loads(js.read_text())
        feats = np.load(self.cache / "features" / f"{s.key}.npy", mmap_mode="r")
        times = np.asarray(info["times"])
        dur = info["duration"] if s.end is None else min(s.end, info["duration"])
        a = s.start + s.frac[0] * (dur - s.start)
        b = s.start + s.frac[1] * (dur - s.start)
        keep = np.nonzero((times >= a - 1e-6) & (times < b + 1e-6))[0]
        if len(keep) == 0:
            keep = np.array([int(np.argmin(np.abs(times - (a + b) / 2)))])
        return feats[keep[0]:keep[-1] + 1], times[keep[0]:keep[-1] + 1]

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        try:
            feats, _ = self.load(i)
        except FileNotFoundError as e:
            log.warning("%s", e)
            return {"skipped": s.path, "error": str(e)}
        n, T = len(feats), self.num_frames
        if T is None:
            views = [np.arange(n)]
        elif self.training:
            start = int(torch.randint(0, max(n - T, 0) + 1, ()).item())
            views = [np.minimum(np.arange(start, start + T), n - 1)]
        else:
            starts = list(range(0, max(n - T, 0) + 1, T))
            if starts[-1] + T < n:
                starts.append(n - T)  # the last window ends at the last frame
            views = [np.minimum(np.arange(s0, s0 + T), n - 1) for s0 in starts]
        x = torch.from_numpy(np.stack([np.asarray(feats[v], dtype=np.float32) for v in views]))  # (V, T, ...)
        return {"features": x, "label": s.label, "index": i}
