"""Fully connected recurrent cells and sequence modules.

API (mirrors torch): ``cell(x, state=None)`` returns the new state -- ``(h, c)`` for LSTMs --
with zeros when ``state`` is None. The peephole family (:class:`PeepholeLSTM`,
:class:`LSTMLayer`, :class:`StackedRNN`) takes ``x (B, T, I)`` and returns ``(output (B, T, H),
state)`` with per-layer states ``(B, H)``, one layer per module, stacked explicitly with
:class:`StackedRNN`. The equation layers :class:`RNN`, :class:`LSTM`, :class:`GRU` are
multi-layer with exactly torch's API (``batch_first=False`` by default, states
``(num_layers, B, H)``). Convolutional cells: :mod:`vidrnn.layers.conv_cells`.

* :class:`PeepholeLSTMCell` / :class:`PeepholeLSTM` -- the FC-LSTM with peephole connections
  (Graves 2013, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850), in the
  form of Shi et al. 2015 (arXiv:1506.04214), eq. 2: the input and forget gates look at
  ``c_{t-1}``, the output gate at the new ``c_t``; peephole weights are diagonal (one value
  per unit). Gate order i, f, g, o as in ``nn.LSTMCell``, so weights copy across; with
  ``peephole=False`` (or zero peephole weights) it equals ``nn.LSTMCell``.
* :class:`LSTMLayer` -- one ``nn.LSTM`` layer (torch's fused kernel) behind the same API.
* :class:`StackedRNN` -- layers stacked with dropout between them.
* :class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell` and the sequence layers :class:`RNN`,
  :class:`LSTM`, :class:`GRU` -- the vanilla RNN (tanh or ReLU), LSTM and GRU written out gate by
  gate from their equations, equal to torch's cells and layers with copied weights (same
  parameter names). :meth:`RNN.steps` keeps every step's state in the autograd graph.
* :func:`largest_singular_values` -- ``σ_max(W_hh)`` of a module's recurrent weights.
* :func:`init_lstm` -- Keras's LSTM initialisation (Glorot input weights, orthogonal recurrent
  weights, forget-gate bias 1) for every LSTM in a module.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["LSTMState", "peephole_lstm_update", "PeepholeLSTMCell", "PeepholeLSTM", "LSTMLayer", "StackedRNN",
           "rnn_step", "lstm_step", "gru_step", "RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU",
           "recurrent_weights", "largest_singular_values", "init_lstm"]

LSTMState = tuple[torch.Tensor, torch.Tensor]


def uniform_init(module: nn.Module, hidden_size: int) -> None:
    """Every parameter of ``module`` drawn from Uniform(-1/sqrt(H), 1/sqrt(H)), torch's
    initialisation of its recurrent cells and layers."""
    k = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        nn.init.uniform_(p, -k, k)


def peephole_lstm_update(gates: torch.Tensor, c: torch.Tensor, peepholes=None, *, dim: int = -1) -> LSTMState:
    """The LSTM state update from pre-activation gates, with optional diagonal peepholes.

    ``gates`` holds ``i, f, g, o`` (``nn.LSTMCell`` order) along ``dim``; ``peepholes`` is
    ``(w_ci, w_cf, w_co)`` broadcastable to ``c`` or None (Graves 2013; Shi et al. 2015 eqs. 2-3)::

        c' = σ(f + w_cf ∘ c) ∘ c + σ(i + w_ci ∘ c) ∘ tanh(g)
        h' = σ(o + w_co ∘ c') ∘ tanh(c')

    Shape:
        gates ``(..., 4H, ...)``, c ``(..., H, ...)`` -> ``(h', c')`` like ``c``.
    """
    i, f, g, o = gates.chunk(4, dim=dim)
    if peepholes is not None:
        w_ci, w_cf, w_co = peepholes
        i = i + w_ci * c
        f = f + w_cf * c
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    if peepholes is not None:
        o = o + w_co * c
    return torch.sigmoid(o) * torch.tanh(c), c


class PeepholeLSTMCell(nn.Module):
    """LSTM cell with peephole connections (Graves 2013; Shi et al. 2015 eq. 2).

    ::

        i = σ(W_xi x + W_hi h + w_ci ∘ c_prev + b_i)
        f = σ(W_xf x + W_hf h + w_cf ∘ c_prev + b_f)
        c = f ∘ c_prev + i ∘ tanh(W_xc x + W_hc h + b_c)
        o = σ(W_xo x + W_ho h + w_co ∘ c + b_o)
        h = o ∘ tanh(c)

    Args:
        input_size: I.
        hidden_size: H.
        bias: learn ``b_ih``/``b_hh`` (two biases, as ``nn.LSTMCell``).
        peephole: include the ``w_c·`` terms.

    Shape:
        ``x (B, I)``, state ``(h, c)`` each ``(B, H)`` -> ``(h, c)``.
    """

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True, peephole: bool = True):
        super().__init__()
        self.input_size, self.hidden_size, self.peephole = input_size, hidden_size, peephole
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
            self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        if peephole:
            self.weight_ci = nn.Parameter(torch.empty(hidden_size))
            self.weight_cf = nn.Parameter(torch.empty(hidden_size))
            self.weight_co = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every weight, as ``nn.LSTMCell``."""
        uniform_init(self, self.hidden_size)

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        """``W_x x + b_ih`` for any leading shape: ``(..., I)`` -> ``(..., 4H)``."""
        return nn.functional.linear(x, self.weight_ih, self.bias_ih)

    def step(self, xw: torch.Tensor, state: LSTMState) -> LSTMState:
        """One step from a precomputed input projection ``xw (B, 4H)``."""
        h, c = state
        gates = xw + nn.functional.linear(h, self.weight_hh, self.bias_hh)
        return peephole_lstm_update(gates, c, self._peepholes(), dim=-1)

    def _peepholes(self):
        return (self.weight_ci, self.weight_cf, self.weight_co) if self.peephole else None

    def forward(self, x: torch.Tensor, state: LSTMState | None = None) -> LSTMState:
        if state is None:
            z = x.new_zeros(x.shape[0], self.hidden_size)
            state = (z, z)
        return self.step(self.input_projection(x), state)


class PeepholeLSTM(nn.Module):
    """One peephole-LSTM layer over a sequence; the input projection of all steps is one matmul.

    Args:
        input_size, hidden_size, bias, peephole: as :class:`PeepholeLSTMCell`.

    Shape:
        ``x (B, T, I)``, state ``(h, c)`` each ``(B, H)`` or None -> ``(output (B, T, H), (h, c))``.
    """

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True, peephole: bool = True):
        super().__init__()
        self.cell = PeepholeLSTMCell(input_size, hidden_size, bias=bias, peephole=peephole)
        self.hidden_size = hidden_size

    def forward(self, x: torch.Tensor, state: LSTMState | None = None):
        B, T, _ = x.shape
        if state is None:
            z = x.new_zeros(B, self.hidden_size)
            state = (z, z)
        xw = self.cell.input_projection(x)  # (B, T, 4H), all steps at once
        outs = []
        for t in range(T):
            state = self.cell.step(xw[:, t], state)
            outs.append(state[0])
        return torch.stack(outs, dim=1), state  # (B, T, H)


class LSTMLayer(nn.Module):
    """One ``nn.LSTM`` layer (fused kernel) with batch-first input and ``(B, H)`` states.

    Shape:
        ``x (B, T, I)``, state ``(h, c)`` each ``(B, H)`` or None -> ``(output (B, T, H), (h, c))``.
    """

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=1, bias=bias, batch_first=True)
        self.hidden_size = hidden_size

    def forward(self, x: torch.Tensor, state: LSTMState | None = None):
        hx = None if state is None else (state[0].unsqueeze(0), state[1].unsqueeze(0))
        out, (h, c) = self.lstm(x, hx)
        return out, (h[0], c[0])


class StackedRNN(nn.Module):
    """``num_layers`` LSTM layers stacked, dropout between layers.

    Args:
        input_size: I.
        hidden_size: H of every layer.
        num_layers: number of layers (Ng et al. 2015 use 5 of 512).
        cell: ``"lstm"`` (``nn.LSTM``'s fused kernel) or ``"peephole"`` (:class:`PeepholeLSTM`).
        dropout: dropout probability on the outputs of every layer but the last.

    Shape:
        ``x (B, T, I)``, state a list of per-layer ``(h, c)`` or None ->
        ``(output (B, T, H), [ (h, c) per layer ])``.

    Raises:
        ValueError: unknown ``cell`` or ``num_layers < 1``.
    """

    def __init__(self, input_size: int, hidden_size: int, *, num_layers: int = 1, cell: str = "lstm",
                 dropout: float = 0.0):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if cell not in ("lstm", "peephole"):
            raise ValueError(f"cell={cell!r}: expected 'lstm' or 'peephole'")
        make = LSTMLayer if cell == "lstm" else PeepholeLSTM
        self.layers = nn.ModuleList(make(input_size if i == 0 else hidden_size, hidden_size) for i in range(num_layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, state: list[LSTMState] | None = None):
        new_state = []
        for i, layer in enumerate(self.layers):
            if i:
                x = self.dropout(x)
            x, s = layer(x, None if state is None else state[i])
            new_state.append(s)
        return x, new_state


# ============================================================================ equation cells
# The vanilla RNN, LSTM and GRU written out gate by gate, with torch's parameter names and gate
# orders, so that weights copy across: ``RNNCell``/``LSTMCell``/``GRUCell`` equal
# ``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell``, and the sequence layers ``RNN``/``LSTM``/``GRU``
# have the state_dict of ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (``weight_ih_l0``, ...). They are
# for reading, testing, inspecting every step (:meth:`_EquationRNN.steps`) and variants; models
# run torch's fused kernels where the maths is the same (``tests/test_cells.py`` checks both).

NONLINEARITIES = ("tanh", "relu")


def rnn_step(xw: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, bias_hh: torch.Tensor | None,
             nonlinearity: str = "tanh") -> torch.Tensor:
    """Vanilla RNN (Elman 1990): ``h_t = φ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, ``φ`` tanh or ReLU.

    ``xw`` is the input projection ``W_ih x_t + b_ih`` ``(B, H)``; returns ``h_t (B, H)``.
    """
    a = xw + nn.functional.linear(h, weight_hh, bias_hh)
    return torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a)


def lstm_step(xw: torch.Tensor, state: LSTMState, weight_hh: torch.Tensor, bias_hh: torch.Tensor | None) -> LSTMState:
    """LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000), torch's gate order::

        i = σ(W_ii x + b_ii + W_hi h + b_hi)        input gate
        f = σ(W_if x + b_if + W_hf h + b_hf)        forget gate
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)     gate gate (the candidate)
        o = σ(W_io x + b_io + W_ho h + b_ho)        output gate
        c' = f ∘ c + i ∘ g                          the additive cell path
        h' = o ∘ tanh(c')

    ``xw`` is ``W_ih x + b_ih`` ``(B, 4H)``; returns ``(h', c')``.
    """
    h, c = state
    gates = xw + nn.functional.linear(h, weight_hh, bias_hh)
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    return o * torch.tanh(c), c


def gru_step(xw: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, bias_hh: torch.Tensor | None) -> torch.Tensor:
    """GRU (Cho et al. 2014), torch's form and gate order (reset, update, new)::

        r = σ(W_ir x + b_ir + W_hr h + b_hr)        reset gate
        z = σ(W_iz x + b_iz + W_hz h + b_hz)        update gate
        n = tanh(W_in x + b_in + r ∘ (W_hn h + b_hn))
        h' = (1 - z) ∘ n + z ∘ h

    ``xw`` is ``W_ih x + b_ih`` ``(B, 3H)``; returns ``h' (B, H)``.
    """
    hw = nn.functional.linear(h, weight_hh, bias_hh)
    x_r, x_z, x_n = xw.chunk(3, dim=-1)
    h_r, h_z, h_n = hw.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _check_nonlinearity(nonlinearity: str) -> None:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity={nonlinearity!r}: expected one of {NONLINEARITIES}")


class _EquationCell(nn.Module):
    """Shared parameters of the equation cells (torch's names, shapes and initialisation)."""

    kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        n = _GATES[self.kind] * hidden_size
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(n, input_size))
        self.weight_hh = nn.Parameter(torch.empty(n, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(n)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(n)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every weight, as torch."""
        uniform_init(self, self.hidden_size)

    def _zeros(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)


class RNNCell(_EquationCell):
    """Vanilla RNN cell from its equation (:func:`rnn_step`); equals ``nn.RNNCell`` with copied weights.

    Args:
        input_size: I. hidden_size: H. bias: learn ``b_ih``, ``b_hh``.
        nonlinearity: ``"tanh"`` or ``"relu"``.

    Shape:
        ``x (B, I)``, ``h (B, H)`` or None (zeros) -> ``h' (B, H)``.

    Raises:
        ValueError: unknown ``nonlinearity``.
    """

    kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"):
        _check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias)
        self.nonlinearity = nonlinearity

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        h = self._zeros(x) if h is None else h
        return rnn_step(nn.functional.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh,
                        self.nonlinearity)


class LSTMCell(_EquationCell):
    """LSTM cell from its equations (:func:`lstm_step`); equals ``nn.LSTMCell`` with copied weights.

    Shape:
        ``x (B, I)``, state ``(h, c)`` each ``(B, H)`` or None (zeros) -> ``(h', c')``.
    """

    kind = "lstm"

    def forward(self, x: torch.Tensor, state: LSTMState | None = None) -> LSTMState:
        state = (self._zeros(x), self._zeros(x)) if state is None else state
        return lstm_step(nn.functional.linear(x, self.weight_ih, self.bias_ih), state, self.weight_hh, self.bias_hh)


class GRUCell(_EquationCell):
    """GRU cell from its equations (:func:`gru_step`); equals ``nn.GRUCell`` with copied weights.

    Shape:
        ``x (B, I)``, ``h (B, H)`` or None (zeros) -> ``h' (B, H)``.
    """

    kind = "gru"

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        h = self._zeros(x) if h is None else h
        return gru_step(nn.functional.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)


class _EquationRNN(nn.Module):
    """A multi-layer recurrent layer from the equation steps, with the API and the state_dict of
    ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (unidirectional): ``forward(x, hx) -> (output, h_n)``
    (``(output, (h_n, c_n))`` for the LSTM), states ``(num_layers, B, H)``, dropout on the
    outputs of every layer but the last while training. The input projection of all steps
    of a layer is one matmul; the recurrence is a Python loop over time.
    """

    kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, *, nonlinearity: str = "tanh"):
        super().__init__()
        _check_nonlinearity(nonlinearity)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.nonlinearity = bias, batch_first, dropout, nonlinearity
        n = _GATES[self.kind] * hidden_size
        for layer in range(num_layers):
            i = input_size if layer == 0 else hidden_size
            setattr(self, f"weight_ih_l{layer}", nn.Parameter(torch.empty(n, i)))
            setattr(self, f"weight_hh_l{layer}", nn.Parameter(torch.empty(n, hidden_size)))
            if bias:
                setattr(self, f"bias_ih_l{layer}", nn.Parameter(torch.empty(n)))
                setattr(self, f"bias_hh_l{layer}", nn.Parameter(torch.empty(n)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every weight, as torch."""
        uniform_init(self, self.hidden_size)

    def _weights(self, layer: int):
        get = lambda name: getattr(self, f"{name}_l{layer}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _initial(self, x: torch.Tensor, hx):
        B = x.shape[0]
        if hx is None:
            z = x.new_zeros(self.num_layers, B, self.hidden_size)
            hx = (z, z) if self.kind == "lstm" else z
        if self.kind == "lstm":
            return [(hx[0][k], hx[1][k]) for k in range(self.num_layers)]
        return [hx[k] for k in range(self.num_layers)]

    def _step(self, xw, state, w_hh, b_hh):
        if self.kind == "lstm":
            return lstm_step(xw, state, w_hh, b_hh)
        if self.kind == "gru":
            return gru_step(xw, state, w_hh, b_hh)
        return rnn_step(xw, state, w_hh, b_hh, self.nonlinearity)

    def steps(self, x: torch.Tensor, hx=None):
        """The forward pass keeping every step's state: ``(output, h_n, states)`` where
        ``states[layer][t]`` is the state after step ``t`` (``h`` or ``(h, c)``), the very tensors
        of the autograd graph (call ``retain_grad()`` on them to read ``dL/dh_t``)."""
        if not self.batch_first:
            x = x.transpose(0, 1)
        if x.shape[1] == 0:
            raise ValueError("an empty sequence (T = 0): nothing to run the recurrence over")
        state = self._initial(x, hx)
        per_layer = []
        for layer in range(self.num_layers):
            if layer and self.dropout and self.training:
                x = nn.functional.dropout(x, self.dropout, training=True)
            w_ih, w_hh, b_ih, b_hh = self._weights(layer)
            xw = nn.functional.linear(x, w_ih, b_ih)  # (B, T, G*H): every step's input projection at once
            s, seq = state[layer], []
            for t in range(x.shape[1]):
                s = self._step(xw[:, t], s, w_hh, b_hh)
                seq.append(s)
            per_layer.append(seq)
            x = torch.stack([q[0] if self.kind == "lstm" else q for q in seq], dim=1)
        last = [seq[-1] for seq in per_layer]
        if self.kind == "lstm":
            h_n = (torch.stack([s[0] for s in last]), torch.stack([s[1] for s in last]))
        else:
            h_n = torch.stack(last)
        return (x if self.batch_first else x.transpose(0, 1)), h_n, per_layer

    def forward(self, x: torch.Tensor, hx=None):
        """``x (B, T, I)`` if ``batch_first`` else ``(T, B, I)``; ``hx`` ``(L, B, H)`` (LSTM: a pair)
        or None -> ``(output (B, T, H) | (T, B, H), h_n)`` as torch."""
        out, h_n, _ = self.steps(x, hx)
        return out, h_n


class RNN(_EquationRNN):
    """Multi-layer vanilla RNN from :func:`rnn_step`; same API (argument order included) and
    state_dict as ``nn.RNN``."""

    kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, nonlinearity=nonlinearity)


class LSTM(_EquationRNN):
    """Multi-layer LSTM from :func:`lstm_step`; same API and state_dict as ``nn.LSTM``."""

    kind = "lstm"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout)


class GRU(_EquationRNN):
    """Multi-layer GRU from :func:`gru_step`; same API and state_dict as ``nn.GRU``."""

    kind = "gru"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout)


def recurrent_weights(module: nn.Module) -> dict[str, torch.Tensor]:
    """Every recurrent weight matrix ``W_hh`` in ``module`` (of ``nn.RNN/LSTM/GRU``, their cells
    and the equation versions), by parameter name. For LSTM/GRU it is the gates' matrices
    stacked, ``(G*H, H)``."""
    return {n: p for n, p in module.named_parameters() if n.rsplit(".", 1)[-1].startswith("weight_hh")}


def largest_singular_values(module: nn.Module) -> dict[str, float]:
    """``σ_max(W_hh)`` of every recurrent weight matrix of ``module`` (:func:`recurrent_weights`):
    the powers of ``W_hh^T`` in backpropagation through time shrink when it is < 1 and can grow
    when it is > 1 (Pascanu et al. 2013)."""
    with torch.no_grad():
        return {n: float(torch.linalg.matrix_norm(w.detach().float(), ord=2)) for n, w in recurrent_weights(module).items()}



def init_lstm(module: nn.Module, forget_bias: float = 1.0) -> int:
    """Re-initialise every ``nn.LSTM``/``nn.LSTMCell`` (and this module's :class:`LSTMCell` /
    :class:`LSTM`) inside ``module`` as Keras does: each gate's input weights Glorot-uniform
    (Glorot & Bengio 2010), each gate's recurrent weights orthogonal (Saxe, McClelland, Ganguli
    2014), biases zero except the forget gate's, ``b_if = forget_bias`` and ``b_hf = 0``
    (Gers, Schmidhuber, Cummins 2000; Jozefowicz, Zaremba, Sutskever 2015 recommend 1).

    torch's default (every weight uniform in ``±1/sqrt(H)``, forget gate near ``σ(0) = 0.5``)
    shrinks what flows through a stack of LSTMs and across steps: in S2VT (two stacked LSTMs,
    frames then words) the gradient reaching the frame encoder after 150 steps on Digit Events
    was ~1e-6 with it and ~1e-2 with this initialisation, and only the latter learned from the
    video (see :class:`vidrnn.models.captioners.S2VT`).

    Returns:
        the number of LSTM layers re-initialised (0 if there is none).
    """
    count = 0
    for m in module.modules():
        if not isinstance(m, (nn.LSTM, nn.LSTMCell, LSTMCell, LSTM)):
            continue
        for name, p in m.named_parameters(recurse=False):
            H = p.shape[0] // 4
            with torch.no_grad():
                if name.startswith("weight_ih"):
                    for k in range(4):
                        nn.init.xavier_uniform_(p[k * H:(k + 1) * H])
                    count += 1
                elif name.startswith("weight_hh"):
                    for k in range(4):
                        nn.init.orthogonal_(p[k * H:(k + 1) * H])
                elif name.startswith("bias"):
                    p.zero_()
                    if name.startswith("bias_ih"):
                        p[H:2 * H].fill_(float(forget_bias))
    return count
