"""YouTube-8M: TFRecord shards written by the tests in the dataset's documented format (nothing
can be downloaded here), read back, trained on, scored with GAP@20 and hit@1, and vidrnn's own
feature cache written as such shards."""

import json

import numpy as np
import pytest
import torch

from vidrnn.cli import main
from vidrnn.errors import DataError
from vidrnn.io.yt8m import dequantize, quantize, read_yt8m, write_yt8m_frames
from vidrnn.metrics.multilabel import GlobalAveragePrecision, HitAtOne, global_average_precision

pytest.importorskip("tfrecord")


def _example_proto(path, records):
    """A video-level shard written with the protobuf classes directly: Example{id, labels, mean_rgb, mean_audio}."""
    from tfrecord.writer import TFRecordWriter

    w = TFRecordWriter(str(path))
    for r in records:
        w.write({"id": (r["id"].encode(), "byte"), "labels": (r["labels"], "int"),
                 "mean_rgb": (r["mean_rgb"].tolist(), "float"), "mean_audio": (r["mean_audio"].tolist(), "float")})
    w.close()


def test_dequantisation_is_the_starter_codes_and_stays_in_bounds():
    q = np.arange(256, dtype=np.uint8)
    x = dequantize(q)
    assert np.allclose(x, q.astype(np.float64) * 4 / 255 + 4 / 512 - 2, rtol=0, atol=1e-6)  # utils.Dequantize(feat, 2, -2)
    assert x.min() >= -2 and x.max() <= 2 + 4 / 512 and np.all(np.diff(x) > 0)
    assert np.array_equal(quantize(x), q)  # bin centres round-trip
    assert quantize(np.array([-5.0, 5.0])).tolist() == [0, 255]  # clipped


def test_frame_level_round_trip_and_video_level(tmp_path):
    rng = np.random.default_rng(0)
    vids = [{"id": f"vid{i}", "labels": [i, 5], "rgb": rng.uniform(-2, 2, (4 + i, 1024)),
             "audio": rng.uniform(-2, 2, (4 + i, 128))} for i in range(3)]
    f = write_yt8m_frames(tmp_path / "train0000.tfrecord", vids, features=("rgb", "audio"))
    got = list(read_yt8m(f))
    assert [g["id"] for g in got] == ["vid0", "vid1", "vid2"] and got[1]["labels"] == [1, 5]
    for g, v in zip(got, vids):
        assert g["features"].shape == (len(v["rgb"]), 1152) and g["features"].dtype == np.float32
        assert np.abs(g["features"][:, :1024] - v["rgb"]).max() <= 2 / 255 + 1e-6  # half an 8-bit step
        assert np.abs(g["features"][:, 1024:] - v["audio"]).max() <= 2 / 255 + 1e-6
    assert list(read_yt8m(f, max_frames=2))[2]["features"].shape == (2, 1152)
    _example_proto(tmp_path / "video.tfrecord", [{"id": "a", "labels": [3], "mean_rgb": np.full(1024, 0.5),
                                                  "mean_audio": np.full(128, -1.0)}])
    (v,) = read_yt8m(tmp_path / "video.tfrecord", level="video")
    assert v["labels"] == [3] and v["features"].shape == (1, 1152) and v["features"][0, 1024] == -1.0


def test_bad_shards_name_the_file_and_the_record(tmp_path):
    f = write_yt8m_frames(tmp_path / "a.tfrecord", [{"id": "x", "labels": [1], "rgb": np.zeros((3, 1024))}] * 2)
    data = f.read_bytes()
    (tmp_path / "trunc.tfrecord").write_bytes(data[: len(data) - 10])
    with pytest.raises(DataError, match=r"trunc.tfrecord: record 1 cannot be read .*truncated"):
        list(read_yt8m(tmp_path / "trunc.tfrecord", features=("rgb",)))
    with pytest.raises(DataError, match=r"a.tfrecord: record 0 \(x\) has no 'audio' feature list"):
        list(read_yt8m(f))
    with pytest.raises(FileNotFoundError, match="nope.tfrecord"):
        list(read_yt8m(tmp_path / "nope.tfrecord"))


def test_gap_at_20_and_hit_at_1_against_a_hand_computed_case():
    preds = torch.tensor([[0.9, 0.1, 0.8, 0.3], [0.2, 0.7, 0.6, 0.5]])
    target = torch.tensor([[1, 0, 0, 1], [0, 0, 1, 0]])
    # top 2 per video, pooled and sorted: 0.9 (hit), 0.8 (miss), 0.7 (miss), 0.6 (hit); 3 positives
    # in all (class 3 of video 0 is outside its top 2): GAP = (1/1 + 2/4) / 3 = 0.5
    assert global_average_precision(preds, target, top_k=2).item() == pytest.approx(0.5)
    # with every prediction kept: 0.9 h, 0.8 m, 0.7 m, 0.6 h, 0.5 m, 0.3 h, ... -> (1 + 2/4 + 3/6) / 3
    assert global_average_precision(preds, target, top_k=20).item() == pytest.approx(2 / 3)
    gap, hit = GlobalAveragePrecision(2), HitAtOne()
    for i in range(2):  # accumulated over batches
        gap.update(preds[i:i + 1], target[i:i + 1])
        hit.update(preds[i:i + 1], target[i:i + 1])
    assert gap.compute().item() == pytest.approx(0.5) and hit.compute().item() == pytest.approx(0.5)


def _learnable_shards(folder, K=6, per_shard=48):
    rng = np.random.default_rng(0)
    proto = rng.normal(0, 0.7, (K, 1024)).astype(np.float32)

    def video(i, split):
        labels = sorted(rng.choice(K, size=int(rng.integers(1, 3)), replace=False).tolist())
        T = int(rng.integers(5, 12))
        return {"id": f"{split}{i}", "labels": labels,
                "rgb": np.clip(proto[labels].sum(0) + rng.normal(0, 0.8, (T, 1024)), -2, 2),
                "audio": rng.uniform(-2, 2, (T, 128))}

    for split, n in (("train", 3), ("validate", 1), ("test", 1)):
        for s in range(n):
            write_yt8m_frames(folder / f"{split}{s:04d}.tfrecord", [video(s * per_shard + i, split)
                                                                     for i in range(per_shard)], features=("rgb", "audio"))


def test_the_deep_lstm_trains_on_shards_and_reports_gap(tmp_path, capsys):
    _learnable_shards(tmp_path)
    (tmp_path / "test0001.tfrecord").write_bytes((tmp_path / "test0000.tfrecord").read_bytes()[:5000])  # truncated
    run = tmp_path / "run"
    args = ["fit", "-c", "deep_lstm_yt8m", "--run-dir", str(run), f"data.yt8m.train={tmp_path}/train*.tfrecord",
            f"data.yt8m.val={tmp_path}/validate*.tfrecord", f"data.yt8m.test={tmp_path}/test*.tfrecord",
            "data.yt8m.num_classes=6", "data.batch_size=16", "data.num_workers=0", "model.hidden_size=32",
            "trainer.max_epochs=8", "optimizer.lr=0.003"]
    assert main(args) == 0
    m = json.loads((run / "summary.json").read_text())["metrics"]
    assert m["test/gap20"] > 0.7 and m["test/hit1"] > 0.7  # learnt: chance GAP is ~0.3 with 1-2 of 6 labels
    assert m["skipped_videos"] >= 1  # the truncated shard: counted, the epoch went on
    assert "train 3 shards" in capsys.readouterr().out
    bad = [a if not a.startswith("data.yt8m.val=") else f"data.yt8m.val={tmp_path}/none*.tfrecord" for a in args]
    assert main([*bad[:4], str(tmp_path / "run2"), *bad[5:]]) == 2
    assert "data.yt8m.val: no file matches" in capsys.readouterr().err


def test_a_feature_cache_is_written_as_yt8m_shards_and_read_back(tmp_path, shared_data, capsys):
    cache = tmp_path / "cache"
    assert main(["extract-features", "--config", "lrcn_asl", "--out", str(cache), "--fps", "2", "--encoder", "tiny",
                 "--size", "32", "--decode-size", "40"]) == 0
    assert main(["export-yt8m", str(cache), "--out", str(tmp_path / "yt8m"), "--videos-per-shard", "8"]) == 0
    shards = sorted((tmp_path / "yt8m").glob("vidrnn*.tfrecord"))
    assert len(shards) == 3  # 20 videos, 8 per shard
    got = [v for s in shards for v in read_yt8m(s, features=("rgb",))]
    classes = json.loads((cache / "meta.json").read_text())["data"]
    assert len(got) == 20 and all(len(v["labels"]) == 1 for v in got) and classes["source"] == "folder"
    by_path = {v["id"]: v for v in got}
    js = next((cache / "features").glob("*.json"))
    original = np.load(js.with_suffix(".npy")).astype(np.float32)
    back = by_path[json.loads(js.read_text())["path"]]["features"]
    assert back.shape == original.shape
    inside = np.abs(original) < 2
    assert np.abs(back - original)[inside].max() <= 2 / 255 + 1e-3  # 8-bit quantisation of [-2, 2]
    assert main(["export-yt8m", str(cache), "--out", str(tmp_path / "yt8m")]) == 2  # nothing overwritten
