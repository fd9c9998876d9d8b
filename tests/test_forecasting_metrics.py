import math

import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from vidrnn.metrics.forecasting import (ForecastMetrics, frame_mae, frame_mse, frame_psnr, frame_ssim,
                                        sequence_cross_entropy)


def _pair(B=2, T=3, C=1, S=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(B, T, C, S, S, generator=g)
    pred = (target + 0.2 * torch.randn(B, T, C, S, S, generator=g)).clamp(0, 1)
    return pred, target


def test_mse_mae_of_constant_error_sum_over_pixels():
    target = torch.full((2, 3, 1, 64, 64), 0.5)
    pred = target + 0.1
    assert frame_mse(pred, target).item() == pytest.approx(40.96, rel=1e-5)  # 0.01 * 4096
    assert frame_mae(pred, target).item() == pytest.approx(409.6, rel=1e-5)
    per = frame_mse(pred, target, reduction="none")
    assert per.shape == (2, 3)
    torch.testing.assert_close(per, torch.full((2, 3), 40.96))


def test_mse_mae_per_frame_by_hand():
    pred = torch.zeros(2, 2, 1, 2, 2)
    target = torch.zeros(2, 2, 1, 2, 2)
    target[0, 0, 0, 0, 0] = 1.0  # sequence 0, frame 0: one pixel off by 1
    target[1, 1, 0, :, 1] = 0.5  # sequence 1, frame 1: two pixels off by 0.5
    torch.testing.assert_close(frame_mse(pred, target, "none"), torch.tensor([[1.0, 0.0], [0.0, 0.5]]))
    torch.testing.assert_close(frame_mae(pred, target, "none"), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert frame_mse(pred, target).item() == pytest.approx(1.5 / 4)
    assert frame_mae(pred, target).item() == pytest.approx(2.0 / 4)


def test_psnr_of_known_mse():
    target = torch.full((1, 3, 1, 8, 8), 0.25)
    pred = target.clone()
    pred[0, 0] += 0.1  # mse_pixel 0.01 -> 20 dB
    pred[0, 1] += 0.5  # mse_pixel 0.25 -> 10 log10(4) dB
    values = frame_psnr(pred, target, "none")
    assert values.shape == (1, 3)
    torch.testing.assert_close(values[0, :2], torch.tensor([20.0, 10 * math.log10(4)]))
    assert values[0, 2].item() == pytest.approx(100.0)  # perfect frame: capped, not infinite
    assert frame_psnr(pred, target).item() == pytest.approx((20 + 10 * math.log10(4) + 100) / 3, rel=1e-5)


def test_ssim_identical_constant_and_reference():
    pred, target = _pair(B=1, T=3, C=2, S=24)
    torch.testing.assert_close(frame_ssim(target, target, "none"), torch.ones(1, 3))
    values = frame_ssim(pred, target, "none")
    assert values.shape == (1, 3) and (values < 0.99).all()
    # Reference: scikit-image with Wang et al.'s settings (Gaussian 11x11, sigma 1.5, valid region).
    for t in range(3):
        ref = structural_similarity(pred[0, t].double().numpy(), target[0, t].double().numpy(), gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=0)
        assert values[0, t].item() == pytest.approx(ref, abs=1e-5)
    # Constant frames a, b: variances vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 0.2, 0.6, 0.01 ** 2
    ssim = frame_ssim(torch.full((1, 1, 1, 16, 16), a), torch.full((1, 1, 1, 16, 16), b))
    assert ssim.item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)
    with pytest.raises(ValueError, match="11x11"):
        frame_ssim(torch.zeros(1, 1, 1, 8, 8), torch.zeros(1, 1, 1, 8, 8))


def test_sequence_cross_entropy_by_hand():
    prob = torch.full((2, 2, 1, 4, 4), 0.8)
    target = torch.zeros(2, 2, 1, 4, 4)
    target[0, :, :, :2] = 1.0  # sequence 0: 16 ink pixels of 32
    target[1] = 1.0  # sequence 1: all 32 ink
    expected = torch.tensor([-(16 * math.log(0.8) + 16 * math.log(0.2)), -32 * math.log(0.8)])
    values = sequence_cross_entropy(prob, target, reduction="none")
    assert values.shape == (2,)
    torch.testing.assert_close(values, expected)
    assert sequence_cross_entropy(prob, target).item() == pytest.approx(expected.mean().item(), rel=1e-6)
    # Soft targets agree with torch's summed BCE per sequence.
    pred, soft = _pair()
    torch.testing.assert_close(sequence_cross_entropy(pred.clamp(0.01, 0.99), soft, "none"),
                               torch.stack([F.binary_cross_entropy(pred[i].clamp(0.01, 0.99), soft[i], reduction="sum")
                                            for i in range(2)]))
    # p = 0 on an ink pixel is clamped to eps, not infinite.
    one = sequence_cross_entropy(torch.zeros(1, 1, 1, 1, 1), torch.ones(1, 1, 1, 1, 1), eps=1e-6)
    assert one.item() == pytest.approx(-math.log(1e-6), rel=1e-4)


def test_input_validation():
    a = torch.zeros(1, 2, 1, 16, 16)
    with pytest.raises(ValueError, match="reduction"):
        frame_mse(a, a, reduction="sum")
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        frame_mae(a, a[:, :1])
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        frame_psnr(a[0], a[0])
    with pytest.raises(ValueError, match="eps"):
        sequence_cross_entropy(a, a, eps=0.0)


def test_forecast_metrics_two_updates_equal_one_shot():
    pred, target = _pair(B=5, T=4, S=16, seed=1)
    metric = ForecastMetrics()
    metric.update(pred[:2], target[:2])
    metric.update(pred[2:], target[2:])
    out = metric.compute()
    expected = {"mse": frame_mse(pred, target, "none"), "mae": frame_mae(pred, target, "none"),
                "psnr": frame_psnr(pred, target, "none"), "ssim": frame_ssim(pred, target, "none")}
    assert set(out) == {*expected, *(f"{k}_per_frame" for k in expected), "cross_entropy"}
    for name, values in expected.items():  # values (B, T)
        torch.testing.assert_close(out[name], values.mean())
        assert out[f"{name}_per_frame"].shape == (4,)
        torch.testing.assert_close(out[f"{name}_per_frame"], values.mean(0))
    torch.testing.assert_close(out["cross_entropy"], sequence_cross_entropy(pred, target))
    metric.reset()
    metric.update(pred, target)
    torch.testing.assert_close(metric.compute()["mse"], expected["mse"].mean())


@pytest.mark.filterwarnings("ignore:The ``compute`` method:UserWarning")
def test_forecast_metrics_options_and_errors():
    pred, target = _pair(B=2, T=3, S=16)
    metric = ForecastMetrics(ssim=False, num_frames=3)
    with pytest.raises(RuntimeError, match="update"):
        metric.compute()
    metric.update(pred, target)
    out = metric.compute()
    assert "ssim" not in out and "ssim_per_frame" not in out and out["psnr_per_frame"].shape == (3,)
    with pytest.raises(ValueError, match="3 predicted frames"):
        metric.update(pred[:, :2], target[:, :2])
    lazy = ForecastMetrics()
    lazy.update(pred[:, :2], target[:, :2])
    with pytest.raises(ValueError, match="2 predicted frames"):
        lazy.update(pred, target)
    with pytest.raises(ValueError, match="num_frames"):
        ForecastMetrics(num_frames=0)
