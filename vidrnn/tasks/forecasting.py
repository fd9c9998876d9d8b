"""Frame forecasting as a LightningModule: video prediction (Moving MNIST) and nowcasting (radar).

* Loss (``loss``): ``"bce"`` -- per-pixel binary cross-entropy on [0, 1] intensities, the loss
  of Shi et al. 2015 (logged also as the paper's per-sequence cross-entropy); ``"mse"`` -- mean
  squared error of ``sigmoid(logits)``; ``"mse+mae"`` -- their sum (Shi et al. 2017 train with
  the sum of (balanced) MSE and MAE).
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

import lightning as L
import torch
import torch.nn.functional as F

from vidrnn.metrics.forecasting import ForecastMetrics
from vidrnn.registry import create_model
from vidrnn.tasks.optim import configure_optimizer

__all__ = ["ForecastingTask"]

LOSSES = ("bce", "mse", "mse+mae")


class ForecastingTask(L.LightningModule):
    """Train/evaluate a registered encoder–forecaster.

    Args:
        model_name: registry name of a forecasting model (``vidrnn models`` lists them).
        model_kwargs: builder arguments.
        optimizer: as :class:`vidrnn.tasks.classification.ClassificationTask`.
        data: resolved data settings (``num_input``, ``num_output``, ``kind`` and, for radar,
            the Z-R constants); saved for prediction.
        config: the resolved run config (saved for reference).
        loss: one of ``"bce"``, ``"mse"``, ``"mse+mae"``.
        scheduled_sampling: ``{start, end, epochs}`` or None.
        ssim: compute SSIM during evaluation (costs time on large frames).

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
        self.num_output = int(data.get("num_output", 10))
        self.model = create_model(model_name, **{"num_output": self.num_output, **(model_kwargs or {})})
        self.optim_cfg = {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0, "momentum": 0.9, "scheduler": "cosine",
                          "warmup_epochs": 0, **(optimizer or {})}
        self.is_radar = data.get("kind") == "radar"
        self.val_metrics = ForecastMetrics(ssim=ssim, num_frames=self.num_output)
        self.test_metrics = ForecastMetrics(ssim=ssim, num_frames=self.num_output)
        if self.is_radar:
            from vidrnn.metrics.nowcasting import NowcastingScores

            thr = tuple(data.get("thresholds") or (0.5, 2, 5, 10, 30))
            self.val_scores, self.test_scores = NowcastingScores(thr), NowcastingScores(thr)
            self.test_persistence = NowcastingScores(thr)
            from vidrnn.models.extrapolation import pysteps_available

            # without pysteps the report says the baseline was not computed
            want = (data.get("radar") or {}).get("pysteps_baseline", True)
            self.test_extrapolation = NowcastingScores(thr) if want and pysteps_available() else None
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

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.hparams.loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, target)
        pred = torch.sigmoid(logits)
        loss = F.mse_loss(pred, target)
        if self.hparams.loss == "mse+mae":
            loss = loss + F.l1_loss(pred, target)
        return loss

    # ------------------------------------------------------------------ steps
    def training_step(self, batch, batch_idx):
        x, y = batch["input"], batch["target"]
        tf = self.teacher_forcing()
        logits = self.model(x, y.shape[1], targets=y if tf > 0 else None, teacher_forcing=tf)
        loss = self._loss(logits, y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(x))
        if tf > 0:
            self.log("train/teacher_forcing", tf, batch_size=len(x))
        return loss

    def _eval_step(self, batch, metrics, scores, stage: str):
        x, y = batch["input"], batch["target"]
        logits = self.model(x, y.shape[1])
        loss = self._loss(logits, y)
        pred = torch.sigmoid(logits.float())
        metrics.update(pred, y)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", batch_size=len(x), sync_dist=True)
        if scores is not None:
            from vidrnn.metrics.rainrate import from_unit

            d = self.hparams.data
            scores.update(from_unit(pred, d.get("zr_a", 200.0), d.get("zr_b", 1.6)), batch["target_rain"])
            if stage == "test":
                from vidrnn.models.extrapolation import persistence

                self.test_persistence.update(persistence(batch["input_rain"], y.shape[1]), batch["target_rain"])
                if self.test_extrapolation is not None:
                    from vidrnn.models.extrapolation import pysteps_extrapolation

                    ext = pysteps_extrapolation(batch["input_rain"].cpu(), y.shape[1])
                    self.test_extrapolation.update(ext, batch["target_rain"].cpu())

    def _eval_end(self, metrics, scores, stage: str):
        res = metrics.compute()
        metrics.reset()
        scalars = {f"{stage}/{k}": v for k, v in res.items() if v.dim() == 0}
        out = {k: v.tolist() for k, v in res.items()}
        if scores is not None:
            sc = scores.compute()
            scores.reset()
            for i, thr in enumerate(scores.thresholds):
                scalars[f"{stage}/csi@{thr:g}"] = torch.nanmean(sc["csi"][i])
            out["nowcasting"] = {k: v.tolist() for k, v in sc.items()}
            out["thresholds"] = list(scores.thresholds)
            if stage == "test":
                ps = self.test_persistence.compute()
                self.test_persistence.reset()
                out["persistence"] = {k: v.tolist() for k, v in ps.items()}
                if self.test_extrapolation is not None:
                    ex = self.test_extrapolation.compute()
                    self.test_extrapolation.reset()
                    out["pysteps_extrapolation"] = {k: v.tolist() for k, v in ex.items()}
        self.log_dict(scalars, prog_bar=stage == "val")
        self.last_eval[stage] = out

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics, getattr(self, "val_scores", None), "val")

    def on_validation_epoch_end(self):
        self._eval_end(self.val_metrics, getattr(self, "val_scores", None), "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metrics, getattr(self, "test_scores", None), "test")

    def on_test_epoch_end(self):
        self._eval_end(self.test_metrics, getattr(self, "test_scores", None), "test")

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
