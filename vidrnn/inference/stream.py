"""Streaming inference: label a video as it is read, carrying the recurrent state.

Frames are decoded in time order at ``fps`` frames per second (one frame in memory at a time),
grouped into windows of ``every`` seconds, and each window runs through the model's
:meth:`~vidrnn.models.base.FrameOutputClassifier.step` from the state the previous window left:
nothing is re-run, memory does not grow with the video's length, and the per-frame outputs equal
those of the offline forward on the same frames. Each window gives its label (the mean of its
frames' probabilities) and the label of the video so far (the mean over every frame so far: the
paper's LRCN average; other ``aggregate`` modes are shown as the same running mean).

``for line in stream_labels("best.ckpt", "long.mp4", every=1.0): print(line)``
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from vidrnn.data.transforms import build_clip_transform
from vidrnn.inference.checkpoint import load_model
from vidrnn.inference.predict import use_bf16
from vidrnn.io.decode import VideoReader
from vidrnn.io.sampling import DEFAULT_SAMPLER, FixedRateSampler, build_sampler

__all__ = ["StreamRunner", "ForecastStream", "stream_labels", "DEFAULT_STREAM_FPS"]

#: frames per second fed to the model when the checkpoint's sampler has no fixed rate
DEFAULT_STREAM_FPS = 4.0


class StreamRunner:
    """Runs a recurrent video classifier over a video window by window.

    Args:
        model: from :func:`vidrnn.inference.checkpoint.load_model`; its ``streaming`` flag must
            be set (LRCN, the deep LSTM, the conv-recurrent GRU-RCN/ConvLSTM classifiers, the
            temporal and spatial attention LSTMs).
        fps: frames per second fed to the model; default: the checkpoint's sampling rate when it
            is a fixed-rate sampler, else :data:`DEFAULT_STREAM_FPS`.
        every: seconds of video per output window.
        device: where to run the model.
        precision: ``"fp32"`` or ``"bf16"`` (autocast; the carried state stays float32).

    Raises:
        ValueError: not a classifier, a model without a streaming step, or ``fps``/``every`` not
            positive.
    """

    def __init__(self, model, *, fps: float | None = None, every: float = 1.0, device: str | torch.device = "cpu",
                 precision: str = "fp32"):
        self.info = model.vidrnn
        if self.info.task != "classification":
            raise ValueError(f"model {self.info.name!r} is a {self.info.task} model, not a video classifier")
        if not getattr(model, "streaming", False):
            raise ValueError(f"model {self.info.name!r} has no streaming step; streaming runs the recurrent "
                             "classifiers with per-frame outputs (lrcn, deep_lstm, convgru_rcn, convlstm_rcn, the "
                             "attention LSTMs and their variants)")
        if self.info.data.get("flow"):
            raise ValueError(f"model {self.info.name!r} is a flow stream (it reads optical flow, data.flow); streaming "
                             "feeds decoded frames: use `vidrnn predict` for flow models")
        data = self.info.data
        sampler = build_sampler(data.get("test_sampler") or data.get("sampler") or DEFAULT_SAMPLER)
        if fps is None:
            fps = sampler.fps if isinstance(sampler, FixedRateSampler) else DEFAULT_STREAM_FPS
        if not (fps > 0 and every > 0):
            raise ValueError(f"fps={fps} and every={every}: expected positive numbers")
        self.bf16 = use_bf16(precision)
        self.fps, self.every = float(fps), float(every)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.transform = build_clip_transform(data.get("transform"), training=False)
        self.decode_size = data.get("decode_size")
        self.stream = data.get("stream")
        self.classes = list(self.info.class_names)
        self.multilabel = self.info.multilabel

    def step(self, frames: list[torch.Tensor], state):
        """One window: uint8 frames ``t x (3, H, W)`` from ``state`` -> ``(probabilities (t, K),
        new state)``."""
        x = self.transform(torch.stack(frames))[None].to(self.device)  # (1, t, 3, S, S)
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            frame_logits, state = self.model.step(x, state)
        if self.bf16:  # carry the state in float32, whatever autocast computed it in
            state = _to_float(state)
        logits = frame_logits[0].float().cpu()
        return (logits.sigmoid() if self.multilabel else logits.softmax(-1)), state

    def run(self, path: str | Path) -> Iterator[dict]:
        """Yield one dict per window, as the video is read: ``{"start", "end"`` (seconds),
        ``"frames"`` (fed in this window), ``"label", "prob"`` (the window's mean probability),
        ``"video_label", "video_prob"`` (the mean over every frame so far)``}``.

        Raises:
            FileNotFoundError, VideoDecodeError: the video cannot be read.
        """
        with VideoReader(path, stream=self.stream, size=self.decode_size) as r:
            duration = r.info.duration
            if not duration or not math.isfinite(duration) or duration <= 0:
                duration = float(r.frame_timestamps()[-1]) + 1.0 / self.fps
            times = np.arange(0.0, duration, 1.0 / self.fps)
            windows = np.floor(times / self.every).astype(int)
            state, total, seen = self.model.init_state(1), torch.zeros(len(self.classes)), 0
            chunk: list[torch.Tensor] = []
            for i, frame, _ in r.iter_frames_at(times):  # in time order, so windows come in order
                chunk.append(frame)
                if i + 1 < len(times) and windows[i + 1] == windows[i]:
                    continue
                p, state = self.step(chunk, state)
                total, seen, chunk = total + p.sum(0), seen + len(p), []
                win, so_far = p.mean(0), total / seen
                a, b = int(win.argmax()), int(so_far.argmax())
                w = int(windows[i])
                yield {"start": round(w * self.every, 3), "end": round(min((w + 1) * self.every, duration), 3),
                       "frames": len(p), "label": self.classes[a], "prob": float(win[a]),
                       "video_label": self.classes[b], "video_prob": float(so_far[b])}


class ForecastStream:
    """Streams frames into an encoder-forecaster (ConvLSTM/ConvGRU/TrajGRU) as they arrive and
    forecasts from what it has seen, at any time, without re-running the past.

    ``fs = ForecastStream(load_model("best.ckpt")); for frame in radar: fs.push(frame);
    future = fs.forecast()``

    Args:
        model: an encoder-forecaster (``step`` and ``forecast``; e.g. from
            :func:`vidrnn.inference.checkpoint.load_model`).
        device: where to run it.
        precision: ``"fp32"`` or ``"bf16"`` (autocast; the carried state stays float32).

    Raises:
        ValueError: a model without ``step``/``forecast``, or a bad ``precision``.
    """

    def __init__(self, model, *, device: str | torch.device = "cpu", precision: str = "fp32"):
        if not (hasattr(model, "step") and hasattr(model, "forecast")):
            raise ValueError(f"{type(model).__name__} is not an encoder-forecaster (no step/forecast)")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.bf16 = use_bf16(precision)
        self.state = None
        self.seen = 0  #: frames pushed so far

    def push(self, frames: torch.Tensor) -> None:
        """Observe a frame ``(C, H, W)`` or frames ``(t, C, H, W)``, intensities in [0, 1]."""
        x = frames[None, None] if frames.dim() == 3 else frames[None]  # (1, t, C, H, W)
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            state = self.model.step(x.to(self.device), self.state)
        self.state = _to_float(state) if self.bf16 else state
        self.seen += x.shape[1]

    def forecast(self, num_output: int | None = None) -> torch.Tensor:
        """Intensities ``(T_out, C, H, W)`` in [0, 1] of the frames after those pushed.

        Raises:
            ValueError: nothing pushed yet.
        """
        if self.state is None:
            raise ValueError("push at least one frame before forecasting")
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            return torch.sigmoid(self.model.forecast(self.state, num_output).float())[0].cpu()


def _to_float(state):
    if isinstance(state, torch.Tensor):
        return state.float()
    if isinstance(state, (list, tuple)):
        return type(state)(_to_float(s) for s in state)
    if isinstance(state, dict):
        return {k: _to_float(v) for k, v in state.items()}
    return state


def stream_labels(checkpoint: str | Path, video: str | Path, *, fps: float | None = None, every: float = 1.0,
                  device: str = "cpu", precision: str = "fp32") -> Iterator[dict]:
    """:meth:`StreamRunner.run` for a checkpoint and a video (see :class:`StreamRunner`)."""
    yield from StreamRunner(load_model(checkpoint, map_location="cpu"), fps=fps, every=every, device=device,
                            precision=precision).run(video)
