import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrnn.layers.attention import (AdditiveAttention, DotProductAttention, GeneralAttention, LuongOutput, MapPositions,
                                     MultiHeadAttention, masked_softmax)

B, L, N, D = 3, 4, 6, 8


def _layers():
    return {"dot": DotProductAttention(), "scaled": DotProductAttention(scaled=True), "general": GeneralAttention(D, D),
            "additive": AdditiveAttention(D, D, 16), "multihead": MultiHeadAttention(D, 2)}


@pytest.mark.parametrize("name", list(_layers()))
@pytest.mark.parametrize("single", [True, False])
def test_weights_are_a_distribution_and_masked_positions_get_zero(name, single):
    torch.manual_seed(0)
    layer = _layers()[name]
    q = torch.randn(B, D) if single else torch.randn(B, L, D)
    k, v = torch.randn(B, N, D), torch.randn(B, N, 5 if name != "multihead" else D)
    mask = torch.zeros(B, N, dtype=torch.bool)
    mask[0, 4:] = True
    mask[1, 0] = True
    ctx, w = layer(q, k, v, key_padding_mask=mask)
    assert w.shape == ((B, N) if single else (B, L, N))
    assert ctx.shape[:-1] == w.shape[:-1]
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    wm = w if not single else w[:, None]
    assert (wm[0, :, 4:] == 0).all() and (wm[1, :, 0] == 0).all()
    # masked keys have no influence at all
    k2, v2 = k.clone(), v.clone()
    k2[0, 4:], v2[0, 4:] = 100.0, 100.0
    ctx2, _ = layer(q, k2, v2, key_padding_mask=mask)
    torch.testing.assert_close(ctx2, ctx)


def test_all_masked_row_gives_zeros_not_nan():
    w = masked_softmax(torch.randn(2, 5), torch.tensor([[True] * 5, [False] * 5]))
    assert (w[0] == 0).all() and torch.isclose(w[1].sum(), torch.tensor(1.0))
    ctx, w = MultiHeadAttention(D, 2)(torch.randn(2, D), torch.randn(2, N, D),
                                      key_padding_mask=torch.ones(2, N, dtype=torch.bool))
    assert torch.isfinite(ctx).all() and (w == 0).all()


def test_scaled_dot_product_equals_torch_sdpa():
    torch.manual_seed(0)
    q, k, v = torch.randn(B, L, D), torch.randn(B, N, D), torch.randn(B, N, 5)
    mask = torch.rand(B, N) < 0.3
    mask[:, 0] = False
    ctx, w = DotProductAttention(scaled=True)(q, k, v, key_padding_mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=~mask[:, None, :])
    torch.testing.assert_close(ctx, ref)
    ctx1, _ = DotProductAttention()(q, k, v)  # unscaled = SDPA with scale 1
    torch.testing.assert_close(ctx1, F.scaled_dot_product_attention(q, k, v, scale=1.0))


def test_multihead_equals_nn_multiheadattention():
    torch.manual_seed(0)
    ours, ref = MultiHeadAttention(D, 2), nn.MultiheadAttention(D, 2, batch_first=True)
    with torch.no_grad():
        Wq, Wk, Wv = ref.in_proj_weight.chunk(3)
        bq, bk, bv = ref.in_proj_bias.chunk(3)
        for lin, W, b in ((ours.q_proj, Wq, bq), (ours.k_proj, Wk, bk), (ours.v_proj, Wv, bv)):
            lin.weight.copy_(W), lin.bias.copy_(b)
        ours.out_proj.weight.copy_(ref.out_proj.weight), ours.out_proj.bias.copy_(ref.out_proj.bias)
    q, k = torch.randn(B, L, D), torch.randn(B, N, D)
    mask = torch.zeros(B, N, dtype=torch.bool)
    mask[:, -2:] = True
    ctx, w = ours(q, k, key_padding_mask=mask)
    ctx_ref, w_ref = ref(q, k, k, key_padding_mask=mask, average_attn_weights=True)
    torch.testing.assert_close(ctx, ctx_ref)
    torch.testing.assert_close(w, w_ref)


def test_general_and_additive_follow_their_formulas():
    torch.manual_seed(0)
    q, k = torch.randn(B, D), torch.randn(B, N, D)
    g = GeneralAttention(D, D)
    _, w = g(q, k)
    torch.testing.assert_close(w, torch.einsum("bd,de,bne->bn", q, g.W.weight, k).softmax(-1))
    a = AdditiveAttention(D, D, 16)
    _, w = a(q, k)
    e = a.v(torch.tanh((q @ a.W.weight.T)[:, None] + k @ a.U.weight.T + a.U.bias)).squeeze(-1)
    torch.testing.assert_close(w, e.softmax(-1))
    _, w2 = a(q, k, projected_keys=a.project_keys(k))
    torch.testing.assert_close(w2, w)


def test_luong_output_and_errors():
    out = LuongOutput(5, D, 7)
    c, h = torch.randn(B, 5), torch.randn(B, D)
    torch.testing.assert_close(out(c, h), torch.tanh(torch.cat([c, h], -1) @ out.W_c.weight.T))
    with pytest.raises(ValueError, match="bool"):
        DotProductAttention()(torch.randn(B, D), torch.randn(B, N, D), key_padding_mask=torch.zeros(B, N))
    with pytest.raises(ValueError, match="D_q == D_k"):
        DotProductAttention()(torch.randn(B, 3), torch.randn(B, N, D))
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(6, 4)


def test_map_positions_tell_the_cells_apart_for_any_map_size():
    pos = MapPositions(8)
    for h, w in [(6, 6), (3, 5), (1, 1)]:
        maps = torch.zeros(2, 8, h, w)  # the same (zero) feature everywhere
        out = pos(maps)
        assert out.shape == maps.shape
        cells = out[0].flatten(1).T  # (h*w, 8)
        if h * w > 1:  # every cell's vector is different: the place can be read off it
            assert torch.cdist(cells, cells).add(torch.eye(h * w) * 1e3).min() > 1e-4
        assert torch.equal(out[0], out[1])  # a function of the place only, not of the image
    nn.init.zeros_(pos.proj.weight), nn.init.zeros_(pos.proj.bias)
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(pos(x), x)  # additive: zero weights leave the map unchanged


def test_show_attend_tell_positions_change_the_annotations_by_place_only():
    from vidrnn import create_model
    torch.manual_seed(0)
    plain = create_model("show_attend_tell_tiny", vocab_size=12)
    placed = create_model("show_attend_tell_tiny", vocab_size=12, positions=True)
    placed.load_state_dict(plain.state_dict(), strict=False)  # same CNN and decoder
    images = torch.rand(2, 3, 32, 32)
    a, b = plain.eval().annotations(images), placed.eval().annotations(images)
    shift = b - a  # (B, L, D): the same per-region offset for both images
    assert torch.allclose(shift[0], shift[1], atol=1e-6)
    assert shift[0].std(0).mean() > 1e-3  # and it differs between regions
    out = placed(images, torch.randint(1, 12, (2, 5)))
    assert torch.allclose(out.attention.sum(-1), torch.ones(2, 4), atol=1e-5)
