import numpy as np
import pytest
import torch

from conftest import write_video
from vidrnn.data.datamodule import VideoDataModule, resolve_annotations
from vidrnn.data.digits import MovingDigits
from vidrnn.data.transforms import build_clip_transform
from vidrnn.data.annotations import (read_annotation_list, read_hmdb51_split, read_kinetics_csv, read_ucf101_split,
                                     scan_video_folder)
from vidrnn.data.clip_dataset import VideoClipDataset, collate_clips
from vidrnn.io.sampling import UniformSampler


def _tiny_video(path, T=12, level=None):
    frames = np.zeros((T, 32, 48, 3), np.uint8)
    for i in range(T):
        frames[i] = (level if level is not None else i * 15) % 256
    return write_video(path, frames)


@pytest.fixture
def folder(tmp_path):
    for cls in ("jump", "run"):
        (tmp_path / "videos" / cls).mkdir(parents=True)
        for k in range(3):
            _tiny_video(tmp_path / "videos" / cls / f"{cls}{k}.mp4")
    return tmp_path / "videos"


def test_video_folder_and_stratified_split(folder):
    samples, classes = scan_video_folder(folder)
    assert classes == ["jump", "run"] and len(samples) == 6
    splits, _ = resolve_annotations({"source": "folder", "root": str(folder), "split": {"val": 0.34, "test": 0.0}})
    assert len(splits["val"]) == 2 and {s.label for s in splits["val"]} == {0, 1}
    assert not set(s.path for s in splits["val"]) & set(s.path for s in splits["train"])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        scan_video_folder(folder / "nowhere")


def test_annotation_list_names_and_segments(folder, tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("# comment\njump/jump0.mp4 jump\nrun/run1.mp4 run 0.1 0.5\n")
    samples, classes = read_annotation_list(lst, root=folder)
    assert classes == ["jump", "run"] and samples[1].start == 0.1 and samples[1].end == 0.5
    bad = tmp_path / "bad.txt"
    bad.write_text("jump/jump0.mp4\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_annotation_list(bad)


def test_ucf101_hmdb51_kinetics_formats(tmp_path):
    split = tmp_path / "ucfTrainTestlist"
    split.mkdir()
    (split / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (split / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g08_c01.avi 2\n")
    (split / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
    train, classes = read_ucf101_split(tmp_path, split, split=1, subset="train")
    test, _ = read_ucf101_split(tmp_path, split, split=1, subset="test")
    assert classes == ["ApplyEyeMakeup", "Archery"] and [s.label for s in train] == [0, 1]
    assert test[0].label == 1 and test[0].path.endswith("Archery/v_Archery_g01_c01.avi")
    with pytest.raises(FileNotFoundError, match="testlist02"):
        read_ucf101_split(tmp_path, split, split=2, subset="test")

    h = tmp_path / "hmdb_splits"
    h.mkdir()
    (h / "brush_hair_test_split1.txt").write_text("a.avi 1 \nb.avi 2 \nc.avi 0 \n")
    (h / "cartwheel_test_split1.txt").write_text("d.avi 2 \n")
    tr, cl = read_hmdb51_split(tmp_path, h, split=1, subset="train")
    te, _ = read_hmdb51_split(tmp_path, h, split=1, subset="test")
    assert cl == ["brush_hair", "cartwheel"] and [s.path.split("/")[-1] for s in tr] == ["a.avi"]
    assert [(s.path.split("/")[-1], s.label) for s in te] == [("b.avi", 0), ("d.avi", 1)]

    root = tmp_path / "k400"
    (root / "abseiling").mkdir(parents=True)
    _tiny_video(root / "abseiling" / "abc_000010_000020.mp4")
    _tiny_video(root / "full_id.mp4")
    csv = tmp_path / "train.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\nabseiling,abc,10,20,train\n"
                   "air drumming,full_id,3,7,train\nair drumming,gone,0,10,train\n")
    ks, kc = read_kinetics_csv(csv, root)
    assert kc == ["abseiling", "air drumming"] and len(ks) == 2  # the missing video is skipped
    assert ks[1].start == 3.0 and ks[1].end == 7.0 and ks[1].path.endswith("full_id.mp4")


def test_clip_dataset_consistent_augmentation_and_bad_file_skipped(folder, tmp_path):
    samples, _ = scan_video_folder(folder)
    broken = folder / "run" / "broken.mp4"
    broken.write_bytes(b"garbage" * 100)
    samples, _ = scan_video_folder(folder)
    tf = build_clip_transform({"size": 16, "hflip": True, "color_jitter": 0.3}, training=True)
    ds = VideoClipDataset(samples, UniformSampler(4), tf, training=True)
    items = [ds[i] for i in range(len(ds))]
    bad = [it for it in items if "skipped" in it]
    assert len(bad) == 1 and bad[0]["skipped"].endswith("broken.mp4")
    good = [it for it in items if "video" in it]
    assert good[0]["video"].shape == (1, 4, 3, 16, 16) and good[0]["video"].dtype == torch.float32
    batch = collate_clips(items)
    assert batch["video"].shape[0] == len(good) and batch["skipped"] == [str(broken)]
    strict = VideoClipDataset(samples, UniformSampler(4), tf, training=False, on_error="raise")
    with pytest.raises(ValueError, match="broken.mp4"):
        [strict[i] for i in range(len(strict))]


def test_same_random_crop_for_every_frame():
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (1, 3, 40, 50), dtype=torch.uint8)
    clip = frame.repeat(6, 1, 1, 1)
    out = build_clip_transform({"size": 24, "scale": (0.2, 0.5), "hflip": True, "color_jitter": 0.4}, training=True)(clip)
    assert out.shape == (6, 3, 24, 24)
    torch.testing.assert_close(out, out[:1].expand_as(out))


def test_moving_digits_deterministic_disjoint_and_order_dependent():
    a, b = MovingDigits("test", 20, seed=3), MovingDigits("test", 20, seed=3)
    assert torch.equal(a[5]["video"], b[5]["video"])
    assert not torch.equal(MovingDigits("test", 20, seed=4)[5]["video"], a[5]["video"])
    labels = [a[i]["label"] for i in range(20)]
    assert set(labels) <= {0, 1, 2, 3} and len(set(labels)) > 1
    v, y = a.make(0)
    # centre of mass moves in the labelled direction, one step per frame
    mass = v.mean(1)
    ys = (mass.sum(2) * torch.arange(32)).sum(1) / mass.sum((1, 2))
    xs = (mass.sum(1) * torch.arange(32)).sum(1) / mass.sum((1, 2))
    d = {0: (0, 1), 1: (0, -1), 2: (1, 0), 3: (-1, 0)}[y]
    assert (torch.sign(torch.diff(ys).mean()), torch.sign(torch.diff(xs).mean())) == tuple(map(float, d))
    # train/val/test digit images are disjoint slices of the 1797 digits
    assert len(MovingDigits("train")._digits) == 1200 and len(MovingDigits("test")._digits) == 297


def test_datamodule_temporal_split_on_real_clips(shared_data):
    dm = VideoDataModule({"source": "folder", "root": str(shared_data / "videos" / "asl"), "label_from": "stem",
                          "split": {"mode": "temporal", "train": [0.0, 0.5], "val": [0.5, 1.0]},
                          "transform": {"size": 32}, "decode_size": 40, "num_workers": 0})
    assert len(dm.classes) == 20 and "test" not in dm.splits
    val = dm.splits["val"]
    s = val.samples[0]
    assert s.frac == (0.5, 1.0)
    item = val[0]
    assert item["video"].shape == (1, 8, 3, 32, 32)


def test_encode_clips_keeps_every_item_whatever_its_length():
    from vidrnn.data.clip_dataset import collate_clips, encode_clips

    items = [{"video": torch.rand(1, T, 3, 8, 8), "label": i, "index": i} for i, T in enumerate((5, 2, 5, 3))]
    items.insert(2, {"skipped": "bad.mp4", "error": "truncated"})
    enc = encode_clips(items, lambda v: v.mean((-1, -2)), batch_size=3)  # (N, T, 3) "features"
    assert len(enc) == 5 and enc[2] == {"skipped": "bad.mp4", "error": "truncated"}
    for it in (enc[i] for i in (0, 1, 3, 4)):
        src = items[it["index"] + (it["index"] >= 2)]
        torch.testing.assert_close(it["features"], src["video"].mean((-1, -2)), atol=1e-3, rtol=1e-3)  # float16
        assert it["frame_size"] == (8, 8) and "video" not in it
    batch = collate_clips([enc[i] for i in range(5)])
    assert batch["features"].shape == (4, 5, 3) and batch["frame_size"] == (8, 8) and batch["skipped"] == ["bad.mp4"]
