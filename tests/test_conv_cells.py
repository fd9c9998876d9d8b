import pytest
import torch
import torch.nn as nn

from vidrnn.layers.conv_cells import ConvGRU, ConvGRUCell, ConvLSTM, ConvLSTMCell, TrajGRU, TrajGRUCell


def test_convlstm_1x1_without_peepholes_equals_lstmcell():
    torch.manual_seed(0)
    ref = nn.LSTMCell(5, 7)
    cell = ConvLSTMCell(5, 7, kernel_size=1, peephole=False)
    with torch.no_grad():
        cell.conv_x.weight.copy_(ref.weight_ih[:, :, None, None])
        cell.conv_h.weight.copy_(ref.weight_hh[:, :, None, None])
        cell.bias.copy_(ref.bias_ih + ref.bias_hh)
    x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
    h1, c1 = cell(x[..., None, None], (h[..., None, None], c[..., None, None]))
    h2, c2 = ref(x, (h, c))
    torch.testing.assert_close(h1[..., 0, 0], h2)
    torch.testing.assert_close(c1[..., 0, 0], c2)


def test_convgru_1x1_reset_after_equals_grucell():
    torch.manual_seed(0)
    ref = nn.GRUCell(5, 7)
    cell = ConvGRUCell(5, 7, kernel_size=1, reset_after=True)
    with torch.no_grad():
        cell.conv_x.weight.copy_(ref.weight_ih[:, :, None, None])
        cell.bias.copy_(ref.bias_ih)
        cell.conv_h.weight.copy_(ref.weight_hh[:, :, None, None])
        cell.conv_h.bias.copy_(ref.bias_hh)
    x, h = torch.randn(3, 5), torch.randn(3, 7)
    torch.testing.assert_close(cell(x[..., None, None], h[..., None, None])[..., 0, 0], ref(x, h))


def test_convgru_follows_ballas_equations():
    torch.manual_seed(0)
    cell = ConvGRUCell(2, 3, kernel_size=3).double()
    x, h = torch.randn(2, 2, 5, 5).double(), torch.randn(2, 3, 5, 5).double()
    conv = nn.functional.conv2d
    xw = conv(x, cell.conv_x.weight, cell.bias, padding=1)
    hw = conv(h, cell.conv_h.weight, padding=1)
    r = torch.sigmoid(xw[:, :3] + hw[:, :3])
    keep = torch.sigmoid(xw[:, 3:6] + hw[:, 3:6])  # torch's z' = 1 - Ballas' z
    cand = torch.tanh(xw[:, 6:] + conv(r * h, cell.conv_hn.weight, padding=1))
    z = 1 - keep
    torch.testing.assert_close(cell(x, h), (1 - z) * h + z * cand)


def test_convlstm_peephole_terms_follow_eq3():
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3, kernel_size=3, input_kernel_size=5).double()
    x, h, c = (torch.randn(2, 2, 6, 6).double(), torch.randn(2, 3, 6, 6).double(), torch.randn(2, 3, 6, 6).double())
    conv = nn.functional.conv2d
    g = conv(x, cell.conv_x.weight, padding=2) + conv(h, cell.conv_h.weight, padding=1) + cell.bias[:, None, None]
    i, f, gg, o = g.chunk(4, 1)
    i = torch.sigmoid(i + cell.weight_ci * c)
    f = torch.sigmoid(f + cell.weight_cf * c)
    c_new = f * c + i * torch.tanh(gg)
    h_new = torch.sigmoid(o + cell.weight_co * c_new) * torch.tanh(c_new)
    h1, c1 = cell(x, (h, c))
    torch.testing.assert_close(c1, c_new)
    torch.testing.assert_close(h1, h_new)


@pytest.mark.parametrize("make", [
    lambda: ConvLSTMCell(2, 3, kernel_size=3),
    lambda: ConvGRUCell(2, 3, kernel_size=3),
    lambda: TrajGRUCell(2, 3, num_links=2, flow_hidden=4, flow_kernel_size=3),
], ids=["convlstm", "convgru", "trajgru"])
def test_gradcheck_float64(make):
    torch.manual_seed(0)
    cell = make().double()
    if isinstance(cell, TrajGRUCell):  # non-zero flows, so the warp's gradient is exercised
        nn.init.normal_(cell.flow_out.weight, std=0.3)
    x = torch.randn(1, 2, 4, 4, dtype=torch.double, requires_grad=True)
    h = torch.randn(1, 3, 4, 4, dtype=torch.double, requires_grad=True)
    if isinstance(cell, ConvLSTMCell):
        c = torch.randn(1, 3, 4, 4, dtype=torch.double, requires_grad=True)
        assert torch.autograd.gradcheck(lambda x, h, c: cell(x, (h, c)), (x, h, c))
    else:
        assert torch.autograd.gradcheck(lambda x, h: cell(x, h), (x, h), atol=1e-5)


LAYERS = [lambda: ConvLSTM(2, 4, kernel_size=3), lambda: ConvGRU(2, 4, kernel_size=3),
          lambda: TrajGRU(2, 4, num_links=2)]


@pytest.mark.parametrize("make", LAYERS, ids=["convlstm", "convgru", "trajgru"])
def test_state_is_used_and_chunks_equal_one_sequence(make):
    torch.manual_seed(0)
    layer = make()
    if isinstance(layer, TrajGRU):
        nn.init.normal_(layer.cell.flow_out.weight, std=0.1)
    x = torch.randn(2, 6, 2, 8, 8)
    with torch.no_grad():
        full, s_full = layer(x)
        a, s = layer(x[:, :2])
        b, s = layer(x[:, 2:], s)
        torch.testing.assert_close(torch.cat([a, b], 1), full)
        for u, v in zip(s if isinstance(s, tuple) else (s,), s_full if isinstance(s_full, tuple) else (s_full,)):
            torch.testing.assert_close(u, v)
        fresh, _ = layer(x[:, 2:])
        assert not torch.allclose(fresh, b)  # the passed state changed the result
        # the whole-sequence input convolution equals stepping the cell frame by frame
        st = None
        for t in range(6):
            st = layer.cell(x[:, t], st)
        torch.testing.assert_close(st[0] if isinstance(st, tuple) else st, full[:, -1])


def test_layer_without_input():
    layer = ConvLSTM(0, 4, kernel_size=3)
    assert layer.cell.conv_x is None
    with pytest.raises(ValueError, match="needs both state and num_steps"):
        layer(None)
    z = torch.randn(2, 4, 5, 5)
    out, (h, c) = layer(None, (z, z), num_steps=3)
    assert out.shape == (2, 3, 4, 5, 5)
    with pytest.raises(ValueError, match="input channels"):
        ConvLSTM(3, 4)(torch.randn(1, 2, 2, 5, 5))
    with pytest.raises(ValueError, match="odd"):
        ConvLSTMCell(1, 2, kernel_size=4)


def test_trajgru_warp():
    h = torch.arange(2 * 5 * 6, dtype=torch.float).reshape(1, 2, 5, 6)
    flow = torch.zeros(1, 2, 2, 5, 6)
    flow[:, 1, 0] = 1.0  # link 1 reads one pixel to the right
    out = TrajGRUCell.warp(h, flow).reshape(1, 2, 2, 5, 6)
    torch.testing.assert_close(out[:, 0], h)  # zero flow: identity
    torch.testing.assert_close(out[:, 1, :, :, :-1], h[..., 1:])
    assert (out[:, 1, :, :, -1] == 0).all()  # outside the frame: zeros
