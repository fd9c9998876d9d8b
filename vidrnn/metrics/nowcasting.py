"""Categorical verification scores for precipitation nowcasts: CSI, POD, FAR, HSS.

A forecast is verified at a rain-rate threshold through the 2x2 contingency table of "event"
(rain rate >= threshold) against "no event" (I. T. Jolliffe and D. B. Stephenson, eds.,
"Forecast Verification: A Practitioner's Guide in Atmospheric Science", 2nd ed., Wiley 2012,
ch. 3; D. S. Wilks, "Statistical Methods in the Atmospheric Sciences", 4th ed., 2019, sec. 9.2):

====================  ==================  =====================
                      event observed      no event observed
====================  ==================  =====================
event forecast        a  hits             b  false alarms
no event forecast     c  misses           d  correct negatives
====================  ==================  =====================

- CSI (critical success index, threat score) ``= a / (a + b + c)``
- POD (probability of detection, hit rate) ``= a / (a + c)``
- FAR (false alarm ratio) ``= b / (a + b)``
- HSS (Heidke skill score) ``= 2 (a d - b c) / ((a + c)(c + d) + (a + b)(b + d))``

These are the scores of X. Shi et al., "Convolutional LSTM Network: A Machine Learning Approach
for Precipitation Nowcasting", NeurIPS 2015, arXiv:1506.04214 (CSI/POD/FAR at 0.5 mm/h), and
X. Shi et al., "Deep Learning for Precipitation Nowcasting: A Benchmark and A New Model",
NeurIPS 2017, arXiv:1706.03458 (CSI and HSS at 0.5, 2, 5, 10, 30 mm/h per lead time).

Deviations: pixels where the forecast or the observation is NaN (missing data, outside the radar
range) are left out of the table; the event is ``>= threshold`` by default (HKO-7's convention),
``comparison=">"`` gives pysteps' ``det_cat_fct`` convention. Undefined scores (0/0) are NaN.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torchmetrics import Metric

__all__ = ["contingency", "csi", "pod", "far", "hss", "NowcastingScores", "scores_table", "DEFAULT_THRESHOLDS"]

DEFAULT_THRESHOLDS = (0.5, 2.0, 5.0, 10.0, 30.0)  # mm/h, HKO-7 (Shi et al. 2017)
_COUNTS = ("hits", "misses", "false_alarms", "correct_negatives")


def _check_comparison(comparison: str) -> None:
    if comparison not in (">=", ">"):
        raise ValueError(f"comparison={comparison!r}: expected '>=' or '>'")


def contingency(pred, target, threshold: float, *, comparison: str = ">=",
                dim: int | Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """The 2x2 contingency table of forecast against observed events.

    An event is rain rate ``>= threshold`` (``comparison=">="``, the default) or ``> threshold``
    (``comparison=">"``). Pixels where ``pred`` or ``target`` is NaN are missing and counted
    nowhere.

    Args:
        pred: forecast, tensor or array (any shape), e.g. mm/h.
        target: observation, same shape and units.
        threshold: event threshold in the same units.
        comparison: ``">="`` or ``">"``.
        dim: dimensions to sum over (None: all, giving scalars).

    Returns:
        ``{"hits", "misses", "false_alarms", "correct_negatives"}``: int64 tensors, the shape of
        ``pred`` without ``dim``.

    Raises:
        ValueError: shapes differ, or unknown ``comparison``.
    """
    _check_comparison(comparison)
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, found {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    valid = ~(torch.isnan(pred) | torch.isnan(target))
    if comparison == ">=":
        p, t = pred >= threshold, target >= threshold
    else:
        p, t = pred > threshold, target > threshold
    p, t = p & valid, t & valid
    kw = {} if dim is None else {"dim": dim}
    hits = (p & t).sum(**kw)
    false_alarms = (p & ~t).sum(**kw)
    misses = (~p & t).sum(**kw)
    correct_negatives = valid.sum(**kw) - hits - false_alarms - misses
    return {"hits": hits, "misses": misses, "false_alarms": false_alarms, "correct_negatives": correct_negatives}


def _abcd(counts: Mapping[str, torch.Tensor]):
    missing = [k for k in _COUNTS if k not in counts]
    if missing:
        raise ValueError(f"counts must have keys {list(_COUNTS)} (see contingency()), missing {missing}")
    return tuple(torch.as_tensor(counts[k]).double() for k in ("hits", "false_alarms", "misses", "correct_negatives"))


def csi(counts: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Critical success index ``a / (a + b + c)``; NaN where no event was forecast or observed.

    Args:
        counts: the dict of :func:`contingency` (or summed tables).

    Returns:
        float32 tensor, the shape of the counts.
    """
    a, b, c, _ = _abcd(counts)
    return (a / (a + b + c)).float()


def pod(counts: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Probability of detection ``a / (a + c)``; NaN where no event was observed.

    Args:
        counts: the dict of :func:`contingency`.

    Returns:
        float32 tensor, the shape of the counts.
    """
    a, _, c, _ = _abcd(counts)
    return (a / (a + c)).float()


def far(counts: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """False alarm ratio ``b / (a + b)``; NaN where no event was forecast.

    Args:
        counts: the dict of :func:`contingency`.

    Returns:
        float32 tensor, the shape of the counts.
    """
    a, b, _, _ = _abcd(counts)
    return (b / (a + b)).float()


def hss(counts: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Heidke skill score ``2 (a d - b c) / ((a + c)(c + d) + (a + b)(b + d))``.

    1 is a perfect forecast, 0 the skill of a random forecast with the same marginals, negative
    worse than that. The denominator is 0 only when every pixel falls in one cell (all events
    or all non-events, forecast and observed alike): NaN there.

    Args:
        counts: the dict of :func:`contingency`.

    Returns:
        float32 tensor, the shape of the counts.
    """
    a, b, c, d = _abcd(counts)
    return (2.0 * (a * d - b * c) / ((a + c) * (c + d) + (a + b) * (b + d))).float()


class NowcastingScores(Metric):
    """CSI, POD, FAR and HSS per threshold and per lead time, accumulated over batches.

    The contingency tables are summed over every batch (and over processes with
    ``dist_reduce_fx="sum"``) and the scores computed once at the end, so they are the scores of
    the whole evaluation set, not a mean of per-batch scores.

    Args:
        thresholds: event thresholds in mm/h (default 0.5, 2, 5, 10, 30 as HKO-7).
        comparison: ``">="`` (event is rain rate >= threshold) or ``">"``.
        lead_times: number of forecast frames T, if known: fixes the state shapes up front
            (recommended with distributed evaluation). None: taken from the first ``update``.
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Shape:
        update: ``pred`` and ``target`` ``(B, T, ...)`` rain rate in mm/h, NaN = missing.
        compute: ``{"csi", "pod", "far", "hss"}`` each ``(n_thresholds, T)``, and ``"mae"``
        ``(T,)``: the mean absolute error (mm/h) per lead time over the pixels where both are known.

    Raises:
        ValueError: empty thresholds, unknown comparison, mismatched shapes,
            or a T different from the earlier updates.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, comparison: str = ">=", *,
                 lead_times: int | None = None, **kwargs):
        super().__init__(**kwargs)
        _check_comparison(comparison)
        thresholds = tuple(float(t) for t in thresholds)
        if not thresholds:
            raise ValueError("thresholds must not be empty")
        self.thresholds, self.comparison = thresholds, comparison
        T = 0 if lead_times is None else int(lead_times)
        for name in _COUNTS:
            self.add_state(name, default=torch.zeros(len(thresholds), T, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("abs_error", default=torch.zeros(T, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("pixels", default=torch.zeros(T, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add the contingency tables of one batch (see the class docstring for shapes)."""
        pred, target = torch.as_tensor(pred), torch.as_tensor(target)
        if pred.shape != target.shape or pred.ndim < 2:
            raise ValueError(f"pred and target must be (B, T, ...) of the same shape, found {tuple(pred.shape)} "
                             f"and {tuple(target.shape)}")
        T = pred.shape[1]
        if self.hits.shape[1] == 0:
            for name in _COUNTS:
                setattr(self, name, torch.zeros(len(self.thresholds), T, dtype=torch.int64, device=self.hits.device))
            self.abs_error = torch.zeros(T, dtype=torch.float64, device=self.hits.device)
            self.pixels = torch.zeros(T, dtype=torch.int64, device=self.hits.device)
        elif self.hits.shape[1] != T:
            raise ValueError(f"pred has T={T} lead times, earlier updates had {self.hits.shape[1]}")
        dims = [0] + list(range(2, pred.ndim))
        for i, thr in enumerate(self.thresholds):
            table = contingency(pred, target, thr, comparison=self.comparison, dim=dims)  # each (T,)
            for name in _COUNTS:
                getattr(self, name)[i] += table[name].to(self.hits.device)
        known = torch.isfinite(pred) & torch.isfinite(target)
        err = torch.where(known, (pred.double() - target.double()).abs(), torch.zeros((), dtype=torch.float64,
                                                                                     device=pred.device))
        self.abs_error += err.sum(dim=dims).to(self.abs_error.device)
        self.pixels += known.sum(dim=dims).to(self.pixels.device)

    def compute(self) -> dict[str, torch.Tensor]:
        """Scores from the summed tables: each ``(n_thresholds, T)``, NaN where undefined; ``mae``
        ``(T,)`` in mm/h."""
        counts = {name: getattr(self, name) for name in _COUNTS}
        mae = (self.abs_error / self.pixels.clamp_min(1)).float().masked_fill(self.pixels == 0, float("nan"))
        return {"csi": csi(counts), "pod": pod(counts), "far": far(counts), "hss": hss(counts), "mae": mae}


def scores_table(result: Mapping[str, torch.Tensor], thresholds: Sequence[float], lead_minutes,
                 *, score: str = "csi", comparison: str = ">=") -> str:
    """A printable table of one score: one row per lead time, one column per threshold.

    Args:
        result: the dict of :meth:`NowcastingScores.compute`.
        thresholds: the thresholds (mm/h) of the metric, in its order.
        lead_minutes: the lead time of each forecast frame in minutes, or one number: the time
            step (frame ``k`` is then ``k * step`` minutes ahead, k = 1..T).
        score: which score (``"csi"``, ``"pod"``, ``"far"``, ``"hss"``).
        comparison: shown in the column headers.

    Returns:
        The table as text (NaN printed as ``nan``), ending without a newline.

    Raises:
        ValueError: unknown score, or sizes that do not match the result.
    """
    if score not in result:
        raise ValueError(f"score={score!r}: expected one of {list(result)}")
    values = torch.as_tensor(result[score]).double().cpu()
    if values.ndim != 2 or values.shape[0] != len(thresholds):
        raise ValueError(f"result[{score!r}] must be (n_thresholds={len(thresholds)}, T), found {tuple(values.shape)}")
    T = values.shape[1]
    if isinstance(lead_minutes, int | float):
        lead_minutes = [lead_minutes * (k + 1) for k in range(T)]
    lead_minutes = list(lead_minutes)
    if len(lead_minutes) != T:
        raise ValueError(f"lead_minutes has {len(lead_minutes)} entries, the result has T={T} lead times")
    headers = ["lead (min)"] + [f"{score.upper()}{comparison}{t:g}" for t in thresholds]
    widths = [max(len(h), 6) for h in headers]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    for k in range(T):
        cells = [f"{lead_minutes[k]:g}"] + [f"{float(values[i, k]):.3f}" for i in range(len(thresholds))]
        lines.append("  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    return "\n".join(lines)
