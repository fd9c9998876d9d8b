import pytest
import torch

from vidrnn import create_model, list_models
from vidrnn.models.base import ClassifierOutput, aggregation_weights

TINY = list_models("*_tiny", task="classification")
B, T, S, K = 2, 8, 32, 5
#: the models with a per-frame encoder (3D CNNs convolve whole clips: nothing per frame to cache)
FRAME_TINY = [n for n in TINY if getattr(create_model(n, num_classes=K), "input_kind", None) != "clip"]


def _channels(m) -> int:
    """Input channels: 3 (RGB), or 2L for the flow streams."""
    enc = getattr(m, "encoder", None)
    return getattr(enc, "in_channels", 3)


def test_every_family_has_a_tiny_variant():
    full = [n for n in list_models(task="classification") if not n.endswith("_tiny")]
    assert full and all(f"{n}_tiny" in TINY for n in full)


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean.*lrcn"):
        create_model("lrnc")


@pytest.mark.parametrize("name", TINY)
def test_shapes_gradients_finite(name):
    torch.manual_seed(0)
    m = create_model(name, num_classes=K)
    video = torch.rand(B, T, _channels(m), S, S)
    out = m(video)
    assert isinstance(out, ClassifierOutput) and out.logits.shape == (B, K)
    assert torch.isfinite(out.logits).all()
    if out.frame_logits is not None:
        assert out.frame_logits.shape == (B, T, K) and out.frame_weights.shape == (T,)
        torch.testing.assert_close(out.frame_weights.sum(), torch.tensor(1.0))
    loss = out.logits.square().sum() + sum(out.aux_losses.values())
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("name", TINY)
def test_batch_independence_and_eval_determinism(name):
    torch.manual_seed(0)
    m = create_model(name, num_classes=K).eval()
    video = torch.rand(B, T, _channels(m), S, S)
    with torch.no_grad():
        a = m(video).logits
        video2 = video.clone()
        video2[1] = torch.rand(T, _channels(m), S, S)
        b = m(video2).logits
        c = m(video).logits
    torch.testing.assert_close(a[0], b[0])  # sample 0 unaffected by sample 1
    assert not torch.allclose(a[1], b[1])
    torch.testing.assert_close(a, c)


@pytest.mark.parametrize("name", FRAME_TINY)
def test_cached_features_path_equals_video_path(name):
    torch.manual_seed(0)
    m = create_model(name, num_classes=K).eval()
    video = torch.rand(B, T, _channels(m), S, S)
    with torch.no_grad():
        feats = m.encode(video)
        expected = m(video).logits
        m.encoder.read_cache(True)  # the same forward, the encoder now the identity on cached features
        if not torch.is_tensor(feats):  # several encoder levels: a cache holds the last map only
            with pytest.raises(ValueError, match="intermediate maps"):
                m(feats[-1])
            return
        torch.testing.assert_close(m(feats).logits, expected)
        with pytest.raises(ValueError, match="cached .* features of this encoder"):
            m(feats.flatten(2) if feats.dim() == 5 else feats[..., None, None])
        m.encoder.read_cache(False)
        torch.testing.assert_close(m(video).logits, expected)


def test_temporal_order_matters_for_lstm_not_for_average():
    torch.manual_seed(0)
    video = torch.rand(1, T, 3, S, S)
    rev = video.flip(1)
    with torch.no_grad():
        avg = create_model("avg_pooling_tiny", num_classes=K).eval()
        torch.testing.assert_close(avg(video).logits, avg(rev).logits)
        lrcn = create_model("lrcn_tiny", num_classes=K).eval()
        assert not torch.allclose(lrcn(video).logits, lrcn(rev).logits)


def test_aggregation_weights_and_modes():
    torch.testing.assert_close(aggregation_weights("linear", 5), torch.tensor([0, 1, 2, 3, 4.]) / 10)
    torch.testing.assert_close(aggregation_weights("last", 3), torch.tensor([0, 0, 1.]))
    m = create_model("lrcn_tiny", num_classes=3)
    fl = torch.randn(2, 4, 3)
    torch.testing.assert_close(m.aggregate(fl).exp(), fl.softmax(-1).mean(1))  # LRCN: average of per-step softmax
    m.aggregate_mode = "last"
    torch.testing.assert_close(m.aggregate(fl).exp(), fl[:, -1].softmax(-1), atol=1e-6, rtol=1e-5)


def test_local_pooling_fixed_length_and_tdc_short_clip():
    m = create_model("local_pooling_tiny", num_classes=K)
    with pytest.raises(ValueError, match="num_frames=8"):
        m(torch.rand(1, 6, 3, S, S))
    tdc = create_model("time_domain_conv_tiny", num_classes=K)
    assert tdc(torch.rand(1, 2, 3, S, S)).logits.shape == (1, K)  # shorter than the temporal kernel


def test_deep_lstm_paper_configuration_parameter_count():
    m = create_model("deep_lstm", num_classes=101, pretrained=False)
    D, H = m.encoder.feature_dim, 512
    lstm = 4 * H * (D + H) + 8 * H + 4 * (4 * H * (H + H) + 8 * H)  # 5 layers of 512 cells
    assert sum(p.numel() for p in m.rnn.parameters()) == lstm
    assert len(m.rnn.layers) == 5 and m.aggregate_mode == "linear"
    with pytest.raises(ValueError, match="1 to 5"):
        create_model("deep_lstm_tiny", num_layers=6)


def test_builders_take_explicit_typed_arguments():
    import inspect

    from vidrnn.registry import get_model_builder

    for name in list_models():
        params = inspect.signature(get_model_builder(name)).parameters.values()
        assert not any(p.kind is p.VAR_KEYWORD for p in params), name
        untyped = [p.name for p in params if p.annotation is inspect.Parameter.empty]
        assert not untyped, f"{name}: untyped arguments {untyped}"
    with pytest.raises(TypeError, match="explicitly"):
        from vidrnn import register_model

        @register_model
        def loose_builder(**kw):  # noqa: ARG001
            return None


def test_peephole_cell_plugs_into_lrcn():
    m = create_model("lrcn_tiny", num_classes=K, cell="peephole")
    assert m(torch.rand(1, 4, 3, S, S)).logits.shape == (1, K)
    assert any("weight_ci" in n for n, _ in m.named_parameters())
