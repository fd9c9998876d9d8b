"""Optical flow (vidrnn.io.flow), flow clips, flow-stream models and late fusion (vidrnn fuse)."""

import json

import numpy as np
import pytest
import torch

from vidrnn.cli import main
from vidrnn.data.flow import FlowClips
from vidrnn.io.flow import (FlowSettings, dequantise_flow, flow_clip, flow_to_unit, optical_flow, quantise_flow,
                            stack_flow)


@pytest.fixture(scope="module")
def frame(shared_data):
    from vidrnn.io.decode import VideoReader

    with VideoReader(shared_data / "videos" / "clips" / "arm_wrestling.mp4") as r:
        return r.get_frames_at(np.array([1.0]))[0][0].permute(1, 2, 0).numpy()  # (H, W, 3) uint8


@pytest.mark.parametrize("method", ["dis", "farneback"])
@pytest.mark.parametrize("dx, dy", [(3, -2), (-5, 4), (1, 1)])
def test_flow_of_a_shifted_copy_recovers_the_shift(frame, method, dx, dy):
    shifted = np.roll(np.roll(frame, dy, axis=0), dx, axis=1)  # content moves by (dx, dy) pixels
    flow = optical_flow(np.stack([frame, shifted]), method)
    assert flow.shape == (1, 2) + frame.shape[:2] and flow.dtype == np.float32
    inner = flow[0, :, 24:-24, 24:-24]  # the interior: away from the wrapped border
    assert abs(np.median(inner[0]) - dx) < 0.5 and abs(np.median(inner[1]) - dy) < 0.5
    if method == "dis":
        assert np.mean(np.abs(inner[0] - dx)) < 0.5 and np.mean(np.abs(inner[1] - dy)) < 0.5


def test_quantisation_round_trip_and_stacks():
    f = np.random.default_rng(0).uniform(-30, 30, size=(5, 2, 6, 7)).astype(np.float32)
    q = quantise_flow(f, 20)
    assert q.dtype == np.uint8
    back = dequantise_flow(q, 20)
    inside = np.abs(f) <= 20
    assert np.abs(back - f)[inside].max() <= 20 / 255 + 1e-5  # half a step of 40/255 px
    assert np.array_equal(back[~inside], np.sign(f[~inside]) * 20)  # clipped at the bound
    assert flow_to_unit(np.zeros(1), 20)[0] == 0.5
    s = stack_flow(flow_to_unit(f), 3)
    assert s.shape == (3, 6, 6, 7)
    assert np.array_equal(s[1, 2:4], flow_to_unit(f)[2])  # input 1 holds fields 1, 2, 3: x/y of field 2 at 2:4
    with pytest.raises(ValueError, match="too few for a stack of 6"):
        stack_flow(f, 6)
    with pytest.raises(ValueError, match="too short for a flow stack of 3"):
        flow_clip(torch.rand(3, 3, 8, 8), FlowSettings(stack=3))


def test_flow_clips_skip_clips_too_short_for_a_stack():
    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"video": torch.rand(1, 4 if i == 0 else 2, 3, 16, 16), "label": 0, "index": i}

    ds = FlowClips(Clips(), FlowSettings(stack=2))
    assert ds[0]["video"].shape == (1, 2, 4, 16, 16)  # 3 fields -> 2 stacks of 2 fields (4 channels)
    assert "too short for a flow stack of 2" in ds[1]["error"] and ds[1]["skipped"] == "item 1"


def test_the_flow_encoder_starts_from_the_rgb_weights_averaged():
    from vidrnn.layers.encoders import create_frame_encoder

    torch.manual_seed(0)
    rgb = create_frame_encoder("tiny")
    torch.manual_seed(0)
    flow = create_frame_encoder("tiny", in_channels=6)
    w_rgb, w_flow = rgb.trunk.blocks[0][0].weight, flow.trunk.blocks[0][0].weight
    assert w_flow.shape[1] == 6 and torch.allclose(w_flow, w_rgb.mean(1, keepdim=True).expand_as(w_flow))
    assert flow.config["in_channels"] == 6 and flow.mean.shape == (1, 6, 1, 1)
    assert flow(torch.rand(2, 3, 6, 32, 32)).shape == (2, 3, 128)
    with pytest.raises(ValueError, match=r"\(B, T, 6, H, W\)"):
        flow(torch.rand(2, 3, 3, 32, 32))


DIGITS = ["trainer.max_epochs=3", "data.num_workers=0", "data.digits.num_train=400", "data.digits.num_val=64",
          "data.digits.num_test=64"]


def test_flow_stream_end_to_end_then_fused_with_rgb(tmp_path, shared_data, capsys):
    flow, rgb = tmp_path / "flow", tmp_path / "rgb"
    assert main(["fit", "-c", "lrcn_flow_digits", "--run-dir", str(flow), *DIGITS]) == 0
    assert main(["fit", "model.name=avg_pooling_tiny", "--run-dir", str(rgb), *DIGITS]) == 0
    f_acc = json.loads((flow / "summary.json").read_text())["metrics"]["test/top1"]
    r_acc = json.loads((rgb / "summary.json").read_text())["metrics"]["test/top1"]
    # the direction of motion: flow sees it, an order-blind average of RGB frames cannot
    assert f_acc > 0.9 and r_acc < 0.5
    # predict from raw video: the checkpoint computes the flow of the sampled frames itself
    clip = shared_data / "videos" / "clips" / "arm_wrestling.mp4"
    out = tmp_path / "p.json"
    assert main(["predict", str(flow / "checkpoints" / "best.ckpt"), str(clip), "-o", str(out)]) == 0
    assert len(json.loads(out.read_text())["results"][0]["topk"]) == 4
    capsys.readouterr()
    args = ["fuse", str(rgb / "checkpoints" / "best.ckpt"), str(flow / "checkpoints" / "best.ckpt")]
    assert main([*args, "--weights", "1:2", "-o", str(tmp_path / "f.json")]) == 0
    r = json.loads((tmp_path / "f.json").read_text())
    assert r["weights"] == pytest.approx([1 / 3, 2 / 3]) and r["chosen_on"] == "given"
    assert r["test"]["first"] == pytest.approx(r_acc, abs=1e-4) and r["test"]["second"] == pytest.approx(f_acc, abs=1e-4)
    assert r["test"]["videos"] == 64
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "chosen on the validation split" in printed and "test       64" in printed
    assert main([*args, "--weights", "1:x"]) == 2


def test_stream_and_export_refuse_flow_streams_clearly(tmp_path, shared_data, capsys):
    run = tmp_path / "flow"
    assert main(["fit", "-c", "lrcn_flow_digits", "--run-dir", str(run), "trainer.max_epochs=1", "data.num_workers=0",
                 "data.digits.num_train=16", "data.digits.num_val=8", "data.digits.num_test=8"]) == 0
    ckpt, clip = str(run / "checkpoints" / "last.ckpt"), str(shared_data / "videos" / "clips" / "arm_wrestling.mp4")
    capsys.readouterr()
    assert main(["stream", ckpt, clip]) == 2
    assert "is a flow stream" in capsys.readouterr().err
    assert main(["export", ckpt, "--out", str(tmp_path / "x")]) == 2
    assert "is a flow stream" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_extract_flow_caches_what_a_fresh_computation_gives_and_resumes(tmp_path, shared_data, capsys):
    from vidrnn.inference.flow import extract_flow
    from vidrnn.io.decode import VideoReader

    clip = shared_data / "videos" / "clips" / "arm_wrestling.mp4"
    out = tmp_path / "cache"
    stats = extract_flow(out, videos=[str(clip)], fps=5, decode_size=64, chunk=7, progress=False)  # chunks of 7
    assert stats["done"] == 1 and stats["failed"] == 0
    (npy,) = (out / "flow").glob("*.npy")
    cached = np.load(npy)
    info = json.loads(npy.with_suffix(".json").read_text())
    times = np.array(info["times"] + [info["times"][-1] + 0.2])  # each field's first frame, then the last frame
    with VideoReader(clip, size=64) as r:
        frames = r.get_frames_at(times)[0].permute(0, 2, 3, 1).numpy()
    fresh = quantise_flow(optical_flow(frames, "dis"), 20)
    assert cached.dtype == np.uint8 and cached.shape == fresh.shape == (len(times) - 1, 2, 64, 85)
    assert np.array_equal(cached, fresh)
    again = extract_flow(out, videos=[str(clip)], fps=5, decode_size=64, progress=False)
    assert again["already_done"] == 1 and again["done"] == 0
    with pytest.raises(Exception, match="other settings .*fps: 5.0 vs 10.0"):
        extract_flow(out, videos=[str(clip)], fps=10, decode_size=64, progress=False)
    # a video too short for flow: counted, named, nothing left behind
    from vidrnn.io.write import write_mp4

    short = write_mp4(torch.zeros(1, 32, 32, 3, dtype=torch.uint8), tmp_path / "one_frame.mp4", fps=5)
    capsys.readouterr()
    assert main(["extract-flow", str(short), "--out", str(tmp_path / "c2"), "--fps", "5", "--no-progress"]) == 1
    assert "failed                1" in capsys.readouterr().out and not list((tmp_path / "c2" / "flow").iterdir())


def test_the_flow_stream_trains_from_an_extract_flow_cache(tmp_path, shared_data, capsys):
    cache, run = tmp_path / "cache", tmp_path / "run"
    assert main(["extract-flow", "--config", "lrcn_flow_asl", "--out", str(cache), "--fps", "10",
                 "--decode-size", "48", "--no-progress"]) == 0
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["method"] == "dis" and meta["data"]["source"] == "folder" and len(list(cache.glob("flow/*.json"))) == 20
    assert main(["fit", "-c", "lrcn_flow_asl", "--run-dir", str(run), "model={name: lrcn_flow_tiny, stack: 2}",
                 "data.source=flow_cache", f"data.cache={cache}", "data.num_frames=4", "data.flow={stack: 2}",
                 "data.transform={size: 32}", "data.num_workers=0", "trainer.max_epochs=1"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"]["skipped_videos"] == 0 and "test/top1" in summary["metrics"]
    # the checkpoint computes the same kind of flow from raw video: 10 frames/s, stacks of 2
    out = tmp_path / "p.json"
    walk = shared_data / "videos" / "asl" / "walk.mkv"
    assert main(["predict", str(run / "checkpoints" / "best.ckpt"), str(walk), "-o", str(out)]) == 0
    assert len(json.loads(out.read_text())["results"][0]["topk"]) == 5


def test_the_two_stream_lrcn_reads_rgb_and_computes_its_flow(tmp_path, shared_data):
    from vidrnn import create_model

    torch.manual_seed(0)
    m = create_model("lrcn_two_stream_tiny", num_classes=4, flow_weight=0.75).eval()
    video = torch.rand(2, 6, 3, 32, 32)
    with torch.no_grad():
        fused = m(video).logits.exp()
        rgb = m.streams[0](video).logits.softmax(-1)
        flow = torch.stack([torch.from_numpy(flow_clip(v, m.flow_settings)) for v in video])
        fl = m.streams[1](flow).logits.softmax(-1)
    torch.testing.assert_close(fused, 0.25 * rgb + 0.75 * fl)  # the weighted average of the streams' probabilities
    run = tmp_path / "two"
    assert main(["fit", "--run-dir", str(run), "model.name=lrcn_two_stream_tiny", "trainer.max_epochs=1",
                 "data.num_workers=0", "data.digits.num_train=32", "data.digits.num_val=8",
                 "data.digits.num_test=8"]) == 0
    out = tmp_path / "p.json"
    clip = shared_data / "videos" / "clips" / "arm_wrestling.mp4"
    assert main(["predict", str(run / "checkpoints" / "best.ckpt"), str(clip), "-o", str(out)]) == 0
    assert len(json.loads(out.read_text())["results"][0]["topk"]) == 4


def test_raft_from_a_weights_file(tmp_path):
    """torchvision's RAFT given as a weights file (nothing downloaded): random raft_small weights
    here, so only the loading, the padding to multiples of 8 and the output layout are checked."""
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    weights = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), weights)
    frames = torch.rand(3, 3, 130, 140)
    flow = optical_flow(frames, "raft", raft_weights=str(weights))
    assert flow.shape == (2, 2, 130, 140) and flow.dtype == np.float32 and np.isfinite(flow).all()
    with pytest.raises(ValueError, match="at least 128 x 128 pixels"):
        optical_flow(torch.rand(2, 3, 64, 64), "raft", raft_weights=str(weights))
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not the weights of torchvision's raft_large or raft_small"):
        optical_flow(frames, "raft", raft_weights=str(tmp_path / "other.pth"))
