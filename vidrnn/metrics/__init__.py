"""Metrics torchmetrics lacks: frame-forecast errors (Moving MNIST conventions) and nowcasting skill scores."""

from vidrnn.metrics.forecasting import (ForecastMetrics, frame_mae, frame_mse, frame_psnr, frame_ssim,
                                        sequence_cross_entropy)
from vidrnn.metrics.nowcasting import NowcastingScores, contingency, csi, far, hss, pod

__all__ = ["ForecastMetrics", "frame_mse", "frame_mae", "frame_psnr", "frame_ssim", "sequence_cross_entropy",
           "NowcastingScores", "contingency", "csi", "pod", "far", "hss"]
