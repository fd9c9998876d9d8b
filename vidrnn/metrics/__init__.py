"""Metrics torchmetrics lacks: frame-forecast errors (Moving MNIST conventions), nowcasting skill scores,
multi-label mAP over the classes that occur."""

from vidrnn.metrics.forecasting import (ForecastMetrics, frame_mae, frame_mse, frame_psnr, frame_ssim,
                                        sequence_cross_entropy)
from vidrnn.metrics.multilabel import MeanAveragePrecision
from vidrnn.metrics.nowcasting import NowcastingScores, contingency, csi, far, hss, pod

__all__ = ["ForecastMetrics", "frame_mse", "frame_mae", "frame_psnr", "frame_ssim", "sequence_cross_entropy",
           "MeanAveragePrecision", "NowcastingScores", "contingency", "csi", "pod", "far", "hss"]
