"""Rain rate and reflectivity: the Z-R relation and the network's [0, 1] unit scale.

``Z = a R^b`` with Z in mm^6/m^3 and R in mm/h, ``dBZ = 10 log10 Z`` (default Marshall-Palmer,
a = 200, b = 1.6); the unit scale is HKO-7's ``clip((dBZ + 10) / 70, 0, 1)`` (Shi et al., "Deep
Learning for Precipitation Nowcasting: A Benchmark and A New Model", NeurIPS 2017,
arXiv:1706.03458; HKO-7 itself used ``Z = 58.53 R^1.56``). The nowcasting scores
(:mod:`vidrnn.metrics.nowcasting`) are computed on rain rates in mm/h.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["dbz_to_rainrate", "rainrate_to_dbz", "to_unit", "from_unit", "check_zr"]



def _as_float(x):
    """``x`` as a floating numpy array or torch tensor (integers become float32)."""
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.float()
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def check_zr(a: float, b: float) -> None:
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
    check_zr(a, b)
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
    check_zr(a, b)
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
