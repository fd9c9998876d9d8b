import pytest
import torch

from vidrnn.tasks.forecasting import ForecastingTask, forecast_report


def test_bf16_autocast_matches_fp32():
    torch.manual_seed(0)
    task = ForecastingTask("convlstm_tiny", data={"num_output": 3})
    x, y = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    ref = task.model(x, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = task.model(x, 3)
        loss = task._loss(low, y)
        h, c = task.model.encode(x)[0]
    loss.backward()
    assert low.dtype == torch.bfloat16  # convolutions run in bf16 ...
    assert h.dtype == c.dtype == torch.float32  # ... while the gate arithmetic and cell state stay float32
    torch.testing.assert_close(low.float(), ref, atol=4e-3, rtol=1e-2)  # bf16 keeps ~3 significant digits
    assert all(torch.isfinite(p.grad).all() for p in task.parameters() if p.grad is not None)


@pytest.mark.parametrize("loss", ["bce", "mse", "mse+mae"])
def test_losses(loss):
    task = ForecastingTask("convlstm_tiny", data={"num_output": 2}, loss=loss)
    logits, y = torch.zeros(1, 2, 1, 4, 4), torch.ones(1, 2, 1, 4, 4)
    expected = {"bce": torch.log(torch.tensor(2.0)), "mse": torch.tensor(0.25), "mse+mae": torch.tensor(0.75)}[loss]
    torch.testing.assert_close(task._loss(logits, y), expected)
    with pytest.raises(ValueError, match="loss='l1'"):
        ForecastingTask("convlstm_tiny", loss="l1")


def test_report_lists_every_lead_time():
    res = {"mse_per_frame": [1.0, 2.0], "mae_per_frame": [3.0, 4.0], "mse": 1.5, "mae": 3.5}
    lines = forecast_report(res).splitlines()
    assert lines[0].split() == ["frame", "mse", "mae"]
    assert [ln.split()[0] for ln in lines[1:]] == ["1", "2"]
