"""3D CNNs: torchvision's video ResNets load into ours with identical outputs, the (2+1)D unit's
parameter budget, the P3D blocks, DropPath and VariationalDropPath, and weights=PATH."""

import math

import pytest
import torch
import torchvision.models.video as tvv

from vidrnn import create_model
from vidrnn.layers.conv3d import (Conv2Plus1D, Conv3DSimple, P3DBlock, VariationalDropPath, midplanes)
from vidrnn.models.cnn3d import KINETICS_MEAN, KINETICS_STD


@pytest.mark.parametrize("name", ["r3d_18", "mc3_18", "r2plus1d_18"])
def test_torchvision_state_dicts_load_with_identical_outputs(name):
    torch.manual_seed(0)
    theirs = getattr(tvv, name)(weights=None, num_classes=7).eval()
    ours = create_model(name, num_classes=7).eval()
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)  # same keys, same order, same shapes
    ours.load_state_dict(a)
    clip = torch.rand(2, 4, 3, 32, 32)  # ours: (B, T, C, H, W) in [0, 1]
    mean, std = torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1), torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1)
    with torch.no_grad():
        expected = theirs((clip.transpose(1, 2) - mean) / std)  # torchvision: normalised (B, C, T, H, W)
        torch.testing.assert_close(ours(clip).logits, expected, rtol=1e-4, atol=1e-5)


def test_weights_path_loads_a_torchvision_file_and_refuses_others(tmp_path):
    torch.manual_seed(0)
    theirs = tvv.r2plus1d_18(weights=None).eval()
    path = tmp_path / "r2plus1d_18_kinetics.pth"
    torch.save(theirs.state_dict(), path)
    ours = create_model("r2plus1d_18", weights=str(path)).eval()
    clip = torch.rand(1, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(clip).logits, theirs((clip.transpose(1, 2) - torch.tensor(KINETICS_MEAN).view(
            1, 3, 1, 1, 1)) / torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1)), rtol=1e-4, atol=1e-5)
    tuned = create_model("r2plus1d_18", num_classes=5, weights=str(path))  # fine-tuning: a new classifier
    torch.testing.assert_close(tuned.stem[0].weight, theirs.stem[0].weight)
    assert tuned.fc.out_features == 5
    with pytest.raises(ValueError, match="not a state dict of VideoResNet"):
        create_model("r3d_18", weights=str(path))  # another architecture
    (tmp_path / "broken.pth").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="broken.pth.*not a readable state dict"):
        create_model("r2plus1d_18", weights=str(tmp_path / "broken.pth"))
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        create_model("r2plus1d_18", weights=str(tmp_path / "nowhere.pth"))


def test_weights_file_with_code_is_refused_and_nothing_runs(tmp_path):
    import pickle

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"stem.0.weight": Evil()}, protocol=2))
    with pytest.raises(ValueError, match="evil.pth"):
        create_model("r3d_18_tiny", weights=str(path))
    assert not marker.exists()


@pytest.mark.parametrize("cin,cout", [(64, 64), (64, 128), (128, 256), (3, 64), (256, 512)])
def test_conv2plus1d_has_the_parameters_of_the_3d_convolution(cin, cout):
    full = sum(p.numel() for p in Conv3DSimple(cin, cout).parameters())
    unit = Conv2Plus1D(cin, cout)
    m = midplanes(cin, cout)
    convs = sum(p.numel() for n, p in unit.named_parameters() if p.dim() == 5)
    assert convs == m * (9 * cin + 3 * cout)  # 1x3x3: in -> M, 3x1x1: M -> out
    assert 0 <= full - convs < 9 * cin + 3 * cout  # equal up to the floor in M
    x = torch.rand(1, cin, 4, 8, 8)
    assert unit(x).shape == Conv3DSimple(cin, cout)(x).shape == (1, cout, 4, 8, 8)


@pytest.mark.parametrize("kind", ["A", "B", "C"])
def test_p3d_blocks_are_serial_parallel_and_serial_with_shortcut(kind):
    torch.manual_seed(0)
    block = P3DBlock(16, 4, kind).eval()
    x = torch.rand(2, 16, 4, 8, 8)
    with torch.no_grad():
        y = block.reduce(x)
        s, t = block.spatial, block.temporal
        inner = {"A": t(s(y)), "B": s(y) + t(y), "C": s(y) + t(s(y))}[kind]
        torch.testing.assert_close(block(x), torch.relu(block.expand(inner) + x))
    assert P3DBlock(16, 8, kind, stride=2, temporal_stride=2)(x).shape == (2, 32, 2, 4, 4)


def test_variational_droppath_is_unbiased_hard_at_eval_and_learns_its_rate():
    torch.manual_seed(0)
    vdp = VariationalDropPath(p=0.3, temperature=0.05)
    x = torch.ones(20000, 3)
    y = vdp(x)
    assert abs(y.mean().item() - 1.0) < 0.03  # E[y] = x
    dropped = (y[:, 0] < 0.5).float().mean().item()
    assert abs(dropped - 0.3) < 0.03  # near-hard samples at a low temperature, dropped at rate p
    assert torch.equal(y[:, 0], y[:, 1])  # one mask per sample (a path, not units)
    y.sum().backward()
    assert vdp.p_logit.grad is not None and vdp.p_logit.grad.abs() > 0
    vdp.eval()
    assert torch.equal(vdp(x), x)  # p < 0.5: kept, exactly
    vdp.set_keep(False)
    assert torch.equal(vdp(x), torch.zeros_like(x))
    assert math.isclose(vdp.marginal(), 1 - math.sqrt(float(vdp.p.detach())))
    vdp.enabled = False  # warm-up: a plain path in training, the mask still applies at evaluation
    assert torch.equal(vdp(x), torch.zeros_like(x))
    vdp.train()
    assert torch.equal(vdp(x), x)


def test_variational_droppath_regulariser_by_hand():
    vdp = VariationalDropPath(p=0.2)
    p = float(vdp.p.detach())
    assert math.isclose(p, 0.2, rel_tol=1e-5)
    got = vdp.regulariser(torch.tensor(50.0), num_samples=1000, length_scale=0.1).item()
    assert math.isclose(got, p * math.log(p) + 0.1 ** 2 * (1 - p) * 50.0 / 2000, rel_tol=1e-5)
    g = torch.autograd.grad(vdp.regulariser(torch.tensor(50.0), 1000, 0.1), vdp.p_logit)[0]
    assert g.abs() > 0


@pytest.mark.parametrize("name", ["c3d_tiny", "r3d_18_tiny", "mc3_18_tiny", "r2plus1d_18_tiny", "p3d_tiny"])
def test_clip_models_refuse_frames_in_the_wrong_layout(name):
    m = create_model(name, num_classes=3)
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        m(torch.rand(2, 3, 8, 32, 32))  # torch's (B, C, T, H, W) by mistake


@pytest.mark.parametrize("name", ["r2plus1d_18_tiny", "fusion_template_tiny"])
def test_channels_last_3d_gives_the_same_outputs_and_gradients(name):
    from vidrnn.tasks.classification import ClassificationTask

    torch.manual_seed(0)
    ref = ClassificationTask(name, {}, ["a", "b", "c"]).eval()
    cl = ClassificationTask(name, {}, ["a", "b", "c"], channels_last=True).eval()
    cl.load_state_dict(ref.state_dict())
    conv = next(m for m in cl.model.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d) and conv.weight.stride()[1] == 1
    x = torch.rand(2, 8, 3, 32, 32)
    a, b = ref(x), cl(x)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    ga = torch.autograd.grad(a.sum(), ref.model.fc.weight)[0]
    gb = torch.autograd.grad(b.sum(), cl.model.fc.weight)[0]
    torch.testing.assert_close(gb, ga, atol=1e-5, rtol=1e-4)


def test_channels_last_is_refused_for_frame_models():
    from vidrnn.errors import ConfigError
    from vidrnn.tasks.classification import ClassificationTask

    with pytest.raises(ConfigError, match="channels_last: lrcn_tiny does not convolve clips"):
        ClassificationTask("lrcn_tiny", {}, ["a", "b"], channels_last=True)


# ------------------------------------------------------------------------------ the fusion template
def test_triplets_round_trip_and_presets_express_the_classic_strategies():
    import numpy as np

    from vidrnn.models.fusion_template import preset_triplets

    torch.manual_seed(0)
    t = create_model("fusion_template_tiny", num_classes=3, units=["S", "T", "ST", "3D"])
    s = t.sample_strategy(np.random.default_rng(1))
    t.from_triplets(s)
    assert t.to_triplets() == s
    fixed = create_model("fusion_template_tiny", num_classes=3, units=["S", "T", "ST", "3D"], strategy=s)
    assert fixed.to_triplets() == s
    for name, units in [("all-3D", {"3D"}), ("all-S+ST", {"S", "ST"}), ("all-S", {"S"})]:  # C3D-, R(2+1)D+S-, 2D-like
        trip = preset_triplets(name, [2, 2])
        assert [t["inputs"] for t in trip] == [[1], [0, 1], [1], [0, 1]]  # a plain chain
        net = create_model("fusion_template_tiny", num_classes=3, strategy=name)
        assert {u for layer in net.stages for lay in layer for u in lay.units} == units
    with pytest.raises(ValueError, match="4 layers"):
        create_model("fusion_template_tiny", strategy=s[:3])
    with pytest.raises(ValueError, match="'all-S', 'all-T'"):
        create_model("fusion_template_tiny", strategy="all-X")


def test_a_strategy_with_the_template_weights_equals_the_masked_template():
    import numpy as np

    torch.manual_seed(0)
    t = create_model("fusion_template_tiny", num_classes=3, warmup_epochs=2).eval()  # loaded before DropPath began
    s = t.sample_strategy(np.random.default_rng(3))
    t.from_triplets(s)
    fixed = create_model("fusion_template_tiny", num_classes=3, strategy=s).eval()
    missing, unexpected = fixed.load_state_dict(t.state_dict(), strict=False)
    assert not missing and all("_paths" in k or ".units." in k for k in unexpected)
    clip = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fixed(clip).logits, t(clip).logits)  # the sub-network, no retraining


def test_template_training_adds_the_regulariser_and_learns_the_rates():
    torch.manual_seed(0)
    t = create_model("fusion_template_tiny", num_classes=3, warmup_epochs=1)
    clip, y = torch.rand(4, 4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    t.set_epoch(0)  # warm-up: plain paths, no regulariser
    assert "droppath" not in t(clip).aux_losses
    t.set_epoch(1)
    out = t(clip)
    loss = torch.nn.functional.cross_entropy(out.logits, y) + out.aux_losses["droppath"]
    loss.backward()
    rates = [vdp.p_logit.grad for _, _, _, vdp, _ in t.paths()]
    assert len(rates) == 4 * 2 + (1 + 2) * 2 and all(g is not None and g.abs() > 0 for g in rates)
    groups = t.param_groups()
    assert groups[1]["lr_scale"] == 10.0 and len(groups[1]["params"]) == len(rates)
    m = t.marginals()
    assert set(m[0]["units"]) == {"S", "ST"} and list(m[1]["inputs"]) == [0, 1]
    heavier = create_model("fusion_template_tiny", num_classes=3, prior_weight=3.0)
    heavier.load_state_dict(t.state_dict())
    torch.testing.assert_close(heavier.regulariser(), 3 * t.regulariser())


def test_fusion_commands_end_to_end_on_a_tiny_template(tmp_path, capsys):
    import json

    import yaml

    from vidrnn.cli import main

    run = tmp_path / "template"
    small = ["data.digits.num_train=48", "data.digits.num_val=24", "data.digits.num_test=16", "data.num_workers=0",
             "model.stages=[[8, 2], [8, 1]]"]
    assert main(["fit", "-c", "fusion_template_motion", "trainer.max_epochs=2", "--run-dir", str(run), *small]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    assert main(["fusion-report", str(ckpt)]) == 0
    assert (run / "fusion_report" / "fusion_bars.png").stat().st_size > 1000
    assert (run / "fusion_report" / "fusion_heatmap.png").stat().st_size > 1000
    summary = json.loads((run / "fusion_report" / "fusion_summary.json").read_text())
    marginals = json.loads((run / "fusion_report" / "fusion_marginals.json").read_text())
    assert summary["units"]["ST"]["low"] == pytest.approx((marginals[0]["units"]["ST"] + marginals[1]["units"]["ST"]) / 2)
    assert summary["units"]["S"]["high"] == pytest.approx(marginals[2]["units"]["S"])
    # two templates side by side (here the same one twice)
    assert main(["fusion-report", str(ckpt), str(ckpt), "--labels", "motion,again"]) == 2
    assert "--out is required" in capsys.readouterr().err
    assert main(["fusion-report", str(ckpt), str(ckpt), "--labels", "motion,again", "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "fusion_compare.png").stat().st_size > 1000
    assert (tmp_path / "cmp" / "again" / "fusion_bars.png").is_file()
    both = json.loads((tmp_path / "cmp" / "fusion_compare.json").read_text())
    assert both["motion"]["marginals"] == both["again"]["marginals"] == marginals
    assert main(["fusion-search", str(ckpt), "-n", "6"]) == 0
    result = json.loads((run / "fusion_search" / "fusion_search.json").read_text())
    assert sum(r["draws"] for r in result["ranking"]) == 6 and set(result["presets"]) == {"all-S", "all-ST", "all-S+ST"}
    scores = [r["val_top1"] for r in result["ranking"]]
    assert scores == sorted(scores, reverse=True)
    assert main(["fusion-search", str(ckpt), "-n", "6"]) == 2  # nothing overwritten
    assert "exists" in capsys.readouterr().err
    best = yaml.safe_load((run / "fusion_search" / "best_strategy.yaml").read_text())
    assert best["model"]["strategy"] == result["best"]
    # fine-tune the best strategy from the template's weights
    assert main(["fit", "-c", str(run / "fusion_search" / "best_strategy.yaml"), "trainer.max_epochs=1",
                 "--run-dir", str(tmp_path / "best")]) == 0
    lrcn = tmp_path / "lrcn"
    assert main(["fit", "model.name=lrcn_tiny", "trainer.max_epochs=1", "--run-dir", str(lrcn), *small[:4]]) == 0
    assert main(["fusion-search", str(lrcn / "checkpoints" / "last.ckpt")]) == 2
    assert "not a fusion template" in capsys.readouterr().err
