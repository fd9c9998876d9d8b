import json

import numpy as np
import pytest
import torch

from vidrnn.cli import main
from vidrnn.data.features import FeatureDataset, load_cache_meta
from vidrnn.inference.features import extract_features
from vidrnn.data.annotations import VideoSample, scan_video_folder
from vidrnn.errors import ConfigError
from vidrnn.layers.encoders import create_frame_encoder

TINY = {"encoder": "tiny", "size": 32, "decode_size": 40}


def test_extract_long_video_at_1fps_matches_direct_encoding(shared_data, tmp_path):
    video = shared_data / "videos" / "clips" / "one-by-one-person-detection.mp4"  # 139.4 s
    stats = extract_features(tmp_path / "c", videos=[str(video)], fps=1.0, batch_size=16, **TINY)
    assert stats["done"] == 1 and stats["frames"] == 140
    key = VideoSample(str(video), -1).key
    feats = np.load(tmp_path / "c" / "features" / f"{key}.npy", mmap_mode="r")
    info = json.loads((tmp_path / "c" / "features" / f"{key}.json").read_text())
    assert isinstance(feats, np.memmap) and feats.shape == (140, 128)
    assert info["times"][:3] == [0.0, 1.0, 2.0] and info["times"][-1] == 139.0
    # the cached rows are the encoder's output for the frames at those times
    from vidrnn.data.transforms import build_clip_transform
    from vidrnn.io import VideoReader

    enc = create_frame_encoder("tiny")
    enc.load_state_dict(torch.load(tmp_path / "c" / "encoder.pt", weights_only=True))
    enc.eval()
    with VideoReader(video, size=40) as r:
        frames, _ = r.get_frames_at([0.0, 77.0, 139.0])
    with torch.no_grad():
        direct = enc(build_clip_transform({"size": 32}, training=False)(frames)[None])[0]
    # float16 keeps 11 significant bits: rounding moves a value by at most half a unit in the last
    # place, 2**-11 of it (plus float32 noise of batching frames differently, and subnormals near 0)
    np.testing.assert_allclose(feats[[0, 77, 139]].astype(np.float32), direct.numpy(), rtol=2**-11, atol=1e-6)


def test_resume_shards_and_settings_guard(shared_data, tmp_path):
    clips = sorted(str(p) for p in (shared_data / "videos" / "asl").glob("*.mkv"))[:4]
    out = tmp_path / "c"
    s0 = extract_features(out, videos=clips, fps=2.0, shard=0, num_shards=2, **TINY)
    assert s0["videos"] == 2 and s0["done"] == 2
    s1 = extract_features(out, videos=clips, fps=2.0, shard=1, num_shards=2, **TINY)
    assert s1["done"] == 2
    again = extract_features(out, videos=clips, fps=2.0, **TINY)  # everything already there: nothing redone
    assert again["already_done"] == 4 and again["done"] == 0
    assert len(list((out / "features").glob("*.npy"))) == 4 and not list((out / "features").glob("*.tmp*"))
    with pytest.raises(ConfigError, match="other settings"):
        extract_features(out, videos=clips, fps=5.0, **TINY)
    with pytest.raises(ConfigError, match="--shard 2"):
        extract_features(out, videos=clips, shard=2, num_shards=2, **TINY)


def test_torchrun_shards_by_rank_and_the_union_equals_one_process(shared_data, tmp_path):
    import os
    import subprocess
    import sys

    clips = sorted(str(p) for p in (shared_data / "videos" / "asl").glob("*.mkv"))[:3]
    args = ["extract-features", *clips, "--encoder", "tiny", "--size", "32", "--decode-size", "40", "--fps", "2"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=0",
                           "-m", "vidrnn", *args, "--out", str(tmp_path / "two")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("extract-features ->") == 2  # each process reports its own shard
    import re

    assert sorted(int(n) for n in re.findall(r"^done\s+(\d+)", done.stdout, re.M)) == [1, 2]  # 3 videos, split
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    one, two = tmp_path / "one" / "features", tmp_path / "two" / "features"
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    for f in one.glob("*.npy"):
        np.testing.assert_array_equal(np.load(two / f.name), np.load(f))


def test_feature_dataset_windows_and_segments(shared_data, tmp_path):
    samples, _ = scan_video_folder(shared_data / "videos" / "asl", label_from="stem")
    samples = samples[:2]
    extract_features(tmp_path / "c", videos=[s.path for s in samples], fps=10.0, **TINY)
    full = FeatureDataset(tmp_path / "c", samples, training=False)
    n = full[0]["features"].shape[1]
    assert full[0]["features"].shape == (1, n, 128)
    win = FeatureDataset(tmp_path / "c", samples, training=False, num_frames=4)[0]["features"]
    assert win.shape[1:] == (4, 128) and win.shape[0] == -(-n // 4)  # windows cover every frame
    torch.testing.assert_close(win[-1, -1], full[0]["features"][0, -1])
    half = VideoSample(samples[0].path, 0, frac=(0.5, 1.0))
    assert FeatureDataset(tmp_path / "c", [half], training=False)[0]["features"].shape[1] < n
    missing = FeatureDataset(tmp_path / "c", [VideoSample("/nowhere/x.mp4", 0)], training=True)[0]
    assert "not in the feature cache" in missing["error"]


@pytest.mark.slow
def test_fit_from_cache_then_predict_raw_video(shared_data, tmp_path):
    out = tmp_path / "cache"
    assert main(["extract-features", "--config", "lrcn_asl", "--out", str(out), "--fps", "4", "--encoder", "tiny",
                 "--size", "32", "--decode-size", "40", "--set", f"data.root={shared_data / 'videos' / 'asl'}"]) == 0
    meta = load_cache_meta(out)
    assert meta["kind"] == "vector" and meta["data"]["label_from"] == "stem"
    run = tmp_path / "run"
    assert main(["fit", "-c", "deep_lstm_features", "--run-dir", str(run), f"data.cache={out}",
                 "model.name=deep_lstm_tiny", "trainer.max_epochs=2", "trainer.accelerator=cpu"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["videos"]["train"] == 20 and summary["skipped_videos"] == []
    clip = shared_data / "videos" / "clips" / "flipping_pancake.mkv"
    res = tmp_path / "p.json"
    assert main(["predict", str(run / "checkpoints" / "best.ckpt"), str(clip), "--output", str(res)]) == 0
    r = json.loads(res.read_text())["results"][0]
    assert r["topk"][0]["label"] in json.loads((run / "classes.json").read_text()).values()
    assert r["timeline"]  # 10.4 s video: per-second labels


def test_batches_across_videos_and_prefetch_give_the_same_cache(shared_data, tmp_path):
    clips = sorted(str(p) for p in (shared_data / "videos" / "asl").glob("*.mkv"))[:3]
    bad = tmp_path / "truncated.mkv"
    bad.write_bytes(open(clips[0], "rb").read()[:3000])
    videos = [clips[0], str(bad), clips[1], clips[2]]
    # batches of 7 frames span videos (each has ~5 at 2 frames/s) and are decoded in a thread
    a = extract_features(tmp_path / "a", videos=videos, fps=2.0, batch_size=7, **TINY)
    b = extract_features(tmp_path / "b", videos=videos, fps=2.0, batch_size=1, prefetch=0, **TINY)
    assert a["done"] == b["done"] == 3 and a["failed"] == b["failed"] == 1 and a["frames"] == b["frames"]
    fa, fb = tmp_path / "a" / "features", tmp_path / "b" / "features"
    assert sorted(p.name for p in fa.iterdir()) == sorted(p.name for p in fb.iterdir())
    assert len(list(fa.glob("*.npy"))) == 3 and not list(fa.glob("*.tmp*"))  # the bad video left nothing
    for f in fa.glob("*.npy"):
        np.testing.assert_allclose(np.load(f).astype(np.float32), np.load(fb / f.name).astype(np.float32),
                                   rtol=2**-10, atol=1e-5)
        assert json.loads((fa / f.with_suffix(".json").name).read_text()) == \
            json.loads((fb / f.with_suffix(".json").name).read_text())
    with pytest.raises(Exception, match="truncated.mkv"):
        extract_features(tmp_path / "c", videos=[str(bad)], on_error="raise", **TINY)
    assert not list((tmp_path / "c" / "features").glob("*.npy*"))


def test_bf16_features_and_keyframe_seek_are_recorded_in_the_cache(shared_data, tmp_path):
    video = str(shared_data / "videos" / "clips" / "bottle-detection.mp4")
    fp32 = extract_features(tmp_path / "f", videos=[video], fps=0.5, **TINY)
    bf16 = extract_features(tmp_path / "b", videos=[video], fps=0.5, precision="bf16", **TINY)
    assert fp32["frames"] == bf16["frames"] == 20
    key = VideoSample(video, -1).key
    x = np.load(tmp_path / "f" / "features" / f"{key}.npy").astype(np.float32)
    y = np.load(tmp_path / "b" / "features" / f"{key}.npy").astype(np.float32)
    assert np.abs(x - y).max() <= 0.05 * np.abs(x).max()  # bf16 keeps 8 significant bits
    assert load_cache_meta(tmp_path / "b")["precision"] == "bf16"
    with pytest.raises(ConfigError, match="precision: bf16 vs fp32"):
        extract_features(tmp_path / "b", videos=[video], fps=0.5, **TINY)
    kf = extract_features(tmp_path / "k", videos=[video], fps=0.5, seek="keyframe", **TINY)
    assert kf["frames"] == 20
    meta = load_cache_meta(tmp_path / "k")
    assert meta["sampler"]["seek"] == "keyframe"
    times = json.loads((tmp_path / "k" / "features" / f"{key}.json").read_text())["times"]
    assert len(set(times)) < 20  # several 2-second times share a keyframe (one every ~8 s), as recorded
