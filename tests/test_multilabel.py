"""Multi-label (dense per-frame) training: MultiLabelDigits, BCE + mAP in the task, CLI."""

import json

import pytest
import torch

from vidrnn import create_model
from vidrnn.data.digits import MultiLabelDigits
from vidrnn.data.clip_dataset import collate_clips
from vidrnn.tasks.classification import ClassificationTask, average_views


def test_multilabel_digits_labels_follow_events_and_outlast_occlusion():
    d = MultiLabelDigits("train", 50, num_frames=16, occlusion=0.4)
    hidden_but_labelled = 0
    for i in range(len(d)):
        it = d[i]
        video, fl = it["video"][0], it["frame_labels"][0]
        assert video.shape == (16, 3, 32, 32) and fl.shape == (16, 10)
        torch.testing.assert_close(it["label"], fl.amax(0))
        assert 1 <= it["label"].sum() <= 3
        for c in it["label"].nonzero().flatten():
            on = fl[:, c].nonzero().flatten()
            assert 3 <= len(on) <= 8 and (on.diff() == 1).all()  # one contiguous event per class
        blank = video.flatten(1).amax(1) == 0
        hidden_but_labelled += int((blank & (fl.sum(1) > 0)).sum())
        assert not (~blank & (fl.sum(1) == 0)).any()  # nothing shown outside events
    assert hidden_but_labelled > 0
    video, fl, visible = d.make(0, return_visible=True)
    assert not (visible & (fl == 0)).any() and (visible.any(1) == (video.flatten(1).amax(1) > 0)).all()
    torch.testing.assert_close(MultiLabelDigits("train", 5)[3]["video"], d[3]["video"])  # deterministic
    with pytest.raises(ValueError, match="max_events"):
        MultiLabelDigits("train", 5, max_events=5)


def test_collate_stacks_multi_hot_and_frame_labels():
    d = MultiLabelDigits("val", 3)
    b = collate_clips([d[0], d[1], d[2]])
    assert b["label"].shape == (3, 10) and b["label"].dtype == torch.float32
    assert b["frame_labels"].shape == (3, 16, 10)  # (views, T, K)
    # two views of 3 frames and one view of 2: labels follow the clips, padded like them
    a = {"video": torch.zeros(2, 3, 3, 4, 4), "label": torch.tensor([1.0, 0.0]), "index": 0,
         "frame_labels": torch.tensor([[[1.0, 0], [0, 1], [1, 1]], [[0.0, 0], [1, 0], [0, 0]]])}
    c = {"video": torch.zeros(1, 2, 3, 4, 4), "label": torch.tensor([0.0, 1.0]), "index": 1,
         "frame_labels": torch.tensor([[[0.0, 1], [1, 0]]])}
    b = collate_clips([a, c])
    assert b["video"].shape == (3, 3, 3, 4, 4) and b["views"].tolist() == [2, 1]
    torch.testing.assert_close(b["frame_labels"], torch.cat([a["frame_labels"], torch.tensor([[[0.0, 1], [1, 0], [1, 0]]])]))
    assert b["frame_mask"].tolist() == [[True, True, True], [True, True, True], [True, True, False]]
    single = collate_clips([{"video": torch.zeros(1, 2, 3, 4, 4), "label": torch.tensor(3), "index": 0}])
    assert single["label"].dtype == torch.int64 and single["label"].tolist() == [3]  # 0-dim tensor: a class index


def test_multilabel_aggregate_is_the_logit_of_the_mean_probability():
    m = create_model("temporal_attention_lstm_tiny", num_classes=4, multilabel=True)
    z = torch.randn(2, 5, 4)
    torch.testing.assert_close(m.aggregate(z).sigmoid(), z.sigmoid().mean(1))
    views = torch.tensor([2])
    torch.testing.assert_close(average_views(z[0, :2], views, multilabel=True).exp(), z[0, :2].sigmoid().mean(0)[None])


def test_task_trains_per_frame_bce_and_logs_map():
    torch.manual_seed(0)
    task = ClassificationTask("temporal_attention_lstm_tiny", {}, [str(i) for i in range(10)], multilabel=True)
    d = MultiLabelDigits("train", 4)
    batch = collate_clips([d[i] for i in range(4)])
    out = task.model(batch["video"])
    frames = out.frame_logits
    expected = torch.nn.functional.binary_cross_entropy_with_logits(frames, batch["frame_labels"])
    torch.testing.assert_close(task._multilabel_loss(batch, out, batch["label"]), expected)
    masked = {**batch, "frame_mask": batch["frame_mask"].clone()}
    masked["frame_mask"][:, 10:] = False  # as if every clip were padded after frame 10
    expected = torch.nn.functional.binary_cross_entropy_with_logits(frames[:, :10], batch["frame_labels"][:, :10])
    torch.testing.assert_close(task._multilabel_loss(masked, out, batch["label"]), expected)
    task.eval()
    task._eval_step(batch, task.val_metrics, "val")
    with torch.no_grad():
        probs = task.model(batch["video"]).logits.sigmoid()
    from vidrnn.metrics.multilabel import MeanAveragePrecision

    expected_map = MeanAveragePrecision(10)(probs.clamp(1e-6, 1 - 1e-6), batch["label"].long())
    torch.testing.assert_close(task.val_metrics.compute()["val/mAP"], expected_map)
    assert task.val_frame_map.update_count == 1
    logged = {}
    task.log = lambda name, value, **kw: logged.__setitem__(name, value)
    with torch.no_grad():
        task._eval_step(batch, task.val_metrics, "val")
        p = task.model(batch["video"]).logits.sigmoid().clamp(1e-6, 1 - 1e-6)
    torch.testing.assert_close(logged["val/loss"], torch.nn.functional.binary_cross_entropy(p, batch["label"]))
    bad = {**batch, "frame_labels": batch["frame_labels"][:, :-1]}
    with pytest.raises(ValueError, match=r"frame_labels \(4, 15, 10\) do not line up"):
        task._eval_step(bad, task.val_metrics, "val")
    with pytest.raises(ValueError, match="no multi-label outputs"):  # a 3D CNN: no per-frame or pooled scores
        ClassificationTask("c3d_tiny", {}, ["a", "b"], multilabel=True)
    lrcn = ClassificationTask("lrcn_tiny", {}, ["a", "b"], multilabel=True).model  # per-step sigmoids, averaged
    out = lrcn(torch.rand(2, 4, 3, 32, 32))
    torch.testing.assert_close(out.logits.sigmoid(), out.frame_logits.sigmoid().mean(1))


def test_fit_test_predict_multilabel(tmp_path, shared_data):
    from vidrnn.cli import main

    run = tmp_path / "run"
    assert main(["fit", "-c", "temporal_attention_multilabel", "--run-dir", str(run), "trainer.max_epochs=1",
                 "data.num_workers=0", "data.multilabel_digits.num_train=32", "data.multilabel_digits.num_val=16",
                 "data.multilabel_digits.num_test=16"]) == 0
    metrics = json.loads((run / "summary.json").read_text())["metrics"]
    assert {"val/mAP", "val/frame_mAP", "test/mAP", "test/frame_mAP"} <= set(metrics)
    clip = shared_data / "videos" / "clips" / "ucf101_xvid_320x240.avi"
    out = tmp_path / "p.json"
    assert main(["predict", str(run / "checkpoints" / "best.ckpt"), str(clip), "--timeline", "--output", str(out),
                 "--attention", str(tmp_path / "att")]) == 0
    res = json.loads(out.read_text())["results"][0]
    probs = [t["prob"] for t in res["topk"]]
    assert probs == sorted(probs, reverse=True)
    top = {t["label"] for t in res["topk"]}
    assert {t["label"] for t in res["topk"] if t["prob"] >= 0.5} == set(res["present"]) & top
    assert len(res["timeline"]) == 7 and all("present" in sec for sec in res["timeline"])  # 6.6 s video
    assert (tmp_path / "att" / "ucf101_xvid_320x240.gif").is_file()


@pytest.fixture()
def charades(tmp_path, shared_data):
    """Charades-format annotations over real clips (the ASL signs; action times made up)."""
    root = shared_data / "videos" / "asl"
    (tmp_path / "classes.txt").write_text("c000 Waving a hand\nc001 Holding something\nc002 Nodding\n")
    (tmp_path / "train.csv").write_text(
        "id,subject,actions,length\n"
        "again,A,c000 0.00 1.00;c002 0.50 1.50,2.0\n"
        "bird,B,,2.0\n"
        "book,C,c001 0.20 9.00,2.0\n"
        "missing_video,D,c000 0.0 1.0,3.0\n")
    return root, tmp_path


def test_read_charades_csv_and_action_labels(charades, caplog):
    from vidrnn.data.annotations import action_labels, read_charades_csv

    root, d = charades
    samples, classes = read_charades_csv(d / "train.csv", root, classes_file=d / "classes.txt")
    assert classes == ["Waving a hand", "Holding something", "Nodding"]
    assert [s.path.endswith(n) for s, n in zip(samples, ["again.mkv", "bird.mkv", "book.mkv"])] == [True] * 3
    assert samples[0].actions == ((0, 0.0, 1.0), (2, 0.5, 1.5)) and samples[1].actions == () and samples[0].label == -1
    assert "1 of 4 videos are missing" in caplog.text
    expected = torch.tensor([[1, 0, 0], [1, 0, 1], [0, 0, 1], [0, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(action_labels(samples[0].actions, [0.2, 0.7, 1.2, 1.6], 3), expected)
    with pytest.raises(FileNotFoundError, match="missing_video"):
        read_charades_csv(d / "train.csv", root, classes_file=d / "classes.txt", skip_missing=False)
    (d / "bad.csv").write_text("id,actions\nagain,c000 0.0\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: action 'c000 0.0'"):
        read_charades_csv(d / "bad.csv", root)
    (d / "unknown.csv").write_text("id,actions\nagain,c009 0.0 1.0\n")
    with pytest.raises(ValueError, match="'c009' is not in the classes"):
        read_charades_csv(d / "unknown.csv", root, classes_file=d / "classes.txt")
    codes = read_charades_csv(d / "train.csv", root)[1]
    assert codes == ["c000", "c001", "c002"]
    (d / "test.csv").write_text("id,actions\nbook,c002 0.0 1.0\n")  # only one code: still indexed as training
    assert read_charades_csv(d / "test.csv", root, classes=codes)[0][0].actions == ((2, 0.0, 1.0),)
    with pytest.raises(ValueError, match="'c009' is not in the classes"):
        read_charades_csv(d / "unknown.csv", root, classes=codes)


def test_charades_clips_carry_frame_labels_at_their_sampled_times(charades):
    import numpy as np

    from vidrnn.data.datamodule import VideoDataModule
    from vidrnn.data.annotations import action_labels

    root, d = charades
    dm = VideoDataModule({"source": "charades", "root": str(root), "train_csv": str(d / "train.csv"),
                          "test_csv": str(d / "train.csv"), "classes_file": str(d / "classes.txt"),
                          "transform": {"size": 32}, "decode_size": 48, "num_workers": 0,
                          "test_sampler": {"name": "dense", "clip_len": 4, "num_clips": 2}})
    assert dm.multilabel and len(dm.classes) == 3
    ds = dm.splits["test"]
    item = ds[0]
    _, times = ds.load(0, np.random.default_rng(0), return_times=True)  # the eval sampling of item 0
    assert item["video"].shape[:2] == (2, 4) and item["frame_labels"].shape == (2, 4, 3)
    torch.testing.assert_close(item["frame_labels"], action_labels(ds.samples[0].actions, times, 3))
    torch.testing.assert_close(item["label"], torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(ds[1]["label"], torch.zeros(3))  # a video without actions
    b = collate_clips([ds[0], ds[2]])
    assert b["frame_labels"].shape == (4, 4, 3) and b["label"].shape == (2, 3)


def test_fit_on_charades_format_real_clips(charades, tmp_path):
    from vidrnn.cli import main

    root, d = charades
    run = tmp_path / "run"
    assert main(["fit", "--run-dir", str(run), "model.name=temporal_attention_lstm_tiny", "data.source=charades",
                 f"data.root={root}", f"data.train_csv={d / 'train.csv'}", f"data.val_csv={d / 'train.csv'}",
                 f"data.classes_file={d / 'classes.txt'}", "data.transform.size=32", "data.decode_size=48",
                 "data.num_workers=0", "data.batch_size=2", "trainer.max_epochs=1"]) == 0
    metrics = json.loads((run / "summary.json").read_text())["metrics"]
    assert {"val/mAP", "val/frame_mAP"} <= set(metrics)


def test_map_leaves_out_classes_without_positives():
    from sklearn.metrics import average_precision_score

    from vidrnn.metrics.multilabel import MeanAveragePrecision

    p = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.6], [0.7, 0.6, 0.1], [0.4, 0.3, 0.2]])
    y = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0]])  # class 2 never occurs
    m = MeanAveragePrecision(3)
    m.update(p[:2], y[:2])
    m.update(p[2:], y[2:])
    expected = (average_precision_score(y[:, 0], p[:, 0]) + average_precision_score(y[:, 1], p[:, 1])) / 2
    assert float(m.compute()) == pytest.approx(expected)
