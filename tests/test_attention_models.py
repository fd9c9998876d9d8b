import pytest
import torch

from vidrnn import create_model
from vidrnn.layers.reinforce import RewardBaseline, reinforce_surrogate
from vidrnn.models.spatial_attention import attention_penalty


def test_attention_penalty_hand_computed():
    w = torch.tensor([[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]])  # (B=1, T=2, N=3)
    # Σ_t l_ti = [1.5, 0.5, 0.0] -> (1-1.5)² + (1-0.5)² + (1-0)² = 0.25 + 0.25 + 1
    torch.testing.assert_close(attention_penalty(w), torch.tensor([1.5]))


@pytest.mark.parametrize("baseline", [0.0, "mean"])
def test_reinforce_gradient_matches_exact_gradient_of_expected_reward(baseline):
    torch.manual_seed(0)
    theta = torch.tensor([0.2, -0.4, 1.0, 0.1], requires_grad=True)
    r = torch.tensor([1.0, -2.0, 0.5, 3.0])
    exact = torch.autograd.grad((theta.softmax(-1) * r).sum(), theta)[0]
    M = 200_000
    dist = torch.distributions.Categorical(logits=theta.expand(M, 4))
    s = dist.sample()
    b = (theta.softmax(-1) * r).sum().detach() if baseline == "mean" else 0.0
    est = -torch.autograd.grad(reinforce_surrogate(dist.log_prob(s), r[s], b).mean(), theta)[0]
    # Monte-Carlo error: per-sample std < 5 here, so 5/sqrt(M) ~ 0.011; allow 0.03
    torch.testing.assert_close(est, exact, atol=0.03, rtol=0)


def test_soft_attention_weights_and_penalty_in_the_output():
    torch.manual_seed(0)
    m = create_model("soft_attention_lstm_tiny", num_classes=3).eval()
    out = m(torch.rand(2, 5, 3, 32, 32))
    logits, w = out.logits, out.attention
    assert logits.shape == (2, 3) and w.shape == (2, 5, 16) and out.attention_map == (4, 4)
    torch.testing.assert_close(out.aux_losses["attention_penalty"], attention_penalty(w).mean())
    assert out.policy is None
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 5))
    with pytest.raises(ValueError, match="3x3 feature maps, got 4x4"):
        create_model("soft_attention_lstm_tiny", num_classes=3, map_size=3)(torch.rand(1, 2, 3, 32, 32))


def test_hard_attention_samples_in_training_and_uses_expectation_in_eval():
    torch.manual_seed(0)
    m = create_model("hard_attention_lstm_tiny", num_classes=3, soft_prob=0.0)
    video = torch.rand(4, 5, 3, 32, 32)
    m.train()
    out = m(video)
    assert out.policy.log_prob.shape == (4,) and (out.policy.log_prob < 0).all()  # 5 sampled steps summed
    nll = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 0]), reduction="none")
    out.policy.surrogate(-nll.detach()).backward()
    assert m.loc.weight.grad is not None and m.loc.weight.grad.abs().sum() > 0  # REINFORCE reaches the locator
    first = m.reward_baseline.value.clone()
    torch.testing.assert_close(first, -nll.detach().mean())  # started at the first rewards
    m(video).policy.surrogate(-(nll.detach() + 1.0))
    torch.testing.assert_close(m.reward_baseline.value, 0.9 * first + 0.1 * (-(nll.detach() + 1.0).mean()))
    m.eval()
    with torch.no_grad():
        a, b = m(video), m(video)
    torch.testing.assert_close(a.logits, b.logits)  # expectation: deterministic
    assert a.policy is None


def test_reward_baseline_survives_a_checkpoint_round_trip():
    b = RewardBaseline(0.9)
    b.update(torch.tensor([-2.0, -1.0]))  # starts at -1.5
    b.update(torch.tensor([0.0]))
    copy = RewardBaseline(0.9)
    copy.load_state_dict(b.state_dict())
    assert bool(copy.started) and float(copy.value) == float(b.value)
    # the next batch continues the average instead of restarting at that batch's mean
    torch.testing.assert_close(copy.update(torch.tensor([5.0])), b.value)
    # checkpoints from before the baseline had its own module still load
    m = create_model("hard_attention_lstm_tiny", num_classes=3)
    sd = {k: v for k, v in m.state_dict().items() if not k.startswith("reward_baseline.")}
    sd["reward_baseline"] = torch.tensor(-0.7)
    m.load_state_dict(sd)
    assert float(m.reward_baseline.value) == pytest.approx(-0.7) and bool(m.reward_baseline.started)


def test_temporal_attention_window_masks_frames_before_the_start():
    torch.manual_seed(0)
    m = create_model("temporal_attention_lstm_tiny", num_classes=3, window=3).eval()
    out = m(torch.rand(2, 4, 3, 32, 32))
    w = out.attention
    assert w.shape == (2, 4, 3) and out.attention_map is None
    assert (w[:, 0, :2] == 0).all() and (w[:, 1, 0] == 0).all()  # no frames before t = 0
    torch.testing.assert_close(w[:, 0, 2], torch.ones(2))
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4))


def test_attention_mass_ratio_hand_computed():
    from vidrnn.metrics.attention import attention_mass_ratio

    box = torch.tensor([[[0.0, 0.0, 20.0, 20.0]]])  # top-left quarter of a 40x40 frame
    uniform = torch.full((1, 1, 4), 0.25)
    torch.testing.assert_close(attention_mass_ratio(uniform, box, (2, 2), (40, 40)), torch.tensor([1.0]))
    on_target = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])
    torch.testing.assert_close(attention_mass_ratio(on_target, box, (2, 2), (40, 40)), torch.tensor([4.0]))
    half = torch.tensor([[[0.0, 0.0, 0.0, 1.0]]])  # the cell holding half of a box straddling two cells
    box2 = torch.tensor([[[20.0, 10.0, 40.0, 30.0]]])
    torch.testing.assert_close(attention_mass_ratio(half, box2, (2, 2), (40, 40)), torch.tensor([0.5 / 0.25]))


def test_distractor_digits_box_follows_the_moving_digit():
    from vidrnn.data.digits import DistractorDigits

    ds = DistractorDigits("test", 4, num_frames=6)
    item = ds[1]
    v, box = item["video"][0], item["box"]
    assert v.shape == (6, 3, 40, 40) and box.shape == (6, 4) and 0 <= item["label"] <= 9
    assert (box[:, 2:] <= 40).all() and (box[:, :2] >= 0).all()
    assert not torch.equal(box[0], box[-1])  # the target moves
    diff = (v[1:] - v[:-1]).abs().sum(1)  # (T-1, S, S): only the target changes
    ys, xs = torch.nonzero(diff.amax(0) > 0, as_tuple=True)
    assert ys.min() >= box[:, 0].min() and ys.max() < box[:, 2].max()
    assert xs.min() >= box[:, 1].min() and xs.max() < box[:, 3].max()
    torch.testing.assert_close(ds[1]["video"], item["video"])  # deterministic


def test_overlay_and_attention_frames():
    from vidrnn.viz.attention import attention_frames, overlay_heatmap

    frames = torch.zeros(3, 3, 8, 8)
    w = torch.zeros(3, 4)
    w[:, 0] = 1.0  # all attention on the top-left cell of a 2x2 map
    img = overlay_heatmap(frames, w, (2, 2), alpha=1.0)
    assert img.shape == (3, 8, 8, 3) and img.dtype.name == "uint8"
    assert img[0, 0, 0].tolist() != img[0, 7, 7].tolist()  # hot corner differs from the cold one
    out = attention_frames(frames, spatial=w, map_size=(2, 2), temporal=torch.full((3, 2), 0.5), title="x", scale=2)
    assert out.shape[0] == 3 and out.shape[2] == 16 and out.shape[1] > 16  # title bar and strip added


def test_predict_writes_attention_overlays(tmp_path, shared_data):
    import json

    from vidrnn import cli

    run = tmp_path / "run"
    assert cli.main(["fit", "--run-dir", str(run), "model.name=soft_attention_lstm_tiny", "trainer.max_epochs=1",
                     "data.num_workers=0", "data.digits.num_train=16", "data.digits.num_val=8",
                     "data.digits.num_test=8", "--no-test"]) == 0
    clip = shared_data / "videos" / "clips" / "ucf101_xvid_320x240.avi"
    out = tmp_path / "att"
    assert cli.main(["predict", str(run / "checkpoints" / "best.ckpt"), str(clip), "--attention", str(out),
                     "--output", str(tmp_path / "p.json")]) == 0
    assert (out / "ucf101_xvid_320x240.mp4").stat().st_size > 0 and (out / "ucf101_xvid_320x240.gif").is_file()
    res = json.loads((tmp_path / "p.json").read_text())["results"][0]
    assert res["attention"]["true"] is None and res["attention"]["predicted"] in ("right", "left", "down", "up")
    import av

    with av.open(str(out / "ucf101_xvid_320x240.mp4")) as c:
        assert c.streams.video[0].frames == 8


@pytest.mark.parametrize("attention", ["soft_attention_lstm_tiny", "hard_attention_lstm_tiny"])
def test_content_scores_with_motion_keys(attention):
    torch.manual_seed(0)
    m = create_model(attention, num_classes=3, score="content", motion_keys=True)
    video = torch.rand(2, 4, 3, 32, 32)
    m(video).logits.sum().backward()
    assert m.loc is None and m.att.U.weight.shape[1] == 2 * m.encoder.map_channels
    assert m.att.U.weight.grad.abs().sum() > 0
    m.eval()
    with torch.no_grad():
        w = m(video).attention
        still = video[:, :1].expand(-1, 4, -1, -1, -1)
        w_still = m(still).attention
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4))
    assert not torch.allclose(w[:, 1:], w_still[:, 1:])  # the scores see what changed between frames


def test_gru_rcn_levels_average_their_predictions():
    torch.manual_seed(0)
    m = create_model("convgru_rcn_tiny", num_classes=3, levels=[1, -1]).eval()
    video = torch.rand(2, 4, 3, 32, 32)
    maps = m.encoder.forward_levels(video, [1, -1])
    assert [tuple(x.shape) for x in maps] == [(2, 4, 16, 8, 8), (2, 4, 32, 4, 4)]
    torch.testing.assert_close(maps[1], m.encoder.forward_maps(video))
    with torch.no_grad():
        frames = m(video).frame_logits  # (B, T, K)
        feats = m.forward_features(maps)
        per_level = [fc(p).softmax(-1) for fc, p in zip(m.fcs, feats.split(m.hidden, -1))]
    torch.testing.assert_close(frames.softmax(-1), (per_level[0] + per_level[1]) / 2)
    m.encoder.read_cache(True)
    with pytest.raises(ValueError, match="intermediate maps"):
        m(maps[1])
    with pytest.raises(ValueError, match="outside the encoder"):
        create_model("convgru_rcn_tiny", levels=[7])


@pytest.mark.parametrize("scope", ["attention", "all"])
def test_reinforce_scope_limits_the_policy_gradient_to_the_attention_scorer(scope):
    torch.manual_seed(0)
    m = create_model("hard_attention_lstm_tiny", num_classes=3, soft_prob=0.0, penalty=0.0, score="content",
                     motion_keys=True, reinforce_scope=scope).train()
    out = m(torch.rand(4, 5, 3, 32, 32))
    out.policy.surrogate(torch.tensor([0.5, 1.0, 2.0, 3.0])).backward()  # REINFORCE + entropy terms only

    def moved(params):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)

    assert moved(m.att.parameters())  # the scorer learns in both scopes
    assert moved(m.encoder.parameters()) == (scope == "all")
    assert moved(m.cell.parameters()) == (scope == "all")
    with pytest.raises(ValueError, match="reinforce_scope"):
        create_model("hard_attention_lstm_tiny", num_classes=3, reinforce_scope="encoder")


def test_stacked_gru_rcn_level_reads_the_level_below():
    torch.manual_seed(0)
    m = create_model("stacked_convgru_rcn_tiny", num_classes=3).eval()
    assert m.levels == [-2, -1] and len(m.fcs) == 1
    video = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        x1, x2 = m.encoder.forward_levels(video, m.levels)  # (2, 4, 16, 8, 8), (2, 4, 32, 4, 4)
        h1, _ = m.stacks[0][0](x1)  # level-1 states (2, 4, 16, 8, 8)
        pooled = torch.nn.functional.max_pool2d(h1.flatten(0, 1), 2).unflatten(0, (2, 4))
        h2, _ = m.stacks[1][0](torch.cat([x2, pooled], dim=2))
        expected = m.fcs[0](h2.mean(dim=(-2, -1)))
        torch.testing.assert_close(m(video).frame_logits, expected)
    with pytest.raises(ValueError, match="two or more levels"):
        create_model("stacked_convgru_rcn_tiny", levels=[-1])
    with pytest.raises(ValueError, match="largest map to the smallest"):
        create_model("stacked_convgru_rcn_tiny", levels=[-1, -2])


def test_multilstm_output_window_averages_the_predictions_made_for_each_frame():
    torch.manual_seed(0)
    m = create_model("temporal_attention_lstm_tiny", num_classes=2, output_window=3).eval()
    h = torch.randn(1, 4, m.cell.hidden_size)
    z = m.fc(h).view(1, 4, 3, 2)  # step t, slot j predicts frame t - 2 + j
    expected = torch.stack([(z[0, 0, 2] + z[0, 1, 1] + z[0, 2, 0]) / 3,
                            (z[0, 1, 2] + z[0, 2, 1] + z[0, 3, 0]) / 3,
                            (z[0, 2, 2] + z[0, 3, 1]) / 2,
                            z[0, 3, 2]])
    torch.testing.assert_close(m.forward_head(h)[0], expected)
    assert m(torch.rand(2, 5, 3, 32, 32)).logits.shape == (2, 2)
