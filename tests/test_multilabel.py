"""Multi-label (dense per-frame) training: MultiLabelDigits, BCE + mAP in the task, CLI."""

import json

import pytest
import torch

from vidrnn import create_model
from vidrnn.data.digits import MultiLabelDigits
from vidrnn.data.video_folder import collate_clips
from vidrnn.tasks.classification import ClassificationTask, average_views


def test_multilabel_digits_labels_follow_events_and_outlast_occlusion():
    d = MultiLabelDigits("train", 50, num_frames=16, occlusion=0.4)
    hidden_but_labelled = 0
    for i in range(len(d)):
        it = d[i]
        video, fl = it["video"][0], it["frame_labels"]
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
    torch.testing.assert_close(MultiLabelDigits("train", 5)[3]["video"], d[3]["video"])  # deterministic
    with pytest.raises(ValueError, match="max_events"):
        MultiLabelDigits("train", 5, max_events=5)


def test_collate_stacks_multi_hot_and_frame_labels():
    d = MultiLabelDigits("val", 3)
    b = collate_clips([d[0], d[1], d[2]])
    assert b["label"].shape == (3, 10) and b["label"].dtype == torch.float32
    assert b["frame_labels"].shape == (3, 16, 10)


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
    logits, frames = task.forward_views(batch)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(frames, batch["frame_labels"])
    torch.testing.assert_close(task._multilabel_training_step(batch, logits, frames, batch["label"]), expected)
    task._eval_step(batch, task.val_metrics, "val")
    assert 0.0 <= float(task.val_metrics.compute()["val/mAP"]) <= 1.0
    assert task.val_frame_map.update_count == 1
    with pytest.raises(ValueError, match="no multi-label outputs"):
        ClassificationTask("lrcn_tiny", {}, ["a", "b"], multilabel=True)


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
    assert main(["predict", str(run / "checkpoints" / "best.ckpt"), str(clip), "--no-timeline", "--output", str(out),
                 "--attention", str(tmp_path / "att")]) == 0
    res = json.loads(out.read_text())["results"][0]
    assert "present" in res and all(0 <= t["prob"] <= 1 for t in res["topk"])
    assert (tmp_path / "att" / "ucf101_xvid_320x240.gif").is_file()
