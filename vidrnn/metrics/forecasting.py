"""Frame-prediction metrics for video forecasting (Moving MNIST conventions).

Sources:
    * N. Srivastava, E. Mansimov, R. Salakhutdinov, "Unsupervised Learning of Video
      Representations using LSTMs", ICML 2015, arXiv:1502.04681 -- Moving MNIST.
    * X. Shi, Z. Chen, H. Wang, D.-Y. Yeung, W.-K. Wong, W.-C. Woo, "Convolutional LSTM
      Network: A Machine Learning Approach for Precipitation Nowcasting", NeurIPS 2015,
      arXiv:1506.04214 -- the per-sequence cross-entropy of its Table 1.
    * Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image Quality Assessment: From
      Error Visibility to Structural Similarity", IEEE Transactions on Image Processing 13(4),
      2004 -- SSIM.
    * C. Tan et al., "OpenSTL: A Comprehensive Benchmark of Spatio-Temporal Predictive
      Learning", NeurIPS 2023 Datasets and Benchmarks, arXiv:2306.11249 -- the MSE/MAE tables
      these conventions reproduce (e.g. ConvLSTM MSE 29.80 on Moving MNIST).

Conventions (as in the Moving MNIST literature). ``pred`` and ``target`` are ``(B, T, C, H,
W)`` intensities in [0, 1] (data range 1); "per frame" means one ``(C, H, W)`` image of one
sequence at one lead time:

    * **MSE** and **MAE**: the squared / absolute error *summed* over the ``C*H*W`` pixels of
      a frame (not averaged), then averaged over frames and sequences. A constant error of 0.1
      on a 64x64 frame is an MSE of 0.01 * 4096 = 40.96.
    * **PSNR**: per frame, ``10 log10(1 / mse_pixel)`` with ``mse_pixel`` the error *averaged*
      over the frame's pixels, then averaged over frames and sequences. ``mse_pixel`` is
      clamped at 1e-10, so a perfect frame scores 100 dB instead of making the mean infinite.
    * **SSIM**: per frame with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data
      range 1, averaged over the window positions that lie fully inside the frame ("valid"
      filtering, as Wang et al.'s reference ``ssim_index.m`` and
      ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
      use_sample_covariance=False)``) and over channels, then averaged over frames and
      sequences. This is our own implementation: torchmetrics'
      ``structural_similarity_index_measure`` reflect-pads the frame and also averages the
      windows that overlap the padding, so it differs from the reference (by about 0.01 on
      noisy 32x32 frames).
    * **Cross-entropy** (Shi et al.): per sequence, the binary cross-entropy
      ``-[t log p + (1 - t) log(1 - p)]`` summed over all predicted frames and pixels, with
      ``p`` clamped to ``[eps, 1 - eps]``; averaged over sequences. The inputs are
      probabilities, not logits.

The ConvLSTM paper used its own Moving MNIST variant (see ``PAPERS.md``), so its
cross-entropies are not comparable with the MSE tables of the standard ``mnist_test_seq.npy``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric

__all__ = ["frame_mse", "frame_mae", "frame_psnr", "frame_ssim", "sequence_cross_entropy", "ForecastMetrics"]

_PSNR_MIN_MSE = 1e-10  # PSNR cap of 100 dB for perfect frames
_SSIM_KERNEL, _SSIM_SIGMA, _SSIM_K1, _SSIM_K2 = 11, 1.5, 0.01, 0.03


def _check_pair(pred: torch.Tensor, target: torch.Tensor, name: str = "pred") -> tuple[int, int, int, int, int]:
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise ValueError(f"{name}, target: expected torch tensors, "
                         f"found {type(pred).__name__}, {type(target).__name__}")
    if pred.ndim != 5 or pred.shape != target.shape:
        raise ValueError(f"{name}, target: expected equal shapes (B, T, C, H, W), "
                         f"found {tuple(pred.shape)} and {tuple(target.shape)}")
    return tuple(pred.shape)


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "none":
        return values
    raise ValueError(f"reduction={reduction!r}: expected 'mean' or 'none'")


def frame_mse(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per-frame squared error summed over pixels, averaged over frames and sequences.

    Args:
        pred: predicted frames in [0, 1].
        target: true frames in [0, 1].
        reduction: ``"mean"`` (scalar) or ``"none"`` (per sequence and lead time).

    Returns:
        Scalar, or ``(B, T)`` for ``reduction="none"``.

    Shape:
        - pred, target: ``(B, T, C, H, W)``.
        - output: ``()`` or ``(B, T)``, in squared intensity x pixels.

    Raises:
        ValueError: shapes differ or are not 5-D, or an unknown ``reduction``.
    """
    _check_pair(pred, target)
    values = (pred - target).square().flatten(2).sum(-1)  # (B, T)
    return _reduce(values, reduction)


def frame_mae(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per-frame absolute error summed over pixels, averaged over frames and sequences.

    Args:
        pred: predicted frames in [0, 1].
        target: true frames in [0, 1].
        reduction: ``"mean"`` (scalar) or ``"none"`` (per sequence and lead time).

    Returns:
        Scalar, or ``(B, T)`` for ``reduction="none"``.

    Shape:
        - pred, target: ``(B, T, C, H, W)``.
        - output: ``()`` or ``(B, T)``, in intensity x pixels.

    Raises:
        ValueError: shapes differ or are not 5-D, or an unknown ``reduction``.
    """
    _check_pair(pred, target)
    values = (pred - target).abs().flatten(2).sum(-1)  # (B, T)
    return _reduce(values, reduction)


def frame_psnr(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per-frame peak signal-to-noise ratio (data range 1), averaged over frames and sequences.

    ``PSNR = 10 log10(1 / mse_pixel)`` with ``mse_pixel`` the squared error averaged over the
    frame's ``C*H*W`` pixels and clamped at 1e-10 (at most 100 dB).

    Args:
        pred: predicted frames in [0, 1].
        target: true frames in [0, 1].
        reduction: ``"mean"`` (scalar) or ``"none"`` (per sequence and lead time).

    Returns:
        Scalar, or ``(B, T)`` for ``reduction="none"``, in dB.

    Shape:
        - pred, target: ``(B, T, C, H, W)``.
        - output: ``()`` or ``(B, T)``, dB.

    Raises:
        ValueError: shapes differ or are not 5-D, or an unknown ``reduction``.
    """
    _check_pair(pred, target)
    mse_pixel = (pred - target).square().flatten(2).mean(-1)  # (B, T)
    values = -10.0 * torch.log10(mse_pixel.clamp_min(_PSNR_MIN_MSE))
    return _reduce(values, reduction)


def _gaussian_window(device, dtype) -> torch.Tensor:
    x = torch.arange(_SSIM_KERNEL, device=device, dtype=torch.float64) - (_SSIM_KERNEL - 1) / 2
    g = torch.exp(-x.square() / (2 * _SSIM_SIGMA ** 2))
    g = g / g.sum()
    return g.to(dtype)  # (K,)


def frame_ssim(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per-frame structural similarity (Wang et al. 2004), averaged over frames and sequences.

    11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1; the SSIM map is
    computed at every window position fully inside the frame ("valid"), averaged over those
    positions and over channels. Matches ``skimage.metrics.structural_similarity(...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``. Computed
    in float64 (float32 on MPS, which lacks it) and returned in ``pred``'s dtype.

    Args:
        pred: predicted frames in [0, 1].
        target: true frames in [0, 1].
        reduction: ``"mean"`` (scalar) or ``"none"`` (per sequence and lead time).

    Returns:
        Scalar, or ``(B, T)`` for ``reduction="none"``; 1 for identical frames.

    Shape:
        - pred, target: ``(B, T, C, H, W)`` with H, W >= 11 pixels.
        - output: ``()`` or ``(B, T)``, unitless.

    Raises:
        ValueError: shapes differ or are not 5-D, frames smaller than 11x11 pixels, or an
            unknown ``reduction``.
    """
    B, T, C, H, W = _check_pair(pred, target)
    if H < _SSIM_KERNEL or W < _SSIM_KERNEL:
        raise ValueError(f"pred, target: SSIM needs frames of at least {_SSIM_KERNEL}x{_SSIM_KERNEL} pixels, "
                         f"found {H}x{W}")
    # float64 where the device has it: E[x^2] - E[x]^2 in float32 loses ~1e-4 of SSIM on flat regions.
    dtype = torch.float32 if pred.device.type == "mps" else torch.float64
    x = pred.to(dtype).reshape(B * T * C, 1, H, W)  # (N, 1, H, W), one image per channel of a frame
    y = target.to(dtype).reshape(B * T * C, 1, H, W)
    g = _gaussian_window(pred.device, dtype)

    def blur(z: torch.Tensor) -> torch.Tensor:  # separable Gaussian, valid region
        z = F.conv2d(z, g.view(1, 1, -1, 1))  # (N, 1, H - 10, W)
        return F.conv2d(z, g.view(1, 1, 1, -1))  # (N, 1, H - 10, W - 10)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = _SSIM_K1 ** 2, _SSIM_K2 ** 2  # data range 1
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    values = ssim_map.flatten(1).mean(-1).view(B, T, C).mean(-1)  # (B, T)
    values = values.to(pred.dtype if pred.is_floating_point() else torch.get_default_dtype())
    return _reduce(values, reduction)


def sequence_cross_entropy(prob: torch.Tensor, target: torch.Tensor, reduction: str = "mean", *,
                           eps: float = 1e-7) -> torch.Tensor:
    """Binary cross-entropy summed over all predicted frames and pixels of a sequence (Shi et al. 2015).

    ``CE = -sum_{t, c, h, w} [y log p + (1 - y) log(1 - p)]`` with ``p`` clamped to
    ``[eps, 1 - eps]``, then averaged over sequences for ``reduction="mean"``.

    Args:
        prob: predicted probabilities (intensities) in [0, 1], not logits.
        target: true intensities in [0, 1].
        reduction: ``"mean"`` (scalar) or ``"none"`` (per sequence).
        eps: clamping of ``prob`` away from 0 and 1.

    Returns:
        Scalar, or ``(B,)`` for ``reduction="none"``, in nats per sequence.

    Shape:
        - prob, target: ``(B, T, C, H, W)``.
        - output: ``()`` or ``(B,)``.

    Raises:
        ValueError: shapes differ or are not 5-D, ``eps`` not in (0, 0.5), or an unknown
            ``reduction``.
    """
    _check_pair(prob, target, "prob")
    if not 0 < eps < 0.5:
        raise ValueError(f"eps={eps!r}: expected 0 < eps < 0.5")
    p = prob.clamp(eps, 1 - eps)
    values = -(target * torch.log(p) + (1 - target) * torch.log1p(-p)).flatten(1).sum(-1)  # (B,)
    return _reduce(values, reduction)


class ForecastMetrics(Metric):
    """Moving MNIST frame-prediction metrics, overall and per lead time.

    Accumulates, per lead time, the sums of the per-frame MSE, MAE, PSNR and (optionally)
    SSIM of :func:`frame_mse`, :func:`frame_mae`, :func:`frame_psnr`, :func:`frame_ssim`, the
    number of frames, and the summed per-sequence cross-entropy of
    :func:`sequence_cross_entropy` with its number of sequences. All states are sums
    (``dist_reduce_fx="sum"``), so results are exact over any batching and across processes.

    Args:
        ssim: also compute SSIM (the most expensive of the metrics).
        num_frames: number of predicted frames T. ``None`` sizes the per-lead-time states on
            the first ``update``; give it under distributed evaluation so that every process
            holds states of the same shape even if it receives no batch.
        eps: probability clamping for the cross-entropy.
        **kwargs: passed to :class:`torchmetrics.Metric`.

    ``update(pred, target)``: ``pred`` are probabilities/intensities in [0, 1] (not logits).

    ``compute()`` returns a dict of tensors: ``"mse"``, ``"mae"``, ``"psnr"``, ``"ssim"``,
    ``"cross_entropy"`` (scalars, averaged over frames and sequences; cross-entropy over
    sequences) and ``"mse_per_frame"``, ``"mae_per_frame"``, ``"psnr_per_frame"``,
    ``"ssim_per_frame"`` (``(T,)``, averaged over sequences). The ``ssim`` keys are absent when
    ``ssim=False``.

    Shape:
        - pred, target: ``(B, T, C, H, W)``, the same T on every update.
        - ``*_per_frame``: ``(T,)``, index = lead time.

    Raises:
        ValueError: (update) shapes differ or are not 5-D, or T differs from ``num_frames`` /
            the first update's.
        RuntimeError: (compute) no sequence was seen.
    """

    is_differentiable = False
    higher_is_better = None  # mixed: lower MSE/MAE/CE, higher SSIM/PSNR
    full_state_update = False

    _FRAME_METRICS = ("mse", "mae", "psnr", "ssim")

    def __init__(self, ssim: bool = True, *, num_frames: int | None = None, eps: float = 1e-7, **kwargs):
        super().__init__(**kwargs)
        bad_frames = isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1
        if num_frames is not None and bad_frames:
            raise ValueError(f"num_frames={num_frames!r}: expected a positive integer or None")
        if not 0 < eps < 0.5:
            raise ValueError(f"eps={eps!r}: expected 0 < eps < 0.5")
        self.use_ssim, self.num_frames, self.eps = bool(ssim), num_frames, eps
        size = num_frames if num_frames is not None else 0  # 0: sized on the first update
        for name in self._frame_metric_names():
            self.add_state(f"{name}_sum", default=torch.zeros(size), dist_reduce_fx="sum")
        self.add_state("frame_count", default=torch.zeros(size), dist_reduce_fx="sum")
        self.add_state("cross_entropy_sum", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("sequence_count", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def _frame_metric_names(self) -> tuple[str, ...]:
        return self._FRAME_METRICS if self.use_ssim else self._FRAME_METRICS[:3]

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and true frames ``(B, T, C, H, W)`` in [0, 1]."""
        B, T = _check_pair(pred, target)[:2]
        expected = self.frame_count.numel()  # 0 before the first update without num_frames
        if expected and T != expected:
            raise ValueError(f"pred: expected {expected} predicted frames (T) as in "
                             f"{'num_frames' if self.num_frames else 'the first update'}, found {T}")
        if self.frame_count.numel() == 0:  # first update without num_frames: size the states
            for name in (*[f"{n}_sum" for n in self._frame_metric_names()], "frame_count"):
                setattr(self, name, torch.zeros(T, device=self.frame_count.device, dtype=self.frame_count.dtype))
        pred, target = pred.detach(), target.detach()
        per_frame = {"mse": frame_mse(pred, target, "none"), "mae": frame_mae(pred, target, "none"),
                     "psnr": frame_psnr(pred, target, "none")}
        if self.use_ssim:
            per_frame["ssim"] = frame_ssim(pred, target, "none")
        for name, values in per_frame.items():  # values (B, T)
            state = getattr(self, f"{name}_sum")
            setattr(self, f"{name}_sum", state + values.sum(0).to(state.dtype))
        self.frame_count = self.frame_count + B
        ce = sequence_cross_entropy(pred, target, "none", eps=self.eps)  # (B,)
        self.cross_entropy_sum = self.cross_entropy_sum + ce.sum().to(self.cross_entropy_sum.dtype)
        self.sequence_count = self.sequence_count + B

    def compute(self) -> dict[str, torch.Tensor]:
        """The metrics over everything seen since the last reset (see the class docstring)."""
        if float(self.sequence_count) == 0:
            raise RuntimeError("ForecastMetrics.compute(): no sequence seen; call update(pred, target) first")
        out: dict[str, torch.Tensor] = {}
        total = self.frame_count.sum()
        for name in self._frame_metric_names():
            sums = getattr(self, f"{name}_sum")  # (T,)
            out[name] = sums.sum() / total
            out[f"{name}_per_frame"] = sums / self.frame_count
        out["cross_entropy"] = self.cross_entropy_sum / self.sequence_count
        return out
