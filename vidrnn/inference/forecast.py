"""Forecast with a trained encoder–forecaster and write pictures: ``vidrnn predict CKPT [INPUT...]``.

Inputs (each one of):

* nothing -- the first ``num`` sequences of the test split described by the checkpoint's own data
  settings (generated Moving MNIST, or the test radar event);
* a ``.npy`` file -- the standard ``mnist_test_seq.npy`` layout ``(T, N, H, W)`` uint8, or one
  sequence ``(T, H, W)`` (uint8, or floats in [0, 1]);
* a folder of radar files (FMI ``*.pgm.gz`` or KNMI ``*.h5``): its first ``num`` windows.

For every sequence it writes ``<name>.png`` (input | truth | forecast) and ``<name>.gif`` (truth
beside forecast), then ``lead_time.png`` (metric per lead time; CSI beside persistence for radar)
and ``metrics.json`` in the output folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vidrnn.io.files import write_json
from vidrnn.metrics.forecasting import ForecastMetrics
from vidrnn.viz.forecast import forecast_gif, forecast_grid, lead_time_plot

__all__ = ["forecast_inputs", "predict_forecasts"]


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
    T_in, T_out = int(settings.get("num_input", 10)), int(settings.get("num_output", 10))
    if spec is None:
        from vidrnn.data.forecast_datamodule import ForecastDataModule

        return "test", ForecastDataModule({k: v for k, v in settings.items()}).splits["test"]
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"forecast input not found: {p}")
    if p.is_dir():
        from vidrnn.data.radar import RadarWindows, load_radar_sequence

        source = "knmi" if any(p.glob("*.h5")) else "fmi"
        r = settings.get("radar") or {}
        from vidrnn.data.forecast_datamodule import trim_frames

        rain, _, _ = load_radar_sequence(p, source, downsample=int(r.get("downsample", 1)))
        crop = r.get("eval_crop")
        return p.name, RadarWindows(rain if crop else trim_frames(rain), in_frames=T_in, out_frames=T_out, crop=crop,
                                    random_crop=False,
                                    stride=T_out, a=float(r.get("zr_a", 200.0)), b=float(r.get("zr_b", 1.6)))
    if p.suffix == ".npy":
        a = np.load(p, mmap_mode="r")
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


@torch.no_grad()
def predict_forecasts(task, specs: list[str], out_dir: str | os.PathLike, *, num: int = 4,
                      device: str = "cpu") -> dict:
    """Forecast ``num`` sequences of each input and write pictures and metrics into ``out_dir``.

    Returns:
        ``{"sequences": [...written files...], "metrics": {...}}`` (also written to ``metrics.json``).

    Raises:
        FileExistsError: ``out_dir`` exists and is not empty (nothing is overwritten).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output folder {out} exists and is not empty; choose another --output-dir")
    out.mkdir(parents=True, exist_ok=True)
    task = task.to(device).eval()
    settings = dict(task.hparams.data or {})
    radar = settings.get("kind") == "radar"
    metrics = ForecastMetrics(ssim=True).to(device)
    scores = persist = None
    if radar:
        from vidrnn.metrics.rainrate import from_unit
        from vidrnn.models.extrapolation import persistence
        from vidrnn.metrics.nowcasting import NowcastingScores

        thr = tuple(settings.get("thresholds") or (0.5, 2, 5, 10, 30))
        scores, persist = NowcastingScores(thr), NowcastingScores(thr)
        from vidrnn.models.extrapolation import pysteps_available, pysteps_extrapolation

        extrap = NowcastingScores(thr) if pysteps_available() else None
    written = []
    for spec in (specs or [None]):
        name, ds = forecast_inputs(spec, settings)
        for i in range(min(num, len(ds))):
            item = ds[i]
            x, y = item["input"][None].to(device), item["target"][None].to(device)
            pred = task(x, y.shape[1])  # (1, T_out, C, H, W) in [0, 1]
            metrics.update(pred, y)
            stem = f"{name}_{i:03d}"
            if radar:
                a, b = float(settings.get("zr_a", 200.0)), float(settings.get("zr_b", 1.6))
                scores.update(from_unit(pred, a, b).cpu(), item["target_rain"][None])
                persist.update(persistence(item["input_rain"][None], y.shape[1]), item["target_rain"][None])
                if extrap is not None:
                    extrap.update(pysteps_extrapolation(item["input_rain"][None], y.shape[1]), item["target_rain"][None])
            mse = float(((pred - y) ** 2).sum(dim=(-3, -2, -1)).mean())
            forecast_grid(x[0], y[0], pred[0], out / f"{stem}.png", title=f"{task.hparams.model_name}  {stem}  "
                          f"MSE/frame {mse:.1f}", step_label="t")
            forecast_gif(x[0], y[0], pred[0], out / f"{stem}.gif")
            written.append({"input": spec or "test split", "index": i, "png": str(out / f"{stem}.png"),
                            "gif": str(out / f"{stem}.gif"), "mse_per_frame": mse})
    res = {k: v.tolist() for k, v in metrics.compute().items()}
    step = float(settings.get("timestep_minutes", 5)) if radar else 1.0
    xlabel = "lead time (min)" if radar else "lead time (frames)"
    if radar:
        sc, ps = scores.compute(), persist.compute()
        res["nowcasting"] = {k: v.tolist() for k, v in sc.items()}
        res["persistence"] = {k: v.tolist() for k, v in ps.items()}
        res["thresholds"] = list(scores.thresholds)
        ex = extrap.compute() if extrap is not None else None
        if ex is not None:
            res["pysteps_extrapolation"] = {k: v.tolist() for k, v in ex.items()}
        series = {}
        for j, t in enumerate(scores.thresholds[:3]):  # the plot shows the three lowest thresholds
            series[f"model >= {t:g} mm/h"] = sc["csi"][j].tolist()
            series[f"persistence >= {t:g} mm/h"] = ps["csi"][j].tolist()
            if ex is not None:
                series[f"pysteps extrapolation >= {t:g} mm/h"] = ex["csi"][j].tolist()
        lead_time_plot(series, out / "lead_time.png", ylabel="CSI", step=step, xlabel=xlabel,
                       title=f"{task.hparams.model_name}: CSI per lead time")
    else:
        lead_time_plot({"MSE per frame": res["mse_per_frame"]}, out / "lead_time.png", ylabel="MSE per frame",
                       step=step, xlabel=xlabel, title=f"{task.hparams.model_name}: error per lead time")
    summary = {"model": task.hparams.model_name, "sequences": written, "metrics": res}
    write_json(out / "metrics.json", summary)
    return summary
