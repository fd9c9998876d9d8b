"""Image and video captioning as a LightningModule: teacher forcing, decoding, COCO caption metrics.

* **Training**: teacher forcing (:meth:`vidrnn.models.captioners.Captioner.forward`), the loss
  the per-token cross-entropy over the real tokens (``<pad>`` ignored, so padding a batch
  does not change it), plus the model's auxiliary losses (Show, Attend and Tell's doubly
  stochastic regulariser) and, for hard attention, the REINFORCE surrogate with the caption's
  log-likelihood as reward (:mod:`vidrnn.layers.reinforce`). Gradients are clipped by global
  norm (``captioning.clip``; Lightning calls the hook after unscaling 16-mixed gradients).
  Optional scheduled sampling (Bengio et al. 2015): the probability of feeding the model's own
  previous word rises linearly from 0 to ``captioning.scheduled_sampling`` over the epochs.
* **Evaluation**: captions decoded by greedy search (``beam_size: 1``) or batched beam search,
  scored against every reference with the COCO caption evaluation
  (:func:`vidrnn.metrics.captioning.caption_metrics`): BLEU-4 and CIDEr-D on validation (BLEU-4
  selects the best checkpoint), BLEU-1..4, METEOR, ROUGE-L and CIDEr-D on test (BLEU only
  without the ``captioning`` extra). ``val/loss`` is the teacher-forced cross-entropy on each
  item's first reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import lightning as L
import torch
import torch.nn.functional as F

from vidrnn.io.captions import CaptionVocabulary
from vidrnn.errors import ConfigError
from vidrnn.tasks.build import build_captioner
from vidrnn.tasks.language_model import clip_gradients
from vidrnn.tasks.optim import configure_optimizer

__all__ = ["CaptioningSettings", "CaptioningTask", "caption_loss", "metric_key"]


def _nonneg(value: float, where: str) -> float:
    if not value >= 0:
        raise ConfigError(f"{where}: expected a number >= 0, got {value}")
    return value


def _prob(value: float, where: str) -> float:
    if not 0 <= value <= 1:
        raise ConfigError(f"{where}: expected a probability in [0, 1], got {value}")
    return value


def _pos_int(value: int, where: str) -> int:
    if value < 1:
        raise ConfigError(f"{where}: expected an int >= 1, got {value}")
    return value


@dataclass
class CaptioningSettings:
    """The ``captioning:`` section.

    Attributes:
        clip: clip the gradient to this global norm (0: no clipping).
        scheduled_sampling: the probability of feeding the model's own previous word reached in
            the last epoch (0: pure teacher forcing).
        beam_size: decoding on val/test (1: greedy).
        max_length: the most words decoded.
        length_penalty: beam scores are ``sum log p / length ** length_penalty``.
    """

    clip: Annotated[float, _nonneg] = 5.0
    scheduled_sampling: Annotated[float, _prob] = 0.0
    beam_size: Annotated[int, _pos_int] = 1
    max_length: Annotated[int, _pos_int] = 20
    length_penalty: Annotated[float, _nonneg] = 1.0


def metric_key(name: str) -> str:
    """The logged name of a COCO metric: ``Bleu_4`` -> ``bleu4``, ``ROUGE_L`` -> ``rouge_l``."""
    return name.lower().replace("bleu_", "bleu")


def caption_loss(logits: torch.Tensor, captions: torch.Tensor, pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing cross-entropy.

    Shape:
        logits ``(B, T - 1, V)`` (predictions of tokens 1..T-1), captions ``(B, T)``.

    Returns:
        ``(mean over the real target tokens, per-caption sum (B,))`` in nats; ``<pad>`` targets count for nothing.
    """
    targets = captions[:, 1:]
    tok = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=pad, reduction="none")  # (B, T-1)
    real = (targets != pad).sum()
    return tok.sum() / real.clamp(min=1), tok.sum(1)


class CaptioningTask(L.LightningModule):
    """Train/evaluate a registered captioner.

    Args:
        model_name: registry name of a captioning model (``vidrnn models --task captioning``).
        model_kwargs: builder arguments (``vocab_size`` comes from ``caption_vocab``).
        caption_vocab: the vocabulary's words after the special tokens (saved in checkpoints).
        optimizer: the ``optimizer`` section. data: resolved data settings. config: the run config.
        clip, scheduled_sampling, beam_size, max_length, length_penalty: the ``captioning`` section.

    Batches: :func:`vidrnn.data.caption_datamodule.collate_captions`.
    """

    def __init__(self, model_name: str, model_kwargs: dict | None = None, caption_vocab: list[str] | None = None,
                 optimizer: dict | None = None, data: dict | None = None, config: dict | None = None,
                 clip: float = 5.0, scheduled_sampling: float = 0.0, beam_size: int = 1, max_length: int = 20,
                 length_penalty: float = 1.0):
        super().__init__()
        if not caption_vocab:
            raise ValueError("a captioner needs its vocabulary (the words in index order)")
        self.save_hyperparameters()
        self.vocab = CaptionVocabulary(caption_vocab)
        self.model = build_captioner(model_name, model_kwargs, len(self.vocab))
        if (data or {}).get("features"):  # trained on a feature cache: the batches hold the encoder's features
            self.model.encoder.read_cache(True)
        self.optim_cfg = dict(optimizer or {})
        self.skipped: set[str] = set()
        self.last_eval: dict = {}
        self._eval: list[tuple[str, list[str], str]] = []
        self._eval_loss: list[tuple[float, int]] = []

    def set_decoding(self, beam_size: int | None = None, max_length: int | None = None,
                     length_penalty: float | None = None) -> None:
        """Change how val/test decode (e.g. ``vidrnn test --beam 5``)."""
        for k, v in (("beam_size", beam_size), ("max_length", max_length), ("length_penalty", length_penalty)):
            if v is not None:
                self.hparams[k] = v

    def sample_prob(self) -> float:
        """Scheduled sampling: the probability of feeding the model's own word in this epoch."""
        p = float(self.hparams.scheduled_sampling)
        if not p or self._trainer is None or not self.trainer.max_epochs or self.trainer.max_epochs < 2:
            return p
        return p * self.current_epoch / (self.trainer.max_epochs - 1)

    # ------------------------------------------------------------------ training
    def training_step(self, batch, batch_idx):
        self.skipped.update(batch["skipped"])
        if batch["media"] is None:
            return None  # every item of the batch was unreadable
        caps = batch["captions"]
        out = self.model(batch["media"], caps, sample_prob=self.sample_prob())
        ce, nll = caption_loss(out.logits, caps, self.model.pad)
        loss = ce
        B = caps.shape[0]
        for name, value in out.aux_losses.items():
            loss = loss + value
            self.log(f"train/{name}", value, batch_size=B)
        if out.policy is not None:  # hard attention: REINFORCE, reward = log-likelihood of the caption
            loss = loss + out.policy.surrogate(-nll.detach())
            self.log("train/reward_baseline", out.policy.baseline.value, batch_size=B)
        self.log("train/loss", loss, prog_bar=True, batch_size=B)
        self.log("train/ce", ce, batch_size=B)
        return loss

    def on_before_optimizer_step(self, optimizer):
        if self.hparams.clip:
            norm, _ = clip_gradients([p for p in self.parameters() if p.requires_grad], "norm", self.hparams.clip)
            self.log("train/grad_norm", norm)

    # ------------------------------------------------------------------ evaluation
    def decode(self, media: torch.Tensor) -> list[str]:
        """Captions of a batch with the task's decoding settings."""
        v = self.vocab
        tokens, _ = self.model.generate(media, start=v.start, end=v.end, beam_size=int(self.hparams.beam_size),
                                        max_length=int(self.hparams.max_length),
                                        length_penalty=float(self.hparams.length_penalty))
        return [v.decode(t) for t in tokens]

    def _eval_step(self, batch):
        self.skipped.update(batch["skipped"])
        if batch["media"] is None:
            return
        caps = batch["captions"]
        ce, _ = caption_loss(self.model(batch["media"], caps).logits, caps, self.model.pad)
        self._eval_loss.append((float(ce), int((caps[:, 1:] != self.model.pad).sum())))
        for ident, refs, hyp in zip(batch["ids"], batch["references"], self.decode(batch["media"])):
            self._eval.append((ident, refs, hyp))

    def _gathered(self) -> list:
        rows = self._eval
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            parts = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, rows)
            rows = [r for p in parts for r in p]
        return rows

    def _eval_end(self, stage: str, metrics: tuple[str, ...]):
        from vidrnn.metrics.captioning import COCO_METRICS, caption_metrics, have_coco_evaluation

        rows, losses = self._gathered(), self._eval_loss
        self._eval, self._eval_loss = [], []
        if not rows or self.trainer.sanity_checking:
            return
        if not have_coco_evaluation():
            metrics = tuple(m for m in metrics if m.startswith("Bleu")) or ("Bleu_4",)
        refs = {i: r for i, r, _ in rows}
        preds = {i: h for i, _, h in rows}
        scores = caption_metrics(refs, preds, [m for m in COCO_METRICS if m in metrics])
        n = sum(k for _, k in losses)
        loss = sum(v * k for v, k in losses) / max(n, 1)
        self.log_dict({f"{stage}/{metric_key(k)}": float(v) for k, v in scores.items()}, prog_bar=stage == "val",
                      sync_dist=False)
        self.log(f"{stage}/loss", loss)
        self.log(f"{stage}/skipped", float(len(self.skipped)))
        self.last_eval[stage] = {"metrics": scores, "beam_size": int(self.hparams.beam_size), "items": len(rows),
                                 "examples": [{"id": i, "caption": h, "reference": r[0]} for i, r, h in rows[:8]]}

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch)

    def on_validation_epoch_end(self):
        self._eval_end("val", ("Bleu_4", "CIDEr"))

    def test_step(self, batch, batch_idx):
        self._eval_step(batch)

    def on_test_epoch_end(self):
        from vidrnn.metrics.captioning import COCO_METRICS

        self._eval_end("test", COCO_METRICS)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        return configure_optimizer(self.parameters(), self.optim_cfg, self.trainer)
