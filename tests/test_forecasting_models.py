import fnmatch

import pytest
import torch

from vidrnn import create_model
from vidrnn.registry import list_models, model_task

TINY = list_models("*_tiny", task="forecasting")
B, TIN, S = 2, 4, 16

# Shi et al. 2015, Table 1. Reading that reproduces every row (see vidrnn.models.encoder_forecaster):
# one bias per gate channel, peephole weights one value per channel, input-to-state kernel the same
# for every layer, forecaster layer 1 without input, forecaster layer l>1 reading layer l-1, output
# 1x1 conv over all forecaster layers' states (ConvLSTM) / a linear map of the top layer (FC-LSTM).
TABLE_1 = {
    "fc_lstm_2048_2048": 142_667_776,
    "convlstm_5x5_5x5_256": 13_524_496,
    "convlstm_5x5_5x5_128_5x5_128": 10_042_896,
    "convlstm_5x5_5x5_128_5x5_64_5x5_64": 7_585_296,
    "convlstm_9x9_1x1_128_1x1_128": 11_550_224,
    "convlstm_9x9_1x1_128_1x1_64_1x1_64": 8_830_480,
}


@pytest.mark.parametrize("name", TABLE_1)
def test_table1_parameter_counts(name):
    with torch.device("meta"):  # no memory for the 142M-parameter FC-LSTM
        m = create_model(name)
    assert sum(p.numel() for p in m.parameters()) == TABLE_1[name]


def test_every_cell_family_has_a_tiny_variant():
    assert set(TINY) == {"convlstm_tiny", "convgru_tiny", "trajgru_tiny", "fc_lstm_tiny"}
    families = ("convlstm_*", "convgru_*", "trajgru_*", "fc_lstm_*", "encoder_forecaster")
    forecasters = list_models(task="forecasting")
    assert forecasters and all(any(fnmatch.fnmatch(n, f) for f in families) for n in forecasters)
    assert all(model_task(n) == "forecasting" for n in forecasters)


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("t_out", [1, 3, 6])
def test_shapes_any_input_and_output_length(name, t_out):
    m = create_model(name)
    for t_in in (1, 5):
        assert m(torch.rand(B, t_in, 1, S, S), t_out).shape == (B, t_out, 1, S, S)


@pytest.mark.parametrize("name", TINY)
def test_gradients_finite_batch_independence_determinism(name):
    torch.manual_seed(0)
    m = create_model(name)
    if m.cell == "trajgru":  # leave the identity warp, so flow parameters get gradients
        for layer in list(m.encoder) + list(m.forecaster):
            torch.nn.init.normal_(layer.cell.flow_out.weight, std=0.05)
    x = torch.rand(B, TIN, 1, S, S)
    out = m(x, 3)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"parameters without gradient: {missing}"
    m.eval()
    with torch.no_grad():
        a = m(x, 3)
        x2 = x.clone()
        x2[1] = torch.rand(TIN, 1, S, S)
        b = m(x2, 3)
        torch.testing.assert_close(a[0], b[0])
        assert not torch.allclose(a[1], b[1])
        torch.testing.assert_close(m(x, 3), a)


def test_patch_reshaping_round_trip():
    m = create_model("convlstm_tiny")
    x = torch.rand(2, 3, 1, 64, 64)
    p = m.to_patches(x)
    assert p.shape == (2, 3, 16, 16, 16)  # 64x64x1 as 16x16x16 with 4x4 patches
    torch.testing.assert_close(p[0, 0, :, 0, 0], x[0, 0, 0, :4, :4].reshape(16))
    torch.testing.assert_close(m.from_patches(p), x)
    with pytest.raises(ValueError, match="multiples of patch_size=4"):
        m(torch.rand(1, 2, 1, 30, 30))


def test_forecaster_is_initialised_from_the_encoder():
    torch.manual_seed(0)
    m = create_model("convlstm_tiny").eval()
    x = torch.rand(1, 4, 1, S, S)
    with torch.no_grad():
        a = m(x, 2)
        b = m(x.flip(1), 2)
    assert not torch.allclose(a, b)  # the forecast depends on the (ordered) input through the states


def test_scheduled_sampling_uses_targets():
    torch.manual_seed(0)
    m = create_model("convlstm_tiny", forecaster_input="previous_frame").eval()
    x, y = torch.rand(2, 3, 1, S, S), torch.rand(2, 4, 1, S, S)
    with torch.no_grad():
        free = m(x, 4)
        torch.testing.assert_close(m(x, 4, targets=y, teacher_forcing=0.0), free)
        forced = m(x, 4, targets=y, teacher_forcing=1.0)
        torch.testing.assert_close(forced[:, 0], free[:, 0])  # the first step sees the last input either way
        assert not torch.allclose(forced[:, 1:], free[:, 1:])


def test_fc_lstm_is_tied_to_its_frame_size():
    m = create_model("fc_lstm_tiny")  # 16x16 frames
    with pytest.raises(ValueError, match="takes 16x16 frames, got 64x64"):
        m(torch.rand(1, 2, 1, 64, 64))


@pytest.mark.parametrize("name,kw", [("convlstm_tiny", {}), ("convgru_tiny", {}), ("trajgru_tiny", {}),
                                     ("convlstm_tiny", {"forecaster_input": "previous_frame"})])
def test_streaming_steps_equal_the_offline_forward(name, kw):
    from vidrnn import create_model

    torch.manual_seed(0)
    model = create_model(name, num_output=3, **kw).eval()
    x = torch.rand(2, 7, 1, 16, 16)
    with torch.no_grad():
        whole = model(x)
        state = None
        for chunk in x.split([3, 1, 3], dim=1):  # frames arriving in pieces: the state carries the past
            state = model.step(chunk, state)
        torch.testing.assert_close(model.forecast(state), whole, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.forecast(state, 5)[:, :3], whole, atol=1e-5, rtol=1e-5)
