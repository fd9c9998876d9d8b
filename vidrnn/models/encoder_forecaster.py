"""Encoder–forecaster networks for video prediction and precipitation nowcasting.

Shi, Chen, Wang, Yeung, Wong, Woo, "Convolutional LSTM Network: A Machine Learning Approach for
Precipitation Nowcasting", NeurIPS 2015, arXiv:1506.04214 (Fig. 3, Table 1); the same design with
ConvGRU (Ballas et al., ICLR 2016, arXiv:1511.06432) and TrajGRU cells (Shi et al., NeurIPS 2017,
arXiv:1706.03458); FC-LSTM baseline after Srivastava, Mansimov, Salakhutdinov, "Unsupervised
Learning of Video Representations using LSTMs", ICML 2015, arXiv:1502.04681.

The network, as in Shi et al. 2015:

* frames are cut into ``p x p`` patches (``pixel_unshuffle``: a 64x64x1 frame becomes 16x16x16);
* a stack of recurrent layers (the *encoder*) reads the input frames;
* the *forecaster* has as many layers, each initialised with the final state of the encoder
  layer at the same level; its first layer has no input (it runs on its state alone), layer
  ``l > 0`` reads layer ``l-1``'s hidden states;
* each output frame is a 1x1 convolution over the concatenation of all forecaster layers'
  hidden states, followed by ``pixel_shuffle`` back to frame size. The model returns logits;
  ``sigmoid`` gives intensities in [0, 1] (the paper trains with per-pixel cross-entropy).

This reading reproduces all six parameter counts of the paper's Table 1 (checked in
``tests/test_forecasting_models.py``). The FC-LSTM baseline is the same network with the whole
frame as one "patch" (a 4096-vector on a 1x1 grid) and 1x1 kernels, i.e. fully connected
peephole LSTMs, predicting from the top forecaster layer only (the reading that gives the
paper's 142,667,776 parameters for FC-LSTM-2048-2048).

Deviation (option, off by default): ``forecaster_input="previous_frame"`` feeds the forecaster's
first layer the previous frame (ground truth or its own prediction, for scheduled sampling,
Bengio et al. 2015, arXiv:1506.03099); the paper's forecaster has no input.

Deviation (option, off by default): ``residual=True`` adds the logit of the last observed frame
to every forecast's logits, so the network learns the change from persistence (the forecast
starts from the last frame instead of from nothing).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrnn.layers.conv_cells import CONV_LAYERS
from vidrnn.registry import register_model

__all__ = ["EncoderForecaster"]


def _per_layer(value, n: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name}={list(value)}: expected one value per layer ({n} layers)")
        return list(value)
    return [value] * n


class EncoderForecaster(nn.Module):
    """Stacked convolutional-recurrent encoder–forecaster (Shi et al. 2015, Fig. 3).

    Args:
        in_channels: channels of a frame (1 for Moving MNIST and radar).
        hidden_channels: channels of each recurrent layer, bottom first (e.g. ``(128, 64, 64)``).
        cell: ``"convlstm"``, ``"convgru"`` or ``"trajgru"``.
        kernel_size: state-to-state kernel side, one value or one per layer.
        input_kernel_size: input-to-state kernel side of every layer (default: ``kernel_size``
            of the layer); TrajGRU uses it for its input convolutions.
        patch_size: side of the square patches folded into channels (pixels).
        num_output: frames to forecast when ``forward`` is not told otherwise.
        peephole: ConvLSTM peephole terms.
        num_links: TrajGRU flow fields per layer (one value or one per layer).
        output_from: ``"all"`` (1x1 conv over all forecaster layers, the paper's ConvLSTM) or
            ``"top"`` (top layer only, the FC-LSTM baseline).
        forecaster_input: ``"none"`` (paper) or ``"previous_frame"`` (see module docstring).
        frame_size: if set, the only frame side accepted (pixels; the FC-LSTM's fully
            connected layers are tied to one frame size).
        residual: forecast the change from the last observed frame (see module docstring).

    Shape:
        ``x (B, T_in, C, H, W)`` with H, W multiples of ``patch_size`` ->
        logits ``(B, T_out, C, H, W)``.

    Raises:
        ValueError: unknown cell, sizes not divisible by the patch size, bad per-layer lists.
    """

    def __init__(self, in_channels: int = 1, hidden_channels: Sequence[int] = (64,), *, cell: str = "convlstm",
                 kernel_size: int | Sequence[int] = 5, input_kernel_size: int | None = None, patch_size: int = 4,
                 num_output: int = 10, peephole: bool = True, num_links: int | Sequence[int] = 5,
                 output_from: str = "all", forecaster_input: str = "none", frame_size: int | None = None,
                 residual: bool = False):
        super().__init__()
        self.residual = bool(residual)
        if cell not in CONV_LAYERS:
            raise ValueError(f"cell={cell!r}: expected one of {sorted(CONV_LAYERS)}")
        if output_from not in ("all", "top"):
            raise ValueError(f"output_from={output_from!r}: expected 'all' or 'top'")
        if forecaster_input not in ("none", "previous_frame"):
            raise ValueError(f"forecaster_input={forecaster_input!r}: expected 'none' or 'previous_frame'")
        hidden = [int(h) for h in hidden_channels]
        n = len(hidden)
        if n < 1:
            raise ValueError("hidden_channels must list at least one layer")
        kernels = _per_layer(kernel_size, n, "kernel_size")
        links = _per_layer(num_links, n, "num_links")
        self.in_channels, self.hidden_channels, self.cell = in_channels, hidden, cell
        self.patch_size, self.num_output = patch_size, num_output
        self.output_from, self.forecaster_input = output_from, forecaster_input
        self.frame_size = frame_size
        d = in_channels * patch_size ** 2  # channels of a patch-folded frame
        Layer = CONV_LAYERS[cell]

        def make(cin: int, cout: int, k: int, links_l: int) -> nn.Module:
            if cell == "convlstm":
                return Layer(cin, cout, kernel_size=k, input_kernel_size=input_kernel_size or k, peephole=peephole)
            if cell == "convgru":
                return Layer(cin, cout, kernel_size=k, input_kernel_size=input_kernel_size or k)
            return Layer(cin, cout, num_links=links_l, input_kernel_size=input_kernel_size or k)

        self.encoder = nn.ModuleList(make(d if i == 0 else hidden[i - 1], hidden[i], kernels[i], links[i])
                                     for i in range(n))
        first_in = d if forecaster_input == "previous_frame" else 0
        self.forecaster = nn.ModuleList(make(first_in if i == 0 else hidden[i - 1], hidden[i], kernels[i], links[i])
                                        for i in range(n))
        self.output = nn.Conv2d(sum(hidden) if output_from == "all" else hidden[-1], d, 1)

    # ------------------------------------------------------------------ patches
    def to_patches(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, H, W)`` -> ``(B, T, C*p*p, H/p, W/p)``."""
        B, T, C, H, W = x.shape
        p = self.patch_size
        if self.frame_size is not None and (H, W) != (self.frame_size, self.frame_size):
            raise ValueError(f"this model takes {self.frame_size}x{self.frame_size} frames, got {H}x{W} "
                             f"(x of shape {tuple(x.shape)})")
        if C != self.in_channels or H % p or W % p:
            raise ValueError(f"expected frames (B, T, {self.in_channels}, H, W) with H and W multiples of "
                             f"patch_size={p}, got {tuple(x.shape)}")
        return F.pixel_unshuffle(x.reshape(B * T, C, H, W), p).unflatten(0, (B, T))

    def from_patches(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C*p*p, h, w)`` -> ``(B, T, C, h*p, w*p)``."""
        return F.pixel_shuffle(x.flatten(0, 1), self.patch_size).unflatten(0, (-1, x.shape[1]))

    def _readout(self, hs: list[torch.Tensor]) -> torch.Tensor:
        """Logits from forecaster hidden states, each ``(B, T, F_l, h, w)`` -> ``(B, T, C, H, W)``."""
        feats = torch.cat(hs, dim=2) if self.output_from == "all" else hs[-1]  # (B, T, ΣF, h, w)
        T = feats.shape[1]
        y = self.output(feats.flatten(0, 1)).unflatten(0, (-1, T))  # (B, T, C*p*p, h, w)
        return self.from_patches(y)

    # ------------------------------------------------------------------ forward
    def encode(self, x: torch.Tensor, states: list | None = None) -> list:
        """Final states of the encoder layers for input frames ``x (B, T_in, C, H, W)``, starting
        from ``states`` (the encoder layers' states after earlier frames; None: zeros)."""
        h = self.to_patches(x)
        out = []
        for i, layer in enumerate(self.encoder):
            h, s = layer(h, None if states is None else states[i])
            out.append(s)
        return out

    # ------------------------------------------------------------------ streaming
    def step(self, frames: torch.Tensor, state: dict | None = None) -> dict:
        """Streaming: observe ``frames (B, t, C, H, W)`` (any t >= 1) after ``state`` (None: the
        start) and return the new state. The cost per frame is constant: the past is carried
        in the encoder's states, never re-run. Steps over any split of a sequence give the
        same state as :meth:`encode` over the whole of it.

        Returns:
            ``{"encoder": [state of each encoder layer], "last": frames[:, -1]}``.
        """
        if frames.dim() != 5:
            raise ValueError(f"expected frames of shape (B, t, C, H, W), got {tuple(frames.shape)}")
        return {"encoder": self.encode(frames, None if state is None else state["encoder"]), "last": frames[:, -1]}

    def forecast(self, state: dict, num_output: int | None = None) -> torch.Tensor:
        """Logits ``(B, T_out, C, H, W)`` of the ``num_output`` frames after those observed in
        ``state`` (from :meth:`step`; left unchanged). ``forecast(step(x))`` equals ``forward(x)``."""
        T_out = int(num_output or self.num_output)
        states = list(state["encoder"])
        if self.forecaster_input == "none":
            hs, h = [], None
            for i, layer in enumerate(self.forecaster):
                h, _ = layer(h, states[i], num_steps=T_out if h is None else None)
                hs.append(h)  # (B, T_out, F_i, h, w)
            return self._with_residual(self._readout(hs), state["last"])
        return self._forecast_conditional(state["last"], states, T_out, None, 0.0)

    def _with_residual(self, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """``residual=True``: logits ``(B, T, C, H, W)`` plus the logit of the last frame ``(B, C, H, W)``."""
        if not self.residual:
            return logits
        return logits + torch.logit(last.float().clamp(1e-3, 1 - 1e-3)).to(logits.dtype)[:, None]

    def forward(self, x: torch.Tensor, num_output: int | None = None, *, targets: torch.Tensor | None = None,
                teacher_forcing: float = 0.0) -> torch.Tensor:
        """Forecast ``num_output`` frames (default ``self.num_output``) after ``x``.

        Args:
            x: input frames ``(B, T_in, C, H, W)``, intensities in [0, 1].
            num_output: frames to forecast.
            targets: ground-truth future frames ``(B, T_out, C, H, W)``, used only with
                ``forecaster_input="previous_frame"`` and ``teacher_forcing > 0``.
            teacher_forcing: probability (per sequence and step) of feeding the true previous
                frame instead of the model's own prediction (scheduled sampling).

        Returns:
            Logits ``(B, T_out, C, H, W)``.
        """
        T_out = int(num_output or self.num_output)
        if x.dim() != 5:
            raise ValueError(f"expected x of shape (B, T_in, C, H, W), got {tuple(x.shape)}")
        if self.forecaster_input == "none" or targets is None or teacher_forcing <= 0:
            return self.forecast(self.step(x), T_out)
        return self._forecast_conditional(x[:, -1], self.encode(x), T_out, targets, teacher_forcing)

    def _forecast_conditional(self, prev, states, T_out, targets, teacher_forcing):
        """``prev (B, C, H, W)``: the last seen frame."""
        outs, last = [], prev
        for t in range(T_out):
            inp = self.to_patches(prev[:, None])[:, 0]  # (B, C*p*p, h, w)
            hs = []
            for i, layer in enumerate(self.forecaster):
                states[i] = layer.cell(inp, states[i])
                inp = states[i][0] if isinstance(states[i], tuple) else states[i]
                hs.append(inp[:, None])
            y = self._with_residual(self._readout(hs), last)[:, 0]  # (B, C, H, W) logits
            outs.append(y)
            prev = torch.sigmoid(y)
            if targets is not None and teacher_forcing > 0:
                use_truth = (torch.rand(prev.shape[0], 1, 1, 1, device=prev.device) < teacher_forcing)
                prev = torch.where(use_truth, targets[:, t].to(prev.dtype), prev)
        return torch.stack(outs, dim=1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, num_output: int | None = None) -> torch.Tensor:
        """Forecast intensities in [0, 1]: ``sigmoid(forward(x))``, ``(B, T_out, C, H, W)``."""
        return torch.sigmoid(self.forward(x, num_output))


# ============================================================================ builders
Cell = Literal["convlstm", "convgru", "trajgru"]
ForecasterInput = Literal["none", "previous_frame"]


@register_model(task="forecasting")
def encoder_forecaster(*, cell: Cell = "convlstm", hidden_channels: Sequence[int] = (64, 64),
                       kernel_size: int | Sequence[int] = 5, input_kernel_size: int | None = None,
                       patch_size: int = 4, in_channels: int = 1, num_output: int = 10, peephole: bool = True,
                       num_links: int | Sequence[int] = 5, output_from: Literal["all", "top"] = "all",
                       forecaster_input: ForecasterInput = "none",
                       frame_size: int | None = None, residual: bool = False) -> EncoderForecaster:
    """Any encoder-forecaster: cell, layers and kernels as given (Shi et al. 2015's layout)."""
    return EncoderForecaster(in_channels, hidden_channels, cell=cell, kernel_size=kernel_size,
                             input_kernel_size=input_kernel_size, patch_size=patch_size, num_output=num_output,
                             peephole=peephole, num_links=num_links, output_from=output_from,
                             forecaster_input=forecaster_input, frame_size=frame_size, residual=residual)


def _shi_table1(hidden: tuple[int, ...], state_kernel: int, input_kernel: int, in_channels: int, patch_size: int,
                num_output: int, peephole: bool, forecaster_input: str) -> EncoderForecaster:
    """A ConvLSTM encoder-forecaster named as in Shi et al.'s Table 1."""
    return EncoderForecaster(in_channels, hidden, cell="convlstm", kernel_size=state_kernel,
                             input_kernel_size=input_kernel, patch_size=patch_size, num_output=num_output,
                             peephole=peephole, forecaster_input=forecaster_input)


@register_model(task="forecasting")
def convlstm_5x5_5x5_256(*, in_channels: int = 1, patch_size: int = 4, num_output: int = 10, peephole: bool = True,
                         forecaster_input: ForecasterInput = "none") -> EncoderForecaster:
    """ConvLSTM(5x5)-5x5-256 (Shi et al. 2015, Table 1): 13,524,496 parameters."""
    return _shi_table1((256,), 5, 5, in_channels, patch_size, num_output, peephole, forecaster_input)


@register_model(task="forecasting")
def convlstm_5x5_5x5_128_5x5_128(*, in_channels: int = 1, patch_size: int = 4, num_output: int = 10,
                                 peephole: bool = True,
                                 forecaster_input: ForecasterInput = "none") -> EncoderForecaster:
    """ConvLSTM(5x5)-5x5-128-5x5-128 (Shi et al. 2015, Table 1): 10,042,896 parameters."""
    return _shi_table1((128, 128), 5, 5, in_channels, patch_size, num_output, peephole, forecaster_input)


@register_model(task="forecasting")
def convlstm_5x5_5x5_128_5x5_64_5x5_64(*, in_channels: int = 1, patch_size: int = 4, num_output: int = 10,
                                       peephole: bool = True,
                                       forecaster_input: ForecasterInput = "none") -> EncoderForecaster:
    """ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64 (Shi et al. 2015, Table 1; their best): 7,585,296 parameters."""
    return _shi_table1((128, 64, 64), 5, 5, in_channels, patch_size, num_output, peephole, forecaster_input)


@register_model(task="forecasting")
def convlstm_9x9_1x1_128_1x1_128(*, in_channels: int = 1, patch_size: int = 4, num_output: int = 10,
                                 peephole: bool = True,
                                 forecaster_input: ForecasterInput = "none") -> EncoderForecaster:
    """ConvLSTM(9x9)-1x1-128-1x1-128 (Shi et al. 2015, Table 1): 11,550,224 parameters."""
    return _shi_table1((128, 128), 1, 9, in_channels, patch_size, num_output, peephole, forecaster_input)


@register_model(task="forecasting")
def convlstm_9x9_1x1_128_1x1_64_1x1_64(*, in_channels: int = 1, patch_size: int = 4, num_output: int = 10,
                                       peephole: bool = True,
                                       forecaster_input: ForecasterInput = "none") -> EncoderForecaster:
    """ConvLSTM(9x9)-1x1-128-1x1-64-1x1-64 (Shi et al. 2015, Table 1): 8,830,480 parameters."""
    return _shi_table1((128, 64, 64), 1, 9, in_channels, patch_size, num_output, peephole, forecaster_input)


@register_model(task="forecasting")
def convlstm_tiny(*, in_channels: int = 1, patch_size: int = 4, num_output: int = 10, peephole: bool = True,
                  forecaster_input: ForecasterInput = "none") -> EncoderForecaster:
    """Tiny ConvLSTM encoder–forecaster for tests (8-8 channels, 3x3 kernels)."""
    return _shi_table1((8, 8), 3, 3, in_channels, patch_size, num_output, peephole, forecaster_input)


def _fully_connected_lstm(hidden: tuple[int, ...], frame_size: int, in_channels: int, num_output: int,
                          forecaster_input: str) -> EncoderForecaster:
    """An FC-LSTM encoder-forecaster: the whole frame is one patch, so 1x1 kernels on a 1x1 grid of
    ``frame_size²`` channels are fully connected peephole LSTMs; read out from the top layer."""
    return EncoderForecaster(in_channels, hidden, cell="convlstm", kernel_size=1, input_kernel_size=1,
                             patch_size=frame_size, num_output=num_output, output_from="top",
                             forecaster_input=forecaster_input, frame_size=frame_size)


@register_model(task="forecasting")
def fc_lstm_2048_2048(*, frame_size: int = 64, in_channels: int = 1, num_output: int = 10,
                      forecaster_input: ForecasterInput = "none") -> EncoderForecaster:
    """FC-LSTM-2048-2048 (Srivastava et al. 2015; Shi et al. 2015, Table 1): 142,667,776 parameters
    on 64x64 frames. Fully connected peephole LSTMs (1x1 kernels on the whole frame as one patch)."""
    return _fully_connected_lstm((2048, 2048), frame_size, in_channels, num_output, forecaster_input)


@register_model(task="forecasting")
def fc_lstm_tiny(*, frame_size: int = 16, in_channels: int = 1, num_output: int = 10,
                 forecaster_input: ForecasterInput = "none") -> EncoderForecaster:
    """Tiny FC-LSTM encoder–forecaster for tests (32-32 units, 16x16 frames)."""
    return _fully_connected_lstm((32, 32), frame_size, in_channels, num_output, forecaster_input)


@register_model(task="forecasting")
def convgru_5x5_5x5_128_5x5_64_5x5_64(*, in_channels: int = 1, patch_size: int = 4, num_output: int = 10,
                                      forecaster_input: ForecasterInput = "none") -> EncoderForecaster:
    """ConvGRU (Ballas et al. 2016) in Shi et al.'s best encoder–forecaster layout (128-64-64, 5x5)."""
    return EncoderForecaster(in_channels, (128, 64, 64), cell="convgru", kernel_size=5, input_kernel_size=5,
                             patch_size=patch_size, num_output=num_output, forecaster_input=forecaster_input)


@register_model(task="forecasting")
def convgru_tiny(*, in_channels: int = 1, patch_size: int = 4, num_output: int = 10,
                 forecaster_input: ForecasterInput = "none") -> EncoderForecaster:
    """Tiny ConvGRU encoder–forecaster for tests."""
    return EncoderForecaster(in_channels, (8, 8), cell="convgru", kernel_size=3, input_kernel_size=3,
                             patch_size=patch_size, num_output=num_output, forecaster_input=forecaster_input)


@register_model(task="forecasting")
def trajgru_128_64_64(*, in_channels: int = 1, patch_size: int = 4, num_output: int = 10,
                      forecaster_input: ForecasterInput = "none") -> EncoderForecaster:
    """TrajGRU (Shi et al. 2017) in the 128-64-64 encoder–forecaster layout, L = 13, 13, 9 links,
    3x3 input kernels (the paper's TrajGRU also down/up-samples between layers; this one keeps
    Shi et al. 2015's single resolution)."""
    return EncoderForecaster(in_channels, (128, 64, 64), cell="trajgru", kernel_size=1, input_kernel_size=3,
                             num_links=(13, 13, 9), patch_size=patch_size, num_output=num_output,
                             forecaster_input=forecaster_input)


@register_model(task="forecasting")
def trajgru_tiny(*, in_channels: int = 1, patch_size: int = 4, num_output: int = 10,
                 forecaster_input: ForecasterInput = "none") -> EncoderForecaster:
    """Tiny TrajGRU encoder–forecaster for tests (8-8 channels, 3 links)."""
    return EncoderForecaster(in_channels, (8, 8), cell="trajgru", kernel_size=1, input_kernel_size=3, num_links=3,
                             patch_size=patch_size, num_output=num_output, forecaster_input=forecaster_input)
