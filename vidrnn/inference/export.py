"""Export a trained recurrent classifier to ONNX, for ONNX Runtime and other engines.

For the recurrent classifiers whose recurrence is ``nn.LSTM`` (LRCN, the deep LSTM; ``cell:
lstm``) three graphs are written:

* ``model.onnx``: the whole model, ``video (B, T, 3, S, S)`` float in [0, 1] (already resized and
  cropped as the checkpoint's transform does; normalisation is inside) -> ``logits (B, K)`` (the
  model's aggregation of its frames) and ``frame_logits (B, T, K)``;
* ``encoder.onnx``: ``frames (N, 3, S, S)`` -> ``features (N, D)``;
* ``step.onnx``: ``features (B, t, D)``, ``h0 (L, B, H)``, ``c0 (L, B, H)`` -> ``frame_logits
  (B, t, K)``, ``h (L, B, H)``, ``c (L, B, H)`` (zeros for the first window);

the last two so that a video of any length streams through ONNX Runtime with the state as
explicit inputs and outputs; ``export.json`` describes the inputs, outputs, classes and the input
size. ``N``, ``B``, ``T`` and ``t`` are dynamic. ``model.onnx`` and ``step.onnx`` come from torch's
TorchScript-based ONNX exporter, which writes ``nn.LSTM`` as ONNX's ``LSTM`` operator with a
dynamic sequence length (adaptive average pools are written as plain average pools at the
checkpoint's input size, where they divide evenly); the encoder from the ``torch.export``-based
one. Requires the ``export`` extra (onnx, onnxruntime, onnxscript). vidrnn's GRU and vanilla RNN
layers are written from their equations (Python loops), so those models export through
``--format torchscript`` instead.

For the encoder-forecasters (ConvLSTM, ConvGRU, TrajGRU; Shi et al. 2015/2017), two graphs
carry the encoder's states explicitly, one tensor per layer (``h0, c0, h1, c1, ...``; GRUs only
``h``), each ``(B, F_l, H/p, W/p)`` for patch size ``p``:

* ``step.onnx``: ``frame (B, C, H, W)`` in [0, 1] and the states -> the states after that frame
  (``h0_out, ...``; all states are zeros before the first frame);
* ``forecast.onnx``: the states (and ``last``, the last frame seen, for models with
  ``forecaster_input: previous_frame`` or ``residual: true``) -> ``logits (B, T_out, C, H, W)`` of the next ``T_out``
  frames (the checkpoint's ``num_output``; sigmoid gives intensities);

so radar or video frames stream in one at a time and a forecast can be asked for after any of
them. ``B``, ``H`` and ``W`` are dynamic (multiples of ``p``), except for the FC-LSTM (tied to one
frame size) and TrajGRU, whose warping grid is traced at the export's frame size
(``export.json``'s ``frame_size``: the model's, else 64 px); their ``B`` stays dynamic.

Where ONNX export does not cover a classifier (the attention LSTMs, 3D CNNs, pooling models),
:func:`export_torchscript` (``--format torchscript``) traces the whole model into one
TorchScript graph at the checkpoint's clip length.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrnn.errors import ConfigError
from vidrnn.inference.checkpoint import load_model
from vidrnn.io.files import write_json

__all__ = ["export_onnx", "export_torchscript"]


class _Encoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, frames):
        return self.model.encode(frames.unsqueeze(0)).squeeze(0)


class _Whole(nn.Module):
    """The whole classifier on ``video (B, T, 3, S, S)``, written so that B and T stay dynamic in
    the traced graph: frames are folded with a reshape whose trailing sizes are constants."""

    def __init__(self, model, size: int):
        super().__init__()
        self.model, self.size = _fixed_pools(model, size), size

    def forward(self, video):
        m, S = self.model, self.size
        enc = m.encoder
        frames = video.reshape(-1, 3, S, S)
        feats = enc.pool(enc.encode_frames(frames))  # (B*T, D)
        feats = feats.reshape(video.shape[0], -1, feats.shape[-1])  # (B, T, D)
        frame_logits = m.forward_head(m.forward_features(feats))
        return m.aggregate(frame_logits), frame_logits


def _fixed_pools(model, size: int):
    """A copy of ``model`` whose adaptive average pools are plain average pools where the input
    size (at frames of ``size`` px) divides evenly: the same numbers, but exportable at a dynamic
    batch (ONNX's exporter needs the input size of an adaptive pool)."""
    model = copy.deepcopy(model).eval()  # eval: the probe below must not move BatchNorm statistics
    seen = {}
    hooks = [mod.register_forward_hook(lambda mod, i, o: seen.__setitem__(mod, tuple(i[0].shape[-2:])))
             for mod in model.modules() if isinstance(mod, nn.AdaptiveAvgPool2d)]
    with torch.no_grad():
        model.encoder.encode_frames(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if child in seen:
                (h, w), out = seen[child], child.output_size
                oh, ow = (out, out) if isinstance(out, int) else out
                if oh and ow and h % oh == 0 and w % ow == 0:
                    setattr(parent, name, nn.AvgPool2d((h // oh, w // ow)))
    return model


class _Step(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, features, h0, c0):
        state = [(h0[i], c0[i]) for i in range(h0.shape[0])]
        out, state = self.model.rnn(features, state)
        return self.model.forward_head(out), torch.stack([s[0] for s in state]), torch.stack([s[1] for s in state])


def _export(module, args, path: Path, input_names, output_names, dynamic, *, dynamo: bool) -> None:
    """``dynamo=False``: the TorchScript-based exporter, which writes ``nn.LSTM`` as ONNX's LSTM
    operator with a dynamic sequence length (the ``torch.export``-based one unrolls the time loop at
    the example's length), ``dynamic`` as ``dynamic_axes``; ``dynamo=True``: the ``torch.export``
    one (it handles the CNNs' adaptive pooling at a dynamic batch), ``dynamic`` as
    ``dynamic_shapes``."""
    module.eval()  # a fresh wrapper is in training mode, and the exporter restores that mode afterwards
    tmp = path.with_name(path.name + ".tmp")
    kw = {"dynamic_shapes": dynamic, "external_data": False, "verbose": False} if dynamo else \
        {"dynamic_axes": dynamic, "opset_version": 17}
    try:
        torch.onnx.export(module, args, str(tmp), input_names=input_names, output_names=output_names, dynamo=dynamo,
                          **kw)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _refuse_flow(info) -> None:
    if info.data.get("flow"):
        raise ValueError(f"model {info.name!r} is a flow stream: its input is optical flow computed with OpenCV "
                         "(data.flow), which an exported graph cannot compute; export takes RGB models")


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Write ``model.onnx``, ``encoder.onnx``, ``step.onnx`` and ``export.json`` into ``out``
    (encoder-forecasters: ``step.onnx``, ``forecast.onnx``; see the module docstring).

    Returns:
        ``{"model", "encoder", "step", "json"}`` paths (forecasters: ``{"step", "forecast", "json"}``).

    Raises:
        ConfigError: a model this exporter does not cover (not a recurrent classifier with a
            streaming step, or a recurrence other than ``nn.LSTM``), or the ``export`` extra is
            not installed.
        FileExistsError: ``out`` already holds an export (nothing is overwritten).
    """
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        raise ConfigError("vidrnn export needs the export extra: pip install 'vidrnn[export]'") from None
    model = load_model(checkpoint).float().eval()
    info = model.vidrnn
    _refuse_flow(info)
    out = Path(out)
    if (out / "export.json").exists():
        raise FileExistsError(f"{out / 'export.json'} exists; choose another --out (nothing is overwritten)")
    if info.task == "forecasting" and hasattr(model, "step") and hasattr(model, "forecast"):
        out.mkdir(parents=True, exist_ok=True)
        return _export_forecaster(model, info, checkpoint, out)
    rnn = getattr(model, "rnn", None)
    if info.task != "classification" or not getattr(model, "streaming", False) or rnn is None \
            or not all(isinstance(getattr(layer, "lstm", None), nn.LSTM) for layer in rnn.layers):
        raise ConfigError(f"{checkpoint}: vidrnn export covers the recurrent classifiers with nn.LSTM layers (lrcn, "
                          f"deep_lstm and variants, cell=lstm) and the encoder-forecasters; {info.name!r} is not "
                          "one of them")
    out.mkdir(parents=True, exist_ok=True)
    size = int((info.data.get("transform") or {}).get("size", 112))
    L, H = len(rnn.layers), rnn.layers[0].hidden_size
    K = len(info.class_names)
    with torch.no_grad():
        feats = model.encode(torch.rand(1, 3, 3, size, size))
    D = feats.shape[-1]
    _export(_Encoder(model), (torch.rand(3, 3, size, size),), out / "encoder.onnx", ["frames"], ["features"],
            {"frames": {0: torch.export.Dim("N", min=1)}}, dynamo=True)
    _export(_Step(model), (torch.rand(2, 3, D), torch.zeros(L, 2, H), torch.zeros(L, 2, H)), out / "step.onnx",
            ["features", "h0", "c0"], ["frame_logits", "h", "c"],
            {"features": {0: "B", 1: "t"}, "h0": {1: "B"}, "c0": {1: "B"}, "frame_logits": {0: "B", 1: "t"},
             "h": {1: "B"}, "c": {1: "B"}}, dynamo=False)
    _export(_Whole(model, size), (torch.rand(2, 3, 3, size, size),), out / "model.onnx", ["video"],
            ["logits", "frame_logits"], {"video": {0: "B", 1: "T"}, "logits": {0: "B"},
                                         "frame_logits": {0: "B", 1: "T"}}, dynamo=False)
    meta = {"checkpoint": str(checkpoint), "model": info.name, "classes": list(info.class_names),
            "input_size": size, "feature_dim": int(D), "num_layers": L, "hidden_size": H, "num_classes": K,
            "model.onnx": {"inputs": {"video": "(B, T, 3, S, S) float32 in [0, 1], resized and cropped"},
                           "outputs": {"logits": "(B, K) video log-probabilities (the model's aggregation)",
                                       "frame_logits": "(B, T, K)"}},
            "encoder": {"inputs": {"frames": "(N, 3, S, S) float32 in [0, 1], resized and cropped"},
                        "outputs": {"features": "(N, D)"}},
            "step": {"inputs": {"features": "(B, t, D)", "h0": "(L, B, H), zeros at the start", "c0": "(L, B, H)"},
                     "outputs": {"frame_logits": "(B, t, K)", "h": "(L, B, H)", "c": "(L, B, H)"}}}
    write_json(out / "export.json", meta)
    return {"model": str(out / "model.onnx"), "encoder": str(out / "encoder.onnx"), "step": str(out / "step.onnx"),
            "json": str(out / "export.json")}


class _ForecastStep(nn.Module):
    """One frame observed: flat state tensors in and out."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, frame, *flat):  # model.step on one frame, without reshapes that would fix the batch
        h, new = F.pixel_unshuffle(frame, self.model.patch_size), []
        for layer, s in zip(self.model.encoder, _unflatten_states(self.model, flat)):
            s = layer.cell(h, s)
            h = s[0] if isinstance(s, tuple) else s
            new.append(s)
        return tuple(_flatten_states(new))


def _needs_last(model) -> bool:
    """Whether the forecast reads the last frame seen (previous-frame forecasters, residual ones)."""
    return model.forecaster_input == "previous_frame" or getattr(model, "residual", False)


class _Forecast(nn.Module):
    def __init__(self, model, num_output: int):
        super().__init__()
        self.model, self.num_output = model, num_output
        self.needs_last = _needs_last(model)

    def forward(self, *inputs):
        last, flat = (inputs[0], inputs[1:]) if self.needs_last else (None, inputs)
        return self.model.forecast({"encoder": _unflatten_states(self.model, flat), "last": last}, self.num_output)


def _flatten_states(states) -> list:
    out = []
    for s in states:
        out.extend(s if isinstance(s, tuple) else (s,))
    return out


def _unflatten_states(model, flat) -> list:
    out, k = [], 0
    for layer in model.encoder:
        n = layer.cell.state_tensors
        out.append(tuple(flat[k:k + n]) if n == 2 else flat[k])
        k += n
    return out


def _state_names(model) -> list[str]:
    names = []
    for i, layer in enumerate(model.encoder):
        names += [f"h{i}", f"c{i}"] if layer.cell.state_tensors == 2 else [f"h{i}"]
    return names


def _export_forecaster(model, info, checkpoint, out: Path) -> dict:
    """``step.onnx`` (one frame observed) and ``forecast.onnx`` (the next frames) of an
    encoder-forecaster; see the module docstring."""
    size = int(model.frame_size or info.data.get("frame_size") or 64)
    size -= size % model.patch_size
    C, p, T_out = model.in_channels, model.patch_size, int(info.data.get("num_output") or model.num_output)
    names = _state_names(model)
    with torch.no_grad():
        st = model.step(torch.rand(2, 1, C, size, size))
    flat = _flatten_states(st["encoder"])
    fixed = model.frame_size is not None or model.cell == "trajgru"  # TrajGRU's warp grid is traced at one size
    hw = {0: "B"} if fixed else {0: "B", 2: "H", 3: "W"}
    shp = {0: "B"} if fixed else {0: "B", 2: "h", 3: "w"}
    f_in = (["last"] if _needs_last(model) else []) + names
    _export(_ForecastStep(model), (torch.rand(2, C, size, size), *flat), out / "step.onnx",
            ["frame", *names], [f"{n}_out" for n in names],
            {"frame": hw, **{n: shp for n in names}, **{f"{n}_out": shp for n in names}}, dynamo=False)
    _export(_Forecast(model, T_out), (*((st["last"],) if f_in[0] == "last" else ()), *flat), out / "forecast.onnx",
            f_in, ["logits"], {**{n: shp for n in names}, "last": hw,
                               "logits": {0: "B"} if fixed else {0: "B", 3: "H", 4: "W"}}, dynamo=False)
    shapes = {n: f"(B, {s.shape[1]}, H/{p}, W/{p})" for n, s in zip(names, flat)}
    last = {"last": f"(B, {C}, H, W): the last frame observed"} if f_in[0] == "last" else {}
    meta = {"checkpoint": str(checkpoint), "model": info.name, "task": "forecasting", "in_channels": C,
            "patch_size": p, "frame_size": size if fixed else None, "num_output": T_out,
            "step": {"inputs": {"frame": f"(B, {C}, H, W) in [0, 1]",
                                **{n: f"{v}, zeros before the first frame" for n, v in shapes.items()}},
                     "outputs": {f"{n}_out": v for n, v in shapes.items()}},
            "forecast": {"inputs": {**last, **shapes},
                         "outputs": {"logits": f"(B, {T_out}, {C}, H, W); sigmoid gives intensities in [0, 1]"}}}
    write_json(out / "export.json", meta)
    return {"step": str(out / "step.onnx"), "forecast": str(out / "forecast.onnx"), "json": str(out / "export.json")}


class _Logits(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, video):
        out = self.model(video)
        return out.logits, (out.frame_logits if out.frame_logits is not None else out.logits[:, None])


def export_torchscript(checkpoint: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Any video classifier as one TorchScript graph (``model.pt``, loaded with
    ``torch.jit.load`` without vidrnn), the fallback for models the ONNX export does not cover
    (the attention LSTMs, the 3D CNNs, the pooling models).

    The graph is traced on a clip of the checkpoint's length ``T`` (its sampler's frames per
    clip) at its input size: ``video (B, T, 3, S, S)`` float in [0, 1], resized and cropped ->
    ``logits (B, K)`` and ``frame_logits (B, T, K)`` (models with one output per clip repeat
    the logits). Models whose time loop is Python code (the attention LSTMs) are unrolled at
    ``T``: other lengths need another export.

    Returns:
        ``{"model", "json"}`` paths.

    Raises:
        ConfigError: not a video classifier.
        FileExistsError: ``out`` already holds an export (nothing is overwritten).
    """
    from vidrnn.inference.predict import frames_per_clip
    from vidrnn.io.files import atomic_write
    from vidrnn.io.sampling import DEFAULT_SAMPLER, build_sampler

    model = load_model(checkpoint).float().eval()
    info = model.vidrnn
    _refuse_flow(info)
    if info.task != "classification":
        raise ConfigError(f"{checkpoint}: --format torchscript exports video classifiers; {info.name!r} is a "
                          f"{info.task} model (use --format onnx for forecasters)")
    out = Path(out)
    if (out / "export.json").exists():
        raise FileExistsError(f"{out / 'export.json'} exists; choose another --out (nothing is overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    T = frames_per_clip(build_sampler(info.data.get("test_sampler") or info.data.get("sampler") or DEFAULT_SAMPLER))
    size = int((info.data.get("transform") or {}).get("size", 112))
    with torch.no_grad():
        traced = torch.jit.trace(_Logits(model).eval(), torch.rand(1, T, 3, size, size), check_trace=False)
    with atomic_write(out / "model.pt") as tmp:
        torch.jit.save(traced, str(tmp))
    write_json(out / "export.json", {
        "checkpoint": str(checkpoint), "model": info.name, "format": "torchscript", "classes": list(info.class_names),
        "input_size": size, "frames": T,
        "inputs": {"video": f"(B, {T}, 3, {size}, {size}) float32 in [0, 1], resized and cropped"},
        "outputs": {"logits": f"(B, {len(info.class_names)})", "frame_logits": f"(B, {T}, {len(info.class_names)})"}})
    return {"model": str(out / "model.pt"), "json": str(out / "export.json")}
