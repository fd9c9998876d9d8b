"""Captioning images and videos with a trained checkpoint (``vidrnn predict CKPT image.jpg
video.mp4 --beam 5 [--attention DIR]``), without Lightning.

Inputs are read as the model was trained: images resized to the training side (embedded
data: ``data.size``; files: ``data.image_size``); videos as ``data.num_frames`` frames spread
uniformly, resized the same way. A file that cannot be read gives a result with an ``error``
(naming the file) and the others go on.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Iterator

import torch

from vidrnn.data.caption_datamodule import EMBEDDED, IMAGE_EXTENSIONS, read_clip, read_image
from vidrnn.io.captions import CaptionVocabulary
from vidrnn.errors import DataError, VideoDecodeError

__all__ = ["CaptionPredictor", "caption_files"]


class CaptionPredictor:
    """A trained captioner with its vocabulary and input settings.

    Args:
        model: from :func:`vidrnn.inference.checkpoint.load_model` (a captioning checkpoint).
        device: where to run.
    """

    def __init__(self, model, *, device: str | torch.device = "cpu"):
        info = model.vidrnn
        if info.task != "captioning":
            raise ValueError(f"{info.checkpoint}: a {info.task.replace('_', ' ')} model, not a captioner")
        self.model, self.device = model.to(device).eval(), torch.device(device)
        self.vocab = CaptionVocabulary(info.vocab)
        data = info.data
        self.size = int(data.get("size", 48) if data.get("source") in EMBEDDED else data.get("image_size", 224))
        self.num_frames = int(data.get("num_frames", 8))
        self.video = model.media == "video"

    def read(self, path: str | Path) -> torch.Tensor:
        """The input as the model reads it: ``(3, S, S)`` or ``(T, 3, S, S)`` in [0, 1].

        Raises:
            DataError, VideoDecodeError, FileNotFoundError: unreadable file, or an image given to a
            video captioner (or the reverse).
        """
        is_image = Path(path).suffix.lower() in IMAGE_EXTENSIONS
        if is_image == self.video:
            kind = "videos" if self.video else "images"
            raise DataError(f"{path}: {self.model.vidrnn.name} captions {kind}, not "
                            f"{'images' if is_image else 'videos'}")
        return read_clip(path, self.num_frames, self.size) if self.video else read_image(path, self.size)

    @torch.no_grad()
    def caption(self, media: torch.Tensor, *, beam_size: int = 1, max_length: int = 20,
                length_penalty: float = 1.0) -> dict:
        """``{"caption", "words", "score", "attention" ((n, L) or None)}`` for one input."""
        x = media[None].to(self.device)
        tokens, score = self.model.generate(x, start=self.vocab.start, end=self.vocab.end, beam_size=beam_size,
                                            max_length=max_length, length_penalty=length_penalty)
        n = int((tokens[0] != self.model.pad).sum())  # words and <end>
        words = [self.vocab.itos[int(i)] for i in tokens[0, :n]]
        att = self.model.attend(x, tokens[:, :n], start=self.vocab.start)
        return {"caption": self.vocab.decode(tokens[0]), "words": words, "score": float(score[0]),
                "attention": None if att is None else att[0].cpu()}

    def map_size(self, media: torch.Tensor) -> tuple[int, int]:
        """``(h, w)`` of the encoder's map for an image (the regions attended over)."""
        with torch.no_grad():
            h, w = self.model.encoder.forward_maps(media[None, None].to(self.device)).shape[-2:]
        return int(h), int(w)

    def write_attention(self, path: str | Path, media: torch.Tensor, result: dict, out_dir: str | Path) -> Path:
        """The attention figure of one result (:mod:`vidrnn.viz.captions`) as ``out_dir/<stem>_attention.png``."""
        from vidrnn.viz.captions import frame_attention_figure, word_attention_figure

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        out = Path(out_dir) / f"{Path(path).stem}_attention.png"
        title = f"{Path(path).name}: {result['caption']}"
        if self.video:
            return frame_attention_figure(media, result["words"], result["attention"], out, title=title)
        return word_attention_figure(media, result["words"], result["attention"], self.map_size(media), out,
                                     title=title)



def caption_files(checkpoint: str | os.PathLike, paths: Iterable[str | os.PathLike], *, beam_size: int = 1,
                  max_length: int = 20, length_penalty: float = 1.0, attention_dir: str | os.PathLike | None = None,
                  device: str = "cpu") -> Iterator[dict]:
    """Caption each file with a captioning checkpoint.

    Yields:
        ``{"input", "caption", "words", "score"}`` and ``"attention_png"`` (with
        ``attention_dir``, for models with attention), or ``{"input", "error"}`` for a file that
        cannot be read.

    Raises:
        FileNotFoundError, CheckpointError: the checkpoint. ValueError: not a captioner, bad
        ``beam_size``/``max_length``.
    """
    from vidrnn.inference.checkpoint import load_model

    if beam_size < 1 or max_length < 1:
        raise ValueError(f"--beam and --max-length must be >= 1, got {beam_size} and {max_length}")
    pred = CaptionPredictor(load_model(checkpoint), device=device)
    for p in paths:
        try:
            media = pred.read(p)
        except (DataError, VideoDecodeError, FileNotFoundError) as e:
            yield {"input": str(p), "error": str(e)}
            continue
        r = pred.caption(media, beam_size=beam_size, max_length=max_length, length_penalty=length_penalty)
        out = {"input": str(p), "caption": r["caption"], "words": r["words"], "score": round(r["score"], 4)}
        if not math.isfinite(out["score"]):
            out["score"] = None
        if attention_dir is not None and r["attention"] is not None:
            out["attention_png"] = str(pred.write_attention(p, media, r, attention_dir))
        yield out
