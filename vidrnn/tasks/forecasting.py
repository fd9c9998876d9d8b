"""Frame forecasting as a LightningModule: video prediction (Moving MNIST) and nowcasting (radar).

* Loss (``loss``): ``"bce"`` -- per-pixel binary cross-entropy on [0, 1] intensities, the loss
  of Shi et al. 2015 (logged also as the paper's per-sequence cross-entropy); ``"mse"`` -- mean
  squared error of ``sigmoid(logits)``; ``"mse+mae"`` -- their sum; ``"balanced"`` -- radar:
  Shi et al. 2017's B-MSE + B-MAE, each pixel's error weighted by its true rain rate
  (:func:`balanced_weights`: 1, 2, 5, 10, 30 from 0, 2, 5, 10, 30 mm/h; missing pixels 0), on the
  unit scale (dBZ-like: a transformed target). Deviation: each term is divided by the batch's
  sum of weights (the paper sums), so the loss scale does not grow with the crop size.
* Metrics: ``mse``, ``mae`` (per frame: summed over pixels, averaged over frames and
  sequences), ``ssim``, ``psnr``, ``cross_entropy`` (per sequence) via
  :class:`vidrnn.metrics.forecasting.ForecastMetrics`, logged as ``val/...``, ``test/...``; the
  per-lead-time values of the last evaluation are kept in ``last_eval``. For radar data
  (``data.kind == "radar"``) forecasts are also converted to rain rate (mm/h) and scored with
  CSI, POD, FAR, HSS per threshold and lead time (:class:`vidrnn.metrics.nowcasting.NowcastingScores`),
  next to the persistence baseline on the same windows.
* Scheduled sampling (Bengio et al. 2015, arXiv:1506.03099) for models whose forecaster reads
  the previous frame: ``scheduled_sampling: {start: 1.0, end: 0.0, epochs: N}`` -- the
  probability of feeding the true previous frame decays linearly over N epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrnn.metrics.forecasting import ForecastMetrics
from vidrnn.metrics.nowcasting import DEFAULT_THRESHOLDS, NowcastingScores
from vidrnn.metrics.rainrate import from_unit
from vidrnn.models.extrapolation import persistence, pysteps_available, pysteps_extrapolation, pysteps_sprog
from vidrnn.tasks.build import build_forecaster
from vidrnn.tasks.optim import configure_optimizer

__all__ = ["ForecastingTask", "ForecastingSettings", "ScheduledSampling", "NowcastEvaluation", "forecast_report",
           "balanced_weights"]

LOSSES = ("bce", "mse", "mse+mae", "balanced")
#: Shi et al. 2017's balanced-loss weights: rain rate (mm/h) from each threshold on weighs this much
BALANCE_THRESHOLDS, BALANCE_WEIGHTS = (2.0, 5.0, 10.0, 30.0), (1.0, 2.0, 5.0, 10.0, 30.0)


def balanced_weights(target_rain: torch.Tensor) -> torch.Tensor:
    """Per-pixel weights of the B-MSE/B-MAE loss (Shi et al. 2017, HKO-7): 1 below 2 mm/h, 2 from
    2, 5 from 5, 10 from 10 and 30 from 30 mm/h, so the rare heavy rain is not drowned by the dry
    pixels; 0 where the truth is missing (NaN)."""
    k = torch.bucketize(torch.nan_to_num(target_rain, nan=0.0), torch.tensor(BALANCE_THRESHOLDS,
                                                                             device=target_rain.device), right=True)
    w = torch.tensor(BALANCE_WEIGHTS, device=target_rain.device)[k]
    return w.masked_fill(torch.isnan(target_rain), 0.0)


@dataclass
class ScheduledSampling:
    """``forecasting.scheduled_sampling``: the probability of feeding the true previous frame
    goes linearly from ``start`` to ``end`` over ``epochs`` epochs (Bengio et al. 2015)."""

    start: float = 1.0
    end: float = 0.0
    epochs: int = 10


@dataclass
class ForecastingSettings:
    """The ``forecasting:`` section of a config.

    Attributes:
        loss: ``bce`` (per-pixel cross-entropy, Shi et al. 2015), ``mse``, ``mse+mae`` or ``balanced`` (radar).
        scheduled_sampling: for forecasters that read the previous frame
            (``model.forecaster_input: previous_frame``); null = off.
        ssim: compute SSIM during evaluation (costs time on large frames).
    """

    loss: Literal["bce", "mse", "mse+mae", "balanced"] = "bce"
    scheduled_sampling: ScheduledSampling | None = None
    ssim: bool = True


class NowcastEvaluation(nn.Module):
    """Radar evaluation, written once for ``vidrnn test`` and ``vidrnn predict``: CSI, POD, FAR,
    HSS per rain-rate threshold and lead time and MAE (mm/h) per lead time, of the model's
    forecasts beside Eulerian persistence, pysteps' Lagrangian extrapolation and pysteps'
    S-PROG on the same windows.

    Args:
        thresholds: event thresholds in mm/h.
        zr_a, zr_b: the Z-R pair of the network's unit scale (to turn forecasts into mm/h).
        baselines: also score persistence and (when pysteps and OpenCV import, and
            ``extrapolation``/``sprog``) the pysteps baselines.
        extrapolation: score pysteps extrapolation (Lucas-Kanade + semi-Lagrangian; ~0.1 s per window).
        sprog: score pysteps S-PROG (cascade of AR(2) scales; slower).

    Shape:
        update: forecasts ``(B, T_out, 1, H, W)`` on the unit scale [0, 1]; ``input_rain``
        ``(B, T_in, 1, H, W)`` and ``target_rain`` ``(B, T_out, 1, H, W)`` in mm/h (NaN = missing).
    """

    def __init__(self, thresholds: Sequence[float], *, zr_a: float = 200.0, zr_b: float = 1.6,
                 baselines: bool = True, extrapolation: bool = True, sprog: bool = False):
        super().__init__()
        self.thresholds = tuple(float(t) for t in thresholds)
        self.zr_a, self.zr_b = float(zr_a), float(zr_b)
        self.model_scores = NowcastingScores(self.thresholds)
        self.persistence = NowcastingScores(self.thresholds) if baselines else None
        have = baselines and pysteps_available()
        self.extrapolation = NowcastingScores(self.thresholds) if have and extrapolation else None
        self.sprog = NowcastingScores(self.thresholds) if have and sprog else None
        self.extrapolation_wanted = baselines and extrapolation

    def update(self, forecast_unit: torch.Tensor, input_rain: torch.Tensor, target_rain: torch.Tensor) -> None:
        target = target_rain.to(forecast_unit.device)
        self.model_scores.update(from_unit(forecast_unit.float(), self.zr_a, self.zr_b), target)
        T = target.shape[1]
        if self.persistence is not None:
            self.persistence.update(persistence(input_rain.to(target.device), T), target)
        if self.extrapolation is not None:
            self.extrapolation.update(pysteps_extrapolation(input_rain.cpu(), T), target_rain.cpu())
        if self.sprog is not None:
            self.sprog.update(pysteps_sprog(input_rain.cpu(), T), target_rain.cpu())

    def compute(self) -> dict:
        """``{"thresholds", "nowcasting", "persistence", "pysteps_extrapolation", "pysteps_sprog"}``
        (each score ``(n_thresholds, T)`` as lists, ``mae`` ``(T,)``; baselines only when
        scored); resets the state."""
        out = {"thresholds": list(self.thresholds)}
        for key, metric in (("nowcasting", self.model_scores), ("persistence", self.persistence),
                            ("pysteps_extrapolation", self.extrapolation), ("pysteps_sprog", self.sprog)):
            if metric is not None:
                out[key] = {k: v.tolist() for k, v in metric.compute().items()}
                metric.reset()
        return out


class ForecastingTask(L.LightningModule):
    """Train/evaluate a registered encoder–forecaster.

    Args:
        model_name: registry name of a forecasting model (``vidrnn models`` lists them).
        model_kwargs: builder arguments (``num_output`` comes from ``data``).
        optimizer: the ``optimizer`` section (:class:`~vidrnn.tasks.optim.OptimizerSettings`).
        data: resolved data settings (``num_input``, ``num_output``, ``kind`` and, for radar,
            the Z-R constants); saved for prediction.
        config: the resolved run config (saved for reference).
        loss, scheduled_sampling, ssim: the ``forecasting`` section (:class:`ForecastingSettings`).

    Raises:
        ValueError: unknown loss or model.
    """

    def __init__(self, model_name: str, model_kwargs: dict | None = None, optimizer: dict | None = None,
                 data: dict | None = None, config: dict | None = None, loss: str = "bce",
                 scheduled_sampling: dict | None = None, ssim: bool = True):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r}: expected one of {LOSSES}")
        self.save_hyperparameters()
        data = data or {}
        self.model = build_forecaster(model_name, model_kwargs, data.get("num_output"))
        self.num_output = int(self.model.num_output)
        self.optim_cfg = dict(optimizer or {})
        self.is_radar = data.get("kind") == "radar"
        self.val_metrics = ForecastMetrics(ssim=ssim, num_frames=self.num_output)
        self.test_metrics = ForecastMetrics(ssim=ssim, num_frames=self.num_output)
        if self.is_radar:
            thr = tuple(data.get("thresholds") or DEFAULT_THRESHOLDS)
            zr = dict(zr_a=data.get("zr_a", 200.0), zr_b=data.get("zr_b", 1.6))
            want_extrapolation = (data.get("radar") or {}).get("pysteps_baseline", True)
            want_sprog = bool((data.get("radar") or {}).get("sprog", False))
            self.val_scores = NowcastEvaluation(thr, baselines=False, **zr)
            self.test_scores = NowcastEvaluation(thr, extrapolation=want_extrapolation, sprog=want_sprog, **zr)
        else:
            self.val_scores = self.test_scores = None
        self.last_eval: dict = {}

    # ------------------------------------------------------------------ helpers
    def teacher_forcing(self) -> float:
        """Probability of feeding the true previous frame at the current epoch (0 when off)."""
        ss = self.hparams.scheduled_sampling
        if not ss or not self.training or self.model.forecaster_input == "none":
            return 0.0
        start, end, epochs = float(ss.get("start", 1.0)), float(ss.get("end", 0.0)), max(1, int(ss.get("epochs", 10)))
        frac = min(1.0, self.current_epoch / epochs)
        return start + (end - start) * frac

    def forward(self, x: torch.Tensor, num_output: int | None = None) -> torch.Tensor:
        """Forecast intensities in [0, 1], ``(B, T_out, C, H, W)`` for ``x (B, T_in, C, H, W)``."""
        return torch.sigmoid(self.model(x, num_output or self.num_output))

    def _loss(self, logits: torch.Tensor, target: torch.Tensor, target_rain: torch.Tensor | None = None
              ) -> torch.Tensor:
        logits = logits.float()
        if self.hparams.loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, target)
        pred = torch.sigmoid(logits)
        if self.hparams.loss == "balanced":
            if target_rain is None:
                raise ValueError("forecasting.loss=balanced weights pixels by their rain rate: radar data only")
            w = balanced_weights(target_rain.float())
            err = pred - target
            return (w * err.square()).sum() / w.sum().clamp_min(1) + (w * err.abs()).sum() / w.sum().clamp_min(1)
        loss = F.mse_loss(pred, target)
        if self.hparams.loss == "mse+mae":
            loss = loss + F.l1_loss(pred, target)
        return loss

    # ------------------------------------------------------------------ steps
    def training_step(self, batch, batch_idx):
        x, y = batch["input"], batch["target"]
        tf = self.teacher_forcing()
        logits = self.model(x, y.shape[1], targets=y if tf > 0 else None, teacher_forcing=tf)
        loss = self._loss(logits, y, batch.get("target_rain"))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(x))
        if tf > 0:
            self.log("train/teacher_forcing", tf, batch_size=len(x))
        return loss

    def _eval_step(self, batch, metrics, scores, stage: str):
        x, y = batch["input"], batch["target"]
        logits = self.model(x, y.shape[1])
        loss = self._loss(logits, y, batch.get("target_rain"))
        pred = torch.sigmoid(logits.float())
        metrics.update(pred, y)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", batch_size=len(x), sync_dist=True)
        if scores is not None:
            scores.update(pred, batch["input_rain"], batch["target_rain"])

    def _eval_end(self, metrics, scores, stage: str):
        res = metrics.compute()
        metrics.reset()
        scalars = {f"{stage}/{k}": v for k, v in res.items() if v.dim() == 0}
        out = {k: v.tolist() for k, v in res.items()}
        if scores is not None:
            out.update(scores.compute())
            for i, thr in enumerate(out["thresholds"]):
                scalars[f"{stage}/csi@{thr:g}"] = torch.nanmean(torch.tensor(out["nowcasting"]["csi"][i]))
        self.log_dict(scalars, prog_bar=stage == "val")
        self.last_eval[stage] = out

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics, self.val_scores, "val")

    def on_validation_epoch_end(self):
        self._eval_end(self.val_metrics, self.val_scores, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metrics, self.test_scores, "test")

    def on_test_epoch_end(self):
        self._eval_end(self.test_metrics, self.test_scores, "test")

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        return configure_optimizer(self.parameters(), self.optim_cfg, self.trainer)


def forecast_report(result: dict, settings: dict | None = None) -> str:
    """A printable per-lead-time table of one evaluation (``ForecastingTask.last_eval[stage]``).

    Rows are lead times (frames; minutes for radar at ``settings["timestep_minutes"]``, default
    5); columns MSE, MAE (per frame, summed over pixels), SSIM, PSNR, and for radar the CSI at
    each rain-rate threshold for the model and for persistence.
    """
    settings = settings or {}
    radar = "nowcasting" in result
    step = float(settings.get("timestep_minutes", 5)) if radar else 1.0
    cols = [k for k in ("mse", "mae", "ssim", "psnr") if f"{k}_per_frame" in result]
    T = len(result["mse_per_frame"])
    head = ["lead (min)" if radar else "frame"] + cols
    thr = result.get("thresholds") or []
    baselines = [(k, short) for k, short in (("nowcasting", "model"), ("persistence", "pers"),
                                              ("pysteps_extrapolation", "pysteps")) if k in result]
    if radar:
        cols = []  # pixel-summed errors of whole radar frames say little; CSI is the score here
        head = head[:1] + [f"CSI>={t:g} " + "/".join(short for _, short in baselines) for t in thr]
    rows = []
    for t in range(T):
        row = [f"{(t + 1) * step:g}"] + [f"{result[f'{k}_per_frame'][t]:.4g}" for k in cols]
        if radar:
            row += ["/".join(f"{result[k]['csi'][i][t]:.3f}" for k, _ in baselines) for i in range(len(thr))]
        rows.append(row)
    widths = [max(len(h), *(len(r[j]) for r in rows)) if rows else len(h) for j, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    if radar:
        lines.append("CSI: hits / (hits + misses + false alarms), event = rain rate >= threshold (mm/h), missing "
                     "pixels skipped; pers = persistence (last input frame); pysteps = Lucas-Kanade + semi-Lagrangian "
                     "extrapolation" + ("" if "pysteps_extrapolation" in result else " (not computed: needs pysteps + OpenCV)"))
    return "\n".join(lines)
