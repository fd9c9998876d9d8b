"""Radar data for precipitation nowcasting: readers, Z-R conversion, unit scaling, windows, baselines.

Precipitation nowcasting as video prediction follows X. Shi, Z. Chen, H. Wang, D.-Y. Yeung,
W.-K. Wong and W.-C. Woo, "Convolutional LSTM Network: A Machine Learning Approach for
Precipitation Nowcasting", NeurIPS 2015, arXiv:1506.04214 (5 input frames, forecast the next
frames, skill measured by CSI/POD/FAR at rain-rate thresholds), and X. Shi, Z. Gao, L. Lausen,
H. Wang, D.-Y. Yeung, W.-K. Wong and W.-C. Woo, "Deep Learning for Precipitation Nowcasting:
A Benchmark and A New Model", NeurIPS 2017, arXiv:1706.03458 (HKO-7: 5 input and 20 output
frames, pixels ``= (dBZ + 10) / 70`` clipped to [0, 1], rain thresholds 0.5, 2, 5, 10, 30 mm/h).

The file readers follow the importers of pysteps (S. Pulkkinen et al., "Pysteps: an open-source
Python library for probabilistic precipitation nowcasting (v1.0)", Geosci. Model Dev. 12, 2019,
``pysteps.io.importers.import_fmi_pgm`` and ``import_knmi_hdf5``), and the sample events are the
ones of the pysteps-data archive (https://github.com/pySTEPS/pysteps-data):

- FMI (Finland) composites: 8-bit binary PGM (P5), optionally gzipped, ``dBZ = 0.5 * value - 32``,
  255 = no data. The stereographic projection parameters are in the header comments.
- KNMI (Netherlands) 5-minute rainfall accumulations: HDF5, ``image1/image_data`` uint16,
  ``mm = 0.01 * value``, 65535 = missing/outside the radar range; the file's
  ``image1/calibration`` attributes state the formula and missing codes and are used when present.

To get the same data: ``pip install pysteps`` and download the pysteps-data archive
(``import pysteps; pysteps.datasets.download_pysteps_data("pysteps-data")``, or clone the
repository above), then ``load_radar_sequence("pysteps-data/radar/fmi/20160928", "fmi")``.

Deviations: :func:`load_radar_sequence` returns rain rate for both sources (FMI reflectivity is
converted with the Z-R pair pysteps' FMI importer uses, ``a=223, b=1.53``, unless given);
the unit scale is computed from rain rate through a Z-R pair (default Marshall-Palmer, HKO-7
itself used ``Z = 58.53 R^1.56``). :func:`pysteps_extrapolation` follows the pysteps
"extrapolation nowcast" example (motion and advection in dBR with a 0.1 mm/h threshold).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vidrnn.io.files import read_maybe_gzip

__all__ = [
    "read_fmi_pgm", "read_knmi_hdf5", "dbz_to_rainrate", "rainrate_to_dbz", "to_unit", "from_unit",
    "find_radar_files", "load_radar_sequence", "RadarWindows", "persistence", "pysteps_extrapolation",
    "SOURCES",
]

#: ``source -> (file-name regex with the timestamp as group 1, glob pattern, description)``
_PATTERNS = {
    "fmi": (re.compile(r"^(\d{12})_fmi\..*\.pgm(\.gz)?$"), "*_fmi.*.pgm*",
            "YYYYMMDDHHMM_fmi.radar.composite.*.pgm[.gz]"),
    "knmi": (re.compile(r"^RAD_NL\d*_.*?_(\d{12})\.(h5|hdf5)$"), "RAD_*.h5*",
             "RAD_NL25_RAP_5min_YYYYMMDDHHMM.h5"),
}
SOURCES = tuple(_PATTERNS)
#: Z-R pairs pysteps' importers attach to each source (FMI: 223, 1.53; KNMI: Marshall-Palmer).
_SOURCE_ZR = {"fmi": (223.0, 1.53), "knmi": (200.0, 1.6)}

_FMI_NODATA = 255
_FMI_NO_ECHO_DBZ = -32.0  # code 0
_KNMI_GAIN, _KNMI_OFFSET, _KNMI_MISSING = 0.01, 0.0, 65535
_KNMI_ACCUMULATION_MIN = 5.0


# ----------------------------------------------------------------------------------------------
# Readers


def _timestamp_from_name(name: str) -> _dt.datetime | None:
    """The first run of exactly 12 digits in ``name`` read as ``YYYYMMDDHHMM`` (naive UTC)."""
    m = re.search(r"(?<!\d)(\d{12})(?!\d)", name)
    if m is None:
        return None
    try:
        return _dt.datetime.strptime(m.group(1), "%Y%m%d%H%M")
    except ValueError:
        return None


def _parse_pgm(data: bytes, path) -> tuple[np.ndarray, list[str], int]:
    """Decode a binary PGM (P5): the raster (H, W), the header comment lines and maxval."""
    if data[:2] != b"P5":
        raise ValueError(f"{path}: expected a binary PGM file starting with 'P5', found {data[:2]!r}")
    pos, tokens, comments, ws = 2, [], [], b" \t\r\n"
    while len(tokens) < 3:  # width, height, maxval; comments may appear between them
        while pos < len(data) and data[pos] in ws:
            pos += 1
        if pos >= len(data):
            raise ValueError(f"{path}: PGM header ends after {len(tokens)} of 3 numbers (width height maxval)")
        if data[pos] == ord("#"):
            end = data.find(b"\n", pos)
            end = len(data) if end < 0 else end
            comments.append(data[pos + 1:end].decode("ascii", "replace").strip())
            pos = end + 1
            continue
        start = pos
        while pos < len(data) and data[pos] not in ws and data[pos] != ord("#"):
            pos += 1
        try:
            tokens.append(int(data[start:pos]))
        except ValueError:
            raise ValueError(f"{path}: PGM header: expected an integer, found {data[start:pos][:20]!r}") from None
    pos += 1  # exactly one whitespace character separates maxval from the raster
    width, height, maxval = tokens
    dtype = np.dtype(np.uint8) if maxval < 256 else np.dtype(">u2")
    n = width * height * dtype.itemsize
    if len(data) - pos < n:
        raise ValueError(f"{path}: truncated PGM: header says {width}x{height} (maxval {maxval}), "
                         f"needs {n} bytes of pixels, found {len(data) - pos}")
    raster = np.frombuffer(data, dtype=dtype, count=width * height, offset=pos).reshape(height, width)
    return raster, comments, maxval


def read_fmi_pgm(path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read an FMI radar reflectivity composite (binary PGM, plain or gzipped) as dBZ.

    ``dBZ = 0.5 * value - 32``; value 255 is "no data" and becomes NaN, as in
    ``pysteps.io.importers.import_fmi_pgm``. Value 0 (-32 dBZ) is the composite's "no echo".

    Args:
        path: ``YYYYMMDDHHMM_fmi.radar.composite.*.pgm`` or ``.pgm.gz`` (gzip is detected from
            the content, not the name).

    Returns:
        ``(dbz, meta)``: reflectivity in dBZ, float32, NaN where no data; ``meta`` has
        ``timestamp`` (naive UTC datetime from the file name, else the header's ``obstime``),
        ``units`` (``"dBZ"``), ``source`` (``"fmi"``), ``path``, and where the header comments give
        them ``pixel_size_m`` (``(dy, dx)`` metres), ``projection`` (PROJ string; ``a``, ``x_0``,
        ``y_0`` are pysteps' hard-coded values, absent from the files), ``bottomleft`` /
        ``topright`` (lon, lat degrees), ``radars`` (station codes) and ``header`` (all comment
        lines).

    Shape:
        dbz: ``(H, W)`` pixels (1226 x 760 for the FMI SUOMI1 composite), dBZ.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a P5 PGM, truncated, or no timestamp in the name or header.
    """
    path = Path(path)
    raw = read_maybe_gzip(path, "FMI radar file")
    raster, comments, maxval = _parse_pgm(raw, path)
    if maxval > 255:
        raise ValueError(f"{path}: expected an 8-bit FMI PGM (maxval <= 255), found maxval {maxval}")
    dbz = raster.astype(np.float32) * np.float32(0.5) - np.float32(32.0)
    dbz[raster == _FMI_NODATA] = np.nan

    header: dict[str, str] = {}
    radars = []
    for line in comments:
        key, _, value = line.partition(" ")
        if key == "radar":
            radars.append(value.split()[0] if value.split() else value)
        elif key and key not in header:
            header[key] = value.strip()
    meta: dict[str, Any] = {"source": "fmi", "path": str(path), "units": "dBZ", "header": comments,
                            "nodata_value": _FMI_NODATA}
    ts = _timestamp_from_name(path.name)
    if ts is None and "obstime" in header:
        ts = _timestamp_from_name(header["obstime"])
    if ts is None:
        raise ValueError(f"{path}: no timestamp: expected YYYYMMDDHHMM in the file name "
                         f"(e.g. 201609281445_fmi...) or an 'obstime' header comment")
    meta["timestamp"] = ts
    if radars:
        meta["radars"] = radars
    try:
        meta["pixel_size_m"] = (float(header["metersperpixel_y"]), float(header["metersperpixel_x"]))
    except (KeyError, ValueError):
        pass
    for k in ("bottomleft", "topright"):
        if k in header:
            try:
                meta[k] = tuple(float(v) for v in header[k].split()[:2])
            except ValueError:
                pass
    if header.get("type") == "stereographic":
        # As pysteps: the PGM gives the projection type, centre and true latitude; the earth
        # radius and false easting/northing are not in the file.
        meta["projection"] = (f"+proj=stere +lon_0={header.get('centrallongitude', '25')}E "
                              f"+lat_0={header.get('centrallatitude', '90')}N "
                              f"+lat_ts={header.get('truelatitude', '60')} +a=6371288 "
                              f"+x_0=380886.310 +y_0=3395677.920 +no_defs")
    return dbz, meta


def _attr_str(v) -> str:
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0] if v.size else b""
    return v.decode("ascii", "replace") if isinstance(v, bytes | np.bytes_) else str(v)


def _attr_int(v) -> int:
    return int(np.asarray(v).reshape(-1)[0])


def read_knmi_hdf5(path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a KNMI radar rainfall accumulation (HDF5) as rain rate in mm/h.

    The raw ``image1/image_data`` (uint16) is calibrated with the formula in the file's
    ``image1/calibration`` attributes (``calibration_formulas``, e.g. ``"GEO=0.01*PV+0.0"``; missing
    codes ``calibration_missing_data`` and ``calibration_out_of_image``), falling back to
    ``mm = 0.01 * value`` and 65535 = missing, as ``pysteps.io.importers.import_knmi_hdf5``. The
    accumulation period comes from ``overview/product_datetime_start`` and ``_end`` (5 minutes
    if absent) and the depth is turned into a rate: ``mm/h = mm * 60 / minutes``.

    Args:
        path: ``RAD_NL25_RAP_5min_YYYYMMDDHHMM.h5`` (the timestamp is the end of the accumulation).

    Returns:
        ``(rain, meta)``: rain rate in mm/h, float32, NaN where missing or outside the radar range;
        ``meta`` has ``timestamp`` (naive UTC, from the name, else the product end time),
        ``units`` (``"mm/h"``), ``source`` (``"knmi"``), ``path``, ``accumulation_minutes``,
        ``calibration`` (``gain``, ``offset``, ``missing`` codes, ``formula`` as found),
        ``pixel_size_m`` (``(dy, dx)``) and ``projection`` (PROJ string) when present.

    Shape:
        rain: ``(H, W)`` pixels (765 x 700 for the NL25 grid), mm/h.

    Raises:
        ImportError: h5py is not installed.
        FileNotFoundError: ``path`` does not exist.
        ValueError: no ``image1/image_data`` dataset, not an accumulation product, unreadable
            calibration formula, or no timestamp.
    """
    try:
        import h5py
    except ImportError as e:
        raise ImportError("reading KNMI HDF5 radar files needs h5py: pip install h5py") from e
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KNMI radar file not found: {path}")
    with h5py.File(path, "r") as f:
        if "image1/image_data" not in f:
            raise ValueError(f"{path}: expected an HDF5 dataset 'image1/image_data', found groups {list(f)}")
        raw = f["image1/image_data"][()]
        img_attrs = dict(f["image1"].attrs)
        cal = dict(f["image1/calibration"].attrs) if "image1/calibration" in f else {}
        overview = dict(f["overview"].attrs) if "overview" in f else {}
        geo = dict(f["geographic"].attrs) if "geographic" in f else {}
        proj = dict(f["geographic/map_projection"].attrs) if "geographic/map_projection" in f else {}

    quantity = _attr_str(img_attrs.get("image_geo_parameter", "ACCUMULATED_PRECIPITATION_[MM]"))
    if "PRECIPITATION" not in quantity.upper():
        raise ValueError(f"{path}: expected a rainfall accumulation (image_geo_parameter "
                         f"ACCUMULATED_PRECIPITATION_[MM]), found {quantity!r}")
    gain, offset, formula = _KNMI_GAIN, _KNMI_OFFSET, None
    if "calibration_formulas" in cal:
        formula = _attr_str(cal["calibration_formulas"])
        m = re.fullmatch(r"\s*GEO\s*=\s*([-+0-9.eE]+)\s*\*\s*PV\s*(?:([-+])\s*([0-9.eE]+))?\s*", formula)
        if m is None:
            raise ValueError(f"{path}: cannot read image1/calibration formula {formula!r}: "
                             f"expected 'GEO=<gain>*PV+<offset>'")
        gain = float(m.group(1))
        offset = float(m.group(3) or 0.0) * (-1.0 if m.group(2) == "-" else 1.0)
    missing = {_attr_int(cal[k]) for k in ("calibration_missing_data", "calibration_out_of_image") if k in cal}
    missing = sorted(missing or {_KNMI_MISSING})

    minutes = _KNMI_ACCUMULATION_MIN
    t_end = None
    try:
        fmt = "%d-%b-%Y;%H:%M:%S.%f"
        t0 = _dt.datetime.strptime(_attr_str(overview["product_datetime_start"]), fmt)
        t_end = _dt.datetime.strptime(_attr_str(overview["product_datetime_end"]), fmt)
        if t_end > t0:
            minutes = (t_end - t0).total_seconds() / 60.0
    except (KeyError, ValueError):
        pass
    ts = _timestamp_from_name(path.name) or t_end
    if ts is None:
        raise ValueError(f"{path}: no timestamp: expected YYYYMMDDHHMM in the file name "
                         f"(e.g. RAD_NL25_RAP_5min_201008260000.h5) or overview/product_datetime_end")

    rain = (raw.astype(np.float32) * np.float32(gain) + np.float32(offset)) * np.float32(60.0 / minutes)
    rain[np.isin(raw, missing)] = np.nan
    meta: dict[str, Any] = {
        "source": "knmi", "path": str(path), "timestamp": ts, "units": "mm/h", "accumulation_minutes": minutes,
        "calibration": {"gain": gain, "offset": offset, "missing": missing, "formula": formula},
        "quantity": quantity,
    }
    try:
        unit = _attr_str(geo["geo_dim_pixel"]).split(",")[0].strip().upper()
        scale = {"KM": 1000.0, "M": 1.0}[unit]
        meta["pixel_size_m"] = (abs(float(np.ravel(geo["geo_pixel_size_y"])[0])) * scale,
                                abs(float(np.ravel(geo["geo_pixel_size_x"])[0])) * scale)
    except (KeyError, ValueError, IndexError):
        pass
    if "projection_proj4_params" in proj:
        meta["projection"] = _attr_str(proj["projection_proj4_params"])
    return rain, meta


# ----------------------------------------------------------------------------------------------
# Z-R relation and the network's unit scale


def _as_float(x):
    """``x`` as a floating numpy array or torch tensor (integers become float32)."""
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.float()
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def _check_zr(a: float, b: float) -> None:
    if not (a > 0 and b > 0):
        raise ValueError(f"Z-R parameters must be positive (Z = a R^b), found a={a}, b={b}")


def dbz_to_rainrate(dbz, a: float = 200.0, b: float = 1.6):
    """Reflectivity (dBZ) to rain rate (mm/h) through ``Z = a R^b``, ``dBZ = 10 log10 Z``.

    The defaults are Marshall-Palmer (a=200, b=1.6). ``-inf`` dBZ gives 0 mm/h, NaN stays NaN.

    Args:
        dbz: numpy array or torch tensor (any shape) in dBZ.
        a: Z-R multiplicative coefficient (Z in mm^6/m^3, R in mm/h).
        b: Z-R exponent.

    Returns:
        Rain rate in mm/h, same type, shape and (floating) dtype as ``dbz``.

    Raises:
        ValueError: ``a`` or ``b`` not positive.
    """
    _check_zr(a, b)
    x = _as_float(dbz)
    # R = (10^(dBZ/10) / a)^(1/b), written as one power of ten (no overflow of Z).
    return 10.0 ** ((x - 10.0 * math.log10(a)) / (10.0 * b))


def rainrate_to_dbz(rain, a: float = 200.0, b: float = 1.6):
    """Rain rate (mm/h) to reflectivity (dBZ): ``dBZ = 10 log10(a R^b)``.

    0 mm/h gives ``-inf`` dBZ (no warning), NaN stays NaN.

    Args:
        rain: numpy array or torch tensor (any shape) in mm/h, >= 0 or NaN.
        a: Z-R multiplicative coefficient (default Marshall-Palmer 200).
        b: Z-R exponent (default 1.6).

    Returns:
        Reflectivity in dBZ, same type, shape and (floating) dtype as ``rain``.

    Raises:
        ValueError: a negative rain rate, or ``a``/``b`` not positive.
    """
    _check_zr(a, b)
    x = _as_float(rain)
    if bool((x < 0).any()):
        raise ValueError(f"rain rate must be >= 0 mm/h (or NaN for missing), found minimum {float(x[x < 0].min())}")
    c = 10.0 * math.log10(a)
    if isinstance(x, torch.Tensor):
        return c + 10.0 * b * torch.log10(x)
    with np.errstate(divide="ignore"):
        return c + 10.0 * b * np.log10(x)


def to_unit(rain_rate, a: float = 200.0, b: float = 1.6):
    """Rain rate (mm/h) to the network's [0, 1] scale: ``clip((dBZ + 10) / 70, 0, 1)``.

    The HKO-7 pixel scale of Shi et al. (2017): 0 is -10 dBZ or less (including 0 mm/h and
    missing data: NaN gives 0), 1 is 60 dBZ or more. With Marshall-Palmer that is
    ``R < 0.0087 mm/h -> 0`` and ``R >= 205 mm/h -> 1``.

    Args:
        rain_rate: numpy array or torch tensor (any shape) in mm/h (NaN = missing).
        a: Z-R coefficient used to get dBZ from rain rate.
        b: Z-R exponent.

    Returns:
        Same type, shape and dtype, values in [0, 1], no NaN.

    Raises:
        ValueError: negative rain rate.
    """
    u = (rainrate_to_dbz(rain_rate, a, b) + 10.0) / 70.0
    if isinstance(u, torch.Tensor):
        return torch.nan_to_num(u, nan=0.0).clamp_(0.0, 1.0)
    return np.clip(np.nan_to_num(u, nan=0.0), 0.0, 1.0).astype(u.dtype, copy=False)


def from_unit(x, a: float = 200.0, b: float = 1.6):
    """The network's [0, 1] scale back to rain rate (mm/h), the inverse of :func:`to_unit`.

    ``dBZ = 70 x - 10``; ``x <= 0`` gives exactly 0 mm/h; values are clipped to [0, 1] first
    (so network outputs slightly outside the range are safe); NaN stays NaN.

    Args:
        x: numpy array or torch tensor (any shape) on the unit scale.
        a: Z-R coefficient.
        b: Z-R exponent.

    Returns:
        Rain rate in mm/h, same type, shape and (floating) dtype.
    """
    x = _as_float(x)
    if isinstance(x, torch.Tensor):
        xc = x.clamp(0.0, 1.0)
        return torch.where(xc > 0, dbz_to_rainrate(70.0 * xc - 10.0, a, b), torch.zeros_like(xc))
    xc = np.clip(x, 0.0, 1.0)
    return np.where(xc > 0, dbz_to_rainrate(70.0 * xc - 10.0, a, b), 0.0).astype(x.dtype, copy=False)


# ----------------------------------------------------------------------------------------------
# Sequences on disk


def find_radar_files(root, source: str) -> list[Path]:
    """The radar files of one source under ``root`` (searched recursively), in time order.

    Args:
        root: folder, e.g. ``pysteps-data/radar/fmi/20160928`` or ``pysteps-data/radar/fmi``.
        source: ``"fmi"`` (``YYYYMMDDHHMM_fmi.radar.composite.*.pgm[.gz]``) or ``"knmi"``
            (``RAD_NL25_RAP_5min_YYYYMMDDHHMM.h5``).

    Returns:
        Paths sorted by the timestamp in their names.

    Raises:
        ValueError: unknown ``source``, or two files with the same timestamp.
        FileNotFoundError: ``root`` is not a folder, or it holds no file matching the pattern.
    """
    if source not in _PATTERNS:
        raise ValueError(f"source={source!r}: expected one of {list(SOURCES)}")
    root = Path(root)
    regex, glob, human = _PATTERNS[source]
    if not root.is_dir():
        raise FileNotFoundError(f"radar folder not found: {root} (expected a folder of {source} files {human})")
    found = []
    for p in root.rglob(glob):
        m = regex.match(p.name)
        if m and p.is_file():
            found.append((_dt.datetime.strptime(m.group(1), "%Y%m%d%H%M"), p))
    if not found:
        raise FileNotFoundError(f"no {source} radar files in {root}: expected names like {human}")
    found.sort()
    for (t0, p0), (t1, p1) in zip(found, found[1:]):
        if t0 == t1:
            raise ValueError(f"two {source} files for {t0:%Y-%m-%d %H:%M}: {p0} and {p1}")
    return [p for _, p in found]


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
                        b: float | None = None) -> tuple[np.ndarray, list[_dt.datetime], dict[str, Any]]:
    """Read a whole event as rain rate: every file of ``source`` under ``root``, in time order.

    FMI reflectivity is converted to rain rate with ``Z = a R^b`` (default the pair pysteps'
    FMI importer states, ``a=223, b=1.53``), and the composite's "no echo" code (-32 dBZ) becomes
    exactly 0 mm/h, as ``pysteps.utils.conversion.to_rainrate`` does with the importer's
    metadata; KNMI accumulations are already rates (see :func:`read_knmi_hdf5`).

    Args:
        root: folder holding the files (searched recursively).
        source: ``"fmi"`` or ``"knmi"``.
        downsample: ``k``: average ``k x k`` pixel blocks (NaN ignored, all-NaN block -> NaN;
            incomplete blocks at the bottom/right edge are dropped). 1 keeps full resolution.
        a: Z-R coefficient for reflectivity sources (None: the source's pysteps default).
        b: Z-R exponent (None: the source's pysteps default).

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
    za, zb = _SOURCE_ZR[source]
    za, zb = (za if a is None else float(a)), (zb if b is None else float(b))
    frames, stamps, first_meta = [], [], None
    for p in files:
        if source == "fmi":
            dbz, m = read_fmi_pgm(p)
            rain = dbz_to_rainrate(dbz, za, zb)
            rain[dbz <= _FMI_NO_ECHO_DBZ] = 0.0  # the lowest code is "no echo": 0 mm/h, as pysteps
        else:
            rain, m = read_knmi_hdf5(p)
        if first_meta is None:
            first_meta, shape0 = m, rain.shape
        elif rain.shape != shape0:
            raise ValueError(f"{p}: frame size {rain.shape} differs from {shape0} in {files[0]}")
        frames.append(_block_nanmean(rain, downsample))
        stamps.append(m["timestamp"])
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
                            "downsample": int(downsample), "zr_a": za, "zr_b": zb}
    if "pixel_size_m" in first_meta:
        meta["pixel_size_m"] = tuple(s * downsample for s in first_meta["pixel_size_m"])
    if "projection" in first_meta:
        meta["projection"] = first_meta["projection"]
    if source == "knmi":
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
        _check_zr(a, b)
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


# ----------------------------------------------------------------------------------------------
# Baselines


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
