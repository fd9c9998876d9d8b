"""Fully connected recurrent cells and one-layer sequence modules.

API (mirrors torch): ``cell(x, state=None)`` returns the new state -- ``(h, c)`` for LSTMs --
with zeros when ``state`` is None; a sequence module ``layer(x, state=None)`` takes
``x (B, T, I)`` and returns ``(output (B, T, H), state)`` like ``nn.LSTM`` (but batch first
and with per-layer states ``(B, H)``). One layer per module; models stack layers explicitly
with :class:`StackedRNN`. Convolutional cells: :mod:`vidrnn.layers.conv_cells`.

* :class:`PeepholeLSTMCell` / :class:`PeepholeLSTM` -- the FC-LSTM with peephole connections
  (Graves 2013, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850), in the
  form of Shi et al. 2015 (arXiv:1506.04214), eq. 2: the input and forget gates look at
  ``c_{t-1}``, the output gate at the new ``c_t``; peephole weights are diagonal (one value
  per unit). Gate order i, f, g, o as in ``nn.LSTMCell``, so weights copy across; with
  ``peephole=False`` (or zero peephole weights) it equals ``nn.LSTMCell``.
* :class:`LSTMLayer` -- one ``nn.LSTM`` layer (torch's fused kernel) behind the same API.
* :class:`StackedRNN` -- layers stacked with dropout between them.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["LSTMState", "peephole_lstm_update", "PeepholeLSTMCell", "PeepholeLSTM", "LSTMLayer", "StackedRNN"]

LSTMState = tuple[torch.Tensor, torch.Tensor]


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
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

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
