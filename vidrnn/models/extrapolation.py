"""Extrapolation baselines for precipitation nowcasting: Eulerian persistence, and Lagrangian
persistence with pysteps (Lucas-Kanade motion + semi-Lagrangian advection).

They are forecasters (a radar sequence in, future frames out) with no weights; the forecasting
task scores them beside the network on the same windows. pysteps: S. Pulkkinen et al.,
"Pysteps: an open-source Python library for probabilistic precipitation nowcasting (v1.0)",
Geosci. Model Dev. 12, 2019; :func:`pysteps_extrapolation` follows pysteps' "extrapolation
nowcast" example (motion and advection in dBR with a 0.1 mm/h threshold).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["persistence", "pysteps_available", "pysteps_extrapolation", "pysteps_sprog"]



def _check_rain_batch(x, name: str = "input_rain") -> None:
    if x.ndim != 5 or x.shape[2] != 1:
        raise ValueError(f"{name} must be (B, T, 1, H, W) rain rate in mm/h, found shape {tuple(x.shape)}")


def persistence(input_rain, out_frames: int):
    """Eulerian persistence: every forecast frame is the last observed frame.

    Args:
        input_rain: numpy array or tensor, mm/h.
        out_frames: number of frames to forecast.

    Shape:
        input_rain: ``(B, Tin, 1, H, W)``; returns ``(B, out_frames, 1, H, W)``, same type and dtype.

    Raises:
        ValueError: wrong shape or ``out_frames < 1``.
    """
    _check_rain_batch(input_rain)
    if out_frames < 1:
        raise ValueError(f"out_frames must be >= 1, found {out_frames}")
    last = input_rain[:, -1:]  # (B, 1, 1, H, W)
    if isinstance(last, torch.Tensor):
        return last.expand(-1, out_frames, -1, -1, -1).clone()
    return np.repeat(np.asarray(last), out_frames, axis=1)


def pysteps_available() -> bool:
    """True when pysteps and OpenCV (its Lucas-Kanade) import; silences pysteps' import banner."""
    import contextlib
    import io

    try:
        import cv2  # noqa: F401
        with contextlib.redirect_stdout(io.StringIO()):  # pysteps prints where its config file is
            import pysteps  # noqa: F401
    except ImportError:
        return False
    return True


def pysteps_extrapolation(input_rain, out_frames: int, *, motion_frames: int = 3, threshold: float = 0.1,
                          zerovalue: float = -15.0, outval: float = float("nan"), interp_order: int = 1,
                          lk_kwargs: dict | None = None):
    """Lagrangian persistence with pysteps: Lucas-Kanade motion, semi-Lagrangian advection.

    Per sample, as in pysteps' "extrapolation nowcast" example: rain rate -> dBR
    (``10 log10 R``; below ``threshold`` mm/h -> ``zerovalue`` dBR), dense Lucas-Kanade motion
    (``pysteps.motion.get_method("LK")``, missing pixels masked) from the last ``motion_frames``
    inputs, semi-Lagrangian backward advection of the last input (missing pixels -> ``zerovalue``)
    (``pysteps.extrapolation.get_method("semilagrangian")``), back to mm/h with values below
    ``threshold`` set to 0. Motion is in pixels per input time step, so forecast frame ``k`` is
    ``k`` steps ahead.

    Args:
        input_rain: numpy array or tensor, mm/h, NaN where missing.
        out_frames: number of frames to forecast.
        motion_frames: input frames used for the motion field (at least 2).
        threshold: rain/no-rain threshold in mm/h.
        zerovalue: dBR value given to no-rain and missing pixels.
        outval: rain rate (mm/h) for pixels advected in from outside the domain; NaN (pysteps'
            default) marks them unknown, which metrics then skip.
        interp_order: interpolation order of the advection (0 nearest, 1 linear, 3 cubic).
        lk_kwargs: extra keyword arguments for ``pysteps.motion.lucaskanade.dense_lucaskanade``.

    Shape:
        input_rain: ``(B, Tin, 1, H, W)``; returns ``(B, out_frames, 1, H, W)`` mm/h, same type
        (numpy or tensor, float32 for tensors, on the input's device).

    Raises:
        ImportError: pysteps (or OpenCV, which its Lucas-Kanade uses) is missing.
        ValueError: wrong shape, ``out_frames < 1`` or fewer than 2 motion frames.
    """
    try:
        from pysteps import extrapolation, motion
        import cv2  # noqa: F401  (pysteps' LK needs OpenCV; fail here with a clear hint)
    except ImportError as e:
        raise ImportError("pysteps_extrapolation needs pysteps and OpenCV: "
                          "pip install pysteps opencv-python-headless") from e
    _check_rain_batch(input_rain)
    if out_frames < 1:
        raise ValueError(f"out_frames must be >= 1, found {out_frames}")
    n_motion = min(int(motion_frames), input_rain.shape[1])
    if n_motion < 2:
        raise ValueError(f"motion needs at least 2 input frames, found in_frames={input_rain.shape[1]} "
                         f"and motion_frames={motion_frames}")
    is_torch = isinstance(input_rain, torch.Tensor)
    x = input_rain.detach().cpu().double().numpy() if is_torch else np.asarray(input_rain, dtype=np.float64)
    oflow = motion.get_method("LK")
    extrapolate = extrapolation.get_method("semilagrangian")
    thr_db = 10.0 * math.log10(threshold)
    if math.isnan(outval):
        out_db = float("nan")
    else:
        out_db = 10.0 * math.log10(outval) if outval >= threshold else zerovalue
    outs = []
    for sample in x[:, :, 0]:  # (Tin, H, W)
        with np.errstate(invalid="ignore", divide="ignore"):
            dbr = np.where(sample < threshold, zerovalue, 10.0 * np.log10(sample))  # NaN stays NaN
        v = oflow(dbr[-n_motion:], **(lk_kwargs or {}))  # (2, H, W) pixels per time step; LK masks NaN
        last = np.where(np.isnan(dbr[-1]), zerovalue, dbr[-1])  # (H, W) dBR, missing -> no rain
        f = extrapolate(last, v, out_frames, outval=out_db, interp_order=interp_order)  # (Tout, H, W) dBR
        with np.errstate(invalid="ignore"):
            r = np.where(f >= thr_db, 10.0 ** (f / 10.0), 0.0)
        r[np.isnan(f)] = np.nan
        outs.append(r)
    out = np.stack(outs)[:, :, None]  # (B, Tout, 1, H, W)
    if is_torch:
        return torch.from_numpy(out).to(device=input_rain.device, dtype=torch.float32)
    return out.astype(np.float32)


def pysteps_sprog(input_rain, out_frames: int, *, motion_frames: int = 3, threshold: float = 0.1,
                  zerovalue: float = -15.0, n_cascade_levels: int = 6, ar_order: int = 2):
    """S-PROG (Seed 2003, "A dynamic and spatial scaling approach to advection forecasting") with
    pysteps: Lucas-Kanade motion, the dBR field decomposed into a cascade of spatial scales, each
    advected and evolved by its own AR(2) process, so that small scales lose their (unpredictable)
    detail with lead time. As pysteps' S-PROG example: rain rate -> dBR (below ``threshold``
    -> ``zerovalue``), ``pysteps.nowcasts.sprog.forecast`` on the last ``ar_order + 1`` inputs with
    ``precip_thr`` at the dBR threshold, back to mm/h (below ``threshold`` -> 0).

    Args:
        input_rain: numpy array or tensor, mm/h, NaN where missing.
        out_frames: frames to forecast.
        motion_frames: inputs for the motion field (at least 2).
        threshold, zerovalue: as :func:`pysteps_extrapolation`.
        n_cascade_levels: cascade levels (pysteps' default 6).
        ar_order: order of the autoregressive model (needs ``ar_order + 1`` inputs).

    Shape:
        ``(B, Tin, 1, H, W)`` -> ``(B, out_frames, 1, H, W)`` mm/h, same type.

    Raises:
        ImportError: pysteps or OpenCV missing. ValueError: wrong shape, too few inputs.
    """
    try:
        from pysteps import motion, nowcasts
        import cv2  # noqa: F401
    except ImportError as e:
        raise ImportError("pysteps_sprog needs pysteps and OpenCV: pip install pysteps opencv-python-headless") from e
    import contextlib
    import io

    _check_rain_batch(input_rain)
    if input_rain.shape[1] < ar_order + 1 or input_rain.shape[1] < 2:
        raise ValueError(f"S-PROG with ar_order={ar_order} needs {ar_order + 1} input frames, found "
                         f"{input_rain.shape[1]}")
    is_torch = isinstance(input_rain, torch.Tensor)
    x = input_rain.detach().cpu().double().numpy() if is_torch else np.asarray(input_rain, dtype=np.float64)
    oflow, sprog = motion.get_method("LK"), nowcasts.get_method("sprog")
    thr_db = 10.0 * math.log10(threshold)
    outs = []
    for sample in x[:, :, 0]:  # (Tin, H, W)
        with np.errstate(invalid="ignore", divide="ignore"):
            dbr = np.where(sample < threshold, zerovalue, 10.0 * np.log10(sample))
        v = oflow(dbr[-min(motion_frames, len(dbr)):])
        filled = np.where(np.isnan(dbr), zerovalue, dbr)[-(ar_order + 1):]
        with contextlib.redirect_stdout(io.StringIO()):  # S-PROG prints its settings and progress
            f = sprog(filled, v, out_frames, n_cascade_levels=n_cascade_levels, precip_thr=thr_db,
                      ar_order=ar_order)
        with np.errstate(invalid="ignore"):
            r = np.where(f >= thr_db, 10.0 ** (f / 10.0), 0.0)
        r[~np.isfinite(f)] = np.nan
        outs.append(r)
    out = np.stack(outs)[:, :, None]
    if is_torch:
        return torch.from_numpy(out).to(device=input_rain.device, dtype=torch.float32)
    return out.astype(np.float32)
