"""Label videos with a trained classifier: top-k labels per video and a per-second timeline.

The input pipeline (decoder size, test-time sampler, eval transform) comes from the
checkpoint, so a checkpoint and video files are all that is needed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from vidrnn.data.transforms import build_clip_transform
from vidrnn.io.decode import VideoReader
from vidrnn.io.sampling import FixedRateSampler, build_sampler
from vidrnn.tasks.classification import average_views

__all__ = ["Predictor"]


class Predictor:
    """Runs a trained :class:`~vidrnn.tasks.classification.ClassificationTask` on video files.

    Args:
        task: from :func:`vidrnn.inference.checkpoint.load_model`.
        device: where to run the model.
        batch_views: clips per forward pass (bounds memory for long timelines).
    """

    def __init__(self, task, *, device: str | torch.device = "cpu", batch_views: int = 16):
        self.task = task.to(device).eval()
        self.device = torch.device(device)
        self.batch_views = batch_views
        data = task.hparams.data or {}
        self.sampler = build_sampler(data.get("test_sampler") or data.get("sampler") or {"name": "uniform", "num_frames": 8})
        self.transform = build_clip_transform(data.get("transform"), training=False)
        self.decode_size = data.get("decode_size")
        self.stream = data.get("stream")
        self.classes = list(task.class_names)
        self.multilabel = bool(getattr(task, "multilabel", False))

    @property
    def frames_per_clip(self) -> int:
        s = self.sampler
        return int(getattr(s, "num_frames", None) or getattr(s, "num_segments", None) or getattr(s, "clip_len", None) or 8)

    @torch.no_grad()
    def _probs(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 clips ``(V, T, 3, H, W)`` -> class probabilities per clip ``(V, K)``."""
        out = []
        for chunk in clips.split(self.batch_views):
            x = torch.stack([self.transform(c) for c in chunk]).to(self.device)  # (v, T, 3, S, S)
            logits = self.task.model(x)
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
        k = min(topk, len(self.classes))
        with VideoReader(path, stream=self.stream, size=self.decode_size) as r:
            ts = r.frame_timestamps() if self.sampler.needs_timestamps else None
            duration = r.info.duration if ts is None else max(r.info.duration, float(ts[-1]))
            times = self.sampler.sample(ts, duration, training=False)  # (V, T)
            clips = r.get_frames_at(times.reshape(-1))[0].unflatten(0, times.shape)
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
                result["timeline"] = list(self._timeline(r, duration, window))
        return result

    def _timeline(self, reader: VideoReader, duration: float, window: float | None) -> Iterable[dict]:
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
            clips = reader.get_frames_at(times.reshape(-1))[0].unflatten(0, times.shape)
            probs = self._probs(clips)
            for s, p in zip(secs, probs):
                i = int(p.argmax())
                entry = {"start": float(s), "end": float(min(s + 1, duration)), "label": self.classes[i],
                         "prob": float(p[i])}
                if self.multilabel:  # every label the model says is under way in this second
                    entry["present"] = [c for c, q in zip(self.classes, p.tolist()) if q >= 0.5]
                yield entry

    @torch.no_grad()
    def attention_clip(self, path: str | Path) -> dict:
        """The first test-time clip of a video with the model's attention.

        Returns:
            ``{"frames": (T, 3, S, S) in [0, 1], "probs": (K,), "spatial": (T, N) or None,
            "map_size": (h, w) or None, "temporal": (T, W) or None}``.

        Raises:
            ValueError: the model has no attention (``return_attention`` unsupported).
        """
        model = self.task.model
        if not hasattr(model, "last_attention"):
            raise ValueError(f"model {self.task.hparams.model_name!r} has no attention to show "
                             "(use an attention model, e.g. soft_attention_lstm)")
        with VideoReader(path, stream=self.stream, size=self.decode_size) as r:
            ts = r.frame_timestamps() if self.sampler.needs_timestamps else None
            duration = r.info.duration if ts is None else max(r.info.duration, float(ts[-1]))
            times = self.sampler.sample(ts, duration, training=False)[:1]  # (1, T)
            clip = r.get_frames_at(times.reshape(-1))[0]  # (T, 3, H, W) uint8
        x = self.transform(clip)[None].to(self.device)  # (1, T, 3, S, S)
        logits, att = model(x, return_attention=True)
        spatial = att[0].cpu() if model.input_kind == "map" else None
        ms = getattr(model, "map_size", None)
        probs = logits[0].float().sigmoid() if self.multilabel else logits[0].float().softmax(-1)
        return {"frames": x[0].cpu(), "probs": probs.cpu(),
                "spatial": spatial, "map_size": (ms, ms) if spatial is not None else None,
                "temporal": None if spatial is not None else att[0].cpu()}
