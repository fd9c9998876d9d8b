import json
from pathlib import Path

import pytest
import torch

from vidrnn.inference.checkpoint import load_model
from vidrnn.cli import main
from vidrnn.errors import CheckpointError

FAST = ["trainer.max_epochs=1", "trainer.accelerator=cpu", "data.num_workers=0", "data.batch_size=8"]
DIGITS = FAST + ["data.digits.num_train=48", "data.digits.num_val=16", "data.digits.num_test=16"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["fit", "--run-dir", str(run), *DIGITS]) == 0
    return run


def test_fit_writes_run_directory(digits_run, capsys):
    for f in ("config.yaml", "classes.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "logs/metrics.csv",
              "summary.json"):
        assert (digits_run / f).is_file(), f
    summary = json.loads((digits_run / "summary.json").read_text())
    assert summary["model"] == "lrcn_tiny" and summary["videos"] == {"train": 48, "val": 16, "test": 16}
    # the summary's test accuracy is that of the best checkpoint on the 16 test clips
    from vidrnn.data.clip_dataset import collate_clips
    from vidrnn.data.digits import MovingDigits

    model = load_model(digits_run / "checkpoints" / "best.ckpt")
    test = collate_clips([MovingDigits("test", 16)[i] for i in range(16)])
    with torch.no_grad():
        top1 = (model(test["video"]).logits.argmax(-1) == test["label"]).float().mean().item()
    assert summary["metrics"]["test/top1"] == pytest.approx(top1, abs=1e-4)
    assert json.loads((digits_run / "classes.json").read_text()) == {"0": "right", "1": "left", "2": "down", "3": "up"}
    assert not list(digits_run.rglob("*.tmp"))


def test_run_directory_is_never_overwritten(digits_run, capsys):
    before = (digits_run / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    assert main(["fit", "--run-dir", str(digits_run), *DIGITS]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (digits_run / "checkpoints" / "best.ckpt").stat().st_mtime_ns == before


def test_resume_continues_from_last(digits_run, tmp_path):
    import shutil

    run = tmp_path / "resumed"
    shutil.copytree(digits_run, run)
    first_log = (run / "logs" / "metrics.csv").read_text()
    assert main(["fit", "--run-dir", str(run), "--resume", "trainer.max_epochs=2"]) == 0
    assert (run / "logs" / "metrics.csv").read_text() == first_log  # earlier logs kept
    assert (run / "logs" / "resume1" / "metrics.csv").is_file()
    ck = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ck["epoch"] == 1  # second epoch done (0-based)


def test_last_checkpoint_is_the_last_epoch_even_when_the_metric_stops_improving(tmp_path):
    run = tmp_path / "flat"  # lr 0: the validation loss never improves after the first epoch
    assert main(["fit", "--run-dir", str(run), *DIGITS, "trainer.max_epochs=3", "optimizer.lr=0"]) == 0
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert best["epoch"] == 0 and last["epoch"] == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_test_and_predict_from_checkpoint(digits_run, shared_data, capsys, tmp_path):
    ckpt = digits_run / "checkpoints" / "best.ckpt"
    assert main(["test", str(ckpt), "data.num_workers=0", "--output", str(tmp_path / "m.json")]) == 0
    assert "test/top1" in json.loads((tmp_path / "m.json").read_text())["metrics"]
    clip = shared_data / "videos" / "clips" / "v_CricketShot_g04_c01_rgb.gif"
    out = tmp_path / "pred.json"
    assert main(["predict", str(ckpt), str(clip), "--topk", "2", "--output", str(out)]) == 0
    res = json.loads(out.read_text())["results"][0]
    assert len(res["topk"]) == 2 and res["topk"][0]["label"] in {"right", "left", "down", "up"}
    assert res["topk"][0]["prob"] >= res["topk"][1]["prob"]
    assert "v_CricketShot_g04_c01_rgb.gif" in capsys.readouterr().out


def test_predict_labels_every_video_in_a_folder(digits_run, shared_data, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "b.gif").symlink_to(shared_data / "videos" / "clips" / "v_CricketShot_g04_c01_rgb.gif")
    (folder / "a.avi").symlink_to(shared_data / "videos" / "clips" / "ucf101_xvid_320x240.avi")
    (folder / "notes.txt").write_text("not a video")
    out = tmp_path / "pred.json"
    assert main(["predict", str(digits_run / "checkpoints" / "best.ckpt"), str(folder), "--output", str(out)]) == 0
    assert [Path(r["video"]).name for r in json.loads(out.read_text())["results"]] == ["a.avi", "b.gif"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(digits_run / "checkpoints" / "best.ckpt"), str(empty)]) == 1
    assert "is a directory" in capsys.readouterr().err


def test_predict_reports_bad_files_and_continues(digits_run, tmp_path, capsys):
    ckpt = digits_run / "checkpoints" / "best.ckpt"
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    rc = main(["predict", str(ckpt), str(tmp_path / "missing.mkv"), str(bad), "--output", str(tmp_path / "p.json")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "missing.mkv" in err and "bad.mp4" in err
    assert [("error" in r) for r in json.loads((tmp_path / "p.json").read_text())["results"]] == [True, True]


def test_checkpoint_errors(digits_run, tmp_path, capsys):
    ckpt = digits_run / "checkpoints" / "best.ckpt"
    with pytest.raises(CheckpointError, match="model 'lrcn_tiny'.*'deep_lstm_tiny'"):
        load_model(ckpt, model_name="deep_lstm_tiny")
    with pytest.raises(CheckpointError, match="4 classes vs 3"):
        load_model(ckpt, class_names=["a", "b", "c"])
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["predict", str(junk), "x.mp4"]) == 2
    assert "junk.ckpt" in capsys.readouterr().err
    # fine-tuning from a checkpoint of another model is refused with both names
    rc = main(["fit", "--run-dir", str(tmp_path / "r"), "--init-from", str(ckpt), "model.name=deep_lstm_tiny", *DIGITS])
    assert rc == 2 and "deep_lstm_tiny" in capsys.readouterr().err


def test_validate_and_init_from_reproduce_the_checkpoint(digits_run, tmp_path, capsys):
    summary = json.loads((digits_run / "summary.json").read_text())
    ckpt = digits_run / "checkpoints" / "best.ckpt"
    assert main(["validate", str(ckpt), "data.num_workers=0", "--output", str(tmp_path / "v.json")]) == 0
    val = json.loads((tmp_path / "v.json").read_text())["metrics"]
    assert val["val/top1"] == summary["metrics"]["val/top1"] and val["val/loss"] == summary["metrics"]["val/loss"]
    # --init-from with a learning rate of 0: the new run starts from (and keeps) the checkpoint's weights;
    # BatchNorm statistics are frozen by evaluating with trainer.limit_train_batches=0
    run = tmp_path / "init"
    assert main(["fit", "--run-dir", str(run), "--init-from", str(ckpt), "--no-test", "trainer.limit_train_batches=0",
                 *DIGITS]) == 0
    again = json.loads((run / "summary.json").read_text())["metrics"]
    assert again["val/top1"] == summary["metrics"]["val/top1"] and again["val/loss"] == summary["metrics"]["val/loss"]
    fresh = tmp_path / "fresh"
    assert main(["fit", "--run-dir", str(fresh), "--no-test", "trainer.limit_train_batches=0", "seed=1", *DIGITS]) == 0
    assert json.loads((fresh / "summary.json").read_text())["metrics"]["val/loss"] != summary["metrics"]["val/loss"]


def test_bad_config_values_name_the_key(tmp_path, capsys):
    assert main(["fit", "--run-dir", str(tmp_path / "a"), "data.source=folder"]) == 2
    assert "data.root" in capsys.readouterr().err
    assert main(["fit", "--run-dir", str(tmp_path / "b"), "model.name=lrnc_tiny"]) == 2
    assert "lrcn_tiny" in capsys.readouterr().err


def test_models_command(capsys):
    assert main(["models", "*pooling_tiny"]) == 0
    out = capsys.readouterr().out
    assert "conv_pooling_tiny" in out and "lrcn" not in out


@pytest.mark.slow
def test_fit_on_real_asl_clips_and_predict_every_clip(shared_data, tmp_path, capsys):
    run = tmp_path / "asl"
    rc = main(["fit", "-c", "lrcn_asl", "--run-dir", str(run), f"data.root={shared_data / 'videos' / 'asl'}",
               "model.name=lrcn_tiny", "model.encoder=null", "model.pretrained=false", "model.trainable=all",
               "data.transform.size=64", "data.decode_size=72", *FAST])
    assert rc == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["classes"] == 20 and summary["videos"] == {"train": 20, "val": 20, "test": 20}
    assert summary["skipped_videos"] == []
    clips = sorted((shared_data / "videos" / "clips").iterdir())
    out = tmp_path / "pred.json"
    assert main(["predict", str(run / "checkpoints" / "best.ckpt"), *map(str, clips), "--no-timeline",
                 "--output", str(out)]) == 0
    res = json.loads(out.read_text())["results"]
    assert [Path(r["video"]).name for r in res] == [c.name for c in clips]
    names = set(json.loads((run / "classes.json").read_text()).values())
    assert all(r["topk"][0]["label"] in names for r in res)


def test_bad_video_in_dataset_is_skipped_and_counted(tmp_path):
    import numpy as np

    from conftest import write_video

    root = tmp_path / "videos"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for k in range(3):
            frames = np.full((10, 24, 24, 3), 40 * k + (100 if cls == "b" else 0), np.uint8)
            write_video(root / cls / f"{cls}{k}.mp4", frames)
    (root / "b" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x07" * 2000)
    run = tmp_path / "run"
    assert main(["fit", "--run-dir", str(run), "data.source=folder", f"data.root={root}",
                 "data.split={mode: videos, val: 0.0, test: 0.0}", "data.transform.size=16", "data.decode_size=24",
                 "data.sampler.num_frames=4", *FAST]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["videos"]["train"] == 7
    assert [Path(p).name for p in summary["skipped_videos"]] == ["corrupt.mp4"]


def test_ddp_on_two_cpu_processes_writes_one_run_with_metrics_over_all_clips(tmp_path):
    import os
    import subprocess
    import sys

    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "vidrnn", "fit", *DIGITS, "trainer.strategy=ddp", "trainer.devices=2",
           "data.digits.num_test=30", "--run-dir", str(run)]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "NODE_RANK", "VIDRNN_RUN_DIR")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("run directory:") == 1  # the worker process stays quiet
    summary = json.loads((run / "summary.json").read_text())
    assert summary["processes"] == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    # the test accuracy is reduced over both processes' halves: it equals one process on all 30 clips
    assert main(["test", str(run / "checkpoints" / "best.ckpt"), "data.num_workers=0", "data.digits.num_test=30",
                 "--output", str(tmp_path / "m.json")]) == 0
    single = json.loads((tmp_path / "m.json").read_text())["metrics"]["test/top1"]
    assert summary["metrics"]["test/top1"] == pytest.approx(single, abs=1e-4)


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_cache_encoder_runs_the_frozen_encoder_once_and_the_checkpoint_reads_video(tmp_path, monkeypatch, mode):
    from vidrnn.data.clip_dataset import collate_clips
    from vidrnn.data.digits import MovingDigits
    from vidrnn.inference.checkpoint import load_model
    from vidrnn.layers.encoders import TinyCNN

    calls = []
    forward = TinyCNN.forward
    monkeypatch.setattr(TinyCNN, "forward", lambda self, x: calls.append(len(x)) or forward(self, x))
    run = tmp_path / mode
    enc = "model.encoder={name: tiny, channels: [8, 16, 32], pool: avg}"
    assert main(["fit", "--run-dir", str(run), *DIGITS, enc, "model.trainable=none", "trainer.max_epochs=3",
                 f"classification.cache_encoder={mode}"]) == 0
    assert sum(calls) == (48 + 16 + 16) * 8  # every clip's 8 frames once, then 3 epochs and the test from the cache
    assert (run / "encoder_cache" / "train").is_dir() == (mode == "disk")
    summary = json.loads((run / "summary.json").read_text())
    model = load_model(run / "checkpoints" / "best.ckpt")  # predicts from raw video again
    test = collate_clips([MovingDigits("test", 16)[i] for i in range(16)])
    with torch.no_grad():
        top1 = (model(test["video"]).logits.argmax(-1) == test["label"]).float().mean().item()
    assert summary["metrics"]["test/top1"] == pytest.approx(top1, abs=1e-4)


def test_cache_encoder_refuses_an_encoder_that_trains(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["fit", "--run-dir", str(run), *DIGITS, "classification.cache_encoder=memory"]) == 2
    assert "classification.cache_encoder: the frame encoder of lrcn_tiny trains" in capsys.readouterr().err
    assert not run.exists()


def test_ddp_ranks_see_disjoint_parts_of_the_data(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "seen.json"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "helpers" / "ddp_shards.py"), str(out)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = json.loads(out.read_text())
    assert len(ranks) == 2
    for split, n in (("train", 48), ("test", 30)):
        a, b = (set(r[split]) for r in ranks)
        assert len(ranks[0][split]) == len(ranks[1][split]) == n // 2
        assert not a & b and a | b == set(range(n)), split  # each clip in exactly one process


def test_cache_encoder_with_attention_and_target_boxes(tmp_path):
    run = tmp_path / "att"
    assert main(["fit", "--run-dir", str(run), *FAST, "data.source=distractors", "data.distractors.num_train=16",
                 "data.distractors.num_val=8", "data.distractors.num_test=8", "model.name=soft_attention_lstm_tiny",
                 "model.trainable=none", "classification.cache_encoder=memory"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert "test/attention_mass_ratio" in summary["metrics"]  # the boxes still meet the attention maps


def test_cache_encoder_refuses_intermediate_levels(tmp_path, capsys):
    assert main(["fit", "--run-dir", str(tmp_path / "r"), *DIGITS, "model.name=convgru_rcn_tiny",
                 "model.trainable=none", "model.levels=[-1, 1]", "classification.cache_encoder=memory"]) == 2
    assert "reads the encoder's intermediate levels" in capsys.readouterr().err
