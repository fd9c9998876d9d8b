"""Feature extraction: run a frame encoder over videos once and store per-frame features.

"Beyond Short Snippets" (Ng et al., CVPR 2015, arXiv:1503.08909) samples 1 frame/s from
videos minutes long and trains deep LSTMs and pooling layers on CNN features. Decoding and
encoding dominate that cost, so :func:`extract_features` does it once (the cache layout is
described in :mod:`vidrnn.data.features`, which reads it back for training).
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

from vidrnn.data.annotations import VideoSample
from vidrnn.data.features import CACHE_META_KEYS
from vidrnn.data.transforms import build_clip_transform
from vidrnn.errors import ConfigError, VideoDecodeError
from vidrnn.io.decode import VideoReader
from vidrnn.io.files import atomic_write, write_json, write_text
from vidrnn.io.sampling import FixedRateSampler

log = logging.getLogger(__name__)

__all__ = ["extract_features"]

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
        diff = [k for k in CACHE_META_KEYS if old.get(k) != meta[k]]
        if diff:
            raise ConfigError(f"{out} was made with other settings ({', '.join(f'{k}: {old.get(k)} vs {meta[k]}' for k in diff)}); "
                              "use another --out")
        meta["data"] = old.get("data") or data_cfg
    else:
        if not enc_file.is_file():
            with atomic_write(enc_file) as tmp:
                torch.save(enc.state_dict(), tmp)
        write_json(meta_file, meta)
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
    with VideoReader(s.path, size=decode_size) as r, atomic_write(folder / f"{s.key}.npy") as tmp:
        duration = r.info.duration
        end = duration if s.end is None else min(s.end, duration)
        times = sampler.sample(None, duration, start=max(0.0, s.start), end=end)[0]
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
    info = {"path": s.path, "label": s.label, "duration": duration, "times": [round(float(t), 6) for t in pts]}
    write_text(folder / f"{s.key}.json", json.dumps(info))
    return len(times)


