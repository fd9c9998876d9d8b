"""``vidrnn extract-flow``: optical flow of every video of a dataset, computed once and cached.

Laid out like the feature cache (:mod:`vidrnn.data.features`): frames are sampled at ``fps``
frames/s (Ng et al. 2015 computed flow at 15 fps), decoded with the shorter side at
``decode_size`` pixels, and the flow between each pair of consecutive sampled frames
(:func:`vidrnn.io.flow.optical_flow`, OpenCV DIS by default) is stored the two-stream way:
x and y clipped to ±``bound`` px and quantised to 8 bits (0.16 px steps at 20 px). Per video,
``flow/<key>.npy`` uint8 ``(N - 1, 2, H, W)`` is written in chunks into a memory-mapped file
(memory stays bounded whatever the length), then ``flow/<key>.json`` (the time of each field's
first frame, the duration, the source) appears last and atomically: an interrupted run resumes
where it stopped. ``shard``/``num_shards`` split the videos between processes (video ``i`` goes
to shard ``i % num_shards``); ``meta.json`` records the settings, which must agree when more
videos are added. Train from it with ``data: {source: flow_cache, cache: DIR, num_frames: T}``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from vidrnn.errors import ConfigError, VidrnnError
from vidrnn.inference.features import _samples_from, _to_do
from vidrnn.io.decode import VideoReader
from vidrnn.io.files import atomic_write, write_json
from vidrnn.io.flow import FLOW_METHODS, optical_flow, quantise_flow
from vidrnn.io.sampling import FixedRateSampler

log = logging.getLogger(__name__)

__all__ = ["extract_flow", "FLOW_META_KEYS"]

#: meta.json settings that must agree when more videos are added to an existing cache
FLOW_META_KEYS = ("method", "bound", "fps", "decode_size", "dtype")


def _video_flow(path: str, sampler: FixedRateSampler, decode_size: int | None, method: str, bound: float,
                target: Path, chunk: int) -> dict:
    """Flow of one video into ``target`` (a .npy written in chunks); returns its JSON record."""
    from numpy.lib.format import open_memmap

    with VideoReader(path, size=decode_size) as r:
        ts = r.frame_timestamps()
        duration = max(r.info.duration, float(ts[-1])) if len(ts) else r.info.duration
        times = sampler.sample(ts, duration, training=False)[0]  # (N,) seconds
        if len(times) < 2:
            raise ValueError(f"{path}: {len(times)} frame(s) at {sampler.fps:g} frames/s: too short for optical flow")
        out = None
        prev = None
        for a in range(0, len(times), chunk):
            frames = r.get_frames_at(times[a:a + chunk])[0]  # (n, 3, H, W) uint8
            frames = frames.permute(0, 2, 3, 1).numpy()  # (n, H, W, 3)
            if prev is not None:
                frames = np.concatenate([prev[None], frames])
            flow = quantise_flow(optical_flow(frames, method), bound)  # (n - 1 or n, 2, H, W)
            if out is None:
                out = open_memmap(target, mode="w+", dtype=np.uint8, shape=(len(times) - 1,) + flow.shape[1:])
            k = a - 1 if prev is not None else 0
            out[k:k + len(flow)] = flow
            prev = frames[-1]
        out.flush()
        del out
    return {"path": str(path), "times": [round(float(t), 6) for t in times[:-1]], "duration": float(duration),
            "fps": sampler.fps}


def extract_flow(out: str | os.PathLike, *, videos: Sequence[str] | None = None, config: str | None = None,
                 overrides: Sequence[str] = (), fps: float = 15.0, decode_size: int | None = 180,
                 method: str = "dis", bound: float = 20.0, shard: int = 0, num_shards: int = 1,
                 on_error: str = "skip", chunk: int = 128, progress: bool = True) -> dict:
    """Compute and cache the optical flow of videos (see the module docstring).

    Args:
        out: cache folder (created; an existing cache must have the same settings).
        videos: video files; or ``config``: a config whose ``data`` section lists them (its
            annotations are kept, so the cache can be trained from).
        fps: frames/s between which flow is computed.
        decode_size: shorter side of the decoded frames, pixels (None: full size).
        method: :data:`vidrnn.io.flow.FLOW_METHODS` but ``raft`` (OpenCV's ``dis``,
            ``farneback``, ``tvl1``).
        bound: clip in pixels before quantising.
        shard, num_shards: this process's share of the videos.
        on_error: ``"skip"`` a bad video (logged, counted, retried next run) or ``"raise"``.
        chunk: frames decoded and processed at a time (bounds memory).
        progress: show a progress bar.

    Returns:
        ``{"videos", "done", "already_done", "failed", "fields", "seconds", "fields_per_s"}``.

    Raises:
        ConfigError: settings differ from the existing cache's, bad shard numbers, or an unknown
            method. VidrnnError, ValueError: a bad video with ``on_error="raise"``.
    """
    if not 0 <= shard < num_shards:
        raise ConfigError(f"--shard {shard} must be in 0..{num_shards - 1} (--num-shards {num_shards})")
    if method not in FLOW_METHODS or method == "raft":
        raise ConfigError(f"--method {method!r}: expected one of {', '.join(m for m in FLOW_METHODS if m != 'raft')}")
    if not fps > 0 or not bound > 0:
        raise ConfigError(f"--fps and --bound must be positive, got {fps} and {bound}")
    if chunk < 2:
        raise ConfigError(f"chunk={chunk}: flow needs at least 2 frames at a time")
    out = Path(out)
    (out / "flow").mkdir(parents=True, exist_ok=True)
    samples, data_cfg = _samples_from(videos, config, overrides)
    meta = {"version": 1, "method": method, "bound": float(bound), "fps": float(fps), "decode_size": decode_size,
            "dtype": "uint8", "data": data_cfg}
    meta_file = out / "meta.json"
    if meta_file.is_file():
        old = json.loads(meta_file.read_text())
        diff = [k for k in FLOW_META_KEYS if old.get(k) != meta[k]]
        if diff:
            raise ConfigError(f"{out} was made with other settings ({', '.join(f'{k}: {old.get(k)} vs {meta[k]}' for k in diff)}); "
                              "use another --out")
    else:
        write_json(meta_file, meta)
    sampler = FixedRateSampler(fps=fps)
    stats = {"videos": 0, "done": 0, "already_done": 0, "failed": 0, "fields": 0}
    todo = _to_do(samples, shard, num_shards, out / "flow", stats)
    t0 = time.time()
    bar = todo
    if progress:
        from tqdm import tqdm

        bar = tqdm(todo, desc="extract-flow", unit="video")
    for s in bar:
        npy, js = out / "flow" / f"{s.key}.npy", out / "flow" / f"{s.key}.json"
        try:
            with atomic_write(npy) as tmp:
                record = _video_flow(s.path, sampler, decode_size, method, bound, Path(tmp), chunk)
            write_json(js, record)
        except (VidrnnError, ValueError, FileNotFoundError) as e:
            npy.unlink(missing_ok=True)
            if on_error == "raise":
                raise
            log.warning("extract-flow: skipped %s (%s)", s.path, e)
            stats["failed"] += 1
            continue
        stats["done"] += 1
        stats["fields"] += len(record["times"])
    stats["seconds"] = round(time.time() - t0, 3)
    stats["fields_per_s"] = round(stats["fields"] / max(stats["seconds"], 1e-9), 1)
    return stats
