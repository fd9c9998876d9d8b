"""Export a trained recurrent classifier to ONNX, for ONNX Runtime and other engines.

For the recurrent classifiers with a streaming step (LRCN, the deep LSTM) two graphs are
written, so that a video of any length streams through ONNX Runtime with the state as explicit
inputs and outputs:

* ``encoder.onnx``: ``frames (N, 3, S, S)`` float in [0, 1] (already resized and cropped as the
  checkpoint's transform does; normalisation is inside) -> ``features (N, D)``;
* ``step.onnx``: ``features (B, t, D)``, ``h0 (L, B, H)``, ``c0 (L, B, H)`` -> ``frame_logits
  (B, t, K)``, ``h (L, B, H)``, ``c (L, B, H)`` (zeros for the first window);

with ``export.json`` describing the inputs, outputs, classes and the input size. ``N``, ``B`` and
``t`` are dynamic. The step graph comes from torch's TorchScript-based ONNX exporter, which writes
``nn.LSTM`` as ONNX's ``LSTM`` operator with a dynamic sequence length; the encoder from the
``torch.export``-based one, which handles the CNNs' adaptive pooling at a dynamic batch. Not yet:
the whole model as one graph (neither exporter manages both). Requires the ``export`` extra
(onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from vidrnn.errors import ConfigError
from vidrnn.inference.checkpoint import load_model
from vidrnn.io.files import write_json

__all__ = ["export_onnx"]


class _Encoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, frames):
        return self.model.encode(frames.unsqueeze(0)).squeeze(0)


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
    tmp = path.with_name(path.name + ".tmp")
    kw = {"dynamic_shapes": dynamic, "external_data": False, "verbose": False} if dynamo else \
        {"dynamic_axes": dynamic, "opset_version": 17}
    try:
        torch.onnx.export(module, args, str(tmp), input_names=input_names, output_names=output_names, dynamo=dynamo,
                          **kw)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Write ``encoder.onnx``, ``step.onnx`` and ``export.json`` into ``out`` (see the module
    docstring).

    Returns:
        ``{"encoder", "step", "json"}`` paths.

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
    rnn = getattr(model, "rnn", None)
    if info.task != "classification" or not getattr(model, "streaming", False) or rnn is None \
            or not all(isinstance(getattr(layer, "lstm", None), nn.LSTM) for layer in rnn.layers):
        raise ConfigError(f"{checkpoint}: vidrnn export covers the recurrent classifiers with nn.LSTM layers (lrcn, "
                          f"deep_lstm and variants, cell=lstm); {info.name!r} is not one of them")
    out = Path(out)
    if (out / "export.json").exists():
        raise FileExistsError(f"{out / 'export.json'} exists; choose another --out (nothing is overwritten)")
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
    meta = {"checkpoint": str(checkpoint), "model": info.name, "classes": list(info.class_names),
            "input_size": size, "feature_dim": int(D), "num_layers": L, "hidden_size": H, "num_classes": K,
            "encoder": {"inputs": {"frames": "(N, 3, S, S) float32 in [0, 1], resized and cropped"},
                        "outputs": {"features": "(N, D)"}},
            "step": {"inputs": {"features": "(B, t, D)", "h0": "(L, B, H), zeros at the start", "c0": "(L, B, H)"},
                     "outputs": {"frame_logits": "(B, t, K)", "h": "(L, B, H)", "c": "(L, B, H)"}}}
    write_json(out / "export.json", meta)
    return {"encoder": str(out / "encoder.onnx"), "step": str(out / "step.onnx"), "json": str(out / "export.json")}
