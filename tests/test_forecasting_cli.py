import json

import numpy as np
import pytest

from vidrnn import cli
from vidrnn.inference.checkpoint import load_model

SMALL = ["trainer.max_epochs=1", "data.num_workers=0", "data.batch_size=4", "data.moving_mnist.num_train=8",
         "data.moving_mnist.num_val=4", "data.moving_mnist.num_test=4", "data.num_input=3", "data.num_output=2",
         "forecasting.ssim=false"]


@pytest.fixture(scope="module")
def mm_run(tmp_path_factory, shared_data):
    run = tmp_path_factory.mktemp("mm") / "run"
    rc = cli.main(["fit", "-c", "convlstm_movingmnist", "--run-dir", str(run), "model.name=convlstm_tiny", *SMALL])
    assert rc == 0
    return run


def test_fit_test_predict_moving_mnist(mm_run, tmp_path, capsys):
    summary = json.loads((mm_run / "summary.json").read_text())
    assert summary["model"] == "convlstm_tiny"
    for k in ("test/mse", "test/mae", "test/psnr", "test/cross_entropy", "val/mse"):
        assert k in summary["metrics"]
    assert len(summary["per_lead_time"]["test"]["mse_per_frame"]) == 2
    ckpt = mm_run / "checkpoints" / "best.ckpt"
    model = load_model(ckpt)
    assert model.vidrnn.name == "convlstm_tiny" and model.num_output == 2 and not model.training
    assert cli.main(["test", str(ckpt), "--output", str(tmp_path / "t.json")]) == 0
    res = json.loads((tmp_path / "t.json").read_text())
    assert res["metrics"]["test/mse"] == pytest.approx(summary["metrics"]["test/mse"], rel=1e-3)
    out = tmp_path / "pred"
    assert cli.main(["predict", str(ckpt), "--output-dir", str(out), "--num", "2"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["lead_time.png", "metrics.json", "test_000.gif", "test_000.png", "test_001.gif", "test_001.png"]
    from PIL import Image

    with Image.open(out / "test_000.gif") as g:
        assert g.n_frames == 3 + 2  # inputs, then truth | forecast
    # nothing is overwritten
    assert cli.main(["predict", str(ckpt), "--output-dir", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_predict_on_npy_sequences(mm_run, tmp_path):
    import numpy as np

    seq = (np.random.default_rng(0).random((6, 3, 64, 64)) * 255).astype(np.uint8)  # (T, N, H, W)
    np.save(tmp_path / "seq.npy", seq)
    out = tmp_path / "pred"
    ckpt = mm_run / "checkpoints" / "best.ckpt"
    assert cli.main(["predict", str(ckpt), str(tmp_path / "seq.npy"), "--output-dir", str(out), "--num", "3"]) == 0
    assert (out / "seq_002.png").is_file()
    np.save(tmp_path / "short.npy", seq[:4])
    assert cli.main(["predict", str(ckpt), str(tmp_path / "short.npy"), "--output-dir", str(tmp_path / "p2")]) == 2


def test_classifier_checkpoint_mismatch_is_reported(mm_run, capsys):
    ckpt = mm_run / "checkpoints" / "best.ckpt"
    rc = cli.main(["fit", "--init-from", str(ckpt), "--run-dir", str(mm_run.parent / "x"), "trainer.max_epochs=1"])
    assert rc == 2
    assert "convlstm_tiny" in capsys.readouterr().err


def test_fit_on_one_radar_event_test_on_another(tmp_path, shared_data, capsys):
    run = tmp_path / "radar"
    radar = shared_data / "radar"
    rc = cli.main(["fit", "-c", "convlstm_radar_fmi", "--run-dir", str(run), "model={name: convlstm_tiny}",
                   "trainer.max_epochs=1", "data.num_workers=0", "data.batch_size=4", "data.num_input=2",
                   "data.num_output=2", "data.radar.downsample=8", "data.radar.crop=16", "data.radar.num_train=4",
                   "data.radar.stride=6", "data.radar.pysteps_baseline=false",
                   f"data.radar.train.root={radar / 'knmi'}", f"data.radar.test.root={radar / 'fmi'}"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "CSI>=0.5 model/pers" in out and "lead (min)" in out
    summary = json.loads((run / "summary.json").read_text())
    test = summary["per_lead_time"]["test"]
    assert test["thresholds"] == [0.5, 2, 5, 10, 30]
    csi_model, csi_pers = test["nowcasting"]["csi"], test["persistence"]["csi"]
    assert len(csi_model) == 5 and len(csi_model[0]) == 2
    assert 0 < csi_pers[0][0] <= 1  # persistence has skill at 5 min on the real FMI event
    assert "test/csi@0.5" in summary["metrics"]
    pred = tmp_path / "pred"
    assert cli.main(["predict", str(run / "checkpoints" / "best.ckpt"), str(radar / "fmi"), "--num", "1",
                     "--output-dir", str(pred)]) == 0
    assert (pred / "lead_time.png").is_file() and (pred / "fmi_000.gif").is_file()
    # a radar sequence as a .npy array of rain rates (mm/h) is scored like a folder of radar files
    rain = np.zeros((6, 24, 24), np.float32)
    rain[:, 4:14, 6:16] = 4.0
    np.save(tmp_path / "cell.npy", rain)
    assert cli.main(["predict", str(run / "checkpoints" / "best.ckpt"), str(tmp_path / "cell.npy"),
                     "--output-dir", str(tmp_path / "pred_npy")]) == 0
    m = json.loads((tmp_path / "pred_npy" / "metrics.json").read_text())["metrics"]
    assert m["persistence"]["csi"][0] == [1.0, 1.0]  # a still cell: persistence is perfect at 0.5 mm/h


def test_scheduled_sampling_decays_over_epochs(tmp_path, shared_data):
    import csv

    run = tmp_path / "ss"
    args = [a for a in SMALL if not a.startswith("trainer.max_epochs")]
    rc = cli.main(["fit", "-c", "convlstm_movingmnist", "--run-dir", str(run), "model.name=convlstm_tiny",
                   "model.forecaster_input=previous_frame", "trainer.max_epochs=2", "trainer.log_every_n_steps=1",
                   "forecasting.scheduled_sampling={start: 1.0, end: 0.0, epochs: 2}", "--no-test", *args])
    assert rc == 0
    rows = list(csv.DictReader(open(run / "logs" / "metrics.csv")))
    tf = {int(r["epoch"]): float(r["train/teacher_forcing"]) for r in rows if r.get("train/teacher_forcing")}
    assert tf == {0: 1.0, 1: 0.5}
