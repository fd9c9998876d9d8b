"""Captioning end to end: every registered captioner, the task's loss, hard attention, scheduled
sampling, the video models, Digit Events, MSVD/MSR-VTT readers, bad media, and the commands
(fit, test, predict with attention figures) on the embedded tasks and the 12 real COCO images."""

import json

import pytest
import torch

from vidrnn import create_model, list_models
from vidrnn.cli import main
from vidrnn.data.caption_datamodule import CaptionDataModule, collate_captions, read_image
from vidrnn.data.captions import read_msrvtt_captions, read_msvd_captions
from vidrnn.data.digit_captions import DigitEvents, event_captions
from vidrnn.errors import DataError
from vidrnn.tasks.captioning import CaptioningTask, caption_loss

V, START, END, PAD = 12, 1, 2, 0
CAPS = torch.tensor([[START, 5, 6, 7, END], [START, 8, END, PAD, PAD], [START, 9, 9, END, PAD]])
TINY = list_models("*_tiny", task="captioning")


def _media(model, B=3):
    return torch.rand(B, 3, 32, 32) if model.media == "image" else torch.rand(B, 4, 3, 32, 32)


def test_every_captioner_has_a_tiny_variant_and_the_baseline_and_video_models_exist():
    names = set(list_models(task="captioning"))
    for n in ("show_attend_tell", "show_tell", "s2vt", "temporal_attention_captioner"):
        assert n in names and f"{n}_tiny" in names


@pytest.mark.parametrize("name", TINY)
def test_every_captioner_teacher_forces_decodes_and_learns(name):
    torch.manual_seed(0)
    m = create_model(name, vocab_size=V)
    x = _media(m)
    out = m(x, CAPS)
    assert out.logits.shape == (3, 4, V)
    if out.attention is not None:
        torch.testing.assert_close(out.attention.sum(-1), torch.ones(3, 4))
    loss, _ = caption_loss(out.logits, CAPS)
    (loss + sum(out.aux_losses.values(), torch.zeros(()))).backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if p.requires_grad and "init" not in n
               and "baseline" not in n), [n for n, p in m.named_parameters() if p.grad is None]
    m.eval()
    for beam in (1, 3):
        tokens, score = m.generate(x, start=START, end=END, beam_size=beam, max_length=6)
        assert tokens.shape[0] == 3 and tokens.shape[1] <= 6 and torch.isfinite(score).all()
    wrong = torch.rand(3, 4, 3, 32, 32) if m.media == "image" else torch.rand(3, 3, 32, 32)
    with pytest.raises(ValueError, match="captions"):
        m(wrong, CAPS)


@pytest.mark.parametrize("name", TINY)
def test_teacher_forcing_with_the_output_layer_after_the_loop_equals_step_by_step(name):
    torch.manual_seed(0)
    m = create_model(name, vocab_size=V).eval()  # eval: dropout off, hard attention takes the expectation
    x = _media(m)
    state, steps = m.initial_state(x), []
    for t in range(CAPS.shape[1] - 1):  # the decoding path: logits one step at a time
        logits, state, _ = m._step(CAPS[:, t], state)
        steps.append(logits)
    torch.testing.assert_close(m(x, CAPS).logits, torch.stack(steps, 1))


def test_padding_a_batch_does_not_change_the_loss():
    torch.manual_seed(0)
    m = create_model("show_attend_tell_tiny", vocab_size=V).eval()
    x = torch.rand(3, 3, 32, 32)
    padded = torch.cat([CAPS, torch.full((3, 3), PAD)], 1)
    a, b = m(x, CAPS), m(x, padded)
    torch.testing.assert_close(caption_loss(a.logits, CAPS)[0], caption_loss(b.logits, padded)[0])
    torch.testing.assert_close(a.aux_losses["attention_penalty"], b.aux_losses["attention_penalty"])


def test_caption_loss_is_the_mean_over_real_tokens():
    logits = torch.randn(2, 3, V)
    caps = torch.tensor([[START, 5, 6, END], [START, 7, END, PAD]])
    mean, per = caption_loss(logits, caps)
    lp = logits.log_softmax(-1)
    hand = -(lp[0, 0, 5] + lp[0, 1, 6] + lp[0, 2, END]), -(lp[1, 0, 7] + lp[1, 1, END])
    torch.testing.assert_close(per, torch.stack(hand))
    torch.testing.assert_close(mean, (hand[0] + hand[1]) / 5)


def test_scheduled_sampling_feeds_the_models_own_words():
    torch.manual_seed(0)
    m = create_model("show_tell_tiny", vocab_size=V).eval()
    x = torch.rand(3, 3, 32, 32)
    tf, own = m(x, CAPS).logits, m(x, CAPS, sample_prob=1.0).logits
    torch.testing.assert_close(tf[:, 0], own[:, 0])  # the first input is always <start>
    greedy, _ = m.generate(x, start=START, end=END, max_length=4)
    # fed only its own words, teacher forcing reproduces greedy decoding up to its first <end>
    for row in range(3):
        ends = (greedy[row] == END).nonzero()
        n = int(ends[0]) + 1 if len(ends) else greedy.shape[1]
        assert torch.equal(own.argmax(-1)[row, :n], greedy[row, :n])


def test_hard_attention_samples_one_region_and_gives_reinforce_terms():
    torch.manual_seed(0)
    m = create_model("show_attend_tell_tiny", vocab_size=V, attention="hard", soft_prob=0.0).train()
    x = torch.rand(3, 3, 32, 32)
    out = m(x, CAPS)
    assert out.policy is not None and (out.policy.log_prob < 0).all() and (out.policy.entropy > 0).all()
    nll = caption_loss(out.logits, CAPS)[1]
    surrogate = out.policy.surrogate(-nll.detach() + torch.tensor([1.0, -1.0, 0.5]))  # rewards differ from b
    surrogate.backward()
    assert m.attention.v.weight.grad.abs().sum() > 0  # REINFORCE reaches the attention scorer
    soft = create_model("show_attend_tell_tiny", vocab_size=V, attention="hard", soft_prob=1.0).train()
    assert torch.equal(soft(x, CAPS).policy.log_prob, torch.zeros(3))  # the expectation: nothing sampled
    assert m.eval()(x, CAPS).policy is None  # evaluation: the expectation, deterministic
    torch.testing.assert_close(m(x, CAPS).logits, m(x, CAPS).logits)


def test_video_captioners_read_the_frames_in_order():
    torch.manual_seed(0)
    for name in ("s2vt_tiny", "temporal_attention_captioner_tiny"):
        m = create_model(name, vocab_size=V).eval()
        x = torch.rand(2, 5, 3, 32, 32)
        a, b = m(x, CAPS[:2]).logits, m(x.flip(1), CAPS[:2]).logits
        assert not torch.allclose(a, b), name  # the same frames in another order: another caption


def test_digit_events_are_deterministic_and_show_their_events_in_order():
    d = DigitEvents("test", 20, num_frames=8, seed=3)
    for i in range(20):
        a, b = d[i], d[i]
        assert torch.equal(a["video"], b["video"]) and a["captions"] == b["captions"]
        assert a["captions"] == event_captions(a["events"]) and len(a["captions"]) == 3
        kinds = [e[0] for e in a["events"]]
        ink = a["video"].sum(dim=(1, 2, 3))
        if kinds == ["appears", "appears"]:
            assert ink[0] == 0 and ink[-1] > 0
        if kinds == ["leaves", "leaves"]:
            assert ink[0] > 0 and ink[-1] == 0
    assert event_captions([("moves", 5, "left"), ("appears", 2, "top")]) == [
        "a 5 moves left then a 2 appears at the top", "first a 5 moves left , then a 2 appears at the top",
        "a 2 appears at the top after a 5 moves left"]
    assert not torch.equal(DigitEvents("train", 2)[0]["video"], DigitEvents("test", 2)[0]["video"])


def test_msvd_and_msrvtt_readers(tmp_path):
    (tmp_path / "v").mkdir()
    for name in ("abc_1_5.avi", "video0.mp4"):
        (tmp_path / "v" / name).write_bytes(b"x")
    txt = tmp_path / "AllVideoDescriptions.txt"
    txt.write_text("# comment\nabc_1_5 A man plays a guitar.\nabc_1_5 someone is playing\nzzz_0_2 a cat\n")
    s = read_msvd_captions(txt, tmp_path / "v")
    assert [it.id for it in s.items] == ["abc_1_5"] and s.items[0].captions[1] == "someone is playing"
    assert s.items[0].split == "train" and len(s.missing) == 1
    csv = tmp_path / "corpus.csv"
    csv.write_text("VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description\n"
                   "abc,1,5,1,x,1,English,a man plays\nabc,1,5,1,x,1,German,ein mann\n")
    assert read_msvd_captions(csv, tmp_path / "v").items[0].captions == ["a man plays"]
    js = tmp_path / "videodatainfo.json"
    js.write_text(json.dumps({"videos": [{"video_id": "video0", "split": "validate"}],
                              "sentences": [{"video_id": "video0", "caption": "a dog runs"}]}))
    s = read_msrvtt_captions(js, tmp_path / "v")
    assert s.items[0].split == "val" and s.items[0].captions == ["a dog runs"]
    bad = tmp_path / "bad.txt"
    bad.write_text("onlyanid\n")
    with pytest.raises(DataError, match="bad.txt:1"):
        read_msvd_captions(bad, tmp_path / "v")


def test_unreadable_images_are_named_and_skipped_in_a_dataset(tmp_path, shared_data):
    broken = tmp_path / "broken.jpg"
    good = sorted((shared_data / "captions" / "coco_examples").glob("*.jpg"))[0]
    broken.write_bytes(good.read_bytes()[:200])  # a truncated JPEG
    with pytest.raises(DataError, match="broken.jpg"):
        read_image(broken, 32)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match="text.png"):
        read_image(tmp_path / "text.png", 32)
    assert read_image(good, 32).shape == (3, 32, 32)
    listing = tmp_path / "list.json"
    items = [{"image_name": n, "captions": ["a photo of something"], "split": s}
             for n, s in (("broken.jpg", "train"), (good.name, "train"), ("missing.jpg", "train"), (good.name, "val"))]
    import shutil

    shutil.copy(good, tmp_path / good.name)
    listing.write_text(json.dumps(items))
    dm = CaptionDataModule({"source": "caption_list", "captions": str(listing), "root": str(tmp_path),
                            "image_size": 32})
    assert dm.missing == [str(tmp_path / "missing.jpg")]
    batch = collate_captions([dm.splits["train"][k] for k in range(len(dm.splits["train"]))])
    assert batch["skipped"] == [str(broken)] and batch["media"].shape == (1, 3, 32, 32)
    items[1]["captions"] = ["  ...  "]
    listing.write_text(json.dumps(items))
    with pytest.raises(DataError, match="no non-empty caption"):
        CaptionDataModule({"source": "caption_list", "captions": str(listing), "root": str(tmp_path)})


def test_task_counts_skipped_and_refuses_config_mistakes(capsys):
    task = CaptioningTask("show_tell_tiny", {}, ["a", "b"])
    assert task.training_step({"media": None, "captions": None, "skipped": ["x.jpg"]}, 0) is None
    assert task.skipped == {"x.jpg"}
    assert main(["fit", "model.name=show_tell_tiny", "data.source=karpathy"]) == 2
    assert "data.captions" in capsys.readouterr().err
    assert main(["fit", "model.name=show_tell_tiny", "trainer.gradient_clip_val=1"]) == 2
    assert "captioning.clip" in capsys.readouterr().err
    assert main(["fit", "model.name=show_tell_tiny", "captioning.beam=3"]) == 2
    assert "beam_size" in capsys.readouterr().err


# ---------------------------------------------------------------------------- commands end to end
@pytest.fixture(scope="module")
def scenes_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cap") / "run"
    code = main(["fit", "model.name=show_attend_tell_tiny", "data.source=digit_scenes", "data.num_train=96",
                 "data.num_val=16", "data.num_test=16", "data.batch_size=16", "trainer.max_epochs=2",
                 "--run-dir", str(run)])
    assert code == 0
    return run


def test_fit_test_and_predict_with_attention_on_digit_scenes(scenes_run, tmp_path, capsys):
    from torchvision.utils import save_image

    from vidrnn.data.digit_captions import DigitScenes

    summary = json.loads((scenes_run / "summary.json").read_text())
    for k in ("test/bleu4", "test/cider", "test/meteor", "test/rouge_l", "val/bleu4"):
        assert k in summary["metrics"]
    assert (scenes_run / "vocab.json").is_file() and summary["vocab_size"] > 20
    ckpt = scenes_run / "checkpoints" / "best.ckpt"
    capsys.readouterr()
    assert main(["test", str(ckpt), "--beam", "3", "-o", str(tmp_path / "t.json")]) == 0
    r = json.loads((tmp_path / "t.json").read_text())
    assert r["captioning"]["beam_size"] == 3 and r["size"] == 16
    image = tmp_path / "scene.png"
    save_image(DigitScenes("test", 1)[0]["image"], image)
    out = tmp_path / "p.json"
    assert main(["predict", str(ckpt), str(image), str(tmp_path / "nope.jpg"), "--beam", "2",
                 "--attention", str(tmp_path / "att"), "-o", str(out)]) == 1  # one input is missing
    res = json.loads(out.read_text())["results"]
    assert res[0]["caption"] and "error" in res[1] and "nope.jpg" in res[1]["error"]
    png = tmp_path / "att" / "scene_attention.png"
    assert res[0]["attention_png"] == str(png) and png.stat().st_size > 1000


def test_video_captioner_end_to_end_with_frame_attention(tmp_path, capsys):
    from vidrnn.io.write import write_mp4

    run = tmp_path / "run"
    assert main(["fit", "model.name=temporal_attention_captioner_tiny", "data.source=digit_events",
                 "data.num_train=48", "data.num_val=8", "data.num_test=8", "data.batch_size=16",
                 "trainer.max_epochs=1", "--run-dir", str(run)]) == 0
    clip = write_mp4(DigitEvents("test", 1)[0]["video"].permute(0, 2, 3, 1), tmp_path / "clip.mp4", fps=8)
    capsys.readouterr()
    assert main(["predict", str(run / "checkpoints" / "best.ckpt"), str(clip), "--attention", str(tmp_path / "a")]) == 0
    assert "clip.mp4:" in capsys.readouterr().out
    assert (tmp_path / "a" / "clip_attention.png").stat().st_size > 1000


def test_show_attend_tell_on_the_twelve_coco_images(shared_data, tmp_path, capsys):
    images = sorted((shared_data / "captions" / "coco_examples").glob("*.jpg"))
    run = tmp_path / "run"
    assert main(["fit", "model.name=show_attend_tell_tiny", "data.source=caption_list",
                 f"data.captions={shared_data / 'captions' / 'magic_mscoco_test_predictions.json'}",
                 f"data.root={shared_data / 'captions' / 'coco_examples'}", "data.memorise=true",
                 "data.image_size=64", "data.batch_size=12", "trainer.max_epochs=2", "--run-dir", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["items"] == {"train": 12, "val": 12, "test": 12} and summary["missing_files"] > 4000
    capsys.readouterr()
    assert main(["predict", str(run / "checkpoints" / "best.ckpt"), *map(str, images[:2]), "--beam", "3"]) == 0
    assert capsys.readouterr().out.count("COCO_val2014_") == 2


def test_video_captioner_trains_from_a_feature_cache_and_captions_raw_video(tmp_path, capsys):
    """MSVD-format captions over real-digit clips: features cached once, S2VT trained on the cache,
    its checkpoint captions the raw video with the cache's encoder."""
    from vidrnn.io.write import write_mp4

    videos = tmp_path / "videos"
    videos.mkdir()
    lines = []
    for i in range(6):
        item = DigitEvents("train", 6)[i]
        write_mp4(item["video"].permute(0, 2, 3, 1), videos / f"clip{i}_0_1.mp4", fps=8)
        lines += [f"clip{i}_0_1 {c}" for c in item["captions"]]
    (tmp_path / "AllVideoDescriptions.txt").write_text("\n".join(lines) + "\n")
    cache = tmp_path / "cache"
    assert main(["extract-features", *map(str, sorted(videos.glob("*.mp4"))), "--out", str(cache), "--encoder", "tiny",
                 "--fps", "8", "--size", "48", "--decode-size", "48"]) == 0
    run = tmp_path / "run"
    assert main(["fit", "model.name=s2vt_tiny", "data.source=msvd", f"data.captions={tmp_path / 'AllVideoDescriptions.txt'}",
                 f"data.root={videos}", f"data.features={cache}", "data.memorise=true", "data.image_size=48",
                 "trainer.max_epochs=1", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["predict", str(run / "checkpoints" / "best.ckpt"), str(videos / "clip0_0_1.mp4")]) == 0
    assert "clip0_0_1.mp4:" in capsys.readouterr().out
    assert main(["fit", "model.name=s2vt_tiny", "data.source=digit_events", f"data.features={cache}"]) == 2
    assert "feature cache serves video files" in capsys.readouterr().err


def test_tiny_encoder_with_group_norm_is_the_same_in_training_and_evaluation():
    from vidrnn.layers.encoders import create_frame_encoder

    torch.manual_seed(0)
    enc = create_frame_encoder("tiny", channels=[8, 16, 32], pool="avg", map_size=6, norm="group")
    x = torch.rand(2, 1, 3, 48, 48)
    torch.testing.assert_close(enc.train()(x), enc.eval()(x))
    assert enc.config["norm"] == "group"
    with pytest.raises(ValueError, match="norm"):
        create_frame_encoder("tiny", norm="layer")
