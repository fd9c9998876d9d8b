"""Radar events as training data for precipitation nowcasting: whole events as rain-rate
sequences, and input/target windows for encoder-forecasters.

Precipitation nowcasting as video prediction follows X. Shi, Z. Chen, H. Wang, D.-Y. Yeung,
W.-K. Wong and W.-C. Woo, "Convolutional LSTM Network: A Machine Learning Approach for
Precipitation Nowcasting", NeurIPS 2015, arXiv:1506.04214 (5 input frames, forecast the next
frames, skill measured by CSI/POD/FAR at rain-rate thresholds), and X. Shi, Z. Gao, L. Lausen,
H. Wang, D.-Y. Yeung, W.-K. Wong and W.-C. Woo, "Deep Learning for Precipitation Nowcasting:
A Benchmark and A New Model", NeurIPS 2017, arXiv:1706.03458 (HKO-7: 5 input and 20 output
frames, pixels ``= (dBZ + 10) / 70`` clipped to [0, 1], rain thresholds 0.5, 2, 5, 10, 30 mm/h).

File readers: :mod:`vidrnn.io.radar`; Z-R conversions and the unit scale:
:mod:`vidrnn.metrics.rainrate`; persistence and pysteps extrapolation baselines:
:mod:`vidrnn.models.extrapolation`. Example: ``load_radar_sequence("pysteps-data/radar/fmi/20160928", "fmi")``.

Deviations: :func:`load_radar_sequence` returns rain rate for both sources (FMI reflectivity is
converted with the Z-R pair pysteps' FMI importer uses, ``a=223, b=1.53``, unless given);
the unit scale is computed from rain rate through a Z-R pair (default Marshall-Palmer, HKO-7
itself used ``Z = 58.53 R^1.56``).
"""

from __future__ import annotations

import datetime as _dt
import logging
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vidrnn.io.radar import (FMI_NO_ECHO_DBZ, SOURCE_ZR, find_radar_files, radar_file_time, read_fmi_pgm,
                             read_knmi_hdf5, read_pysteps)
from vidrnn.metrics.rainrate import check_zr, dbz_to_rainrate, to_unit

log = logging.getLogger(__name__)

__all__ = ["load_radar_sequence", "RadarWindows"]


# ----------------------------------------------------------------------------------------------
# Sequences on disk


def _block_nanmean(x: np.ndarray, k: int) -> np.ndarray:
    """``k x k`` block mean of a ``(..., H, W)`` array ignoring NaN; all-NaN blocks give NaN.

    Rows/columns beyond the last whole block are dropped.
    """
    if k == 1:
        return x
    H, W = x.shape[-2] // k * k, x.shape[-1] // k * k
    blocks = x[..., :H, :W].reshape(*x.shape[:-2], H // k, k, W // k, k)  # (..., H/k, k, W/k, k)
    valid = ~np.isnan(blocks)
    total = np.where(valid, blocks, 0.0).sum(axis=(-3, -1), dtype=np.float64)
    count = valid.sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(x.dtype)  # 0/0 -> NaN


def load_radar_sequence(root, source: str, *, downsample: int = 1, a: float | None = None,
                        b: float | None = None, on_error: str = "raise"
                        ) -> tuple[np.ndarray, list[_dt.datetime], dict[str, Any]]:
    """Read a whole event as rain rate: every file of ``source`` under ``root``, in time order.

    FMI reflectivity is converted to rain rate with ``Z = a R^b`` (default the pair pysteps'
    FMI importer states, ``a=223, b=1.53``), and the composite's "no echo" code (-32 dBZ) becomes
    exactly 0 mm/h, as ``pysteps.utils.conversion.to_rainrate`` does with the importer's
    metadata; KNMI accumulations are already rates (see :func:`read_knmi_hdf5`).

    Args:
        root: folder holding the files (searched recursively).
        source: ``"fmi"``, ``"knmi"`` (vidrnn's readers), ``"mch"``, ``"bom"`` or ``"rmi"``
            (pysteps' importers, :func:`vidrnn.io.radar.read_pysteps`).
        downsample: ``k``: average ``k x k`` pixel blocks (NaN ignored, all-NaN block -> NaN;
            incomplete blocks at the bottom/right edge are dropped). 1 keeps full resolution.
        a: Z-R coefficient for reflectivity sources (None: the source's pysteps default).
        b: Z-R exponent (None: the source's pysteps default).
        on_error: a file that cannot be read ``"raise"``-s, or is ``"skip"``-ped: its frame
            becomes all missing (NaN, the time step kept), it is logged and listed in
            ``meta["skipped_files"]``.

    Returns:
        ``(rain, timestamps, meta)``: rain rate float32 with NaN where missing; the files'
        naive-UTC timestamps; ``meta`` with ``source``, ``units`` (``"mm/h"``), ``files``,
        ``timestep_minutes`` (None for a single file), ``downsample``, ``zr_a``, ``zr_b``,
        ``pixel_size_m`` (after downsampling) and ``projection`` when the files give them.

    Shape:
        rain: ``(T, H // k, W // k)`` frames x pixels, mm/h.

    Raises:
        FileNotFoundError: no matching files (see :func:`find_radar_files`).
        ValueError: bad ``downsample``; frames of different sizes; a time step that differs from
            the first one (the message names the file that breaks it).
    """
    if not (isinstance(downsample, int | np.integer) and downsample >= 1):
        raise ValueError(f"downsample must be an integer >= 1, found {downsample!r}")
    files = find_radar_files(root, source)
    za, zb = SOURCE_ZR[source]
    za, zb = (za if a is None else float(a)), (zb if b is None else float(b))
    frames, stamps, first_meta, skipped = [], [], None, []
    for p in files:
        try:
            if source == "fmi":
                dbz, m = read_fmi_pgm(p)
                rain = dbz_to_rainrate(dbz, za, zb)
                rain[dbz <= FMI_NO_ECHO_DBZ] = 0.0  # the lowest code is "no echo": 0 mm/h, as pysteps
            elif source == "knmi":
                rain, m = read_knmi_hdf5(p)
            else:  # MeteoSwiss, BoM, RMI: pysteps' importers
                rain, m = read_pysteps(p, source)
        except (ValueError, OSError) as e:
            if on_error != "skip":
                raise
            log.warning("radar: skipped %s (%s); its frame is missing", p, e)
            skipped.append(str(p))
            frames.append(None)
            stamps.append(radar_file_time(p, source))
            continue
        if first_meta is None:
            first_meta, shape0 = m, rain.shape
        elif rain.shape != shape0:
            raise ValueError(f"{p}: frame size {rain.shape} differs from {shape0} in {files[0]}")
        frames.append(_block_nanmean(rain, downsample))
        stamps.append(m["timestamp"])
    if first_meta is None:
        raise ValueError(f"{root}: none of the {len(files)} {source} files could be read (first: {skipped[0]})")
    blank = np.full_like(next(f for f in frames if f is not None), np.nan)
    frames = [blank if f is None else f for f in frames]
    step = None
    if len(stamps) > 1:
        step = stamps[1] - stamps[0]
        for i in range(2, len(stamps)):
            if stamps[i] - stamps[i - 1] != step:
                raise ValueError(
                    f"{files[i]}: time step {(stamps[i] - stamps[i - 1]).total_seconds() / 60:g} min after "
                    f"{files[i - 1].name}, expected a constant {step.total_seconds() / 60:g} min "
                    f"(from {files[0].name} to {files[1].name}); a gap or a duplicate in {root}")
    meta: dict[str, Any] = {"source": source, "units": "mm/h", "files": [str(p) for p in files],
                            "timestep_minutes": None if step is None else step.total_seconds() / 60.0,
                            "downsample": int(downsample), "zr_a": za, "zr_b": zb, "skipped_files": skipped}
    if "pixel_size_m" in first_meta:
        meta["pixel_size_m"] = tuple(s * downsample for s in first_meta["pixel_size_m"])
    if "projection" in first_meta:
        meta["projection"] = first_meta["projection"]
    if "accumulation_minutes" in first_meta:
        meta["accumulation_minutes"] = first_meta["accumulation_minutes"]
    return np.stack(frames).astype(np.float32, copy=False), stamps, meta


# ----------------------------------------------------------------------------------------------
# Windows for training and evaluation


class RadarWindows(Dataset):
    """Input/target windows cut from one radar sequence, for encoder-forecaster training.

    A window is ``in_frames`` consecutive frames followed by ``out_frames`` frames to forecast
    (Shi et al. 2015 used 5 -> 15, HKO-7 5 -> 20). Two modes:

    - ``random_crop=True`` (training): item ``i`` draws a random window start and a random
      ``crop x crop`` position. With ``seed=None`` the draw uses torch's global generator (so it
      follows ``torch.manual_seed`` / Lightning's ``seed_everything``, differs per DataLoader
      worker and per epoch); with an integer seed it is a pure function of
      ``(seed, epoch, i)``; call :meth:`set_epoch` to get new draws each epoch.
    - ``random_crop=False`` (evaluation): every window start ``0, stride, 2*stride, ...`` and, with
      ``crop``, either every tile of a grid of non-overlapping crops centred in the frame
      (``eval_crops="grid"``) or the centre crop only (``"centre"``). Fully deterministic.

    Args:
        rain: rain rate, numpy array or tensor, mm/h, NaN where missing.
        in_frames: frames given to the model.
        out_frames: frames to forecast.
        crop: side of a square crop in pixels, or None for whole frames.
        random_crop: training mode (see above).
        stride: frames between window starts (evaluation mode; also sets the training epoch
            length, which equals the number of evaluation window starts).
        eval_crops: ``"grid"`` or ``"centre"`` (evaluation mode with ``crop``).
        a: Z-R coefficient for the unit scale (:func:`to_unit`).
        b: Z-R exponent.
        seed: see above.

    Shape:
        rain: ``(T, H, W)`` frames x pixels, mm/h. Each item is a dict:
        ``input`` ``(in_frames, 1, h, w)`` and ``target`` ``(out_frames, 1, h, w)`` float32 on the
        unit scale [0, 1]; ``input_rain`` / ``target_rain`` the same frames in mm/h with NaN where
        missing; ``start`` (int, index of the first input frame in ``rain``) and ``origin``
        (int64 ``(2,)``, top-left ``(y, x)`` of the crop). ``h = w = crop``, or ``(H, W)``.

    Raises:
        ValueError: ``rain`` not 3-D; frame counts or stride < 1; too few frames for one window
            (says how many there are and how many a window needs); crop larger than the frame;
            unknown ``eval_crops``.
    """

    def __init__(self, rain, *, in_frames: int = 5, out_frames: int = 12, crop: int | None = None,
                 random_crop: bool = False, stride: int = 1, eval_crops: str = "grid", a: float = 200.0,
                 b: float = 1.6, seed: int | None = None):
        rain = rain.detach().cpu().numpy() if isinstance(rain, torch.Tensor) else np.asarray(rain)
        if rain.ndim != 3:
            raise ValueError(f"rain must be (T, H, W) frames x pixels, found shape {tuple(rain.shape)}")
        for name, v in (("in_frames", in_frames), ("out_frames", out_frames), ("stride", stride)):
            if not (isinstance(v, int | np.integer) and v >= 1):
                raise ValueError(f"{name} must be an integer >= 1, found {v!r}")
        T, H, W = rain.shape
        length = in_frames + out_frames
        if T < length:
            raise ValueError(f"rain has {T} frames but one window needs in_frames + out_frames = "
                             f"{in_frames} + {out_frames} = {length}")
        if crop is not None:
            if not (isinstance(crop, int | np.integer) and crop >= 1):
                raise ValueError(f"crop must be a positive integer (pixels) or None, found {crop!r}")
            if crop > H or crop > W:
                raise ValueError(f"crop={crop} pixels is larger than the frames ({H} x {W})")
        if eval_crops not in ("grid", "centre"):
            raise ValueError(f"eval_crops={eval_crops!r}: expected 'grid' or 'centre'")
        check_zr(a, b)
        self.rain = np.ascontiguousarray(rain, dtype=np.float32)
        self.in_frames, self.out_frames, self.crop, self.stride = int(in_frames), int(out_frames), crop, int(stride)
        self.random_crop, self.eval_crops, self.a, self.b, self.seed = bool(random_crop), eval_crops, a, b, seed
        self.epoch = 0
        self.starts = list(range(0, T - length + 1, self.stride))
        h = w = crop if crop is not None else None
        if crop is None:
            self.origins = [(0, 0)]
        elif eval_crops == "centre":
            self.origins = [((H - h) // 2, (W - w) // 2)]
        else:
            ny, nx = H // h, W // w
            y0, x0 = (H - ny * h) // 2, (W - nx * w) // 2  # centre the grid
            self.origins = [(y0 + i * h, x0 + j * w) for i in range(ny) for j in range(nx)]

    def set_epoch(self, epoch: int) -> None:
        """Change the random draws of a seeded training dataset (no effect in evaluation mode)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.starts) if self.random_crop else len(self.starts) * len(self.origins)

    def _draw(self, i: int) -> tuple[int, int, int]:
        T, H, W = self.rain.shape
        n_start = T - self.in_frames - self.out_frames + 1
        h = self.crop if self.crop is not None else H
        w = self.crop if self.crop is not None else W
        if self.seed is None:
            r = torch.randint(0, 2**62, (3,)).tolist()
            return r[0] % n_start, r[1] % (H - h + 1), r[2] % (W - w + 1)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return int(rng.integers(n_start)), int(rng.integers(H - h + 1)), int(rng.integers(W - w + 1))

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} windows")
        i = i % len(self)
        if self.random_crop:
            start, y, x = self._draw(i)
        else:
            start = self.starts[i // len(self.origins)]
            y, x = self.origins[i % len(self.origins)]
        H, W = self.rain.shape[1:]
        h = self.crop if self.crop is not None else H
        w = self.crop if self.crop is not None else W
        t_in = start + self.in_frames
        clip = self.rain[start:t_in + self.out_frames, y:y + h, x:x + w]  # (Tin + Tout, h, w)
        clip = torch.from_numpy(np.ascontiguousarray(clip)).unsqueeze(1)  # (Tin + Tout, 1, h, w)
        unit = to_unit(clip, self.a, self.b)
        return {
            "input": unit[:self.in_frames], "target": unit[self.in_frames:],
            "input_rain": clip[:self.in_frames], "target_rain": clip[self.in_frames:],
            "start": start, "origin": torch.tensor([y, x], dtype=torch.int64),
        }
