import torch
import torch.nn as nn

from vidrnn.layers.rnn_cells import PeepholeLSTM, PeepholeLSTMCell, StackedRNN


def _copy_from_lstmcell(cell: PeepholeLSTMCell, ref: nn.LSTMCell) -> None:
    with torch.no_grad():
        cell.weight_ih.copy_(ref.weight_ih)
        cell.weight_hh.copy_(ref.weight_hh)
        cell.bias_ih.copy_(ref.bias_ih)
        cell.bias_hh.copy_(ref.bias_hh)


def test_peephole_cell_without_peepholes_equals_lstmcell():
    torch.manual_seed(0)
    ref = nn.LSTMCell(5, 7)
    cell = PeepholeLSTMCell(5, 7, peephole=False)
    _copy_from_lstmcell(cell, ref)
    x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
    h1, c1 = cell(x, (h, c))
    h2, c2 = ref(x, (h, c))
    torch.testing.assert_close(h1, h2)
    torch.testing.assert_close(c1, c2)


def test_peephole_terms_follow_the_equations():
    torch.manual_seed(0)
    cell = PeepholeLSTMCell(4, 3).double()
    x, h, c = torch.randn(2, 4).double(), torch.randn(2, 3).double(), torch.randn(2, 3).double()
    g = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, gg, o = g.chunk(4, -1)
    i = torch.sigmoid(i + cell.weight_ci * c)
    f = torch.sigmoid(f + cell.weight_cf * c)
    c_new = f * c + i * torch.tanh(gg)
    o = torch.sigmoid(o + cell.weight_co * c_new)  # output gate peeks at the NEW cell state
    h_new = o * torch.tanh(c_new)
    h1, c1 = cell(x, (h, c))
    torch.testing.assert_close(c1, c_new)
    torch.testing.assert_close(h1, h_new)
    assert torch.autograd.gradcheck(lambda x, h, c: cell(x, (h, c)), (x.requires_grad_(), h.requires_grad_(), c.requires_grad_()))


def test_sequence_module_state_and_chunking():
    torch.manual_seed(0)
    layer = PeepholeLSTM(4, 6)
    x = torch.randn(2, 10, 4)
    out, (h, c) = layer(x)
    assert out.shape == (2, 10, 6)
    torch.testing.assert_close(out[:, -1], h)
    out1, s1 = layer(x[:, :4])
    out2, s2 = layer(x[:, 4:], s1)  # a passed state is used
    torch.testing.assert_close(torch.cat([out1, out2], 1), out)
    zero_state = (torch.zeros(2, 6), torch.zeros(2, 6))
    torch.testing.assert_close(layer(x, zero_state)[0], out)


def test_stacked_rnn_lstm_matches_nn_lstm_two_layers():
    torch.manual_seed(0)
    ref = nn.LSTM(4, 5, num_layers=2, batch_first=True)
    st = StackedRNN(4, 5, num_layers=2, cell="lstm")
    with torch.no_grad():
        for k in range(2):
            for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(st.layers[k].lstm, f"{n}_l0").copy_(getattr(ref, f"{n}_l{k}"))
    x = torch.randn(3, 7, 4)
    torch.testing.assert_close(st(x)[0], ref(x)[0])
