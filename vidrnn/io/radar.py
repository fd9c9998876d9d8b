"""Radar file readers: FMI gzip PGM reflectivity composites and KNMI HDF5 rain accumulations.

The readers follow the importers of pysteps (S. Pulkkinen et al., "Pysteps: an open-source
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
repository above). Whole events as rain-rate sequences: :func:`vidrnn.data.radar.load_radar_sequence`.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any

import numpy as np

from vidrnn.io.files import read_maybe_gzip

__all__ = ["read_fmi_pgm", "read_knmi_hdf5", "read_pysteps", "find_radar_files", "radar_file_time", "SOURCES",
           "SOURCE_ZR",
           "FMI_NO_ECHO_DBZ", "PYSTEPS_IMPORTERS"]

#: ``source -> (file-name regex with the timestamp as group 1, glob pattern, description, strptime format)``
_PATTERNS = {
    "fmi": (re.compile(r"^(\d{12})_fmi\..*\.pgm(\.gz)?$"), "*_fmi.*.pgm*",
            "YYYYMMDDHHMM_fmi.radar.composite.*.pgm[.gz]", "%Y%m%d%H%M"),
    "knmi": (re.compile(r"^RAD_NL\d*_.*?_(\d{12})\.(h5|hdf5)$"), "RAD_*.h5*",
             "RAD_NL25_RAP_5min_YYYYMMDDHHMM.h5", "%Y%m%d%H%M"),
    # read through pysteps' importers (read_pysteps): MeteoSwiss, BoM Rainfields3, ODIM HDF5 (RMI)
    "mch": (re.compile(r"^AQC(\d{9})[FV]_\d+\.\d+\.gif$"), "AQC*.gif", "AQCyyDOYHHMM[F|V]_00005.801.gif",
            "%y%j%H%M"),
    "bom": (re.compile(r"^\d+_(\d{8}_\d{6})\.prcp-c(10|scn)\.nc$"), "*.prcp-c*.nc",
            "<radar id>_YYYYMMDD_HHMMSS.prcp-c10.nc (or .prcp-cscn.nc)", "%Y%m%d_%H%M%S"),
    "rmi": (re.compile(r"^(\d{14})\.rad\..*\.hdf$"), "*.rad.*.hdf", "YYYYMMDDHHMMSS.rad.best.comp.rate.qpe.hdf",
            "%Y%m%d%H%M%S"),
}
SOURCES = tuple(_PATTERNS)
#: Z-R pairs pysteps' importers attach to each source (FMI: 223, 1.53; KNMI: Marshall-Palmer).
SOURCE_ZR = {"fmi": (223.0, 1.53), "knmi": (200.0, 1.6), "mch": (316.0, 1.5), "bom": (200.0, 1.6),
             "rmi": (200.0, 1.6)}
#: the sources read through pysteps' importers, with the importer and its arguments
PYSTEPS_IMPORTERS = {"mch": ("import_mch_gif", {"product": "AQC", "unit": "mm", "accutime": 5.0}),
                     "bom": ("import_bom_rf3", {}), "rmi": ("import_odim_hdf5", {"qty": "RATE"})}

_FMI_NODATA = 255
FMI_NO_ECHO_DBZ = -32.0  #: dBZ of code 0 ("no echo") in FMI composites
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
    try:
        f = h5py.File(path, "r")
    except OSError as e:  # not HDF5, truncated: h5py's message does not name the file
        raise ValueError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
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



def read_pysteps(path, source: str) -> tuple[np.ndarray, dict[str, Any]]:
    """One radar file of a format pysteps reads (MeteoSwiss GIF, BoM Rainfields3 netCDF, ODIM HDF5),
    through pysteps' importer and its ``to_rainrate`` conversion.

    Args:
        path: the file. source: ``"mch"``, ``"bom"`` or ``"rmi"`` (:data:`PYSTEPS_IMPORTERS`).

    Returns:
        ``(rain, meta)``: rain rate float32 ``(H, W)`` in mm/h with NaN where missing; ``meta``
        with ``timestamp`` (from the file name, naive UTC), ``pixel_size_m`` ``(x, y)``,
        ``accumulation_minutes`` and the importer's ``unit``.

    Raises:
        ValueError: unknown source, or a file pysteps cannot read (names the file and the
        reason). ImportError: pysteps (or netCDF4 for BoM) is not installed.
    """
    if source not in PYSTEPS_IMPORTERS:
        raise ValueError(f"source={source!r}: pysteps-read sources are {list(PYSTEPS_IMPORTERS)}")
    try:
        from pysteps.io import importers
        from pysteps.utils.conversion import to_rainrate
    except ImportError as e:
        raise ImportError(f"reading {source} radar files needs pysteps (pip install 'vidrnn[radar]'): {e}") from None
    name, kwargs = PYSTEPS_IMPORTERS[source]
    p = Path(path)
    try:
        precip, _, meta = getattr(importers, name)(str(p), **kwargs)
        rain, meta = to_rainrate(precip, meta)
    except ImportError:
        raise
    except Exception as e:  # noqa: BLE001 -- any failure of the importer is a file pysteps cannot read
        if type(e).__name__ == "MissingOptionalDependency":  # pysteps' own "pip install X" error
            raise ImportError(f"reading {source} radar files: {e}") from None
        raise ValueError(f"{p}: pysteps cannot read this {source} file ({e.__class__.__name__}: {e})") from None
    out = {"timestamp": radar_file_time(p, source), "unit": meta.get("unit"),
           "pixel_size_m": (float(meta["xpixelsize"]), float(meta["ypixelsize"])),
           "accumulation_minutes": float(meta.get("accutime") or 0)}
    return np.asarray(rain, dtype=np.float32), out


def radar_file_time(path, source: str) -> _dt.datetime:
    """The timestamp (naive UTC) in the name of a ``source`` radar file.

    Raises:
        ValueError: unknown source, or a name without the source's timestamp.
    """
    if source not in _PATTERNS:
        raise ValueError(f"source={source!r}: expected one of {list(SOURCES)}")
    regex, _, human, fmt = _PATTERNS[source]
    m = regex.match(Path(path).name)
    if m is None:
        raise ValueError(f"{path}: not a {source} file name (expected {human})")
    return _dt.datetime.strptime(m.group(1), fmt)


def find_radar_files(root, source: str) -> list[Path]:
    """The radar files of one source under ``root`` (searched recursively), in time order.

    Args:
        root: folder, e.g. ``pysteps-data/radar/fmi/20160928`` or ``pysteps-data/radar/fmi``.
        source: ``"fmi"`` (``YYYYMMDDHHMM_fmi.radar.composite.*.pgm[.gz]``), ``"knmi"``
            (``RAD_NL25_RAP_5min_YYYYMMDDHHMM.h5``), ``"mch"``, ``"bom"`` or ``"rmi"`` (see
            :data:`_PATTERNS`).

    Returns:
        Paths sorted by the timestamp in their names.

    Raises:
        ValueError: unknown ``source``, or two files with the same timestamp.
        FileNotFoundError: ``root`` is not a folder, or it holds no file matching the pattern.
    """
    if source not in _PATTERNS:
        raise ValueError(f"source={source!r}: expected one of {list(SOURCES)}")
    root = Path(root)
    regex, glob, human, fmt = _PATTERNS[source]
    if not root.is_dir():
        raise FileNotFoundError(f"radar folder not found: {root} (expected a folder of {source} files {human})")
    found = []
    for p in root.rglob(glob):
        m = regex.match(p.name)
        if m and p.is_file():
            found.append((_dt.datetime.strptime(m.group(1), fmt), p))
    if not found:
        raise FileNotFoundError(f"no {source} radar files in {root}: expected names like {human}")
    found.sort()
    for (t0, p0), (t1, p1) in zip(found, found[1:]):
        if t0 == t1:
            raise ValueError(f"two {source} files for {t0:%Y-%m-%d %H:%M}: {p0} and {p1}")
    return [p for _, p in found]
