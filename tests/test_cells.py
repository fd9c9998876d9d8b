import pytest
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


# ---------------------------------------------------------------------------- equation cells vs torch
from vidrnn.layers import rnn_cells as eq  # noqa: E402


@pytest.mark.parametrize("ours, theirs, kw", [
    (eq.RNNCell, nn.RNNCell, {"nonlinearity": "tanh"}),
    (eq.RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
    (eq.LSTMCell, nn.LSTMCell, {}),
    (eq.GRUCell, nn.GRUCell, {}),
], ids=["rnn-tanh", "rnn-relu", "lstm", "gru"])
def test_equation_cells_equal_torch_cells_in_float64(ours, theirs, kw):
    torch.manual_seed(0)
    ref = theirs(6, 9, **kw).double()
    cell = ours(6, 9, **kw).double()
    cell.load_state_dict(ref.state_dict())  # same parameter names
    x = torch.randn(4, 6, dtype=torch.float64)
    h = torch.randn(4, 9, dtype=torch.float64)
    state = (h, torch.randn(4, 9, dtype=torch.float64)) if ours is eq.LSTMCell else h
    for given in (state, None):  # None: a zero initial state
        ours_out, ref_out = _as_tuple(cell(x, given)), _as_tuple(ref(x, given))
        assert len(ours_out) == len(ref_out)
        for a, b in zip(ours_out, ref_out):
            assert (a - b).abs().max().item() <= 1e-6


def _as_tuple(s):
    return s if isinstance(s, tuple) else (s,)


@pytest.mark.parametrize("ours, theirs, kw", [
    (eq.RNN, nn.RNN, {"nonlinearity": "relu"}),
    (eq.RNN, nn.RNN, {}),
    (eq.LSTM, nn.LSTM, {}),
    (eq.GRU, nn.GRU, {}),
], ids=["rnn-relu", "rnn-tanh", "lstm", "gru"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_equation_sequence_layers_equal_fused_torch_layers(ours, theirs, kw, batch_first):
    """Same state_dict, same outputs and final states, with and without an initial state;
    gradients too (the backward pass of the Python loop vs torch's fused kernel)."""
    torch.manual_seed(0)
    ref = theirs(5, 7, num_layers=3, batch_first=batch_first, **kw).double()
    layer = ours(5, 7, num_layers=3, batch_first=batch_first, **kw).double()
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(2, 11, 5, dtype=torch.float64)
    x = x if batch_first else x.transpose(0, 1)
    h0 = torch.randn(3, 2, 7, dtype=torch.float64)
    hx = (h0, torch.randn(3, 2, 7, dtype=torch.float64)) if ours is eq.LSTM else h0
    for state in (None, hx):
        out_a, hn_a = layer(x, state)
        out_b, hn_b = ref(x, state)
        assert (out_a - out_b).abs().max().item() <= 1e-6
        for a, b in zip(_as_tuple(hn_a), _as_tuple(hn_b)):
            assert a.shape == b.shape and (a - b).abs().max().item() <= 1e-6
    out_a.pow(2).sum().backward()
    out_b.pow(2).sum().backward()
    for (name, p), q in zip(layer.named_parameters(), ref.parameters()):
        assert (p.grad - q.grad).abs().max().item() <= 1e-6, name


def test_steps_are_the_graph_tensors():
    """``steps`` hands out each step's state as a tensor of the graph: its gradient is dL/dh_t."""
    torch.manual_seed(0)
    layer = eq.RNN(3, 4, batch_first=True).double()
    x = torch.randn(1, 6, 3, dtype=torch.float64)
    out, _, states = layer.steps(x)
    for h in states[0]:
        h.retain_grad()
    out[:, -1].sum().backward()
    # dL/dh_5 = 1; dL/dh_4 = W_hh^T diag(1 - h_5^2) 1
    h5 = states[0][5]
    expected = (1 - h5.detach() ** 2) @ layer.weight_hh_l0.detach()
    torch.testing.assert_close(states[0][4].grad, expected)


def test_largest_singular_values_of_recurrent_weights():
    lstm = nn.LSTM(3, 5, num_layers=2)
    sv = eq.largest_singular_values(lstm)
    assert set(sv) == {"weight_hh_l0", "weight_hh_l1"}
    assert sv["weight_hh_l0"] == pytest.approx(torch.linalg.svdvals(lstm.weight_hh_l0.detach())[0].item(), rel=1e-5)


def test_bad_arguments_name_what_was_expected():
    with pytest.raises(ValueError, match="nonlinearity='sigmoid'"):
        eq.RNNCell(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="num_layers must be >= 1"):
        eq.GRU(2, 3, num_layers=0)


def test_equation_rnn_takes_torchs_argument_order():
    a = eq.RNN(3, 4, 2, "relu", False, True, 0.0)
    b = nn.RNN(3, 4, 2, "relu", False, True, 0.0)
    assert a.nonlinearity == b.nonlinearity == "relu" and not a.bias and a.batch_first
    assert set(a.state_dict()) == set(b.state_dict())
    with pytest.raises(ValueError, match="empty sequence"):
        eq.LSTM(3, 4)(torch.zeros(0, 2, 3))



def test_init_lstm_is_keras_initialisation():
    torch.manual_seed(0)
    module = nn.ModuleDict({"cell": nn.LSTMCell(3, 5), "layer": nn.LSTM(3, 5, num_layers=2),
                            "ours": eq.LSTMCell(3, 5), "gru": nn.GRUCell(3, 5)})
    gru_before = {k: v.clone() for k, v in module["gru"].state_dict().items()}
    assert eq.init_lstm(module, 1.0) == 4  # the cell, two layers, ours; not the GRU
    for name, p in module.state_dict().items():
        if name.startswith("gru"):
            assert torch.equal(p, gru_before[name[4:]])
        elif "bias_ih" in name:
            assert torch.equal(p, torch.cat([torch.zeros(5), torch.ones(5), torch.zeros(10)]))
        elif "bias_hh" in name:
            assert torch.equal(p, torch.zeros(20))
        elif "weight_hh" in name:  # each gate's block orthogonal
            for k in range(4):
                w = p[5 * k:5 * (k + 1)]
                assert torch.allclose(w @ w.T, torch.eye(5), atol=1e-5)
        else:  # Glorot uniform: within +-sqrt(6 / (fan_in + fan_out)) per gate block
            fan_in = p.shape[1]
            assert p.abs().max() <= (6 / (fan_in + 5)) ** 0.5 + 1e-6


def test_s2vt_starts_with_forget_bias_one():
    from vidrnn import create_model
    m = create_model("s2vt_tiny", vocab_size=10)
    for lstm in (m.lstm1, m.lstm2):
        H = lstm.hidden_size
        assert torch.equal((lstm.bias_ih + lstm.bias_hh)[H:2 * H], torch.ones(H))
