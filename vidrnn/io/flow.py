"""Dense optical flow between consecutive frames, stored and fed to models the two-stream way.

The two-stream networks (Simonyan & Zisserman, "Two-Stream Convolutional Networks for Action
Recognition in Videos", NeurIPS 2014, arXiv:1406.2199) and the flow streams of LRCN (Donahue et
al., CVPR 2015, arXiv:1411.4389) and "Beyond Short Snippets" (Ng et al., CVPR 2015,
arXiv:1503.08909) read flow as images: the x and y displacements (pixels) clipped to ±20 px and
scaled to 8 bits, and the temporal-segment networks (Wang et al., ECCV 2016, arXiv:1608.00859)
stack L = 5-10 consecutive fields as 2L input channels. Flow is computed with OpenCV (a
well-kept implementation; ``opencv-python-headless``): DIS (Kroeger et al. 2016, the default:
fast and accurate on video), Farneback (2003), or TV-L1 (Zach et al. 2007; needs the contrib
build, ``opencv-contrib-python-headless``). torchvision's RAFT (Teed & Deng 2020) is used where
the user gives its weights file (nothing is downloaded here).

Conventions: flow ``(N, 2, H, W)`` float32 in pixels, channel 0 = x (right positive), 1 = y
(down positive), ``flow[i]`` maps frame ``i`` to frame ``i + 1`` (``frame_i(p) ~
frame_{i+1}(p + flow[i](p))``). The model input is the *unit* scale ``(f + bound) / (2 bound)``
clipped to [0, 1] (0.5 = no motion), which is also what the 8-bit cache stores (x 255).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from vidrnn.errors import ConfigError

__all__ = ["FlowSettings", "FLOW_METHODS", "optical_flow", "quantise_flow", "dequantise_flow", "flow_to_unit",
           "stack_flow", "flow_clip"]

FLOW_METHODS = ("dis", "farneback", "tvl1", "raft")


@dataclass
class FlowSettings:
    """``data.flow``: train on optical flow computed from the sampled frames.

    Attributes:
        method: ``dis`` (default), ``farneback``, ``tvl1`` (OpenCV contrib) or ``raft`` (with
            ``raft_weights``, torchvision's RAFT-small or -large state dict file).
        stack: L, consecutive fields per model input (2L channels); 1 = per-frame flow images.
        bound: displacement clip in pixels (two-stream convention: 20).
        raft_weights: the RAFT weights file (``raft_small_*.pth`` or ``raft_large_*.pth``).
    """

    method: Literal["dis", "farneback", "tvl1", "raft"] = "dis"
    stack: int = 1
    bound: float = 20.0
    raft_weights: str | None = None

    def __post_init__(self):
        if not (isinstance(self.stack, int) and self.stack >= 1):
            raise ConfigError(f"data.flow.stack: expected an integer >= 1 (fields per input), got {self.stack!r}")
        if not self.bound > 0:
            raise ConfigError(f"data.flow.bound: expected a positive number of pixels, got {self.bound!r}")
        if self.method == "raft" and not self.raft_weights:
            raise ConfigError("data.flow.method=raft needs data.flow.raft_weights (a torchvision RAFT weights file; "
                              "nothing is downloaded)")


def _gray(frames) -> np.ndarray:
    """uint8 grey frames ``(N, H, W)`` from ``(N, H, W, 3)`` uint8 / ``(N, 3, H, W)`` [0, 1] floats
    (numpy or torch) or ``(N, H, W)`` grey."""
    a = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    if a.ndim == 4 and a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 1, -1)  # (N, H, W, C)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if a.ndim == 4:
        a = a[..., 0] if a.shape[-1] == 1 else (a.astype(np.float32) @ np.array([0.299, 0.587, 0.114],
                                                                                 np.float32)).round().astype(np.uint8)
    if a.ndim != 3:
        raise ValueError(f"frames: expected (N, H, W[, 3]) or (N, 3, H, W), got shape {a.shape}")
    return np.ascontiguousarray(a)


_RAFT: dict = {}


def _raft_flow(frames, weights: str) -> np.ndarray:
    import torch
    from torchvision.models.optical_flow import raft_large, raft_small

    if weights not in _RAFT:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError) as e:
            raise ValueError(f"{weights}: not a readable RAFT weights file ({e})") from None
        for build in (raft_large, raft_small):  # whichever the state dict fits
            model = build(weights=None)
            if set(model.state_dict()) == set(state):
                model.load_state_dict(state)
                _RAFT[weights] = model.eval()
                break
        else:
            raise ValueError(f"{weights}: not the weights of torchvision's raft_large or raft_small")
    model = _RAFT[weights]
    x = frames if hasattr(frames, "detach") else torch.from_numpy(np.asarray(frames))
    if x.dtype == torch.uint8:
        x = x.permute(0, 3, 1, 2).float() / 255.0 if x.shape[-1] == 3 else x.float() / 255.0
    x = x.float() * 2 - 1  # RAFT takes [-1, 1]
    H, W = x.shape[-2:]
    if min(H, W) < 128:
        raise ValueError(f"RAFT needs frames of at least 128 x 128 pixels (its correlation pyramid), got {H} x {W}; "
                         "decode larger frames or use method 'dis'")
    ph, pw = (-H) % 8, (-W) % 8
    x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    with torch.no_grad():
        flow = model(x[:-1], x[1:])[-1]  # (N-1, 2, H', W'): the last refinement
    return flow[..., :H, :W].numpy().astype(np.float32)


def optical_flow(frames, method: str = "dis", *, raft_weights: str | None = None) -> np.ndarray:
    """Dense flow between each pair of consecutive frames.

    Args:
        frames: ``(N, H, W, 3)`` uint8, ``(N, 3, H, W)`` floats in [0, 1] (numpy or torch), or
            ``(N, H, W)`` grey; N >= 2.
        method: one of :data:`FLOW_METHODS`.
        raft_weights: ``method="raft"``: the weights file.

    Returns:
        ``(N - 1, 2, H, W)`` float32 displacements in pixels (x, y).

    Raises:
        ValueError: fewer than 2 frames, unknown method. ImportError: ``tvl1`` without OpenCV
        contrib.
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"flow method {method!r}: expected one of {', '.join(FLOW_METHODS)}")
    if len(frames) < 2:
        raise ValueError(f"optical flow needs at least 2 frames, got {len(frames)}")
    if method == "raft":
        if not raft_weights:
            raise ValueError("flow method 'raft' needs raft_weights (a torchvision RAFT weights file)")
        return _raft_flow(frames, raft_weights)
    import cv2

    g = _gray(frames)
    if method == "dis":
        algo = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        calc = lambda a, b: algo.calc(a, b, None)  # noqa: E731
    elif method == "farneback":
        calc = lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # noqa: E731
    else:
        if not hasattr(cv2, "optflow"):
            raise ImportError("flow method 'tvl1' needs OpenCV's contrib modules: "
                              "pip install opencv-contrib-python-headless")
        algo = cv2.optflow.DualTVL1OpticalFlow_create()
        calc = lambda a, b: algo.calc(a, b, None)  # noqa: E731
    out = np.empty((len(g) - 1, 2) + g.shape[1:], np.float32)
    for i in range(len(g) - 1):
        out[i] = np.moveaxis(calc(g[i], g[i + 1]), -1, 0)
    return out


def flow_to_unit(flow: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """Pixels -> the model's [0, 1] scale: ``(clip(f, -bound, bound) + bound) / (2 bound)``."""
    return ((np.clip(flow, -bound, bound) + bound) / (2.0 * bound)).astype(np.float32)


def quantise_flow(flow: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """Pixels -> uint8, the two-stream storage (0.157 px steps at ``bound=20``)."""
    return np.rint(flow_to_unit(flow, bound) * 255.0).astype(np.uint8)


def dequantise_flow(q: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """uint8 (or [0, 1] unit scale when float) -> pixels."""
    u = q.astype(np.float32) / 255.0 if q.dtype == np.uint8 else q.astype(np.float32)
    return u * (2.0 * bound) - bound


def stack_flow(unit: np.ndarray, stack: int) -> np.ndarray:
    """``(N, 2, H, W)`` fields -> ``(N - L + 1, 2L, H, W)``: input ``t`` holds fields ``t .. t+L-1``
    (x and y of each field in order).

    Raises:
        ValueError: fewer than ``stack`` fields.
    """
    n = len(unit)
    if n < stack:
        raise ValueError(f"{n} flow fields: too few for a stack of {stack}")
    if stack == 1:
        return unit
    return np.stack([unit[t:t + stack].reshape((2 * stack,) + unit.shape[2:]) for t in range(n - stack + 1)])


def flow_clip(frames, settings: FlowSettings) -> np.ndarray:
    """Frames of one clip ``(T, 3, H, W)`` in [0, 1] -> model input ``(T - L, 2L, H, W)`` on the
    unit scale (``settings``: method, stack L, bound).

    Raises:
        ValueError: fewer than L + 1 frames ("too short for a flow stack").
    """
    if len(frames) < settings.stack + 1:
        raise ValueError(f"a clip of {len(frames)} frames is too short for a flow stack of {settings.stack} "
                         f"(needs {settings.stack + 1} frames)")
    flow = optical_flow(frames, settings.method, raft_weights=settings.raft_weights)
    return stack_flow(flow_to_unit(flow, settings.bound), settings.stack)
