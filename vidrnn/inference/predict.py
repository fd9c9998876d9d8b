"""Label videos with a trained classifier: top-k labels per video, a per-second timeline and,
for attention models, pictures of where the model looked.

The input pipeline (decoder size, test-time sampler, eval transform) comes from the
checkpoint, so a checkpoint and video files are all that is needed:
``label_videos("best.ckpt", ["a.mp4", "b.mkv"])``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from vidrnn.data.transforms import build_clip_transform
from vidrnn.errors import ConfigError, VidrnnError
from vidrnn.inference.checkpoint import load_model
from vidrnn.io.decode import VideoReader
from vidrnn.io.flow import FlowSettings, flow_clip
from vidrnn.io.sampling import DEFAULT_SAMPLER, FixedRateSampler, build_sampler
from vidrnn.models.base import average_views

__all__ = ["Predictor", "label_videos", "merge_timeline"]


class Predictor:
    """Runs a trained video classifier on video files.

    Args:
        model: from :func:`vidrnn.inference.checkpoint.load_model` (its ``model.vidrnn``
            metadata gives the classes and the input pipeline).
        device: where to run the model.
        batch_views: clips per forward pass (bounds memory for long timelines).
        precision: ``"fp32"`` or ``"bf16"`` (autocast: 2-3x faster on CPUs with AMX or
            AVX-512 BF16 and on GPUs; probabilities within ~1e-2 of fp32).

    Raises:
        ValueError: ``model`` is not a classifier, or a bad ``precision``.
    """

    def __init__(self, model, *, device: str | torch.device = "cpu", batch_views: int = 16, precision: str = "fp32"):
        self.bf16 = use_bf16(precision)
        self.info = model.vidrnn
        if self.info.task != "classification":
            raise ValueError(f"model {self.info.name!r} is a {self.info.task} model, not a video classifier")
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch_views = batch_views
        data = self.info.data
        self.sampler = build_sampler(data.get("test_sampler") or data.get("sampler") or DEFAULT_SAMPLER)
        self.transform = build_clip_transform(data.get("transform"), training=False)
        self.flow = FlowSettings(**data["flow"]) if data.get("flow") else None  #: flow-stream models
        self.decode_size = data.get("decode_size")
        self.stream = data.get("stream")
        self.classes = list(self.info.class_names)
        self.multilabel = self.info.multilabel

    @property
    def has_attention(self) -> bool:
        """Whether the model's output carries attention weights (checked on a blank clip)."""
        size = int((self.info.data.get("transform") or {}).get("size", 112))
        clip = torch.zeros(self.frames_per_clip, 3, size, size)
        with torch.no_grad():
            out = self.model(self._input(clip)[None].to(self.device))
        return out.attention is not None

    def _input(self, clip: torch.Tensor) -> torch.Tensor:
        """A decoded clip ``(T, 3, H, W)`` as the model reads it: the eval transform, then for
        flow-stream models the optical flow of its consecutive frames ``(T - L, 2L, S, S)``."""
        x = self.transform(clip)
        return x if self.flow is None else torch.from_numpy(flow_clip(x, self.flow))

    @property
    def frames_per_clip(self) -> int:
        return frames_per_clip(self.sampler)

    def _probs(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 clips ``(V, T, 3, H, W)`` -> class probabilities per clip ``(V, K)``."""
        out = []
        for chunk in clips.split(self.batch_views):
            x = torch.stack([self._input(c) for c in chunk]).to(self.device)  # (v, T, C, S, S)
            with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
                logits = self.model(x).logits.float()
            out.append(average_views(logits, torch.ones(len(x), dtype=torch.long), self.multilabel).exp().cpu())
        return torch.cat(out)

    def predict(self, path: str | Path, *, topk: int = 5, timeline: bool | None = None, window: float | None = None,
                timeline_min_duration: float = 10.0) -> dict:
        """Top-k labels for one video, and (for long videos) a per-second timeline.

        Args:
            path: the video.
            topk: labels to report.
            timeline: per-second labels; ``None``: only for videos longer than
                ``timeline_min_duration`` seconds.
            window: seconds of video in each timeline clip (centred on the second); default:
                the model's clip length at 1 frame/s for a 1 frame/s sampler, else 2 s.

        Returns:
            ``{"video", "duration", "frames", "topk": [{"label", "prob"}], "timeline":
            [{"start", "end", "label", "prob"}]}`` (times in seconds); multi-label models also
            give ``"present"`` (for the video and for each timeline second): the labels with
            probability >= 0.5.

        Raises:
            FileNotFoundError, VideoDecodeError: the video cannot be read.
        """
        for event in self.predict_events(path, topk=topk, timeline=timeline, window=window,
                                         timeline_min_duration=timeline_min_duration):
            pass
        return event["result"]

    def predict_events(self, path: str | Path, *, topk: int = 5, timeline: bool | None = None,
                       window: float | None = None, timeline_min_duration: float = 10.0) -> Iterator[dict]:
        """:meth:`predict` as it goes, for showing progress on long videos (``vidrnn serve``).

        Yields:
            ``{"progress": {"done", "total"}, "result": partial}`` after the top-k labels and after
            every ``batch_views`` seconds of the timeline (``done``/``total`` in timeline seconds;
            ``partial`` is the result so far, its timeline growing), then ``{"result": result}``
            with :meth:`predict`'s result.

        Raises:
            FileNotFoundError, VideoDecodeError: the video cannot be read.
        """
        k = min(topk, len(self.classes))
        with VideoReader(path, stream=self.stream, size=self.decode_size) as r:
            ts = r.frame_timestamps() if self.sampler.needs_timestamps else None
            duration = r.info.duration if ts is None else max(r.info.duration, float(ts[-1]))
            times = self.sampler.sample(ts, duration, training=False)  # (V, T)
            clips = r.get_frames_at(times.reshape(-1), **self.sampler.decode_options)[0].unflatten(0, times.shape)
            probs = self._probs(clips).mean(0)
            result = {
                "video": str(path),
                "duration": round(duration, 3),
                "frames": int(len(ts)) if ts is not None else r.info.num_frames,
                "topk": [{"label": self.classes[i], "prob": float(probs[i])} for i in probs.topk(k).indices.tolist()],
                "timeline": [],
            }
            if self.multilabel:
                result["present"] = [c for c, p in zip(self.classes, probs.tolist()) if p >= 0.5]
            if timeline or (timeline is None and duration > timeline_min_duration):
                total = max(1, int(math.ceil(duration - 1e-6)))
                yield {"progress": {"done": 0, "total": total}, "result": result}
                for entries in self._timeline(r, duration, window):
                    result["timeline"].extend(entries)
                    yield {"progress": {"done": len(result["timeline"]), "total": total}, "result": result}
        yield {"result": result}

    def _timeline(self, reader: VideoReader, duration: float, window: float | None) -> Iterator[list[dict]]:
        """The per-second labels, ``batch_views`` seconds at a time."""
        T = self.frames_per_clip
        if window is None:
            window = T / self.sampler.fps if isinstance(self.sampler, FixedRateSampler) else 2.0
        seconds = max(1, int(math.ceil(duration - 1e-6)))
        chunk = max(1, self.batch_views)
        for s0 in range(0, seconds, chunk):
            secs = np.arange(s0, min(seconds, s0 + chunk))
            centres = secs + 0.5
            offs = (np.arange(T) + 0.5) / T * window - window / 2
            times = np.clip(centres[:, None] + offs[None], 0.0, max(duration - 1e-3, 0.0))  # (n, T)
            clips = reader.get_frames_at(times.reshape(-1), **self.sampler.decode_options)[0].unflatten(0, times.shape)
            probs = self._probs(clips)
            entries = []
            for s, p in zip(secs, probs):
                i = int(p.argmax())
                entry = {"start": float(s), "end": float(min(s + 1, duration)), "label": self.classes[i],
                         "prob": float(p[i])}
                if self.multilabel:  # every label the model says is under way in this second
                    entry["present"] = [c for c, q in zip(self.classes, p.tolist()) if q >= 0.5]
                entries.append(entry)
            yield entries

    @torch.no_grad()
    def attention_clip(self, path: str | Path) -> dict:
        """The first test-time clip of a video with the model's attention.

        Returns:
            ``{"frames": (T, 3, S, S) in [0, 1], "probs": (K,), "spatial": (T, N) or None,
            "map_size": (h, w) or None, "temporal": (T, W) or None}``.

        Raises:
            ValueError: the model has no attention.
            FileNotFoundError, VideoDecodeError: the video cannot be read.
        """
        with VideoReader(path, stream=self.stream, size=self.decode_size) as r:
            ts = r.frame_timestamps() if self.sampler.needs_timestamps else None
            duration = r.info.duration if ts is None else max(r.info.duration, float(ts[-1]))
            times = self.sampler.sample(ts, duration, training=False)[:1]  # (1, T)
            clip = r.get_frames_at(times.reshape(-1), **self.sampler.decode_options)[0]  # (T, 3, H, W) uint8
        x = self._input(clip)[None].to(self.device)  # (1, T, C, S, S)
        out = self.model(x)
        if out.attention is None:
            raise ValueError(f"model {self.info.name!r} has no attention to show "
                             "(use an attention model, e.g. soft_attention_lstm)")
        logits = out.logits[0].float()
        probs = logits.sigmoid() if self.multilabel else logits.softmax(-1)
        spatial = out.attention_map is not None
        return {"frames": x[0].cpu(), "probs": probs.cpu(),
                "spatial": out.attention[0].cpu() if spatial else None,
                "map_size": out.attention_map if spatial else None,
                "temporal": None if spatial else out.attention[0].cpu()}

    def write_attention(self, video: str | Path, out_dir: str | Path) -> dict:
        """MP4 and GIF overlays of where the model looks in the first clip of ``video``; the
        title says the predicted label and, when the file or folder name is a class, the true one.

        Returns:
            ``{"mp4", "gif", "predicted", "true"}``.
        """
        from vidrnn.viz.attention import write_attention_video

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        a = self.attention_clip(video)
        i = int(a["probs"].argmax())
        label, truth = self.classes[i], true_label(video, self.classes)
        title = f"pred {label} {a['probs'][i] * 100:.0f}%"
        if self.multilabel:  # independent labels: name every one the model says is present
            label = ",".join(c for c, p in zip(self.classes, a["probs"].tolist()) if p >= 0.5) or "none"
            title = f"pred {label}"
        colour = (255, 255, 255)
        if truth is not None:
            ok = truth in label.split(",") if self.multilabel else truth == label
            title += f" | true {truth} {'(right)' if ok else '(wrong)'}"
            colour = (120, 255, 120) if ok else (255, 110, 110)
        scale = max(1, -(-320 // a["frames"].shape[-1]))  # at least 320 px wide
        mp4, gif = write_attention_video(a["frames"], out_dir / Path(video).stem, spatial=a["spatial"],
                                         map_size=a["map_size"], temporal=a["temporal"], title=title,
                                         title_colour=colour, scale=scale)
        return {"mp4": str(mp4), "gif": str(gif), "predicted": label, "true": truth}


#: inference precisions: fp32, or bf16 autocast
PRECISIONS = ("fp32", "bf16")


def use_bf16(precision: str) -> bool:
    """Whether ``precision`` (one of :data:`PRECISIONS`) asks for bf16 autocast.

    Raises:
        ConfigError: another value.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision == "bf16"


def frames_per_clip(sampler) -> int:
    """Frames in one clip of ``sampler`` (``num_frames``, ``num_segments`` or ``clip_len``; 8 for
    a sampler without a fixed length)."""
    s = sampler
    return int(getattr(s, "num_frames", None) or getattr(s, "num_segments", None) or getattr(s, "clip_len", None) or 8)


def true_label(video, classes: list[str]) -> str | None:
    """The label a file name or its folder states, when it is one of the classes (else None)."""
    p = Path(video)
    for cand in (p.stem, p.parent.name):
        for c in classes:
            if cand.lower() == c.lower():
                return c
    return None


def merge_timeline(timeline: list[dict]) -> list[dict]:
    """Consecutive seconds with the same label as one segment ``{start, end, label, prob, n}``
    (``prob``: the mean over the seconds)."""
    out: list[dict] = []
    for s in timeline:
        if out and out[-1]["label"] == s["label"]:
            o = out[-1]
            n = o["n"] + 1
            o.update(end=s["end"], prob=(o["prob"] * o["n"] + s["prob"]) / n, n=n)
        else:
            out.append({**s, "n": 1})
    return out


def label_videos(checkpoint: str | Path, videos: Iterable[str | Path], *, topk: int = 5,
                 timeline: bool | None = None, window: float | None = None, attention_dir: str | Path | None = None,
                 device: str = "cpu", precision: str = "fp32") -> Iterable[dict]:
    """Label each video with a classifier checkpoint (what ``vidrnn predict CKPT VIDEO...`` does).

    Args:
        checkpoint: a classifier's ``.ckpt``.
        videos: video files.
        topk, timeline, window: as :meth:`Predictor.predict`.
        attention_dir: attention models: write MP4 and GIF overlays there
            (:meth:`Predictor.write_attention`).
        device: where to run the model.
        precision: ``"fp32"`` or ``"bf16"`` (:class:`Predictor`).

    Yields:
        Per video, :meth:`Predictor.predict`'s result (with ``"attention"`` when drawn), or
        ``{"video", "error"}`` for a video that cannot be read; the next video follows.

    Raises:
        FileNotFoundError, CheckpointError: the checkpoint cannot be loaded.
        ValueError: the checkpoint is not a classifier, or no videos were given.
    """
    videos = list(videos)
    if not videos:
        raise ValueError("predict: give one or more video files to label")
    pred = Predictor(load_model(checkpoint), device=device, precision=precision)
    if attention_dir is not None and not pred.has_attention:
        raise ValueError(f"model {pred.info.name!r} has no attention to show (--attention is for the attention "
                         "models, e.g. soft_attention_lstm, hard_attention_lstm, temporal_attention_lstm)")
    for v in videos:
        try:
            r = pred.predict(v, topk=topk, timeline=timeline, window=window)
            if attention_dir is not None:
                r["attention"] = pred.write_attention(v, attention_dir)
        except (FileNotFoundError, VidrnnError, ValueError) as e:
            yield {"video": str(v), "error": str(e)}
            continue
        yield r
