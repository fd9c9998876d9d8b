"""What ``vidrnn serve`` does with each kind of checkpoint: a classifier labels a video, a
captioner describes an image or a video, a forecaster continues a frame sequence.

Each served checkpoint runs one request at a time (a lock per checkpoint) and reports as it goes:
:meth:`Served.events` yields ``{"progress": {"done", "total", "what"}, ...}`` events and ends with
``{"result": ...}``. Inputs are files the server wrote itself (the upload under a fixed name in a
per-request folder) or one of the checkpoint's own examples, chosen by index: nothing the user
sends is joined to a server path.
"""

from __future__ import annotations

import base64
import io
import math
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from vidrnn.errors import DataError

__all__ = ["Served", "serve_checkpoint", "UploadRefused"]

#: what each task takes, for the page's file picker
ACCEPT = {"classification": "video/*,image/gif", "captioning": "image/*,video/*", "forecasting": ".npy"}


class UploadRefused(DataError):
    """An upload whose content is not what the checkpoint takes (shown to the user, HTTP 422)."""


def _png(rgb: np.ndarray) -> str:
    """An ``(H, W, 3)`` uint8 image as a PNG data URL."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _file_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def finite(x):
    """``x`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


class Served:
    """One served checkpoint (subclasses per task).

    Attributes:
        id: the checkpoint's id in the API (``m0``, ``m1``, ...).
        info: the model's metadata. lock: held while a request runs the model.
    """

    task = ""

    def __init__(self, ident: str, checkpoint: str, model):
        self.id, self.checkpoint, self.info = ident, str(checkpoint), model.vidrnn
        self.lock = threading.Lock()
        self._examples: list[dict] = []

    def examples(self) -> list[dict]:
        """``[{"name", "label"}]`` offered beside the upload (index = position)."""
        return self._examples

    def describe(self) -> dict:
        return {"id": self.id, "checkpoint": Path(self.checkpoint).name, "model": self.info.name, "task": self.task,
                "accept": ACCEPT[self.task], "examples": [{"index": i, "name": e["name"], "label": e.get("label")}
                                                         for i, e in enumerate(self.examples())]}

    def prepare(self, upload: Path) -> Path:
        """Check an upload by its content and return the file to run on (may rename it).

        Raises:
            UploadRefused: not what this checkpoint takes.
        """
        return upload

    def example(self, index: int):
        """The input of example ``index``. Raises: IndexError."""
        ex = self.examples()
        if not 0 <= index < len(ex):
            raise IndexError(f"no example {index}; this checkpoint has {len(ex)}")
        return ex[index]

    def events(self, source, name: str, workdir: Path) -> Iterator[dict]:
        """Run on ``source`` (a prepared upload's path or an :meth:`example`), shown as ``name``;
        pictures are drawn in ``workdir`` (the request's own folder, deleted afterwards)."""
        raise NotImplementedError


class ServedClassifier(Served):
    """Top-k labels, a per-second timeline streamed as it is computed, and for attention models
    an animated overlay of where the model looks in the first clip."""

    task = "classification"

    def __init__(self, ident, checkpoint, model):
        from vidrnn.inference.examples import example_files
        from vidrnn.inference.predict import Predictor

        super().__init__(ident, checkpoint, model)
        self.predictor = Predictor(model)
        self.attention = self.predictor.has_attention
        self._examples = example_files(self.info)

    def describe(self) -> dict:
        return {**super().describe(), "classes": len(self.info.class_names), "attention": self.attention}

    def events(self, source, name: str, workdir: Path) -> Iterator[dict]:
        path = Path(source["path"]) if isinstance(source, dict) else source
        sent = 0
        for event in self.predictor.predict_events(path, topk=5):
            result = dict(event["result"], video=name, task=self.task)
            if "progress" in event:  # only the new timeline seconds: the page appends them
                timeline = result.pop("timeline")
                yield {"progress": {**event["progress"], "what": "seconds labelled"}, "partial": result,
                       "timeline": timeline[sent:]}
                sent = len(timeline)
                continue
            if isinstance(source, dict):
                result["true"] = source.get("label")
            if self.attention:  # where the model looked in the first clip, as an animated GIF
                yield {"progress": {"done": 0, "total": 1, "what": "drawing the attention"}}
                drawn = self.predictor.write_attention(path, workdir / "attention")
                result["attention_gif"] = _file_url(drawn["gif"], "image/gif")
            yield {"result": result}


class ServedCaptioner(Served):
    """The caption (beam search) and the per-word attention figure of an image or a video."""

    task = "captioning"

    def __init__(self, ident, checkpoint, model):
        from vidrnn.inference.caption import CaptionPredictor
        from vidrnn.inference.examples import example_files

        super().__init__(ident, checkpoint, model)
        self.predictor = CaptionPredictor(model)
        self.media = "video" if self.predictor.video else "image"
        self._examples = example_files(self.info)

    def describe(self) -> dict:
        return {**super().describe(), "media": self.media,
                "accept": "video/*,image/gif" if self.predictor.video else "image/*"}

    def prepare(self, upload: Path) -> Path:
        from PIL import Image, UnidentifiedImageError

        try:  # by content: an image Pillow identifies, else a video (the decoder then decides)
            with Image.open(upload) as im:
                fmt = (im.format or "png").lower()
        except Image.DecompressionBombError as e:  # Pillow's guard: refused before decoding
            raise UploadRefused(f"refused: {e}") from None
        except (UnidentifiedImageError, OSError, ValueError):
            fmt = None
        if fmt is None or (fmt == "gif" and self.predictor.video):  # a video captioner reads a GIF as a video
            suffix = ".video"
        else:
            suffix = {"jpeg": ".jpg", "mpo": ".jpg"}.get(fmt, f".{fmt}")
        target = upload.with_name("upload" + suffix)
        upload.rename(target)
        return target

    def events(self, source, name: str, workdir: Path) -> Iterator[dict]:
        from vidrnn.errors import VideoDecodeError

        path = Path(source["path"]) if isinstance(source, dict) else source
        yield {"progress": {"done": 0, "total": 1, "what": "captioning"}}
        try:
            media = self.predictor.read(path)
        except (DataError, VideoDecodeError, FileNotFoundError) as e:
            raise UploadRefused(str(e)) from None
        r = self.predictor.caption(media, beam_size=3, max_length=20)
        result = {"task": self.task, "input": name, "caption": r["caption"], "words": r["words"],
                  "score": r["score"], "media": self.media}
        if isinstance(source, dict):
            result["reference"] = source.get("label")
        if r["attention"] is not None:
            png = self.predictor.write_attention(Path(name).name or "input", media, r, workdir / "attention")
            result["attention_png"] = _file_url(png, "image/png")
        else:  # no attention: show the input the model read
            frame = media if media.ndim == 3 else media[len(media) // 2]
            result["image_png"] = _png((frame.permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))
        yield {"result": result}


class ServedForecaster(Served):
    """Input, truth and forecast frames side by side (as PNGs on the colour scales the page
    switches between), with the scores per lead time: CSI/POD/FAR beside persistence and pysteps
    extrapolation for radar, MSE and SSIM for Moving MNIST."""

    task = "forecasting"

    def __init__(self, ident, checkpoint, model, *, max_examples: int = 30):
        from vidrnn.inference.forecast import ForecastPredictor

        super().__init__(ident, checkpoint, model)
        self.predictor = ForecastPredictor(model)
        self.max_examples = max_examples
        self._test = None

    def _test_split(self):
        if self._test is None:
            try:
                self._test = self.predictor.inputs(None)[1]
            except (DataError, FileNotFoundError, OSError, ValueError):
                self._test = []  # the data is not on this machine: uploads only
        return self._test

    def describe(self) -> dict:
        p = self.predictor
        return {**super().describe(), "radar": p.radar, "num_input": p.num_input, "num_output": p.num_output,
                "step": p.step, "step_unit": "min" if p.radar else "frame"}

    def examples(self) -> list[dict]:
        ds = self._test_split()
        out = []
        for i in range(min(len(ds), self.max_examples)):
            if self.predictor.radar and hasattr(ds, "starts"):
                k = len(ds.origins)
                y, x = ds.origins[i % k]
                out.append({"name": f"test window {i} (frames {ds.starts[i // k]}+, crop at y={y}, x={x})"})
            else:
                out.append({"name": f"test sequence {i}"})
        return out

    def example(self, index: int):
        super().example(index)
        return self._test_split()[index]

    def prepare(self, upload: Path) -> Path:
        with upload.open("rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise UploadRefused("a forecaster takes a .npy array: (T, H, W) frames (uint8, or floats in [0, 1]; "
                                    "for radar, rain rate in mm/h) or (T, N, H, W) like mnist_test_seq.npy")
        target = upload.with_name("upload.npy")
        upload.rename(target)
        return target

    def events(self, source, name: str, workdir: Path) -> Iterator[dict]:
        from vidrnn.viz.forecast import colour_frames, colour_legend

        p = self.predictor
        if isinstance(source, Path):
            try:
                _, ds = p.inputs(str(source))
            except ValueError as e:
                raise UploadRefused(str(e).replace(str(source), name)) from None
            if len(ds) == 0:
                raise UploadRefused(f"{name}: no complete window of {p.num_input} + {p.num_output} frames")
            item = ds[0]
        else:
            item = source
        total = 2 if p.radar else 1
        yield {"progress": {"done": 0, "total": total, "what": "forecasting"}}
        pred = p.forecast(item).cpu()  # (T_out, 1, H, W) in [0, 1]
        T_out = pred.shape[0]
        leads = [round((k + 1) * p.step, 3) for k in range(T_out)]
        result = {"task": self.task, "input": name, "radar": p.radar, "lead_times": leads,
                  "step_unit": "min" if p.radar else "frame", "num_input": p.num_input}
        if p.radar:
            frames = {"input": item["input_rain"], "truth": item["target_rain"], "forecast": p.rain(pred)}
            yield {"progress": {"done": 1, "total": total, "what": "scoring persistence and pysteps extrapolation"}}
            ev = p.evaluation(extrapolation=True)  # one window: cheap enough to always compare
            ev.update(pred[None], item["input_rain"][None], item["target_rain"][None])
            s = ev.compute()
            result["scores"] = {"thresholds": s["thresholds"],
                                **{k: {m: s[k][m] for m in ("csi", "pod", "far", "mae")} for k in
                                   ("nowcasting", "persistence", "pysteps_extrapolation", "pysteps_sprog") if k in s}}
            from vidrnn.metrics.rainrate import rainrate_to_dbz

            za, zb = float(p.settings.get("zr_a", 200.0)), float(p.settings.get("zr_b", 1.6))
            scales = {"mm/h": frames, "dBZ": {k: rainrate_to_dbz(v.clamp(min=0), za, zb) for k, v in frames.items()}}
        else:
            from vidrnn.metrics.forecasting import ForecastMetrics

            m = ForecastMetrics(ssim=True)
            m.update(pred[None], item["target"][None])
            c = m.compute()
            result["scores"] = {"mse": c["mse_per_frame"].tolist(), "ssim": c["ssim_per_frame"].tolist()}
            scales = {"intensity": {"input": item["input"], "truth": item["target"], "forecast": pred}}
        result["views"] = {scale: {"legend": colour_legend(scale),
                                   **{k: [_png(f) for f in colour_frames(v, scale)] for k, v in fr.items()}}
                           for scale, fr in scales.items()}
        yield {"result": finite(result)}


def serve_checkpoint(ident: str, checkpoint: str) -> Served:
    """Load ``checkpoint`` and wrap it for its task.

    Raises:
        FileNotFoundError, CheckpointError: the checkpoint cannot be loaded. ValueError: a task
        the page does not show (language models).
    """
    from vidrnn.inference.checkpoint import load_model

    model = load_model(checkpoint)
    kinds = {"classification": ServedClassifier, "captioning": ServedCaptioner, "forecasting": ServedForecaster}
    task = model.vidrnn.task
    if task not in kinds:
        raise ValueError(f"{checkpoint}: a {task.replace('_', ' ')} checkpoint; vidrnn serve shows classifiers, "
                         "captioners and forecasters")
    return kinds[task](ident, checkpoint, model)
