"""Forecast with a trained encoder–forecaster and write pictures: ``vidrnn predict CKPT [INPUT...]``.

Inputs (each one of):

* nothing -- the first ``num`` sequences of the test split described by the checkpoint's own data
  settings (generated Moving MNIST, or the test radar event);
* a ``.npy`` file -- the standard ``mnist_test_seq.npy`` layout ``(T, N, H, W)`` uint8, or one
  sequence ``(T, H, W)`` (uint8, or floats in [0, 1]); for a radar checkpoint one ``(T, H, W)``
  sequence of rain rates in mm/h (NaN where missing), cut into windows like the radar folders;
* a folder of radar files (FMI ``*.pgm.gz`` or KNMI ``*.h5``): its first ``num`` windows.

For every sequence it writes ``<name>.png`` (input | truth | forecast) and ``<name>.gif`` (truth
beside forecast), then ``lead_time.png`` (metric per lead time; for radar the CSI of the model
beside persistence and the pysteps baselines), for radar ``csi_<t>mmh.png`` per threshold (the
three lowest), and ``metrics.json`` in the output folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vidrnn.data.forecast_datamodule import ForecastDataModule, trim_frames
from vidrnn.data.radar import RadarWindows, load_radar_sequence
from vidrnn.io.files import write_json
from vidrnn.metrics.forecasting import ForecastMetrics
from vidrnn.metrics.nowcasting import DEFAULT_THRESHOLDS
from vidrnn.metrics.rainrate import from_unit
from vidrnn.tasks.forecasting import NowcastEvaluation
from vidrnn.viz.forecast import forecast_gif, forecast_grid, lead_time_plot

__all__ = ["ForecastPredictor", "forecast_inputs", "predict_forecasts"]


class _ArraySequences(Dataset):
    def __init__(self, seqs: np.ndarray, num_input: int, num_output: int):
        self.seqs, self.num_input, self.num_output = seqs, num_input, num_output

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i):
        v = torch.as_tensor(np.array(self.seqs[i]), dtype=torch.float32)  # copy out of the memmap
        v = v / 255.0 if self.seqs.dtype == np.uint8 else v
        v = v[:, None]  # (T, 1, H, W)
        return {"input": v[:self.num_input], "target": v[self.num_input:self.num_input + self.num_output]}


def forecast_inputs(spec: str | None, settings: dict) -> tuple[str, Dataset]:
    """``(name, dataset)`` of input/target sequences for one input spec (see module docstring).

    Raises:
        FileNotFoundError: missing path. ValueError: an array of the wrong shape or too few frames.
    """
    T_in, T_out = int(settings["num_input"]), int(settings["num_output"])
    if spec is None:
        return "test", ForecastDataModule(settings).splits["test"]
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"forecast input not found: {p}")
    if p.is_dir():
        source = "knmi" if any(p.glob("*.h5")) else "fmi"
        r = settings.get("radar") or {}

        rain, _, _ = load_radar_sequence(p, source, downsample=int(r.get("downsample", 1)))
        crop = r.get("eval_crop")
        return p.name, RadarWindows(rain if crop else trim_frames(rain), in_frames=T_in, out_frames=T_out, crop=crop,
                                    random_crop=False,
                                    stride=T_out, a=float(r.get("zr_a", 200.0)), b=float(r.get("zr_b", 1.6)))
    if p.suffix == ".npy":
        try:
            a = np.load(p, mmap_mode="r")  # no pickles: allow_pickle stays False
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{p}: not a readable .npy array ({e})") from None
        if settings.get("kind") == "radar":
            if a.ndim != 3 or a.dtype.kind != "f":
                raise ValueError(f"{p}: a radar model takes one (T, H, W) float sequence of rain rates in mm/h, "
                                 f"got shape {a.shape} of {a.dtype}")
            r = settings.get("radar") or {}
            crop = r.get("eval_crop")
            crop = crop if crop and crop <= min(a.shape[1:]) else None
            return p.stem, RadarWindows(np.asarray(a), in_frames=T_in, out_frames=T_out, crop=crop, random_crop=False,
                                        stride=T_out, a=float(settings.get("zr_a", 200.0)),
                                        b=float(settings.get("zr_b", 1.6)))
        if a.ndim == 4:
            a = np.swapaxes(a, 0, 1)  # (N, T, H, W)
        elif a.ndim == 3:
            a = a[None]
        else:
            raise ValueError(f"{p}: expected (T, N, H, W) like mnist_test_seq.npy or one (T, H, W) sequence, "
                             f"got shape {a.shape}")
        if a.shape[1] < T_in + T_out:
            raise ValueError(f"{p}: sequences of {a.shape[1]} frames; the model needs {T_in} + {T_out}")
        return p.stem, _ArraySequences(a, T_in, T_out)
    raise ValueError(f"{p}: expected a .npy array or a folder of radar files")


class ForecastPredictor:
    """A trained encoder-forecaster with its data settings: forecast one window and score it.

    Args:
        model: a forecaster from :func:`vidrnn.inference.checkpoint.load_model`.
        device: where to run it.

    Raises:
        ValueError: ``model`` is not a forecaster.
    """

    def __init__(self, model, *, device: str | torch.device = "cpu"):
        info = model.vidrnn
        if info.task != "forecasting":
            raise ValueError(f"model {info.name!r} is a {info.task} model, not a forecaster")
        self.info, self.device = info, torch.device(device)
        self.model = model.to(self.device).eval()
        self.settings = dict(info.data)
        self.radar = self.settings.get("kind") == "radar"
        self.num_input, self.num_output = int(self.settings["num_input"]), int(self.settings["num_output"])
        #: minutes between radar frames (1 "frame" for Moving MNIST)
        self.step = float(self.settings.get("timestep_minutes", 5)) if self.radar else 1.0
        self.thresholds = list(self.settings.get("thresholds") or DEFAULT_THRESHOLDS)

    def inputs(self, spec: str | None) -> tuple[str, Dataset]:
        """:func:`forecast_inputs` with this checkpoint's settings (``None``: its test split)."""
        return forecast_inputs(spec, self.settings)

    @torch.no_grad()
    def forecast(self, item: dict) -> torch.Tensor:
        """The forecast ``(T_out, C, H, W)`` on the unit scale [0, 1] for one dataset item
        (``item["input"]`` ``(T_in, C, H, W)``)."""
        x = item["input"][None].to(self.device)
        return torch.sigmoid(self.model(x, self.num_output).float())[0]

    def rain(self, unit: torch.Tensor) -> torch.Tensor:
        """Unit-scale frames of a radar model as rain rate (mm/h)."""
        return from_unit(unit.float(), float(self.settings.get("zr_a", 200.0)), float(self.settings.get("zr_b", 1.6)))

    def evaluation(self, *, extrapolation: bool | None = None) -> NowcastEvaluation:
        """The radar scores (model, persistence and pysteps extrapolation) of this checkpoint;
        ``extrapolation=None`` scores pysteps extrapolation as the data settings say
        (``radar.pysteps_baseline``)."""
        radar = self.settings.get("radar") or {}
        if extrapolation is None:
            extrapolation = radar.get("pysteps_baseline", True)
        return NowcastEvaluation(self.thresholds, zr_a=self.settings.get("zr_a", 200.0),
                                 zr_b=self.settings.get("zr_b", 1.6), extrapolation=extrapolation,
                                 sprog=bool(radar.get("sprog", False))).to(self.device)


@torch.no_grad()
def predict_forecasts(model, specs: list[str], out_dir: str | os.PathLike, *, num: int = 4,
                      device: str = "cpu") -> dict:
    """Forecast ``num`` sequences of each input and write pictures and metrics into ``out_dir``.

    Args:
        model: a forecaster from :func:`vidrnn.inference.checkpoint.load_model` (its
            ``model.vidrnn`` metadata says the input settings).
        specs: inputs (see the module docstring); empty: the checkpoint's test split.
        out_dir: a new or empty folder.
        num: sequences per input.
        device: where to run the model.

    Returns:
        ``{"model", "sequences": [...written files...], "metrics": {...}}`` (also written to
        ``metrics.json``).

    Raises:
        FileExistsError: ``out_dir`` exists and is not empty (nothing is overwritten).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output folder {out} exists and is not empty; choose another --output-dir")
    fp = ForecastPredictor(model, device=device)
    info, radar = fp.info, fp.radar
    metrics = ForecastMetrics(ssim=True).to(device)
    scores = fp.evaluation() if radar else None
    inputs = [fp.inputs(spec) for spec in (specs or [None])]  # all inputs checked before writing
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for spec, (name, ds) in zip(specs or [None], inputs):
        for i in range(min(num, len(ds))):
            item = ds[i]
            x, y = item["input"][None].to(device), item["target"][None].to(device)
            pred = fp.forecast(item)[None]  # (1, T_out, C, H, W) in [0, 1]
            metrics.update(pred, y)
            stem = f"{name}_{i:03d}"
            if scores is not None:
                scores.update(pred, item["input_rain"][None], item["target_rain"][None])
            mse = float(((pred - y) ** 2).sum(dim=(-3, -2, -1)).mean())
            forecast_grid(x[0], y[0], pred[0], out / f"{stem}.png", title=f"{info.name}  {stem}  "
                          f"MSE/frame {mse:.1f}", step_label="t")
            forecast_gif(x[0], y[0], pred[0], out / f"{stem}.gif")
            written.append({"input": spec or "test split", "index": i, "png": str(out / f"{stem}.png"),
                            "gif": str(out / f"{stem}.gif"), "mse_per_frame": mse})
    res = {k: v.tolist() for k, v in metrics.compute().items()}
    step = fp.step
    xlabel = "lead time (min)" if radar else "lead time (frames)"
    if scores is not None:
        res.update(scores.compute())
        methods = [(k, name) for k, name in (("nowcasting", "model"), ("persistence", "persistence"),
                                             ("pysteps_extrapolation", "pysteps extrapolation"),
                                             ("pysteps_sprog", "pysteps S-PROG")) if k in res]
        series = {}
        for j, t in enumerate(res["thresholds"][:3]):  # the plot shows the three lowest thresholds
            one = {f"{name} >= {t:g} mm/h": res[k]["csi"][j] for k, name in methods}
            series.update(one)
            lead_time_plot({n.rsplit(" >= ", 1)[0]: v for n, v in one.items()}, out / f"csi_{t:g}mmh.png",
                           ylabel=f"CSI (rain >= {t:g} mm/h)", step=step, xlabel=xlabel,
                           title=f"{info.name}: CSI >= {t:g} mm/h per lead time")
        lead_time_plot(series, out / "lead_time.png", ylabel="CSI", step=step, xlabel=xlabel,
                       title=f"{info.name}: CSI per lead time")
    else:
        lead_time_plot({"MSE per frame": res["mse_per_frame"]}, out / "lead_time.png", ylabel="MSE per frame",
                       step=step, xlabel=xlabel, title=f"{info.name}: error per lead time")
    summary = {"model": info.name, "sequences": written, "metrics": res}
    write_json(out / "metrics.json", summary)
    return summary
