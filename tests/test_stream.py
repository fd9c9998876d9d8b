"""Streaming inference: the recurrent state carried window by window gives the offline outputs."""

import json

import pytest
import torch

from vidrnn import create_model
from vidrnn.cli import main


@pytest.mark.parametrize("name,kw", [("lrcn_tiny", {}), ("deep_lstm_tiny", {}), ("convgru_rcn_tiny", {}),
                                     ("stacked_convgru_rcn_tiny", {}), ("convlstm_rcn_tiny", {}),
                                     ("temporal_attention_lstm_tiny", {"window": 4})])
def test_step_by_chunks_equals_the_offline_forward(name, kw):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, **kw).eval()
    video = torch.rand(2, 11, 3, 32, 32)
    with torch.no_grad():
        offline = model(video).frame_logits
        for sizes in ([1] * 11, [3, 3, 3, 2], [11]):
            state, outs, t = model.init_state(2), [], 0
            for n in sizes:
                logits, state = model.step(video[:, t:t + n], state)
                outs.append(logits)
                t += n
            torch.testing.assert_close(torch.cat(outs, 1), offline, atol=1e-5, rtol=1e-5)


def test_models_without_a_step_are_refused_clearly():
    from vidrnn.inference.stream import StreamRunner

    model = create_model("r2plus1d_18_tiny", num_classes=3)
    assert not getattr(model, "streaming", False)
    multi = create_model("temporal_attention_lstm_tiny", num_classes=3, output_window=2)
    assert not multi.streaming  # each frame's label uses later frames
    with pytest.raises(NotImplementedError, match="output_window=2 has no streaming step"):
        multi.step(torch.rand(1, 2, 3, 32, 32))

    class Info:
        task, name, data, class_names, multilabel = "classification", "r2plus1d_18_tiny", {}, ["a", "b", "c"], False

    model.vidrnn = Info()
    with pytest.raises(ValueError, match="has no streaming step"):
        StreamRunner(model)


def test_stream_command_labels_a_real_video_window_by_window(tmp_path, shared_data, capsys):
    run = tmp_path / "lrcn"
    small = ["trainer.max_epochs=1", "data.num_workers=0", "data.digits.num_train=32", "data.digits.num_val=16",
             "data.digits.num_test=16"]
    assert main(["fit", "--run-dir", str(run), *small]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    video = shared_data / "videos" / "clips" / "ucf101_xvid_320x240.avi"  # 6.6 s
    out = tmp_path / "stream.jsonl"
    capsys.readouterr()
    assert main(["stream", str(ckpt), str(video), "--every", "2s", "--fps", "3", "--output", str(out)]) == 0
    lines = [json.loads(s) for s in out.read_text().splitlines()]
    assert [(r["start"], r["frames"]) for r in lines] == [(0.0, 6), (2.0, 6), (4.0, 6), (6.0, 2)]
    assert lines[-1]["end"] == pytest.approx(6.6, abs=0.05)
    printed = capsys.readouterr().out
    assert printed.count(" s  ") >= 4 and "wrote" in printed

    # the windows' state carried: the last "video so far" equals the offline model's mean over the same frames
    from vidrnn.inference.checkpoint import load_model
    from vidrnn.inference.stream import StreamRunner

    runner = StreamRunner(load_model(ckpt), fps=3, every=2.0)
    from vidrnn.io.decode import VideoReader

    import numpy as np

    with VideoReader(video, size=runner.decode_size) as r:
        frames = r.get_frames_at(np.arange(0.0, r.info.duration, 1 / 3))[0]
    with torch.no_grad():
        probs = runner.model(runner.transform(frames)[None]).frame_logits[0].softmax(-1).mean(0)
    assert lines[-1]["video_label"] == runner.classes[int(probs.argmax())]
    assert lines[-1]["video_prob"] == pytest.approx(float(probs.max()), abs=1e-5)
    # bf16 autocast: the same windows, probabilities close to fp32's
    out16 = tmp_path / "stream16.jsonl"
    assert main(["stream", str(ckpt), str(video), "--every", "2s", "--fps", "3", "--precision", "bf16",
                 "--output", str(out16)]) == 0
    lines16 = [json.loads(s) for s in out16.read_text().splitlines()]
    assert [r["frames"] for r in lines16] == [r["frames"] for r in lines]
    assert max(abs(a["video_prob"] - b["video_prob"]) for a, b in zip(lines, lines16)) < 0.03
    # nothing overwritten; bad options named
    assert main(["stream", str(ckpt), str(video), "--output", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["stream", str(ckpt), str(tmp_path / "missing.mp4"), "--output", str(tmp_path / "m.jsonl")]) == 2
    assert "missing.mp4" in capsys.readouterr().err and not (tmp_path / "m.jsonl").exists()
    assert main(["stream", str(ckpt), str(video), "--every", "soon"]) == 2
    assert "--every 'soon'" in capsys.readouterr().err


@pytest.mark.parametrize("kw", [{}, {"score": "content", "motion_keys": True}, {"attention": "hard"}])
def test_spatial_attention_streams_from_the_state_its_first_chunk_initialised(kw):
    torch.manual_seed(0)
    model = create_model("soft_attention_lstm_tiny" if "attention" not in kw else "hard_attention_lstm_tiny",
                         num_classes=5, **{k: v for k, v in kw.items() if k != "attention"}).eval()
    video = torch.rand(2, 10, 3, 32, 32)
    with torch.no_grad():
        maps = model.encode(video)
        # offline, but with the LSTM initialised from the first 3 frames (a stream cannot see the rest)
        want = model.forward_head(model._attend(maps, init_frames=3).hidden)
        state, outs, t = None, [], 0
        for n in (3, 1, 4, 2):
            logits, state = model.step(video[:, t:t + n], state)
            assert model.last_attention.shape == (2, n, model.map_size ** 2)
            outs.append(logits)
            t += n
        torch.testing.assert_close(torch.cat(outs, 1), want, atol=1e-5, rtol=1e-5)
        whole, _ = model.step(video)  # one chunk: exactly the offline forward (Sharma et al.'s initialisation)
        torch.testing.assert_close(whole, model(video).frame_logits, atol=1e-5, rtol=1e-5)


def _numel(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel()
    if isinstance(state, (list, tuple)):
        return sum(_numel(s) for s in state)
    return 0


@pytest.mark.parametrize("name", ["lrcn_tiny", "convlstm_rcn_tiny", "temporal_attention_lstm_tiny",
                                  "soft_attention_lstm_tiny", "convlstm_tiny"])
def test_the_carried_state_does_not_grow_with_the_length(name):
    """Constant memory: whatever has been seen, the state a stream carries has the same size."""
    model = create_model(name, **({} if name == "convlstm_tiny" else {"num_classes": 3})).eval()
    sizes = []
    with torch.no_grad():
        state = None
        for _ in range(30):
            if name == "convlstm_tiny":  # a forecaster observes radar/video frames
                state = model.step(torch.rand(1, 2, 1, 16, 16), state)
                sizes.append(_numel(state["encoder"]) + state["last"].numel())
            else:
                _, state = model.step(torch.rand(1, 2, 3, 32, 32), state)
                sizes.append(_numel(state))
    assert len(set(sizes)) == 1 and sizes[0] > 0


def test_forecast_stream_pushes_frames_one_by_one_and_forecasts_like_predict():
    from vidrnn.inference.stream import ForecastStream

    torch.manual_seed(0)
    model = create_model("convlstm_tiny", num_output=4).eval()
    seq = torch.rand(6, 1, 16, 16)
    fs = ForecastStream(model)
    with pytest.raises(ValueError, match="push at least one frame"):
        fs.forecast()
    fs.push(seq[0])
    fs.push(seq[1:4])
    for f in seq[4:]:
        fs.push(f)
    assert fs.seen == 6
    torch.testing.assert_close(fs.forecast(), model.predict(seq[None])[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="not an encoder-forecaster"):
        ForecastStream(create_model("lrcn_tiny", num_classes=2))
