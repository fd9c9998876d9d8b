"""The LightningDataModule for forecasting runs: Moving MNIST and radar nowcasting.

``data:`` section of a forecasting config (:class:`ForecastDataSettings` holds the defaults):

* ``source: moving_mnist`` -- sequences generated from real MNIST digits
  (:mod:`vidrnn.data.moving_mnist`). ``moving_mnist: {root, train_digits, num_train, num_val,
  num_test, val_seed, test_seed, num_digits, size, step_length, test_npy}``. The training set is
  generated on the fly (``num_train`` fresh sequences per epoch); validation and test sets are
  fixed by their seeds. ``train_digits: null`` splits the digit images of the available file
  (here the 10k MNIST test digits) into disjoint training (first 80 %) and evaluation digits,
  so test sequences show digits never seen in training; ``train_digits: true`` uses MNIST's
  60k training file for training (when the user has it). ``test_npy`` evaluates on the
  standard ``mnist_test_seq.npy`` instead of generated test sequences.
* ``source: radar`` -- ``radar: {train: {root, source}, test: {root, source}, val_fraction,
  downsample, crop, eval_crop, min_valid, stride, num_train, zr_a, zr_b, pysteps_baseline}``:
  windows of ``num_input`` + ``num_output`` frames of one event for training (``num_train``
  random windows and ``crop``-pixel crops per epoch, redrawn while less than ``min_valid`` of
  the target is inside radar range; the last ``val_fraction`` of its frames for validation) and
  of another event for testing -- "train on one event, evaluate on another". Evaluation uses
  whole frames (trimmed to multiples of 16 pixels) unless ``eval_crop`` is set; frames are
  block-averaged by ``downsample`` first (2: 1 km -> 2 km pixels). Rain rates come from each
  reader (FMI reflectivity with pysteps' FMI Z-R pair, KNMI accumulations); ``zr_a``/``zr_b``
  define the network's scale, ``clip((dBZ + 10) / 70, 0, 1)`` with ``dBZ`` from Z = a R^b.

  Training across events: ``radar.events: [{root, source}, ...]`` replaces ``radar.train``:
  ``num_train`` windows per epoch are drawn evenly from every event (the last ``val_fraction``
  of each is its validation part, when both parts hold a window; a shorter event is all
  training), the ``test`` event being left out. ``pixel_km`` puts every
  event on a common grid (each is block-averaged from its own pixel size to that size);
  ``augment`` rotates (by 90 degrees) and flips each training window; every event must have
  the test event's time step. ``thresholds`` (mm/h) sets the scores' thresholds (default 0.5,
  2, 5, 10, 30); ``sprog: true`` adds pysteps' S-PROG to the test baselines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from vidrnn.errors import ConfigError
from vidrnn.metrics.nowcasting import DEFAULT_THRESHOLDS
from vidrnn.schema import keep_source_section, validate_section

__all__ = ["ForecastDataModule", "ForecastDataSettings", "validate_forecast_data_settings"]

@dataclass
class MovingMNISTSettings:
    """``data.moving_mnist`` (see the module docstring)."""

    root: str | None = None
    train_digits: bool | None = None
    digit_split: float = 0.8
    num_train: int = 2000
    num_val: int = 200
    num_test: int = 500
    val_seed: int = 1
    test_seed: int = 2
    num_digits: int = 2
    size: int = 64
    step_length: float = 0.1
    test_npy: str | None = None


@dataclass
class RadarEvent:
    """One radar event: the folder of its files and their format (``fmi``, ``knmi``: vidrnn's
    readers; ``mch``, ``bom``, ``rmi``: pysteps' importers)."""

    root: str | None = None
    source: Literal["fmi", "knmi", "mch", "bom", "rmi"] = "fmi"


@dataclass
class RadarSettings:
    """``data.radar`` (see the module docstring)."""

    train: RadarEvent = field(default_factory=lambda: RadarEvent(source="fmi"))
    test: RadarEvent = field(default_factory=lambda: RadarEvent(source="knmi"))
    events: list[RadarEvent] | None = None
    pixel_km: float | None = None
    augment: bool = False
    thresholds: list[float] | None = None
    sprog: bool = False
    val_fraction: float = 0.25
    downsample: int = 2
    crop: int = 64
    eval_crop: int | None = None
    min_valid: float = 0.7
    stride: int = 1
    num_train: int = 256
    zr_a: float = 200.0
    zr_b: float = 1.6
    pysteps_baseline: bool = True


@dataclass
class ForecastDataSettings:
    """The ``data:`` section of a forecasting run (only the chosen source's section is kept).

    Attributes:
        source: ``moving_mnist`` or ``radar``.
        num_input: frames given to the model.
        num_output: frames to forecast (also the model's default).
        batch_size: sequences per batch.
        num_workers: DataLoader worker processes.
        moving_mnist: :class:`MovingMNISTSettings`.
        radar: :class:`RadarSettings`.
    """

    source: Literal["moving_mnist", "radar"] = "moving_mnist"
    num_input: int = 10
    num_output: int = 10
    batch_size: int = 16
    num_workers: int = 2
    moving_mnist: MovingMNISTSettings | None = None
    radar: RadarSettings | None = None


#: keys the data module adds to its resolved settings (not settings a user gives)
DERIVED_KEYS = ("kind", "thresholds", "timestep_minutes", "zr_a", "zr_b")
#: sub-sections that belong to one source
SOURCE_SECTIONS = ("moving_mnist", "radar")


def validate_forecast_data_settings(given: dict | None, where: str = "data") -> dict:
    """The ``data`` section of a forecasting run, checked and completed with the defaults.

    Raises:
        ConfigError: an unknown key (closest named), a wrong type, or the section of the other source.
    """
    given = {k: v for k, v in dict(given or {}).items() if k not in DERIVED_KEYS}
    sections = dict(zip(SOURCE_SECTIONS, (MovingMNISTSettings, RadarSettings)))
    return keep_source_section(validate_section(ForecastDataSettings, given, where), sections, where)


class _Resampled(torch.utils.data.Dataset):
    """``num`` random training windows of a radar event per epoch; a window whose target has
    more than ``1 - min_valid`` missing pixels (outside the radars' range), or with a wholly
    missing input frame (a file that could not be read), is drawn again (up to 20 times), so
    training crops show radar data rather than the no-data mask. ``augment``:
    each window is rotated by a random multiple of 90 degrees and flipped with probability 0.5
    (the same for all its frames: rain moves another way, with the same physics)."""

    def __init__(self, base, num: int, min_valid: float = 0.0, augment: bool = False):
        self.base, self.num, self.min_valid, self.augment = base, num, float(min_valid), augment

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, i: int):
        for _ in range(20):
            item = self.base[int(torch.randint(len(self.base), ()).item())]
            whole_frame_missing = torch.isnan(item["input_rain"]).flatten(1).all(1).any()  # an unreadable file
            if torch.isfinite(item["target_rain"]).float().mean() >= self.min_valid and not whole_frame_missing:
                break
        if self.augment:
            k, flip = int(torch.randint(4, ()).item()), bool(torch.rand(()) < 0.5)
            for key in ("input", "target", "input_rain", "target_rain"):
                x = torch.rot90(item[key], k, dims=(-2, -1))
                item[key] = (x.flip(-1) if flip else x).contiguous()
        return item


def trim_frames(rain: np.ndarray, multiple: int = 16) -> np.ndarray:
    """Whole frames cut to sides that are multiples of ``multiple`` pixels (patch sizes up to 16)."""
    H, W = rain.shape[-2:]
    return rain[..., : H // multiple * multiple, : W // multiple * multiple]


class ForecastDataModule(L.LightningDataModule):
    """Train/val/test datasets of input/target frame sequences.

    Args:
        cfg: the ``data:`` section (see the module docstring); unknown keys raise.

    Attributes:
        settings: the resolved data settings (saved in checkpoints; ``kind`` is
            ``"moving_mnist"`` or ``"radar"``).
        splits: ``{"train": Dataset, "val": Dataset, "test": Dataset}``.

    Raises:
        ConfigError: unknown source or keys; FileNotFoundError: data files missing.
    """

    def __init__(self, cfg: dict):
        super().__init__()
        s = validate_forecast_data_settings(cfg)
        s["kind"] = s["source"]
        if s["kind"] == "radar":
            s["zr_a"], s["zr_b"] = float(s["radar"]["zr_a"]), float(s["radar"]["zr_b"])
            s.setdefault("thresholds", list(DEFAULT_THRESHOLDS))
        self.settings = s
        self.splits = self._build_moving_mnist() if s["kind"] == "moving_mnist" else self._build_radar()

    # ------------------------------------------------------------------ sources
    def _build_moving_mnist(self) -> dict:
        from vidrnn.data.moving_mnist import MovingMNIST, MovingMNISTNpy, load_mnist_digits

        s, m = self.settings, self.settings["moving_mnist"]
        common = dict(num_input=int(s["num_input"]), num_output=int(s["num_output"]), num_digits=int(m["num_digits"]),
                      size=int(m["size"]), step_length=float(m["step_length"]))
        digits = load_mnist_digits(m["root"], train=False)
        if m["train_digits"]:
            train_digits, eval_digits = load_mnist_digits(m["root"], train=True), digits
        else:
            cut = int(len(digits) * float(m["digit_split"]))
            if not 0 < cut < len(digits):
                raise ConfigError(f"data.moving_mnist.digit_split={m['digit_split']}: leaves no digits for one side")
            train_digits, eval_digits = digits[:cut], digits[cut:]
        splits = {
            "train": MovingMNIST(train_digits, int(m["num_train"]), fixed=False, **common),  # fresh every epoch
            "val": MovingMNIST(eval_digits, int(m["num_val"]), seed=int(m["val_seed"]), **common),
        }
        if m["test_npy"]:
            splits["test"] = MovingMNISTNpy(m["test_npy"], num_input=common["num_input"],
                                            num_output=common["num_output"])
        else:
            splits["test"] = MovingMNIST(eval_digits, int(m["num_test"]), seed=int(m["test_seed"]), **common)
        return splits

    def _load_event(self, event: dict, name: str, pixel_km: float | None, downsample: int):
        from vidrnn.data.radar import _block_nanmean, load_radar_sequence

        if not (event or {}).get("root"):
            raise ConfigError(f"data.radar.{name}.root: the folder of the event's radar files is required")
        if pixel_km is None:
            out = load_radar_sequence(event["root"], event["source"], downsample=downsample, on_error="skip")
            self.skipped_files += out[2]["skipped_files"]
            return out
        rain, times, meta = load_radar_sequence(event["root"], event["source"], downsample=1, on_error="skip")
        self.skipped_files += meta["skipped_files"]
        size_m = (meta.get("pixel_size_m") or (1000.0, 1000.0))[0]
        k = max(1, int(round(pixel_km * 1000.0 / float(size_m))))
        meta["downsample"] = k
        return _block_nanmean(rain, k), times, meta

    def _build_radar(self) -> dict:
        from vidrnn.data.radar import RadarWindows

        s, r = self.settings, self.settings["radar"]
        self.skipped_files: list[str] = []  #: radar files that could not be read (their frames are missing)
        if r.get("thresholds"):
            s["thresholds"] = [float(t) for t in r["thresholds"]]
        win = dict(in_frames=int(s["num_input"]), out_frames=int(s["num_output"]), a=float(r["zr_a"]),
                   b=float(r["zr_b"]))
        ds, px = int(r["downsample"]), r.get("pixel_km")
        events = r.get("events") or [r["train"]]
        names = ["train"] if not r.get("events") else [f"events[{i}]" for i in range(len(events))]
        test_rain, test_times, _ = self._load_event(r["test"], "test", px, ds)
        step = np.median(np.diff([t.timestamp() for t in test_times])) / 60
        need = win["in_frames"] + win["out_frames"]
        crop, eval_crop = r["crop"], r["eval_crop"]
        ev = dict(random_crop=False, stride=int(r["stride"]), crop=eval_crop, **win)
        trains, vals, info = [], [], {}
        test_root = Path(r["test"]["root"]).resolve()
        for event, name in zip(events, names):
            root = Path(event["root"]).resolve()
            if root == test_root or test_root in root.parents or root in test_root.parents:
                raise ConfigError(f"data.radar.{name}.root={event['root']} holds the test event "
                                  f"({r['test']['root']}): the test event must be left out of training")
            rain, times, _ = self._load_event(event, name, px, ds)
            ev_step = np.median(np.diff([t.timestamp() for t in times])) / 60
            if abs(ev_step - step) > 1e-6:
                raise ConfigError(f"data.radar.{name} ({event['root']}): frames every {ev_step:g} min, the test "
                                  f"event every {step:g} min; a forecaster learns one time step")
            n_val = int(round(len(rain) * float(r["val_fraction"])))
            n_train = len(rain) - n_val
            if len(events) > 1 and (n_val < need or n_train < need):
                n_val, n_train = 0, len(rain)  # across events: a short event is all training
            if n_train < need or (n_val and n_val < need):
                raise ConfigError(f"data.radar.{name}: the event has {len(rain)} frames; with val_fraction="
                                  f"{r['val_fraction']} the parts ({n_train}, {n_val} frames) must each hold a window "
                                  f"of {need} frames (num_input + num_output)")
            if min(rain.shape[1:]) < crop:
                raise ConfigError(f"data.radar.crop={crop}: larger than the frames of {event['root']} ({rain.shape[1:]})")
            trains.append(RadarWindows(rain[:n_train], crop=crop, random_crop=True, seed=None, **win))
            if n_val:
                val_rain = rain[n_train:]
                vals.append(RadarWindows(trim_frames(val_rain) if eval_crop is None else val_rain, **ev))
            info[name] = [str(times[0]), str(times[-1]), len(rain), str(event["root"])]
        per_event = max(1, int(r["num_train"]) // len(trains))
        train = torch.utils.data.ConcatDataset([_Resampled(t, per_event, float(r["min_valid"]), augment=bool(r["augment"]))
                                                for t in trains])
        splits = {"train": train}
        if vals:
            splits["val"] = vals[0] if len(vals) == 1 else torch.utils.data.ConcatDataset(vals)
        splits["test"] = RadarWindows(trim_frames(test_rain) if eval_crop is None else test_rain, **ev)
        s["timestep_minutes"] = float(step)
        info["test"] = [str(test_times[0]), str(test_times[-1]), len(test_rain), str(r["test"]["root"])]
        info["skipped_files"] = list(self.skipped_files)
        self.event_info = info
        return splits

    # ------------------------------------------------------------------ loaders
    def _loader(self, part: str, shuffle: bool) -> DataLoader:
        if part not in self.splits:
            raise ConfigError(f"the data config has no {part} split")
        nw = int(self.settings["num_workers"])
        return DataLoader(self.splits[part], batch_size=int(self.settings["batch_size"]), shuffle=shuffle,
                          num_workers=nw, persistent_workers=False,
                          drop_last=shuffle and len(self.splits[part]) > int(self.settings["batch_size"]))

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def describe(self) -> str:
        """One line: source and split sizes."""
        return f"{self.settings['source']} data, " + ", ".join(f"{k} {len(v)} sequences" for k, v in self.splits.items())
