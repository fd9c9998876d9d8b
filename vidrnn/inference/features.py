"""Feature extraction: run a frame encoder over videos once and store per-frame features.

"Beyond Short Snippets" (Ng et al., CVPR 2015, arXiv:1503.08909) samples 1 frame/s from
videos minutes long and trains deep LSTMs and pooling layers on CNN features. Decoding and
encoding dominate that cost, so :func:`extract_features` does it once (the cache layout is
described in :mod:`vidrnn.data.features`, which reads it back for training).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from vidrnn.data.annotations import VideoSample
from vidrnn.data.features import CACHE_META_KEYS
from vidrnn.data.transforms import build_clip_transform
from vidrnn.errors import ConfigError, VideoDecodeError
from vidrnn.io.decode import VideoReader
from vidrnn.inference.predict import use_bf16
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
    precision: str = "fp32",
    seek: str = "exact",
    seek_tolerance: float | None = None,
    prefetch: int = 64,
    channels_last: bool | None = None,
) -> dict:
    """Encode videos at ``fps`` frames/s into the cache ``out`` (see the module docstring).

    The encoder runs under ``torch.inference_mode`` on batches of ``batch_size`` frames taken
    across videos (a short video does not leave the batch half empty), in ``channels_last``,
    while a background thread decodes and crops the next frames (``prefetch`` frames ahead).

    Args:
        out: cache directory (created; an existing cache must have the same settings).
        videos: video files; or ``config``: a config whose ``data`` section lists them.
        encoder: frame encoder name (``create_frame_encoder``), ImageNet weights if available.
        fps: sampling rate in frames/s.
        size: centre-crop side fed to the encoder, pixels.
        decode_size: shorter side while decoding, pixels (None: full size).
        maps: store conv maps ``(T, C, h, w)`` instead of pooled vectors ``(T, D)``.
        batch_size: frames per encoder call, across videos (bounds memory).
        shard, num_shards: this process's share of the videos.
        device: torch device of the encoder.
        on_error: ``"skip"`` a bad video (logged, counted, retried next run) or ``"raise"``.
        precision: ``"fp32"`` or ``"bf16"`` (autocast; stored features stay float16 either way;
            recorded in the cache, whose settings must then agree).
        seek, seek_tolerance: how frames are found (:class:`FixedRateSampler`): ``"exact"`` or
            the approximate ``"keyframe"`` mode for long videos (the times taken are stored).
        prefetch: decoded frames waiting for the encoder (0: decode in the calling thread).
        channels_last: encoder memory layout (``None``: the backbone's default).

    Returns:
        Counts and speed: videos, done, already_done, failed, frames, seconds, frames_per_s.

    Raises:
        ConfigError: settings differ from those of the existing cache, bad shard numbers or
            a bad ``precision``.
    """
    from vidrnn.layers.encoders import create_frame_encoder

    if not 0 <= shard < num_shards:
        raise ConfigError(f"--shard {shard} must be in 0..{num_shards - 1} (--num-shards {num_shards})")
    bf16 = use_bf16(precision)
    out = Path(out)
    (out / "features").mkdir(parents=True, exist_ok=True)
    samples, data_cfg = _samples_from(videos, config, overrides)
    torch.manual_seed(0)  # encoders without pretrained weights are the same in every shard
    enc = create_frame_encoder(encoder, pretrained=True, trainable="none", channels_last=channels_last)
    enc_file = out / "encoder.pt"
    if enc_file.is_file():
        enc.load_state_dict(torch.load(enc_file, map_location="cpu", weights_only=True))
    sampler = FixedRateSampler(fps=fps, seek=seek, seek_tolerance=seek_tolerance)
    meta = {"version": 1, "encoder": _plain_config(enc.config), "kind": "map" if maps else "vector",
            "sampler": sampler.to_dict(), "transform": {"size": size}, "decode_size": decode_size, "dtype": "float16",
            "precision": precision, "data": data_cfg}
    meta_file = out / "meta.json"
    if meta_file.is_file():
        old = _with_defaults(json.loads(meta_file.read_text()))
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
    todo = _to_do(samples, shard, num_shards, out / "features", stats)
    t0 = time.time()
    writer = _CacheWriter(out / "features", on_error)
    events = _decoded_frames(todo, transform, sampler, decode_size)
    with _prefetched(events, prefetch) as events:
        _encode_stream(events, enc, writer, batch_size, device, bf16, maps)
    stats.update(done=writer.done, failed=writer.failed, frames=writer.frames)
    stats["seconds"] = round(time.time() - t0, 3)
    stats["frames_per_s"] = round(stats["frames"] / max(stats["seconds"], 1e-9), 1)
    return stats


def _to_do(samples, shard: int, num_shards: int, folder: Path, stats: dict) -> list:
    """This shard's videos not yet in the cache ``folder`` (counts ``videos``/``already_done``)."""
    todo, keys = [], set()
    for i, s in enumerate(samples):
        if i % num_shards != shard or s.key in keys:  # another shard's, or the same video again
            continue
        keys.add(s.key)
        stats["videos"] += 1
        if (folder / f"{s.key}.json").is_file():
            stats["already_done"] += 1
        else:
            todo.append(s)
    return todo


#: settings of caches made before they were recorded
_META_DEFAULTS = {"precision": "fp32"}


def _plain_config(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k != "channels_last"}  # the layout does not change the features


def _with_defaults(meta: dict) -> dict:
    meta = {**_META_DEFAULTS, **meta}
    if isinstance(meta.get("sampler"), dict):
        meta["sampler"] = FixedRateSampler(**{k: v for k, v in meta["sampler"].items() if k != "name"}).to_dict()
    return meta


def _decoded_frames(samples, transform, sampler, decode_size) -> Iterator[tuple]:
    """Events ``("begin", s, n)``, ``("frame", s, k, (3, S, S) float)``, ``("end", s, info)`` and
    ``("error", s, exception)`` for each video, in order."""
    for s in samples:
        try:
            with VideoReader(s.path, size=decode_size) as r:
                duration = r.info.duration
                end = duration if s.end is None else min(s.end, duration)
                times = sampler.sample(None, duration, start=max(0.0, s.start), end=end)[0]
                yield "begin", s, len(times)
                pts = np.zeros(len(times))
                for k, frame, p in r.iter_frames_at(times, **sampler.decode_options):
                    pts[k] = p
                    yield "frame", s, k, transform(frame[None])[0]
        except (VideoDecodeError, FileNotFoundError, ValueError) as e:
            yield "error", s, e
            continue
        yield "end", s, {"path": s.path, "label": s.label, "duration": duration,
                         "times": [round(float(t), 6) for t in pts]}


class _CacheWriter:
    """Rows of each video's memory-mapped ``.npy`` (written atomically, then its ``.json``)."""

    def __init__(self, folder: Path, on_error: str):
        self.folder, self.on_error = folder, on_error
        self.open: dict[str, dict] = {}  # key -> {stack, tmp, arr, n, written, info}
        self.done = self.failed = self.frames = 0

    def begin(self, s: VideoSample, n: int) -> None:
        stack = contextlib.ExitStack()
        tmp = stack.enter_context(atomic_write(self.folder / f"{s.key}.npy"))
        self.open[s.key] = {"stack": stack, "tmp": tmp, "arr": None, "n": n, "written": 0, "info": None}

    def write(self, s: VideoSample, rows: Sequence[int], y: np.ndarray) -> None:
        v = self.open.get(s.key)
        if v is None:  # the video failed after these frames were decoded
            return
        if v["arr"] is None:
            v["arr"] = np.lib.format.open_memmap(v["tmp"], mode="w+", dtype=np.float16, shape=(v["n"], *y.shape[1:]))
        v["arr"][list(rows)] = y
        v["written"] += len(rows)
        self._maybe_finish(s)

    def end(self, s: VideoSample, info: dict) -> None:
        self.open[s.key]["info"] = info
        self._maybe_finish(s)

    def _maybe_finish(self, s: VideoSample) -> None:
        v = self.open[s.key]
        if v["info"] is None or v["written"] < v["n"]:
            return
        v["arr"].flush()
        del v["arr"]
        v["stack"].close()  # the .npy appears
        write_text(self.folder / f"{s.key}.json", json.dumps(v["info"]))  # then the .json: the video is done
        del self.open[s.key]
        self.done += 1
        self.frames += v["n"]

    def error(self, s: VideoSample, e: Exception) -> None:
        v = self.open.pop(s.key, None)
        if v is not None:
            v["arr"] = None
            v["stack"].__exit__(type(e), e, e.__traceback__)  # the temporary file is removed
        if self.on_error == "raise":
            raise e
        log.warning("skipping %s: %s", s.path, e)
        self.failed += 1

    def abort(self) -> None:
        for v in self.open.values():
            v["arr"] = None
            v["stack"].__exit__(RuntimeError, RuntimeError("aborted"), None)
        self.open.clear()


def _encode_stream(events, enc, writer: _CacheWriter, batch_size: int, device: str, bf16: bool, maps: bool) -> None:
    batch: list[torch.Tensor] = []
    owners: list[tuple[VideoSample, int]] = []
    dev = torch.device(device)

    def flush():
        x = torch.stack(batch)[None].to(dev, non_blocking=True)  # (1, n, 3, S, S)
        with torch.inference_mode(), torch.autocast(dev.type, torch.bfloat16, enabled=bf16):
            y = enc.forward_maps(x)[0] if maps else enc(x)[0]  # (n, C, h, w) or (n, D)
        y = y.float().cpu().numpy().astype(np.float16)
        start = 0
        for _, group in itertools.groupby(owners, key=lambda o: id(o[0])):  # one write per video's run of rows
            rows = [k for _, k in group]
            writer.write(owners[start][0], rows, y[start:start + len(rows)])
            start += len(rows)
        batch.clear()
        owners.clear()

    try:
        for ev in events:
            kind, s = ev[0], ev[1]
            if kind == "frame":
                batch.append(ev[3])
                owners.append((s, ev[2]))
                if len(batch) == batch_size:
                    flush()
            elif kind == "begin":
                writer.begin(s, ev[2])
            elif kind == "end":
                writer.end(s, ev[2])
            else:
                keep = [(f, o) for f, o in zip(batch, owners) if o[0] is not s]
                batch[:], owners[:] = [f for f, _ in keep], [o for _, o in keep]
                writer.error(s, ev[2])
        if batch:
            flush()
    finally:
        writer.abort()  # anything unfinished (an error was raised) leaves no file behind


@contextlib.contextmanager
def _prefetched(events: Iterator, n: int):
    """``events`` produced by a background thread, up to ``n`` ahead (``n=0``: in this thread).
    Exceptions of the producer are re-raised here; leaving the block stops it."""
    if n <= 0:
        yield events
        return
    q: queue.Queue = queue.Queue(maxsize=n)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for ev in events:
                while not stop.is_set():
                    try:
                        q.put(ev, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # noqa: BLE001 -- handed to the consumer
            q.put(("raise", e))
        finally:
            getattr(events, "close", lambda: None)()  # a stopped generator closes its open video now

    def consume():
        while True:
            ev = q.get()
            if ev is done:
                return
            if ev[0] == "raise":
                raise ev[1]
            yield ev

    th = threading.Thread(target=produce, name="vidrnn-decode", daemon=True)
    th.start()
    try:
        yield consume()
    finally:
        stop.set()
        while th.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                th.join(0.05)
