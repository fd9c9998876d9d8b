"""Fuzzing campaign against video decoding: mutated and crafted copies of the real clips.

Every case is a file made from a clip in ``../shared/data/videos`` by one seeded mutation:
truncation, bit flips in the header or the payload, zeroed blocks, swapped blocks, or a crafted
header (a container duration of ~1e15 s, a frame size of 16000x16000, a frame rate of 1e9). Each
case is read by :class:`vidrnn.io.VideoReader` and every sampler (uniform, TSN segments, dense,
1 frame/s exact and keyframe), in a worker process with a time limit per case; a case that
kills the worker is a crash, one that runs past the limit a hang. The outcome of a case is
``ok`` (frames), ``VideoDecodeError`` (a clear error), or the name of any other exception.

Usage: python benchmarks/fuzz_decode.py [--cases 2000] [--seed 0] [--timeout 20]
(tests/test_fuzz.py runs a few hundred cases of the same campaign.)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import struct
import tempfile
import time
from collections import Counter
from pathlib import Path

from _shared import add_data_argument

SOURCES = ("asl/again.mkv", "asl/eat.mkv", "clips/arm_wrestling.mp4", "clips/flipping_pancake.mkv",
           "clips/ucf101_xvid_320x240.avi", "clips/v_CricketShot_g04_c01_rgb.gif", "clips/car-detection.mp4")
KINDS = ("truncate", "flip_header", "flip_payload", "zero_block", "swap_blocks", "huge_duration", "huge_size",
         "huge_fps")


def _set_box_field(data: bytearray, box: bytes, offset: int, fmt: str, value) -> bool:
    """Write ``value`` at ``offset`` bytes after the type of every ``box`` (MP4 atoms)."""
    found, i = False, data.find(box)
    while i >= 0:
        j = i + 4 + offset
        if j + struct.calcsize(fmt) <= len(data):
            struct.pack_into(fmt, data, j, value)
            found = True
        i = data.find(box, i + 4)
    return found


def _set_ebml(data: bytearray, element: bytes, value: bytes) -> bool:
    """Overwrite the payload of every Matroska element ``element`` whose size byte fits ``value``."""
    found, i = False, data.find(element)
    while i >= 0:
        j = i + len(element)
        if j < len(data) and data[j] & 0x80:  # one-byte size
            n = data[j] & 0x7F
            if n == len(value) and j + 1 + n <= len(data):
                data[j + 1:j + 1 + n] = value
                found = True
        i = data.find(element, i + 1)
    return found


def mutate(src: bytes, kind: str, rng: random.Random, suffix: str) -> bytes:
    """One mutation of the file ``src`` (see the module docstring)."""
    data = bytearray(src)
    n = len(data)
    if kind == "truncate":
        return bytes(data[: rng.randrange(1, n)])
    if kind in ("flip_header", "flip_payload"):
        lo, hi = (0, min(n, 4096)) if kind == "flip_header" else (min(n - 1, 4096), n)
        for _ in range(rng.randint(1, 16)):
            k = rng.randrange(lo, hi)
            data[k] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == "zero_block":
        size = rng.randint(16, 4096)
        k = rng.randrange(0, max(1, n - size))
        data[k:k + size] = bytes(min(size, n - k))
        return bytes(data)
    if kind == "swap_blocks":
        size = rng.randint(16, min(4096, n // 4))
        a, b = rng.randrange(0, n - size), rng.randrange(0, n - size)
        data[a:a + size], data[b:b + size] = data[b:b + size], data[a:a + size]
        return bytes(data)
    if kind == "huge_duration":
        ok = (_set_box_field(data, b"mvhd", 16, ">I", 0xFFFFFFF0) | _set_box_field(data, b"mdhd", 16, ">I", 0xFFFFFFF0)
              | _set_box_field(data, b"mvhd", 12, ">I", 1) | _set_box_field(data, b"mdhd", 12, ">I", 1))
        if suffix == ".mkv":
            ok |= _set_ebml(data, b"\x44\x89", struct.pack(">d", 1e15)) | _set_ebml(data, b"\x44\x89", struct.pack(">f", 1e15))
            ok |= _set_ebml(data, b"\x2a\xd7\xb1", struct.pack(">I", 1))  # TimestampScale 1 ns
        if suffix == ".avi":
            ok |= _set_box_field(data, b"avih", 20, "<I", 0x7FFFFFFF)  # dwTotalFrames
            ok |= _set_box_field(data, b"strh", 36, "<I", 0x7FFFFFFF)  # dwLength
        return bytes(data) if ok else mutate(src, "flip_header", rng, suffix)
    if kind == "huge_size":
        ok = _set_box_field(data, b"tkhd", 80, ">I", 16000 << 16) | _set_box_field(data, b"tkhd", 84, ">I", 16000 << 16)
        ok |= _set_box_field(data, b"avc1", 28, ">H", 16000) | _set_box_field(data, b"avc1", 30, ">H", 16000)
        if suffix == ".mkv":
            ok |= _set_ebml(data, b"\xb0", struct.pack(">H", 16000)) | _set_ebml(data, b"\xba", struct.pack(">H", 16000))
        if suffix == ".avi":
            ok |= _set_box_field(data, b"avih", 28, "<I", 16000) | _set_box_field(data, b"avih", 32, "<I", 16000)
            ok |= _set_box_field(data, b"strf", 8, "<i", 16000) | _set_box_field(data, b"strf", 12, "<i", 16000)
        if suffix == ".gif":
            struct.pack_into("<HH", data, 6, 16000, 16000)
            ok = True
        return bytes(data) if ok else mutate(src, "flip_header", rng, suffix)
    if kind == "huge_fps":
        ok = _set_box_field(data, b"mdhd", 12, ">I", 1_000_000_000)
        if suffix == ".avi":
            ok |= _set_box_field(data, b"strh", 24, "<I", 1) | _set_box_field(data, b"strh", 28, "<I", 1_000_000_000)
        return bytes(data) if ok else mutate(src, "flip_payload", rng, suffix)
    raise ValueError(kind)


def make_cases(data_dir: Path, out: Path, n: int, seed: int) -> list[tuple[str, str, Path]]:
    """``n`` mutated files in ``out``: ``(source, kind, path)``, deterministic for ``seed``."""
    rng = random.Random(seed)
    cases = []
    blobs = {s: (data_dir / s).read_bytes() for s in SOURCES if (data_dir / s).is_file()}
    names = sorted(blobs)
    for i in range(n):
        src, kind = names[i % len(names)], KINDS[(i // len(names)) % len(KINDS)]
        suffix = Path(src).suffix
        p = out / f"case{i:05d}_{kind}{suffix}"
        p.write_bytes(mutate(blobs[src], kind, rng, suffix))
        cases.append((src, kind, p))
    return cases


def read_case(path: str) -> str:
    """Read one case as a user's pipeline would: probe, then every sampler. Returns ``"ok"``,
    ``"VideoDecodeError"`` or the name of the exception that escaped."""
    import numpy as np

    from vidrnn.errors import VideoDecodeError
    from vidrnn.io import VideoReader
    from vidrnn.io.sampling import DenseSampler, FixedRateSampler, SegmentSampler, UniformSampler

    try:
        with VideoReader(path, size=64, threads=1) as r:
            rng = np.random.default_rng(0)
            for s in (UniformSampler(4), SegmentSampler(4), DenseSampler(4, frame_interval=2),
                      FixedRateSampler(1.0, max_frames=8), FixedRateSampler(1.0, max_frames=8, seek="keyframe")):
                ts = r.frame_timestamps() if s.needs_timestamps else None
                duration = r.info.duration if ts is None else max(r.info.duration, float(ts[-1]))
                try:
                    times = s.sample(ts, duration, training=True, rng=rng)
                except ValueError as e:  # no frame in range: what the datasets report as a bad video
                    raise VideoDecodeError(path, str(e)) from e
                frames, _ = r.get_frames_at(times.reshape(-1), **s.decode_options)
                assert frames.dtype.is_floating_point is False and frames.dim() == 4
        return "ok"
    except VideoDecodeError:
        return "VideoDecodeError"
    except Exception as e:  # noqa: BLE001 -- the point of the campaign: name what escaped
        return type(e).__module__ + "." + type(e).__name__


def _worker(conn) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    while True:
        path = conn.recv()
        if path is None:
            return
        conn.send(read_case(path))


def run_cases(paths: list[Path], timeout: float) -> list[str]:
    """Outcome of each case, read in a worker process restarted after a crash or a hang."""
    ctx = mp.get_context("spawn")
    out, proc, conn = [], None, None
    for p in paths:
        if proc is None:
            conn, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child,), daemon=True)
            proc.start()
        conn.send(str(p))
        t0 = time.monotonic()
        result = None
        while time.monotonic() - t0 < timeout:
            if conn.poll(0.05):
                try:
                    result = conn.recv()
                except EOFError:
                    result = "crash"
                break
            if not proc.is_alive():
                result = f"crash (exit {proc.exitcode})"
                break
        if result is None:
            result = "hang"
        if result == "hang" or result.startswith("crash"):
            proc.kill()
            proc.join()
            proc = None
        out.append(result)
    if proc is not None:
        conn.send(None)
        proc.join(5)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    add_data_argument(ap)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per case before it counts as a hang")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        cases = make_cases(Path(args.data) / "videos", Path(d), args.cases, args.seed)
        outcomes = run_cases([p for _, _, p in cases], args.timeout)
        secs = time.time() - t0
    table = Counter((kind, o) for (_, kind, _), o in zip(cases, outcomes))
    kinds = sorted({k for k, _ in table})
    results = sorted({o for _, o in table}, key=lambda o: (o not in ("ok", "VideoDecodeError"), o))
    print(f"fuzz campaign: {len(cases)} cases from {len(SOURCES)} real clips, seed {args.seed}, "
          f"{args.timeout:g} s per case, {secs:.0f} s")
    w = max(len(k) for k in kinds + ["mutation", "total"]) + 2
    print("mutation".ljust(w) + "".join(r[:28].rjust(30) for r in results))
    for k in kinds:
        print(k.ljust(w) + "".join(str(table[k, r]).rjust(30) for r in results))
    print("total".ljust(w) + "".join(str(sum(table[k, r] for k in kinds)).rjust(30) for r in results))
    bad = [(src, kind, p.name, o) for (src, kind, p), o in zip(cases, outcomes) if o not in ("ok", "VideoDecodeError")]
    print(f"\n{len(bad)} cases ended otherwise than frames or VideoDecodeError" + (":" if bad else ""))
    for b in bad[:30]:
        print("  ", *b)


if __name__ == "__main__":
    main()
