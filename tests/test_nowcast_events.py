"""Radar across events: the MeteoSwiss, BoM and RMI events read through pysteps' importers, a
common grid, training windows from several events with augmentation, the balanced loss, MAE
and S-PROG beside the other baselines, and a multi-event run end to end (../shared/data/radar)."""

import json

import numpy as np
import pytest
import torch

from vidrnn import cli
from vidrnn.errors import ConfigError

pytest.importorskip("pysteps")

EVENTS = {"mch": ("radar/mch/20150515", (640, 710), 40), "rmi": ("radar/rmi", (700, 700), 39),
          "bom": ("radar/bom", (512, 512), 144)}


@pytest.mark.parametrize("source", ["mch", "rmi", "bom"])
def test_pysteps_sources_read_as_rain_rate_with_their_times(shared_data, source):
    from vidrnn.io.radar import find_radar_files, read_pysteps

    folder, shape, n = EVENTS[source]
    files = find_radar_files(shared_data / folder, source)
    assert len(files) == n
    rain, meta = read_pysteps(files[1], source)
    assert rain.shape == shape and rain.dtype == np.float32
    finite = rain[np.isfinite(rain)]
    assert finite.min() >= 0 and finite.max() > 1  # mm/h, some rain
    step = (read_pysteps(files[2], source)[1]["timestamp"] - meta["timestamp"]).total_seconds() / 60
    assert step == (10 if source == "bom" else 5)
    assert meta["pixel_size_m"][0] == (500 if source == "bom" else 1000)


def test_a_file_pysteps_cannot_read_is_named(tmp_path, shared_data):
    from vidrnn.io.radar import read_pysteps

    good = sorted((shared_data / "radar/mch/20150515").glob("*.gif"))[0]
    bad = tmp_path / good.name
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ValueError, match=rf"{bad.name}: pysteps cannot read this mch file"):
        read_pysteps(bad, "mch")


def test_balanced_weights_and_mae():
    from vidrnn.metrics.nowcasting import NowcastingScores
    from vidrnn.tasks.forecasting import balanced_weights

    rain = torch.tensor([0.0, 1.9, 2.0, 4.9, 5.0, 10.0, 29.0, 30.0, 100.0, float("nan")])
    assert balanced_weights(rain).tolist() == [1, 1, 2, 2, 5, 10, 10, 30, 30, 0]
    m = NowcastingScores([1.0])
    pred = torch.tensor([[[1.0, 2.0], [3.0, float("nan")]]]).reshape(1, 2, 2)  # (B, T, N)
    truth = torch.tensor([[[2.0, 2.0], [1.0, 5.0]]]).reshape(1, 2, 2)
    m.update(pred, truth)
    assert m.compute()["mae"].tolist() == pytest.approx([0.5, 2.0])  # the missing pixel is left out


def test_sprog_forecasts_a_real_window(shared_data):
    from vidrnn.data.radar import load_radar_sequence
    from vidrnn.models.extrapolation import pysteps_extrapolation, pysteps_sprog

    rain, _, _ = load_radar_sequence(shared_data / "radar/fmi", "fmi", downsample=4)
    x = torch.from_numpy(rain[None, :5, None, :144, :96])
    s, e = pysteps_sprog(x, 4), pysteps_extrapolation(x, 4)
    assert s.shape == (1, 4, 1, 144, 96)
    wet = torch.nan_to_num(e) >= 1
    assert (torch.nan_to_num(s)[wet] > 0).float().mean() > 0.8  # rain where extrapolation puts it
    finite = s[torch.isfinite(s)]
    assert len(finite) > 0.5 * s.numel() and finite.min() >= 0 and finite.max() < 500  # rain rates, no blow-up


def _settings(root, **radar):
    return {"source": "radar", "num_input": 3, "num_output": 2, "batch_size": 2, "num_workers": 0,
            "radar": {"events": [{"root": str(root / "radar/mch/20150515"), "source": "mch"},
                                 {"root": str(root / "radar/rmi"), "source": "rmi"}],
                      "test": {"root": str(root / "radar/fmi"), "source": "fmi"}, "pixel_km": 8, "crop": 16,
                      "num_train": 8, "stride": 6, "augment": True, **radar}}


def test_events_on_a_common_grid_with_augmented_windows(shared_data):
    from vidrnn.data.forecast_datamodule import ForecastDataModule

    dm = ForecastDataModule(_settings(shared_data))
    info = dm.event_info
    assert set(info) == {"events[0]", "events[1]", "test", "skipped_files"} and info["events[0]"][2] == 40
    assert info["skipped_files"] == []
    assert len(dm.splits["train"]) == 8 and "val" in dm.splits  # each event keeps its last quarter
    item = dm.splits["train"][0]
    assert item["input"].shape == (3, 1, 16, 16) and item["target_rain"].shape == (2, 1, 16, 16)
    assert dm.splits["test"][0]["input"].shape[-2:] == (144, 80)  # FMI (1226 x 760 at 1 km) at 8 km, trimmed to 16s
    assert all(d.augment for d in dm.splits["train"].datasets)
    bad = _settings(shared_data)
    bad["radar"]["events"].append({"root": str(shared_data / "radar/bom"), "source": "bom"})
    with pytest.raises(ConfigError, match=r"events\[2\] .*every 10 min, the test event every 5 min"):
        ForecastDataModule(bad)


def test_augmentation_rotates_and_flips_every_frame_alike():
    from vidrnn.data.forecast_datamodule import _Resampled

    class One(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(3, 1, 1, 1)
            return {"input": x.clone(), "target": x[:2].clone(), "input_rain": x.clone(), "target_rain": x[:2].clone()}

    ds = _Resampled(One(), 50, augment=True)
    outs = {tuple(ds[0]["input"][0, 0].flatten().tolist()) for _ in range(50)}
    assert len(outs) == 8  # the 8 symmetries of the square
    it = ds[0]
    assert all(torch.equal(it[k][0], it["input"][0]) for k in ("target", "input_rain", "target_rain"))


def test_multi_event_run_end_to_end_with_all_baselines(tmp_path, shared_data, capsys):
    run = tmp_path / "run"
    s = _settings(shared_data)["radar"]
    args = ["fit", "-c", "nowcast_multi_event", "--run-dir", str(run), "model={name: convlstm_tiny}",
            "trainer.max_epochs=1", "data.num_workers=0", "data.batch_size=2", "data.num_input=3",
            "data.num_output=2", "data.radar.pixel_km=8", "data.radar.crop=16", "data.radar.num_train=8",
            "data.radar.stride=6", f"data.radar.test.root={s['test']['root']}",
            "data.radar.events=[{root: %s, source: mch}, {root: %s, source: rmi}]" % (
                s["events"][0]["root"], s["events"][1]["root"])]
    assert cli.main(args) == 0
    test = json.loads((run / "summary.json").read_text())["per_lead_time"]["test"]
    assert test["thresholds"] == [0.5, 1, 2, 5, 10]
    for method in ("nowcasting", "persistence", "pysteps_extrapolation", "pysteps_sprog"):
        assert len(test[method]["csi"]) == 5 and len(test[method]["mae"]) == 2
    assert 0 < test["persistence"]["csi"][1][0] <= 1
    out = tmp_path / "report"
    capsys.readouterr()
    assert cli.main(["predict", str(run / "checkpoints" / "best.ckpt"), "--num", "1", "--output-dir", str(out)]) == 0
    assert (out / "lead_time.png").stat().st_size > 5000 and (out / "test_000.png").is_file()


def test_an_unreadable_file_inside_an_event_is_a_missing_frame(tmp_path, shared_data):
    import shutil

    from vidrnn.data.radar import load_radar_sequence

    files = sorted((shared_data / "radar/rmi").rglob("*.hdf"))[:6]
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    bad = tmp_path / files[2].name
    bad.write_bytes(files[2].read_bytes()[:1000])  # truncated HDF5
    with pytest.raises(ValueError, match=rf"{bad.name}: pysteps cannot read this rmi file"):
        load_radar_sequence(tmp_path, "rmi", downsample=10)
    rain, stamps, meta = load_radar_sequence(tmp_path, "rmi", downsample=10, on_error="skip")
    assert rain.shape[0] == 6 and np.isnan(rain[2]).all() and not np.isnan(rain[3]).all()
    assert meta["skipped_files"] == [str(bad)] and (stamps[3] - stamps[1]).total_seconds() == 600


def test_the_test_event_is_refused_as_a_training_event(shared_data):
    from vidrnn.data.forecast_datamodule import ForecastDataModule

    leak = _settings(shared_data)
    leak["radar"]["events"].append({"root": str(shared_data / "radar/fmi"), "source": "fmi"})
    with pytest.raises(ConfigError, match=r"events\[2\]\.root=.*holds the test event"):
        ForecastDataModule(leak)


def test_a_residual_forecaster_starts_from_the_last_frame():
    from vidrnn import create_model

    torch.manual_seed(0)
    m = create_model("encoder_forecaster", hidden_channels=[8], residual=True, num_output=3).eval()
    x = torch.rand(2, 4, 1, 32, 32)
    with torch.no_grad():
        res = m(x)
        assert torch.allclose(res, m.forecast(m.step(x)))  # the streaming path agrees
        m.residual = False
        plain = m(x)
    last = torch.logit(x[:, -1].clamp(1e-3, 1 - 1e-3))[:, None]
    torch.testing.assert_close(res, plain + last.expand_as(plain))
