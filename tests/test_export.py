"""ONNX export of the recurrent classifiers, run in ONNX Runtime against PyTorch."""

import json

import numpy as np
import pytest
import torch

from vidrnn.cli import main
from vidrnn.inference.checkpoint import load_model

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    run = tmp / "run"
    assert main(["fit", "--run-dir", str(run), "model.name=deep_lstm_tiny", "trainer.max_epochs=1", "data.num_workers=0",
                 "data.digits.num_train=16", "data.digits.num_val=8", "data.digits.num_test=8"]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    assert main(["export", str(ckpt), "--out", str(tmp / "onnx")]) == 0
    return ckpt, tmp / "onnx"


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch,lengths", [(1, (3, 5)), (2, (4, 1, 6))])
def test_encoder_and_steps_in_onnx_runtime_match_pytorch(exported, batch, lengths):
    ckpt, out = exported
    meta = json.loads((out / "export.json").read_text())
    model = load_model(ckpt)
    S, L, H = meta["input_size"], meta["num_layers"], meta["hidden_size"]
    assert (L, H) == (2, 16)  # deep_lstm_tiny: two layers, the state of both carried
    enc, step = _session(out / "encoder.onnx"), _session(out / "step.onnx")
    torch.manual_seed(batch)
    video = torch.rand(batch, sum(lengths), 3, S, S)
    with torch.no_grad():
        want = model(video).frame_logits
    h = c = np.zeros((L, batch, H), np.float32)
    got, t = [], 0
    for n in lengths:
        frames = video[:, t:t + n].reshape(-1, 3, S, S).numpy()
        feats = enc.run(None, {"frames": frames})[0].reshape(batch, n, -1)
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(feats), model.encode(video[:, t:t + n]), atol=1e-4, rtol=1e-4)
        logits, h, c = step.run(None, {"features": feats, "h0": h, "c0": c})
        got.append(logits)
        t += n
    torch.testing.assert_close(torch.from_numpy(np.concatenate(got, 1)), want, atol=1e-4, rtol=1e-4)


def test_whole_model_graph_in_onnx_runtime_at_other_batch_sizes_and_lengths(exported):
    ckpt, out = exported
    meta = json.loads((out / "export.json").read_text())
    model, whole = load_model(ckpt), _session(out / "model.onnx")
    S = meta["input_size"]
    for batch, T in ((1, 1), (3, 9)):  # exported at (2, 3)
        video = torch.rand(batch, T, 3, S, S)
        logits, frame_logits = whole.run(None, {"video": video.numpy()})
        with torch.no_grad():
            want = model(video)
        torch.testing.assert_close(torch.from_numpy(logits), want.logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(torch.from_numpy(frame_logits), want.frame_logits, atol=1e-4, rtol=1e-4)


def test_export_refuses_other_models_and_existing_exports(exported, tmp_path, capsys):
    ckpt, out = exported
    assert main(["export", str(ckpt), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    run = tmp_path / "c3d"
    assert main(["fit", "--run-dir", str(run), "model.name=c3d_tiny", "trainer.max_epochs=1", "data.num_workers=0",
                 "data.digits.num_train=8", "data.digits.num_val=4", "data.digits.num_test=4"]) == 0
    assert main(["export", str(run / "checkpoints" / "last.ckpt"), "--out", str(tmp_path / "x")]) == 2
    assert "covers the recurrent classifiers" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


FORECAST = ["trainer.max_epochs=1", "data.num_workers=0", "data.batch_size=4", "data.moving_mnist.num_train=8",
            "data.moving_mnist.num_val=4", "data.moving_mnist.num_test=4", "data.num_input=3", "data.num_output=2",
            "forecasting.ssim=false"]


@pytest.mark.parametrize("name", ["convlstm_tiny", "trajgru_tiny"])
def test_forecaster_step_and_forecast_in_onnx_runtime_match_pytorch(tmp_path, shared_data, name):
    run = tmp_path / "run"
    assert main(["fit", "-c", "convlstm_movingmnist", "--run-dir", str(run), f"model.name={name}", *FORECAST]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    assert main(["export", str(ckpt), "--out", str(tmp_path / "onnx")]) == 0
    meta = json.loads((tmp_path / "onnx" / "export.json").read_text())
    model = load_model(ckpt)
    names = list(meta["step"]["inputs"])[1:]
    # two layers, each state carried; a GRU has h only
    assert names == (["h0", "c0", "h1", "c1"] if name == "convlstm_tiny" else ["h0", "h1"])
    step, forecast = _session(tmp_path / "onnx" / "step.onnx"), _session(tmp_path / "onnx" / "forecast.onnx")
    p = meta["patch_size"]
    sizes = ((1, 64, 3), (3, 64, 5)) if meta["frame_size"] else ((1, 64, 3), (2, 32, 5))  # TrajGRU: one frame size
    for batch, side, T in sizes:  # other batch sizes, frame sizes and lengths than exported
        torch.manual_seed(T)
        x = torch.rand(batch, T, 1, side, side)
        with torch.no_grad():
            want = model(x, meta["num_output"])
        feeds = {n: np.zeros((batch, int(meta["step"]["inputs"][n].split(",")[1]), side // p, side // p), np.float32)
                 for n in names}  # the start: every state zero; "(B, F, H/p, W/p), ..."
        for t in range(T):  # one frame at a time through ONNX Runtime, the states carried
            feeds = dict(zip(names, step.run(None, {"frame": x[:, t].numpy(), **feeds})))
        got = forecast.run(None, feeds)[0]
        torch.testing.assert_close(torch.from_numpy(got), want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["soft_attention_lstm_tiny", "c3d_tiny"])
def test_torchscript_export_of_models_onnx_does_not_cover(tmp_path, name):
    run = tmp_path / "run"
    assert main(["fit", "--run-dir", str(run), f"model.name={name}", "trainer.max_epochs=1", "data.num_workers=0",
                 "data.digits.num_train=16", "data.digits.num_val=8", "data.digits.num_test=8"]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 2  # not covered
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(tmp_path / "ts")]) == 0
    meta = json.loads((tmp_path / "ts" / "export.json").read_text())
    graph = torch.jit.load(str(tmp_path / "ts" / "model.pt"))  # no vidrnn code needed to run it
    model = load_model(ckpt)
    for batch in (1, 3):
        video = torch.rand(batch, meta["frames"], 3, meta["input_size"], meta["input_size"])
        with torch.no_grad():
            logits, _ = graph(video)
            torch.testing.assert_close(logits, model(video).logits, atol=1e-5, rtol=1e-5)


def test_a_residual_forecaster_exports_with_the_last_frame_as_input(tmp_path, shared_data):
    run = tmp_path / "run"
    assert main(["fit", "-c", "convlstm_movingmnist", "--run-dir", str(run),
                 "model={name: encoder_forecaster, hidden_channels: [8, 8], kernel_size: 3, residual: true}",
                 *FORECAST]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    assert main(["export", str(ckpt), "--out", str(tmp_path / "onnx")]) == 0
    meta = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert list(meta["forecast"]["inputs"])[0] == "last"
    model = load_model(ckpt)
    names = list(meta["step"]["inputs"])[1:]
    step, forecast = _session(tmp_path / "onnx" / "step.onnx"), _session(tmp_path / "onnx" / "forecast.onnx")
    torch.manual_seed(0)
    x = torch.rand(2, 4, 1, 32, 32)
    with torch.no_grad():
        want = model(x, meta["num_output"])
    feeds = {n: np.zeros((2, int(meta["step"]["inputs"][n].split(",")[1]), 8, 8), np.float32) for n in names}
    for t in range(4):
        feeds = dict(zip(names, step.run(None, {"frame": x[:, t].numpy(), **feeds})))
    got = forecast.run(None, {"last": x[:, -1].numpy(), **feeds})[0]
    torch.testing.assert_close(torch.from_numpy(got), want, atol=1e-4, rtol=1e-4)
