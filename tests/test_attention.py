import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrnn.layers.attention import (AdditiveAttention, DotProductAttention, GeneralAttention, LuongOutput,
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
