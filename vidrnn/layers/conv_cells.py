"""Convolutional recurrent cells and one-layer sequence modules.

* :class:`ConvLSTMCell` / :class:`ConvLSTM` -- Shi, Chen, Wang, Yeung, Wong, Woo, "Convolutional
  LSTM Network: A Machine Learning Approach for Precipitation Nowcasting", NeurIPS 2015,
  arXiv:1506.04214, eq. 3.
* :class:`ConvGRUCell` / :class:`ConvGRU` -- Ballas, Yao, Pal, Courville, "Delving Deeper into
  Convolutional Networks for Learning Video Representations", ICLR 2016, arXiv:1511.06432.
* :class:`TrajGRUCell` / :class:`TrajGRU` -- Shi, Gao, Lausen, Wang, Yeung, Wong, Woo, "Deep
  Learning for Precipitation Nowcasting: A Benchmark and a New Model", NeurIPS 2017,
  arXiv:1706.03458.

The API mirrors torch's and :mod:`vidrnn.layers.rnn_cells`: ``cell(x, state=None)`` returns the
new state (``(h, c)`` for the ConvLSTM); a sequence module returns ``(output, state)``.
Convolutional cells take frames ``x (B, C, H, W)`` and states ``(B, F, H, W)``; their sequence
modules take ``x (B, T, C, H, W)``. A convolutional layer computes the input-to-state
convolution of *all* time steps in one call (``(B*T, C, H, W)``) and only the state-to-state
convolution inside the time loop: fewer, larger kernels. ``in_channels=0`` makes a layer with no
input (the first forecaster layer of Shi et al. 2015), driven by its state alone; its sequence
module then needs ``num_steps``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from vidrnn.layers.rnn_cells import peephole_lstm_update

__all__ = ["ConvLSTMCell", "ConvLSTM", "ConvGRUCell", "ConvGRU", "TrajGRUCell", "TrajGRU", "CONV_LAYERS"]

ConvState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def _pair_same_padding(kernel_size: int) -> int:
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size={kernel_size}: must be odd for 'same' padding")
    return kernel_size // 2


class _ConvRecurrentCell(nn.Module):
    """Shared plumbing: input-to-state conv (optional), zero states, argument checks."""

    state_tensors = 1  # h only; LSTMs: 2 (h, c)

    def __init__(self, in_channels: int, hidden_channels: int, gates: int, input_kernel_size: int, *, bias: bool):
        super().__init__()
        if in_channels < 0 or hidden_channels < 1:
            raise ValueError(f"in_channels={in_channels}, hidden_channels={hidden_channels}: expected >= 0 and >= 1")
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.input_kernel_size = input_kernel_size
        self.conv_x_channels = gates * hidden_channels
        self.conv_x = (nn.Conv2d(in_channels, gates * hidden_channels, input_kernel_size,
                                 padding=_pair_same_padding(input_kernel_size), bias=False) if in_channels else None)
        self.bias = nn.Parameter(torch.zeros(gates * hidden_channels)) if bias else None

    def input_projection(self, x: torch.Tensor | None) -> torch.Tensor | None:
        """Input-to-state convolution plus bias for any number of frames.

        Shape:
            ``x (..., C, H, W)`` -> ``(..., G*F, H, W)`` (G gates); None for a layer without input.
        """
        if self.conv_x is None:
            if x is not None and x.shape[-3] != 0:
                raise ValueError(f"this layer has no input (in_channels=0) but got x of shape {tuple(x.shape)}")
            return None
        if x.shape[-3] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got x of shape {tuple(x.shape)}")
        frames = x.dim() == 4  # one frame per sequence: no reshapes (they would fix the batch in an ONNX trace)
        xw = self.conv_x(x if frames else x.flatten(0, -4))  # (N, G*F, H, W)
        if self.bias is not None:
            xw = xw + self.bias[:, None, None]
        return xw if frames else xw.unflatten(0, x.shape[:-3])

    def _state_bias(self, xw: torch.Tensor | None, hw: torch.Tensor) -> torch.Tensor:
        if xw is not None:
            return xw + hw
        return hw + self.bias[:, None, None] if self.bias is not None else hw

    def reset_parameters(self) -> None:
        """Uniform(-k, k) with k = 1/sqrt(fan-in of a gate), as torch's LSTM/GRU initialisation."""
        fan_in = self.hidden_channels * self.kernel_size ** 2 + self.in_channels * self.input_kernel_size ** 2
        k = 1.0 / math.sqrt(fan_in)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

    def _input_gates(self, xw: torch.Tensor | None, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Split ``xw (B, G*F, H, W)`` per gate; without input, the bias alone (broadcast)."""
        if xw is None:
            b = self.bias if self.bias is not None else h.new_zeros(self.conv_x_channels)
            return b[:, None, None].split(self.hidden_channels, dim=0)  # each (F, 1, 1)
        return xw.split(self.hidden_channels, dim=1)

    def zero_state(self, batch: int, height: int, width: int, *, like: torch.Tensor) -> ConvState:
        z = like.new_zeros(batch, self.hidden_channels, height, width)
        return (z, z) if self.state_tensors == 2 else z

    def forward(self, x: torch.Tensor | None, state: ConvState | None = None) -> ConvState:
        """One step. ``x (B, C, H, W)`` (None for a layer without input, then ``state`` is needed)."""
        if state is None:
            if x is None:
                raise ValueError("a cell without input needs a state (to know the batch and frame size)")
            state = self.zero_state(x.shape[0], x.shape[-2], x.shape[-1], like=x)
        return self.step(self.input_projection(x), state)

    def step(self, xw: torch.Tensor | None, state: ConvState) -> ConvState:  # pragma: no cover - abstract
        raise NotImplementedError


class ConvLSTMCell(_ConvRecurrentCell):
    """Convolutional LSTM cell (Shi et al. 2015, eq. 3).

    ::

        i = σ(W_xi * X + W_hi * H + W_ci ∘ C_prev + b_i)
        f = σ(W_xf * X + W_hf * H + W_cf ∘ C_prev + b_f)
        C = f ∘ C_prev + i ∘ tanh(W_xc * X + W_hc * H + b_c)
        o = σ(W_xo * X + W_ho * H + W_co ∘ C + b_o)
        H = o ∘ tanh(C)

    ``*`` is a 'same'-padded convolution, ``∘`` the Hadamard product. Separate input-to-state
    (``input_kernel_size``) and state-to-state (``kernel_size``) kernels, one bias per gate
    channel. Deviation, stated: the peephole weights ``W_c·`` are one value per channel,
    broadcast over the frame (the reading that reproduces the paper's Table 1 parameter
    counts exactly), not a full ``F x H x W`` tensor. Gate order i, f, g, o as ``nn.LSTMCell``.

    Args:
        in_channels: C (0 for a layer without input).
        hidden_channels: F.
        kernel_size: state-to-state kernel side (odd).
        input_kernel_size: input-to-state kernel side (default ``kernel_size``).
        peephole: include the ``W_c· ∘ C`` terms.
        bias: learn ``b``.

    Shape:
        ``x (B, C, H, W)``, state ``(h, c)`` each ``(B, F, H, W)`` -> ``(h, c)``.

    Raises:
        ValueError: even kernel sizes, wrong channel counts.
    """

    state_tensors = 2

    def __init__(self, in_channels: int, hidden_channels: int, *, kernel_size: int = 5,
                 input_kernel_size: int | None = None, peephole: bool = True, bias: bool = True):
        super().__init__(in_channels, hidden_channels, 4, input_kernel_size or kernel_size, bias=bias)
        self.kernel_size, self.peephole = kernel_size, peephole
        self.conv_h = nn.Conv2d(hidden_channels, 4 * hidden_channels, kernel_size,
                                padding=_pair_same_padding(kernel_size), bias=False)
        if peephole:
            self.weight_ci = nn.Parameter(torch.zeros(hidden_channels, 1, 1))
            self.weight_cf = nn.Parameter(torch.zeros(hidden_channels, 1, 1))
            self.weight_co = nn.Parameter(torch.zeros(hidden_channels, 1, 1))
        self.reset_parameters()

    def step(self, xw: torch.Tensor | None, state: tuple[torch.Tensor, torch.Tensor]):
        """One step from a precomputed input projection ``xw (B, 4F, H, W)`` (None: no input)."""
        h, c = state
        gates = self._state_bias(xw, self.conv_h(h))  # (B, 4F, H, W)
        peepholes = (self.weight_ci, self.weight_cf, self.weight_co) if self.peephole else None
        return peephole_lstm_update(gates, c, peepholes, dim=1)


class ConvGRUCell(_ConvRecurrentCell):
    """Convolutional GRU cell (Ballas et al. 2016)::

        z = σ(W_z * x + U_z * h_prev + b_z)
        r = σ(W_r * x + U_r * h_prev + b_r)
        h̃ = tanh(W * x + U * (r ∘ h_prev) + b)
        h = (1 − z) ∘ h_prev + z ∘ h̃

    With ``reset_after=True`` the candidate is ``tanh(W * x + b + r ∘ (U * h_prev + b_U))``
    instead (torch's ``nn.GRUCell``/cuDNN form; then a 1x1 cell on 1x1 input equals
    ``nn.GRUCell`` with copied weights, up to the gate convention below).

    Gate convention: ``nn.GRUCell`` writes ``h = (1 − z') ∘ h̃ + z' ∘ h_prev``, i.e.
    ``z' = 1 − z``; this cell stores its weights in torch's order (r, z, n) *and* uses torch's
    ``z'`` (the keep gate), which is Ballas' model with the z-weights negated: the same
    family of functions, and weights copy to and from ``nn.GRUCell``.

    Args:
        in_channels: C (0 for a layer without input).
        hidden_channels: F.
        kernel_size: state-to-state kernel side (odd).
        input_kernel_size: input-to-state kernel side (default ``kernel_size``).
        reset_after: torch's candidate form (see above); default False = Ballas et al.
        bias: learn the biases.

    Shape:
        ``x (B, C, H, W)``, state ``h (B, F, H, W)`` -> ``h``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, *, kernel_size: int = 5,
                 input_kernel_size: int | None = None, reset_after: bool = False, bias: bool = True):
        super().__init__(in_channels, hidden_channels, 3, input_kernel_size or kernel_size, bias=bias)
        self.kernel_size, self.reset_after = kernel_size, reset_after
        pad = _pair_same_padding(kernel_size)
        if reset_after:
            self.conv_h = nn.Conv2d(hidden_channels, 3 * hidden_channels, kernel_size, padding=pad, bias=bias)
        else:
            self.conv_h = nn.Conv2d(hidden_channels, 2 * hidden_channels, kernel_size, padding=pad, bias=False)
            self.conv_hn = nn.Conv2d(hidden_channels, hidden_channels, kernel_size, padding=pad, bias=False)
        self.reset_parameters()

    def step(self, xw: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
        """One step from a precomputed input projection ``xw (B, 3F, H, W)`` (None: no input)."""
        F_ = self.hidden_channels
        xr, xz, xn = self._input_gates(xw, h)
        if self.reset_after:
            hr, hz, hn = self.conv_h(h).split(F_, dim=1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
        else:
            hr, hz = self.conv_h(h).split(F_, dim=1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + self.conv_hn(r * h))
        return (1 - z) * n + z * h


class TrajGRUCell(_ConvRecurrentCell):
    """Trajectory GRU cell (Shi et al. 2017, eq. 4)::

        U, V = γ(x_t, h_prev)                       # L flow fields (pixels)
        z = σ(W_xz * x + Σ_l W_hz^l * warp(h_prev, U_l, V_l))
        r = σ(W_xr * x + Σ_l W_hr^l * warp(h_prev, U_l, V_l))
        h' = f(W_xh * x + r ∘ Σ_l W_hh^l * warp(h_prev, U_l, V_l))
        h = (1 − z) ∘ h' + z ∘ h_prev

    γ is a small conv net: a ``flow_kernel_size`` conv of x and one of h_prev to
    ``flow_hidden`` channels, summed, leaky ReLU (slope 0.2), then a conv to 2L channels
    (initialised to zero, so training starts from the identity warp as in the authors' code).
    ``warp`` is bilinear sampling (``F.grid_sample``, zeros outside the frame). ``W_h·^l`` are
    1x1 convolutions over the L warped states, f is a leaky ReLU (slope 0.2).

    Args:
        in_channels: C (0 for a layer without input; γ then sees h_prev only).
        hidden_channels: F.
        num_links: L, the number of flow fields (the paper uses 13 and 9 in its layers).
        input_kernel_size: input-to-state kernel side.
        flow_kernel_size: kernel side of γ's convolutions.
        flow_hidden: γ's hidden channels (paper: 32).

    Shape:
        ``x (B, C, H, W)``, state ``h (B, F, H, W)`` -> ``h``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, *, num_links: int = 5, input_kernel_size: int = 3,
                 flow_kernel_size: int = 5, flow_hidden: int = 32, bias: bool = True):
        super().__init__(in_channels, hidden_channels, 3, input_kernel_size, bias=bias)
        if num_links < 1:
            raise ValueError(f"num_links={num_links}: expected >= 1")
        self.num_links = num_links
        self.kernel_size = 1  # the state-to-state convolutions W_h^l are 1x1
        pad = _pair_same_padding(flow_kernel_size)
        self.flow_x = (nn.Conv2d(in_channels, flow_hidden, flow_kernel_size, padding=pad) if in_channels else None)
        self.flow_h = nn.Conv2d(hidden_channels, flow_hidden, flow_kernel_size, padding=pad)
        self.flow_out = nn.Conv2d(flow_hidden, 2 * num_links, flow_kernel_size, padding=pad)
        self.conv_h = nn.Conv2d(num_links * hidden_channels, 3 * hidden_channels, 1, bias=False)
        nn.init.zeros_(self.flow_out.weight)
        nn.init.zeros_(self.flow_out.bias)

    def input_projection(self, x):
        """``(W_x* x + b, γ's input conv of x)`` for any leading shape (None parts for no input)."""
        xw = super().input_projection(x)
        if xw is None:
            return None, None
        if x.dim() == 4:
            return xw, self.flow_x(x)
        return xw, self.flow_x(x.flatten(0, -4)).unflatten(0, x.shape[:-3])

    def flows(self, fx: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
        """The L flow fields ``(B, L, 2, H, W)`` in pixels (x then y displacement)."""
        a = self.flow_h(h) if fx is None else self.flow_h(h) + fx
        flow = self.flow_out(nn.functional.leaky_relu(a, 0.2))  # (B, 2L, H, W)
        return flow.unflatten(1, (self.num_links, 2))  # (B, L, 2, H, W)

    @staticmethod
    def warp(h: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """Bilinear warp of ``h (B, F, H, W)`` by each of ``flow (B, L, 2, H, W)`` -> ``(B, L*F, H, W)``.

        Output pixel (y, x) of link l reads ``h`` at ``(y + V_l, x + U_l)``.
        """
        B, L, _, H, W = flow.shape
        ys = torch.arange(H, device=h.device, dtype=h.dtype)
        xs = torch.arange(W, device=h.device, dtype=h.dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        px = gx + flow[:, :, 0]  # (B, L, H, W) sampling positions in pixels
        py = gy + flow[:, :, 1]
        grid = torch.stack((2 * px / max(W - 1, 1) - 1, 2 * py / max(H - 1, 1) - 1), dim=-1)  # (B, L, H, W, 2)
        hs = h.unsqueeze(1).expand(-1, L, -1, -1, -1).flatten(0, 1)  # (B*L, F, H, W)
        out = nn.functional.grid_sample(hs, grid.flatten(0, 1).to(h.dtype), mode="bilinear",
                                        padding_mode="zeros", align_corners=True)
        return out.unflatten(0, (-1, L)).flatten(1, 2)  # (B, L*F, H, W)

    def step(self, xw, h: torch.Tensor) -> torch.Tensor:
        """One step from ``input_projection``'s pair (or ``(None, None)`` without input)."""
        xw, fx = xw if isinstance(xw, tuple) else (xw, None)
        F_ = self.hidden_channels
        warped = self.warp(h, self.flows(fx, h))
        hw = self.conv_h(warped)
        xr, xz, xn = self._input_gates(xw, h)
        hr, hz, hn = hw.split(F_, dim=1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = nn.functional.leaky_relu(xn + r * hn, 0.2)
        return (1 - z) * n + z * h


class _ConvRecurrentLayer(nn.Module):
    """A convolutional cell run over a sequence (input projection of all steps in one call)."""

    cell_class: type[_ConvRecurrentCell]

    def __init__(self, in_channels: int, hidden_channels: int, **cell_kwargs):
        super().__init__()
        self.cell = self.cell_class(in_channels, hidden_channels, **cell_kwargs)
        self.in_channels, self.hidden_channels = in_channels, hidden_channels

    def forward(self, x: torch.Tensor | None, state: ConvState | None = None, *, num_steps: int | None = None):
        """Run the layer.

        Args:
            x: ``(B, T, C, H, W)``, or None for a layer without input (then ``state`` and
                ``num_steps`` are needed).
            state: initial state (zeros if None).
            num_steps: steps to run without input.

        Returns:
            ``(output (B, T, F, H, W), final state)``.

        Raises:
            ValueError: missing ``state``/``num_steps`` for an input-less layer, wrong channels.
        """
        if x is None:
            if state is None or num_steps is None:
                raise ValueError("a layer without input needs both state and num_steps")
            steps = [None] * num_steps
        else:
            if x.dim() != 5:
                raise ValueError(f"expected x of shape (B, T, C, H, W), got {tuple(x.shape)}")
            if state is None:
                state = self.cell.zero_state(x.shape[0], x.shape[-2], x.shape[-1], like=x)
            xw = self.cell.input_projection(x)  # all T steps in one convolution
            # unbind, not xw[:, t]: slicing makes every step's backward zero-fill a whole-sequence gradient
            steps = list(zip(*(p.unbind(1) for p in xw))) if isinstance(xw, tuple) else xw.unbind(1)
        outs = []
        for xw_t in steps:
            state = self.cell.step(xw_t, state)
            outs.append(state[0] if isinstance(state, tuple) else state)
        return torch.stack(outs, dim=1), state  # (B, T, F, H, W)


class ConvLSTM(_ConvRecurrentLayer):
    """One :class:`ConvLSTMCell` layer over a sequence (Shi et al. 2015).

    Shape:
        ``x (B, T, C, H, W)``, state ``(h, c)`` each ``(B, F, H, W)`` or None ->
        ``(output (B, T, F, H, W), (h, c))``.
    """

    cell_class = ConvLSTMCell


class ConvGRU(_ConvRecurrentLayer):
    """One :class:`ConvGRUCell` layer over a sequence (Ballas et al. 2016).

    Shape:
        ``x (B, T, C, H, W)``, state ``h (B, F, H, W)`` or None -> ``(output (B, T, F, H, W), h)``.
    """

    cell_class = ConvGRUCell


class TrajGRU(_ConvRecurrentLayer):
    """One :class:`TrajGRUCell` layer over a sequence (Shi et al. 2017).

    Shape:
        ``x (B, T, C, H, W)``, state ``h (B, F, H, W)`` or None -> ``(output (B, T, F, H, W), h)``.
    """

    cell_class = TrajGRUCell


CONV_LAYERS = {"convlstm": ConvLSTM, "convgru": ConvGRU, "trajgru": TrajGRU}
