"""Frame samplers: which frames of a video make a clip.

Every sampler returns presentation times in seconds, shape ``(V, T)`` for ``V`` views
(clips) of ``T`` frames, to be decoded with :meth:`vidrnn.io.VideoReader.get_frames_at`.
Index-based samplers (uniform, TSN segments, dense clips) pick frame indices and map them to
the frames' own timestamps, so they are exact on variable-frame-rate video. The fixed-rate
sampler works in time only and needs nothing but the duration, so decoding its frames seeks
instead of reading the whole file.

Samplers:
    * :class:`UniformSampler` -- N frames spread evenly over the whole video.
    * :class:`SegmentSampler` -- TSN (Wang et al., "Temporal Segment Networks", ECCV 2016,
      arXiv:1608.00859): N equal segments, one frame from each, at a random offset in training
      and at the segment centre at test.
    * :class:`DenseSampler` -- consecutive clips of T frames every ``frame_interval`` frames;
      one random clip in training; at test every clip with a given ``stride`` (LRCN tests
      16-frame clips with stride 8) or ``num_clips`` evenly spaced clips.
    * :class:`FixedRateSampler` -- frames at a fixed rate in frames/s (Ng et al. 2015 sample
      1 frame/s), optionally capped at ``max_frames``.

Videos shorter than a clip repeat their last frame (the clip keeps its length).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, ClassVar, Literal

import numpy as np

from vidrnn.errors import ConfigError
from vidrnn.schema import validate_section

__all__ = [
    "DEFAULT_SAMPLER",
    "SamplerSettings",
    "check_sampler_settings",
    "FrameSampler",
    "UniformSampler",
    "SegmentSampler",
    "DenseSampler",
    "FixedRateSampler",
    "build_sampler",
]


class FrameSampler:
    """Base class. Subclasses set ``needs_timestamps`` and implement :meth:`sample_indices`
    (index samplers) or :meth:`sample` (time samplers)."""

    name: ClassVar[str] = ""
    needs_timestamps: ClassVar[bool] = True

    @property
    def decode_options(self) -> dict:
        """Keyword arguments for :meth:`VideoReader.get_frames_at` (how to seek)."""
        return {}

    def sample(
        self,
        timestamps: np.ndarray | None,
        duration: float,
        *,
        training: bool = False,
        rng: np.random.Generator | None = None,
        start: float = 0.0,
        end: float | None = None,
    ) -> np.ndarray:
        """Times to decode, float64 ``(V, T)`` seconds from the stream start.

        Args:
            timestamps: every frame's presentation time in seconds, sorted
                (:meth:`VideoReader.frame_timestamps`); ``None`` for time samplers.
            duration: video duration in seconds.
            training: random choices (offsets, clip positions) when True, fixed ones when False.
            rng: generator for the random choices (a fresh default one if None).
            start, end: restrict sampling to frames shown in ``[start, end)`` seconds (a
                temporal crop, e.g. an annotated segment); ``end=None`` means the end.

        Raises:
            ValueError: no frame lies in ``[start, end)``.
        """
        if timestamps is None:
            raise ValueError(f"{type(self).__name__} needs the frame timestamps")
        ts = np.asarray(timestamps, dtype=np.float64)
        lo = np.searchsorted(ts, start - 1e-6, side="left")
        hi = len(ts) if end is None else np.searchsorted(ts, end - 1e-6, side="left")
        if hi <= lo:
            raise ValueError(f"no frame in [{start}, {end}) s (video has {len(ts)} frames, {duration:.3f} s)")
        idx = self.sample_indices(hi - lo, training=training, rng=rng or np.random.default_rng())
        return ts[lo + idx]

    def sample_indices(self, num_frames: int, *, training: bool, rng: np.random.Generator) -> np.ndarray:
        """Frame indices int64 ``(V, T)`` into a video of ``num_frames`` frames."""
        raise NotImplementedError

    @property
    def num_views(self) -> int | None:
        """Clips per video at test time (``None``: depends on the video's length)."""
        return 1

    def to_dict(self) -> dict:
        """Settings, with ``name``, such that ``build_sampler(d)`` rebuilds the sampler."""
        return {"name": self.name, **asdict(self)}  # type: ignore[call-overload]


def _check_positive(**kw) -> None:
    for k, v in kw.items():
        if v is not None and (not isinstance(v, (int, float)) or v <= 0):
            raise ValueError(f"{k} must be a positive number, got {v!r}")


@dataclass
class UniformSampler(FrameSampler):
    """``num_frames`` frames spread evenly over the video (centre of N equal parts).

    Args:
        num_frames: frames per clip (T).
    """

    num_frames: int = 16
    name: ClassVar[str] = "uniform"

    def __post_init__(self):
        _check_positive(num_frames=self.num_frames)

    def sample_indices(self, num_frames, *, training, rng):
        idx = np.floor((np.arange(self.num_frames) + 0.5) * num_frames / self.num_frames).astype(np.int64)
        return np.minimum(idx, num_frames - 1)[None]


@dataclass
class SegmentSampler(FrameSampler):
    """TSN sampling: ``num_segments`` equal segments, one frame in each.

    Training: a uniformly random frame in each segment. Test: ``test_views`` views whose
    offsets are evenly spaced inside the segments (one view = the segment centres).

    Args:
        num_segments: frames per clip (T).
        test_views: views per video at test.
    """

    num_segments: int = 8
    test_views: int = 1
    name: ClassVar[str] = "segments"

    def __post_init__(self):
        _check_positive(num_segments=self.num_segments, test_views=self.test_views)

    @property
    def num_views(self):
        return self.test_views

    def sample_indices(self, num_frames, *, training, rng):
        seg = num_frames / self.num_segments
        base = np.arange(self.num_segments) * seg
        if training:
            off = rng.random(self.num_segments) * seg
            idx = np.floor(base + off)[None]
        else:
            fr = (np.arange(self.test_views) + 0.5) / self.test_views
            idx = np.floor(base[None] + fr[:, None] * seg)
        return np.minimum(idx.astype(np.int64), num_frames - 1)


@dataclass
class DenseSampler(FrameSampler):
    """Clips of ``clip_len`` frames taken every ``frame_interval`` frames.

    Training: one clip at a uniformly random start. Test: if ``stride`` is set, every clip
    starting at 0, stride, 2*stride, ... that fits (at least one); else ``num_clips`` clips
    with evenly spaced starts.

    Args:
        clip_len: frames per clip (T).
        frame_interval: step between a clip's frames, in frames.
        stride: test-time step between clip starts, in frames (LRCN: 8 with clip_len 16).
        num_clips: test-time clips per video when ``stride`` is None.
    """

    clip_len: int = 16
    frame_interval: int = 1
    stride: int | None = None
    num_clips: int = 1
    name: ClassVar[str] = "dense"

    def __post_init__(self):
        _check_positive(clip_len=self.clip_len, frame_interval=self.frame_interval,
                        stride=self.stride, num_clips=self.num_clips)

    @property
    def num_views(self):
        return None if self.stride else self.num_clips

    def sample_indices(self, num_frames, *, training, rng):
        span = (self.clip_len - 1) * self.frame_interval + 1
        last_start = max(num_frames - span, 0)
        if training:
            starts = np.array([rng.integers(0, last_start + 1)])
        elif self.stride:
            starts = np.arange(0, last_start + 1, self.stride)
        else:
            starts = np.floor(np.linspace(0, last_start, self.num_clips + 2)[1:-1] if self.num_clips > 1
                              else np.array([last_start / 2])).astype(np.int64)
        idx = starts[:, None] + np.arange(self.clip_len)[None] * self.frame_interval
        return np.minimum(idx, num_frames - 1).astype(np.int64)


@dataclass
class FixedRateSampler(FrameSampler):
    """Frames at ``fps`` frames per second: times 0, 1/fps, 2/fps, ... within the video.

    Needs only the duration, so decoding seeks between frames: the cost grows with the
    number of frames taken, not with the video's length.

    Args:
        fps: sampling rate in frames/s (Ng et al. 2015: 1.0).
        max_frames: cap on frames per clip; longer videos give a random window in training
            and the central window at test. ``None``: every sampled frame.
        num_frames: if set, every clip has exactly this many frames (a short video repeats its
            last frame), so clips batch together. Implies ``max_frames = num_frames``.
        seek: ``"exact"`` (the frame shown at each time) or ``"keyframe"``: approximate, for
            long videos -- each time takes the nearest keyframe when it lies within
            ``seek_tolerance`` seconds (``None``: always), decoded without the frames between
            keyframes (>= 10x faster than a full decode on long-GOP video); the decoded
            frames' real times are returned (:meth:`VideoReader.iter_frames_at`).
        seek_tolerance: seconds, for ``seek: keyframe``.
    """

    fps: float = 1.0
    max_frames: int | None = None
    num_frames: int | None = None
    seek: Literal["exact", "keyframe"] = "exact"
    seek_tolerance: float | None = None
    name: ClassVar[str] = "fps"
    needs_timestamps: ClassVar[bool] = False

    def __post_init__(self):
        _check_positive(fps=self.fps, max_frames=self.max_frames, num_frames=self.num_frames)
        if self.seek not in ("exact", "keyframe"):
            raise ValueError(f"seek={self.seek!r}: expected 'exact' or 'keyframe'")
        if self.seek_tolerance is not None and not self.seek_tolerance >= 0:
            raise ValueError(f"seek_tolerance={self.seek_tolerance!r}: expected seconds >= 0 or null")

    @property
    def decode_options(self) -> dict:
        return {"seek": self.seek, "tolerance": self.seek_tolerance}

    def sample(self, timestamps, duration, *, training=False, rng=None, start=0.0, end=None):
        end = duration if end is None else min(end, duration) if duration > 0 else end
        if end is None or end <= start:
            raise ValueError(f"cannot sample at {self.fps} frame/s from [{start}, {end}) s")
        n = max(1, int(np.ceil((end - start) * self.fps - 1e-9)))
        times = start + np.arange(n) / self.fps
        cap = self.num_frames or self.max_frames
        if cap is not None and n > cap:
            rng = rng or np.random.default_rng()
            first = rng.integers(0, n - cap + 1) if training else (n - cap) // 2
            times = times[first:first + cap]
        if self.num_frames is not None and len(times) < self.num_frames:
            times = np.concatenate([times, np.full(self.num_frames - len(times), times[-1])])
        return times[None]


_SAMPLERS = {c.name: c for c in (UniformSampler, SegmentSampler, DenseSampler, FixedRateSampler)}


def check_sampler_settings(settings: dict, where: str) -> dict:
    """Sampler settings ``{name: ..., <that sampler's fields>}`` checked (unknown keys and wrong
    types named) and completed with the sampler's defaults.

    Raises:
        ConfigError: unknown sampler name, unknown key or wrong type.
    """
    name = settings.get("name")
    if name not in _SAMPLERS:
        raise ConfigError(f"{where}.name: expected one of {', '.join(sorted(_SAMPLERS))}, got {name!r}")
    rest = validate_section(_SAMPLERS[name], {k: v for k, v in settings.items() if k != "name"}, where)
    return {"name": name, **rest}


#: the sampler of a classification run when none is given (a sampler given without a name updates it)
DEFAULT_SAMPLER = {"name": "uniform", "num_frames": 8}

#: type of a sampler given as settings in a config (checked by :func:`check_sampler_settings`)
SamplerSettings = Annotated[dict, check_sampler_settings]


def build_sampler(cfg: dict | FrameSampler) -> FrameSampler:
    """Sampler from a settings dict ``{"name": "uniform"|"segments"|"dense"|"fps", ...}``.

    Raises:
        ValueError: unknown name or settings.
    """
    if isinstance(cfg, FrameSampler):
        return cfg
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if name not in _SAMPLERS:
        raise ValueError(f"sampler name {name!r}: expected one of {sorted(_SAMPLERS)}")
    try:
        return _SAMPLERS[name](**cfg)
    except TypeError as e:
        raise ValueError(f"sampler {name!r}: {e}") from e
