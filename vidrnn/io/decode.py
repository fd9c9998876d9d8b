"""Video decoding: PyAV by default, TorchCodec when installed, the same RGB frames either way.

A frame is addressed by its presentation time in seconds, measured from the start of the
chosen video stream (so the first frame is at 0.0 whatever the container's start offset).
"The frame at time t" is the frame on screen at t: the last frame whose presentation
timestamp is <= t. This makes variable-frame-rate video work without assuming a constant
rate, and makes index-based sampling (frame i = the frame at the i-th timestamp) exact.

Decoding at a sorted list of times seeks forward when the next wanted time is far ahead of
the decoder's position, so sparse sampling (e.g. 1 frame/s from an hour-long video) costs in
proportion to the frames taken, not to the video's length. Frames are converted to RGB only
when they are taken.

Rotation metadata (the display matrix) is honoured: frames come out the way a player shows
them.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, asdict
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from vidrnn.errors import VideoDecodeError

__all__ = ["VideoInfo", "VideoReader", "DecodeLimits", "probe_video", "read_video", "available_backends"]

_EPS = 1e-6  # seconds; tolerance when matching a wanted time to a frame timestamp


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about one video stream.

    Attributes:
        path: the file.
        stream_index: index of the stream in the container (as ffprobe numbers it).
        width, height: frame size in pixels as displayed (after rotation).
        fps: average frame rate in frames/s (nominal for variable-frame-rate video).
        duration: stream duration in seconds.
        num_frames: frame count from the container header, or an estimate
            ``round(duration * fps)`` when the container does not store it.
        rotation: display rotation in degrees counter-clockwise applied to decoded frames.
    """

    path: str
    stream_index: int
    width: int
    height: int
    fps: float
    duration: float
    num_frames: int
    rotation: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DecodeLimits:
    """Plausibility limits a :class:`VideoReader` checks before it allocates or decodes, so that a
    corrupt or hostile file gets a clear :class:`VideoDecodeError` instead of exhausting memory
    or time.

    Attributes:
        max_width, max_height: frame size in pixels (declared by the stream, checked before the
            first frame is decoded; 8192 covers 8K video).
        max_fps: frames per second the stream declares.
        max_duration: seconds the container or stream declares (7 days).
        max_frames: frames one call may ask for (:meth:`VideoReader.get_frames_at`).
        budget: seconds of decoding per reader before the file is abandoned (None: no limit).
    """

    max_width: int = 8192
    max_height: int = 8192
    max_fps: float = 1000.0
    max_duration: float = 7 * 24 * 3600.0
    max_frames: int = 100_000
    budget: float | None = None


#: errors of FFmpeg/PyAV and of allocation that a damaged file can raise anywhere in decoding
def _decode_failures() -> tuple:
    import av

    return (av.FFmpegError, MemoryError, OverflowError, AttributeError, RuntimeError, IndexError, ZeroDivisionError)


def available_backends() -> list[str]:
    """Decoding backends that import on this machine, in order of preference for ``"auto"``."""
    out = ["pyav"]
    try:  # TorchCodec needs FFmpeg's shared libraries on the system.
        import torchcodec.decoders  # noqa: F401

        out.append("torchcodec")
    except Exception:  # pragma: no cover - depends on the machine
        pass
    return out


def _open_container(path: Path):
    import av

    if not path.exists():
        raise FileNotFoundError(f"video file not found: {path}")
    if path.is_dir():
        raise VideoDecodeError(path, "is a directory, expected a video file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"not a readable video container ({e.__class__.__name__}: {e})") from e


def _select_stream(container, path: Path, stream: int | None):
    videos = list(container.streams.video)
    if not videos:
        kinds = ", ".join(f"{s.index}:{s.type}" for s in container.streams) or "none"
        raise VideoDecodeError(path, f"contains no video stream (streams: {kinds})")
    if stream is None:
        # FFmpeg's "best stream" heuristic for video: prefer the default disposition, then the
        # largest frame; we follow the largest-frame rule (ties: lowest index).
        return max(videos, key=lambda s: (_declared_size(s)[0] * _declared_size(s)[1], -s.index))
    by_index = {s.index: s for s in container.streams}
    if stream not in by_index:
        raise ValueError(f"stream={stream}: {path} has streams {sorted(by_index)}")
    if by_index[stream].type != "video":
        raise ValueError(
            f"stream={stream}: stream {stream} of {path} is {by_index[stream].type}, not video; "
            f"video streams: {[s.index for s in videos]}"
        )
    return by_index[stream]


def _declared_size(stream) -> tuple[int, int]:
    """(width, height) a stream declares, (0, 0) when its header does not say (a damaged file)."""
    cc = getattr(stream, "codec_context", None)
    return (int(getattr(cc, "width", 0) or 0), int(getattr(cc, "height", 0) or 0))


def _rotation_of(frame) -> int:
    rot = getattr(frame, "rotation", 0) or 0
    return int(round(rot / 90.0)) * 90 % 360


class VideoReader:
    """Random access to the frames of one video stream.

    Args:
        path: video file (anything FFmpeg reads: mp4, mkv, avi, webm, gif, ...).
        stream: container stream index of the video stream to read; ``None`` picks the best
            one (the largest frame size).
        size: if given, frames are scaled so their shorter side is ``size`` pixels (or to
            exactly ``(height, width)`` for a pair) while converting to RGB, in FFmpeg's
            swscale (bilinear). ``None`` keeps the decoded size, bit-exact RGB.
        threads: decoder threads; 0 lets FFmpeg choose.
        backend: ``"pyav"``, ``"torchcodec"`` or ``"auto"`` (PyAV; TorchCodec is used only
            when asked for, since both give the same frames).
        seek_threshold: seconds; a wanted time this far past the decoder's position is
            reached by seeking rather than by decoding forward.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoDecodeError: not a video, no video stream, or no decodable frames.
        ValueError: ``stream`` is not a video stream of the file.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        stream: int | None = None,
        size: int | tuple[int, int] | None = None,
        threads: int = 0,
        backend: str = "auto",
        seek_threshold: float = 1.0,
        limits: DecodeLimits | None = None,
    ):
        self.path = Path(path)
        self.limits = limits or DecodeLimits()
        if backend not in ("auto", "pyav", "torchcodec"):
            raise ValueError(f"backend={backend!r}: expected 'auto', 'pyav' or 'torchcodec'")
        if backend == "torchcodec" and "torchcodec" not in available_backends():
            raise ValueError("backend='torchcodec' but torchcodec does not import on this machine")
        if backend == "torchcodec" and size is not None:
            raise ValueError("size= (resizing while decoding) needs backend='pyav'")
        self.backend = "pyav" if backend == "auto" else backend
        self.size = size
        self.seek_threshold = float(seek_threshold)
        self._container = _open_container(self.path)
        self._t0 = time.monotonic()
        try:
            self._stream = _select_stream(self._container, self.path, stream)
            self._check_declared()
            self._stream.thread_type = "AUTO"
            self._stream.thread_count = int(threads)
            self._tb = float(self._stream.time_base)
            self._start_pts = self._stream.start_time or 0
            self._timestamps: np.ndarray | None = None
            self._keyframes: np.ndarray | None = None
            self._gop_guess = 0.0  # longest keyframe spacing seen, seconds
            self._dts_times = self._container.format.name == "avi"
            rate = self._stream.average_rate or self._stream.guessed_rate
            self._fps = float(rate) if rate else 0.0
            self._tc = None
            self._reformatter = None
            self.info = self._probe()
        except VideoDecodeError:
            self._container.close()
            raise
        except _decode_failures() as e:
            self._container.close()
            raise VideoDecodeError(self.path, f"the file is damaged ({type(e).__name__}: {e})") from e
        except BaseException:
            self._container.close()
            raise

    def _check_declared(self) -> None:
        """The limits that the headers alone can be checked against, before anything is decoded."""
        lim, s, c = self.limits, self._stream, self._container
        self._check_size(*_declared_size(s), "declares")
        rate = s.average_rate or s.guessed_rate
        if rate and float(rate) > lim.max_fps:
            raise VideoDecodeError(self.path, f"declares {float(rate):.4g} frames/s, more than the limit of "
                                              f"{lim.max_fps:g} (DecodeLimits.max_fps)")
        durations = [float(s.duration * s.time_base) if s.duration else 0.0, (c.duration or 0) / 1e6]
        if max(durations) > lim.max_duration:
            raise VideoDecodeError(self.path, f"declares a duration of {max(durations):.4g} s, more than the limit of "
                                              f"{lim.max_duration:g} s (DecodeLimits.max_duration)")

    def _check_size(self, w: int, h: int, verb: str) -> None:
        if w > self.limits.max_width or h > self.limits.max_height:
            raise VideoDecodeError(self.path, f"{verb} {w}x{h} frames, more than the limit of {self.limits.max_width}x"
                                              f"{self.limits.max_height} (DecodeLimits.max_width/max_height)")

    def _check_budget(self) -> None:
        if self.limits.budget is not None and time.monotonic() - self._t0 > self.limits.budget:
            raise VideoDecodeError(self.path, f"decoding took more than {self.limits.budget:g} s "
                                              "(DecodeLimits.budget); the file is abandoned")

    # ------------------------------------------------------------------ metadata
    def _probe(self) -> VideoInfo:
        s, c = self._stream, self._container
        rate = s.average_rate or s.guessed_rate or s.base_rate
        fps = float(rate) if rate else 0.0
        if s.duration:
            duration = float(s.duration * s.time_base)
        elif c.duration:
            duration = c.duration / 1e6 - max(0.0, self._start_pts * self._tb - (c.start_time or 0) / 1e6)
        else:
            duration = 0.0
        num_frames = int(s.frames) if s.frames else int(round(duration * fps))
        # The first frame tells the rotation and proves the stream decodes at all.
        first = self._first_frame()
        rotation = _rotation_of(first)
        w, h = first.width, first.height
        self._check_size(w, h, "has")
        if rotation in (90, 270):
            w, h = h, w
        if fps <= 0 and duration > 0 and num_frames > 0:
            fps = num_frames / duration
        return VideoInfo(str(self.path), s.index, w, h, fps, max(duration, 0.0), num_frames, rotation)

    def _first_frame(self):
        import av

        try:
            self._container.seek(self._start_pts, stream=self._stream, backward=True, any_frame=False)
        except av.FFmpegError:
            pass
        try:
            for frame in self._container.decode(self._stream):
                return frame
        except av.FFmpegError as e:
            raise VideoDecodeError(self.path, f"the video stream does not decode ({e})") from e
        raise VideoDecodeError(self.path, "the video stream has zero decodable frames")

    def frame_timestamps(self) -> np.ndarray:
        """Presentation time (seconds from the stream start) of every frame, sorted.

        Read by demuxing packets, without decoding; cached. Exact for variable frame rate.

        Raises:
            VideoDecodeError: the stream has no timestamped packets.
        """
        if self._timestamps is None:
            try:
                self._timestamps_from_packets()
            except VideoDecodeError:
                raise
            except (ValueError, *_decode_failures()) as e:
                raise VideoDecodeError(self.path, f"the file is damaged ({type(e).__name__}: {e})") from e
        return self._timestamps

    def _timestamps_from_packets(self) -> None:
        """Fill ``_timestamps`` and ``_keyframes`` (:meth:`frame_timestamps`)."""
        pts, keys = self._demux_index()
        if not pts:
            # Some containers (raw streams) have no packet pts: fall back to decoding.
            for f, t in self._decode_from(self._start_pts):
                pts.append(round(t / self._tb) + self._start_pts)
                if f.key_frame:
                    keys.append(pts[-1])
            if not pts:
                raise VideoDecodeError(self.path, "no frame has a timestamp; cannot address frames")
            self._set_index(pts, keys)

    def _set_index(self, pts: list, keys: list) -> None:
        """Cache frame and keyframe times (stream units -> sorted seconds from the start)."""
        self._timestamps = (np.array(sorted(set(pts)), dtype=np.float64) - self._start_pts) * self._tb
        self._keyframes = (np.array(sorted(set(keys or pts[:1])), dtype=np.float64) - self._start_pts) * self._tb

    def _demux_index(self) -> tuple[list, list]:
        """Presentation times (stream units) of the packets and of the keyframe packets, read by
        demuxing without decoding; cached (as seconds) when any packet has one."""
        import av

        pts, keys = [], []
        try:
            self._container.seek(self._start_pts, stream=self._stream, backward=True, any_frame=False)
            for packet in self._container.demux(self._stream):
                if packet.pts is not None and packet.size > 0:
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        keys.append(packet.pts)
        except av.FFmpegError:
            pass  # a truncated file: keep the packets read so far
        if pts:
            self._set_index(pts, keys)
        return pts, keys

    def keyframe_times(self) -> np.ndarray:
        """Presentation times (seconds from the stream start) of the keyframes, sorted; read
        with :meth:`frame_timestamps` (demuxing, no decoding) and cached.

        Raises:
            VideoDecodeError: the stream has no timestamped packets.
        """
        self.frame_timestamps()
        return self._keyframes

    # ------------------------------------------------------------------ decoding
    def _decode_from(self, pts: int) -> Iterator[tuple[object, float]]:
        """Decode from the keyframe at or before ``pts``; yields ``(frame, seconds)``.

        A frame's time is its pts, except in AVI, which stores no presentation times: FFmpeg
        guesses them from packet order, and with packed B-frames (XviD/DivX) they come out of
        display order while the dts count frames in display order, so dts are used there.
        """
        import av

        try:
            self._container.seek(max(int(pts), self._start_pts), stream=self._stream, backward=True, any_frame=False)
        except av.EOFError:
            return
        except av.FFmpegError as e:
            raise VideoDecodeError(self.path, f"seeking failed, the file may be truncated or corrupt ({e})") from e
        try:
            for frame in self._container.decode(self._stream):
                self._check_budget()
                yield frame, self._seconds(frame)
        except av.EOFError:
            return
        except av.FFmpegError as e:
            raise VideoDecodeError(self.path, f"decoding failed, the file may be truncated or corrupt ({e})") from e

    def _seconds(self, frame) -> float:
        first, second = (frame.dts, frame.pts) if self._dts_times else (frame.pts, frame.dts)
        ts = first if first is not None else second
        if ts is None:
            raise VideoDecodeError(self.path, "a decoded frame has no timestamp")
        return (ts - self._start_pts) * self._tb

    def _to_tensor(self, frame) -> torch.Tensor:
        kw = {"format": "rgb24"}
        if self.size is not None:
            h, w = frame.height, frame.width
            if isinstance(self.size, int):
                rot = _rotation_of(frame)
                sh, sw = (w, h) if rot in (90, 270) else (h, w)
                scale = self.size / min(sh, sw)
                nh, nw = max(1, round(sh * scale)), max(1, round(sw * scale))
                kw["height"], kw["width"] = (nw, nh) if rot in (90, 270) else (nh, nw)
            else:
                th, tw = self.size
                kw["height"], kw["width"] = (tw, th) if _rotation_of(frame) in (90, 270) else (th, tw)
            kw["interpolation"] = "BILINEAR"
        if self._reformatter is None:  # one for the reader: swscale's context is built once, not per frame
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
        arr = self._reformatter.reformat(frame, **kw).to_ndarray()  # (H, W, 3) uint8
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)  # (3, H, W)
        k = _rotation_of(frame) // 90
        if k:
            t = torch.rot90(t, k, dims=(1, 2))
        return t.contiguous()

    def iter_frames_at(self, times: Sequence[float], *, seek: str = "exact",
                       tolerance: float | None = None) -> Iterator[tuple[int, torch.Tensor, float]]:
        """Decode the frames shown at ``times`` (seconds), in increasing time order.

        Yields ``(i, frame, pts)`` where ``i`` indexes ``times``, ``frame`` is uint8
        ``(3, H, W)`` RGB and ``pts`` the frame's presentation time in seconds. A time before
        the first frame gives the first frame; after the last, the last frame. Repeated
        times yield the same frame again. Memory stays bounded by one decoded frame. Only
        the frames taken are converted to RGB (and scaled, in swscale).

        ``seek="keyframe"`` is approximate and much faster on long videos: a wanted time whose
        nearest keyframe lies within ``tolerance`` seconds (``None``: any distance) gets that
        keyframe, decoded alone with the decoder skipping every non-key frame
        (``skip_frame=NONKEY``); the other times are decoded exactly. The yielded ``pts`` is
        the frame actually taken, so the approximation is visible. In this mode the
        keyframe-served times come first (in time order), then the exact ones.

        The decoder seeks when the next keyframe after its position lies at or before the
        wanted time (decoding from there costs less than decoding forward), else it decodes
        forward. For more than two times the keyframes are looked up first (the container's
        index, or a demux without decoding: a few percent of a full decode);
        for one or two, their positions are predicted from the spacing seen so far (before
        any is known: seek when the wanted time is more than ``seek_threshold`` seconds ahead,
        and seek less eagerly after a seek that landed behind the decoder's position).

        Raises:
            VideoDecodeError: the stream fails to decode, a limit is exceeded (more than
                ``limits.max_frames`` times, the decode budget), or the file is damaged: any
                failure of the file surfaces as this error.
            ValueError: a bad ``seek`` or ``tolerance``.
        """
        if seek not in ("exact", "keyframe"):
            raise ValueError(f"seek={seek!r}: expected 'exact' or 'keyframe'")
        if tolerance is not None and not tolerance >= 0:
            raise ValueError(f"tolerance={tolerance!r}: expected seconds >= 0 or None")
        if len(times) > self.limits.max_frames:
            raise VideoDecodeError(self.path, f"{len(times)} frames asked for, more than the limit of "
                                              f"{self.limits.max_frames} (DecodeLimits.max_frames)")
        try:
            yield from self._iter_frames_at(times, seek=seek, tolerance=tolerance)
        except VideoDecodeError:
            raise
        except (ValueError, *_decode_failures()) as e:  # the arguments were checked: the file is at fault
            raise VideoDecodeError(self.path, f"the file is damaged ({type(e).__name__}: {e})") from e

    def _iter_frames_at(self, times: Sequence[float], *, seek: str, tolerance: float | None):
        """:meth:`iter_frames_at` with its arguments checked."""
        if seek == "keyframe":
            yield from self._iter_keyframes(times, tolerance)
            return
        if self.backend == "torchcodec":
            yield from self._iter_torchcodec(times)
            return
        order = np.argsort(np.asarray(times, dtype=np.float64), kind="stable")
        self._stream.codec_context.skip_frame = "DEFAULT"  # whatever an abandoned keyframe pass left
        keys = self._keyframes
        if keys is None and len(times) > 2:
            plan = self._keyframe_plan(decode=False)
            keys = None if plan is None else plan[0]
        gen = None
        position = -math.inf  # time of the newest frame pulled from the decoder
        last_key = None  # time of the newest keyframe pulled
        last = pending = None  # (frame, time): newest with time <= t; pulled but not yet reached
        cached: tuple[object, torch.Tensor] | None = None

        def note(item):
            nonlocal position, last_key
            if item is not None:
                if item[0].key_frame:
                    if last_key is not None and item[1] > last_key:
                        self._gop_guess = max(self._gop_guess, item[1] - last_key)
                    last_key = item[1]
                position = item[1]
            return item

        for i in order:
            t = float(times[i])
            if gen is None or (pending is None and self._should_seek(t, position, last_key, keys)):
                before = position
                gen, pending = self._seek(t)
                last = None
                if pending is not None and pending[1] < before - _EPS:
                    # the seek landed behind where we were: keyframes are sparser than guessed
                    self._gop_guess = max(self._gop_guess, t - pending[1])
                note(pending)
            while True:
                if pending is None:
                    if last is not None and self._still_shown(last, t):
                        break  # no need to decode the next frame to know what is on screen at t
                    pending = note(next(gen, None))
                    if pending is None:
                        break  # end of stream: the last frame stays on screen
                if pending[1] <= t + _EPS:
                    last, pending = pending, None
                else:
                    break
            frame = last if last is not None else pending
            if frame is None:
                raise VideoDecodeError(self.path, f"no frame could be decoded at {t:.3f} s")
            if cached is None or cached[0] is not frame[0]:
                cached = (frame[0], self._to_tensor(frame[0]))
            yield int(i), cached[1], frame[1]

    def _keyframe_plan(self, *, decode: bool = True) -> tuple[np.ndarray, np.ndarray] | None:
        """Keyframe times (seconds) and their packet ordinals in the stream.

        From the container's own index when it lists every packet and no frame is reordered
        (MP4/MOV without B-frames: read at open, no demuxing; the index holds decode times,
        which equal presentation times only then), else from :meth:`keyframe_times` (a demux
        of the whole stream). ``decode=False``: None rather than decoding the whole stream
        when its packets carry no timestamps (raw streams)."""
        try:
            entries = self._stream.index_entries
        except AttributeError:  # PyAV < 14
            entries = []
        n = int(self._stream.frames or 0)
        if n > 0 and len(entries) == n:
            key = [(i, e.timestamp) for i, e in enumerate(entries) if e.is_keyframe]
            pts = [d for _, d in key] if not self._stream.codec_context.has_b_frames else self._packet_pts(key)
            if key and pts is not None:
                pos = np.array([i for i, _ in key], dtype=np.int64)
                return (np.array(pts, dtype=np.float64) - self._start_pts) * self._tb, pos
        if not decode and self._keyframes is None:
            self._demux_index()
            if self._keyframes is None:
                return None
        keys, ts = self.keyframe_times(), self.frame_timestamps()
        return keys, np.searchsorted(ts, keys - _EPS)

    def _packet_pts(self, key: list[tuple[int, int]]) -> list[int] | None:
        """Presentation times of the keyframe packets at the index's decode times ``key``
        (``(ordinal, dts)`` pairs): one seek and one packet read each, no decoding. None when a
        seek does not land on that keyframe (then the caller demuxes everything)."""
        import av

        out = []
        try:
            for _, dts in key:  # forward seek: the first keyframe at or after dts, this one
                self._container.seek(int(dts), stream=self._stream, backward=False, any_frame=False)
                packet = next(self._container.demux(self._stream), None)
                if packet is None or packet.dts != dts or packet.pts is None or not packet.is_keyframe:
                    return None
                out.append(packet.pts)
        except av.FFmpegError:
            return None
        return out

    def _iter_keyframes(self, times: Sequence[float], tolerance: float | None):
        """``seek="keyframe"`` of :meth:`iter_frames_at`."""
        keys, ordinal = self._keyframe_plan()
        t = np.asarray(times, dtype=np.float64)
        j = np.clip(np.searchsorted(keys, t), 1, max(len(keys) - 1, 1))
        lo = keys[np.maximum(j - 1, 0)]
        hi = keys[np.minimum(j, len(keys) - 1)]
        nearest = np.where(np.abs(t - lo) <= np.abs(hi - t), j - 1, j).clip(0, len(keys) - 1)
        near = np.ones(len(t), bool) if tolerance is None else np.abs(keys[nearest] - t) <= tolerance + _EPS

        def between(a: int, b: int) -> int:  # packets the demuxer would read going from keyframe a to b
            return int(ordinal[b] - ordinal[a])

        cc = self._stream.codec_context
        old = cc.skip_frame
        cc.skip_frame = "NONKEY"
        try:
            gen, pos, cur = None, -1, None  # decoder, index of the last keyframe pulled, (frame, time, tensor)
            for i in np.argsort(np.where(near, keys[nearest], np.inf), kind="stable")[: int(near.sum())]:
                k = int(nearest[i])
                if cur is None or abs(cur[1] - keys[k]) > _EPS:
                    if gen is None or not pos < k or between(pos, k) > 48:  # far ahead or behind: seek to it
                        gen = self._decode_from(self._start_pts + int(round(keys[k] / self._tb)))
                    item = None
                    for item in gen:  # only keyframes come out of the decoder now
                        if item[1] >= keys[k] - _EPS:
                            break
                    if item is None:
                        raise VideoDecodeError(self.path, f"the keyframe at {keys[k]:.3f} s does not decode")
                    pos = k
                    cur = (item[0], item[1], self._to_tensor(item[0]))
                yield int(i), cur[2], cur[1]
        finally:
            cc.skip_frame = old
        rest = np.flatnonzero(~near)
        if len(rest):
            for i, frame, p in self.iter_frames_at(t[rest]):
                yield int(rest[i]), frame, p

    def _seek(self, t: float):
        """A decoder positioned at the keyframe at or before ``t``: ``(generator, first frame)``.

        Containers index keyframes by decode time, which can precede the presentation time
        (MP4 with B-frames), so the seek aims a little past ``t``; if that lands after ``t``
        (a keyframe in between), it seeks further back.
        """
        step = 0.5 / self._fps if self._fps > 0 else 0.01
        for target in (t + step, t - max(1.0, 2 * self._gop_guess), 0.0):
            gen = self._decode_from(self._start_pts + int(math.floor(max(target, 0.0) / self._tb)))
            first = next(gen, None)
            if first is None or first[1] <= t + _EPS or target <= 0.0:
                return gen, first
        raise AssertionError("unreachable")

    def _still_shown(self, last, t: float) -> bool:
        """True if frame ``last`` = (frame, time) certainly still shows at ``t``: ``t`` is in the
        first half of its duration (half, so a rounded-up duration cannot mislead)."""
        f, ft = last
        return bool(f.duration) and t + _EPS < ft + 0.5 * f.duration * self._tb

    def _should_seek(self, t: float, position: float, last_key: float | None, keys: np.ndarray | None = None) -> bool:
        """Seek to reach ``t`` if the next keyframe after ``position`` lies at or before it: known
        from ``keys`` (the keyframe times), else predicted from the spacing seen so far (or,
        with that still unknown, if ``t`` is ``seek_threshold`` seconds ahead)."""
        if t <= position + _EPS:
            return False
        if keys is not None:
            j = int(np.searchsorted(keys, position + _EPS, side="right"))
            return j < len(keys) and keys[j] <= t + _EPS
        if self._gop_guess > 0 and last_key is not None:
            return last_key + self._gop_guess <= t + _EPS
        return t - position > self.seek_threshold

    def _iter_torchcodec(self, times):
        if self._tc is None:
            from torchcodec.decoders import VideoDecoder

            self._tc = VideoDecoder(str(self.path), stream_index=self._stream.index, dimension_order="NCHW")
        start = self._start_pts * self._tb
        md = self._tc.metadata
        first = float(md.begin_stream_seconds or 0.0)
        end = float(md.end_stream_seconds) if md.end_stream_seconds is not None else math.inf
        order = np.argsort(np.asarray(times, dtype=np.float64), kind="stable")
        for i in order:
            t = max(float(times[i]) + start, first)
            if t < end - 1e-6:
                fb = self._tc.get_frames_played_at(seconds=[t])
            else:  # at or past the end: the last frame (its pts may equal end_stream_seconds)
                fb = self._tc.get_frames_at(indices=[len(self._tc) - 1])
            yield int(i), fb.data[0], float(fb.pts_seconds[0]) - start

    def get_frames_at(self, times: Sequence[float], *, seek: str = "exact",
                      tolerance: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames shown at ``times`` (seconds from the stream start), in the order given
        (``seek``, ``tolerance``: see :meth:`iter_frames_at`).

        Returns:
            ``(frames, pts)``: uint8 ``(T, 3, H, W)`` RGB and float64 ``(T,)`` seconds.
        """
        if len(times) == 0:
            raise ValueError("times is empty: ask for at least one frame")
        out: list[torch.Tensor | None] = [None] * len(times)
        pts = torch.zeros(len(times), dtype=torch.float64)
        for i, frame, p in self.iter_frames_at(times, seek=seek, tolerance=tolerance):
            out[i] = frame
            pts[i] = p
        return torch.stack(out), pts  # type: ignore[arg-type]

    def get_frames(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames by index into :meth:`frame_timestamps` (negative indices count from the end).

        Raises:
            IndexError: an index outside the video's frames.
        """
        ts = self.frame_timestamps()
        idx = np.asarray(indices, dtype=np.int64)
        bad = (idx >= len(ts)) | (idx < -len(ts))
        if bad.any():
            raise IndexError(f"{self.path}: frame index {int(idx[bad][0])} out of range for {len(ts)} frames")
        return self.get_frames_at(ts[idx].tolist())

    def iter_frames(self) -> Iterator[tuple[torch.Tensor, float]]:
        """Every frame in presentation order as ``(uint8 (3, H, W), pts seconds)``."""
        for frame, t in self._decode_from(self._start_pts):
            yield self._to_tensor(frame), t

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return f"VideoReader({i.path!r}, stream={i.stream_index}, {i.width}x{i.height}, {i.fps:.3g} fps, {i.duration:.2f} s)"


def probe_video(path: str | os.PathLike, *, stream: int | None = None) -> VideoInfo:
    """Stream metadata of a video (decodes one frame to check it decodes and read rotation).

    Raises:
        FileNotFoundError, VideoDecodeError, ValueError: as :class:`VideoReader`.
    """
    with VideoReader(path, stream=stream) as r:
        return r.info


def read_video(
    path: str | os.PathLike,
    *,
    times: Sequence[float] | None = None,
    indices: Sequence[int] | None = None,
    stream: int | None = None,
    size: int | tuple[int, int] | None = None,
) -> torch.Tensor:
    """Decode frames of a video as uint8 ``(T, 3, H, W)`` RGB.

    Args:
        path: the video file.
        times: seconds from the stream start (the frames shown at those times), or
        indices: frame indices; with neither, every frame is returned.
        stream, size: as :class:`VideoReader`.

    Raises:
        ValueError: both ``times`` and ``indices`` given.
    """
    if times is not None and indices is not None:
        raise ValueError("give times= or indices=, not both")
    with VideoReader(path, stream=stream, size=size) as r:
        if times is not None:
            return r.get_frames_at(times)[0]
        if indices is not None:
            return r.get_frames(indices)[0]
        frames = [f for f, _ in r.iter_frames()]
        if not frames:
            raise VideoDecodeError(path, "the video stream has zero decodable frames")
        return torch.stack(frames)
