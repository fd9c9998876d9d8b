"""Video classification as a LightningModule: loss, metrics, optimiser, multi-view evaluation.

* Loss: cross-entropy. Models with a prediction at every frame (LRCN, DeepLSTM) are trained
  with the per-frame cross-entropy weighted by the model's aggregation weights (uniform for
  LRCN's average, linearly growing for Ng et al.'s weighting), as in the papers.
* Multi-label (``multilabel=True``, multi-hot ``(B, K)`` labels; the model must have
  sigmoid outputs, ``model.multilabel``): binary cross-entropy, per frame against the batch's
  ``frame_labels`` ``(V_total, T, K)`` when it has them (MultiLSTM's dense labelling), else
  per video against the mean of the per-frame probabilities.
* Metrics (torchmetrics): ``top1``, ``top5`` (micro accuracy) and ``mean_class_accuracy``
  (macro recall), logged as ``train/``, ``val/``, ``test/``; multi-label: ``mAP`` (mean over
  the classes that occur of the average precision of the video-level scores,
  :class:`vidrnn.metrics.multilabel.MeanAveragePrecision`) and, with per-frame labels,
  ``frame_mAP`` (the same over all frames, as MultiTHUMOS reports).
* Evaluation is video-level: the softmax (multi-label: sigmoid) outputs of all views (clips)
  of a video are averaged before the metrics (LRCN tests 16-frame clips with stride 8 and
  averages).
* The model's output (:class:`~vidrnn.models.base.ClassifierOutput`) is all the task reads:
  its ``aux_losses`` (the doubly stochastic attention penalty) are added, and for hard
  attention ``policy.surrogate(reward)`` adds the REINFORCE term (reward: the log-likelihood
  of the true class).
* Feature caches (``data.source: features``): the frame encoder reads the cached features
  (:meth:`~vidrnn.layers.encoders.FrameEncoder.read_cache`) and the model's ordinary
  ``forward`` runs.
* Bad videos skipped by the dataset are counted (``skipped_videos``) and listed in the run
  summary.

The checkpoint's hyper-parameters carry everything needed to rebuild the model and its input
pipeline: model name and arguments, class names, the data settings (sampler, transform,
decode size) and the resolved config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from vidrnn.errors import ConfigError
from vidrnn.metrics.attention import attention_mass_ratio
from vidrnn.metrics.multilabel import GlobalAveragePrecision, HitAtOne, MeanAveragePrecision
from vidrnn.models.base import ClassifierOutput, average_views
from vidrnn.tasks.build import build_classifier
from vidrnn.tasks.optim import configure_optimizer

__all__ = ["ClassificationTask", "ClassificationSettings", "average_views"]  # average_views: from models.base


@dataclass
class ClassificationSettings:
    """The ``classification:`` section of a config.

    Attributes:
        label_smoothing: cross-entropy label smoothing (0 = off).
        channels_last: keep a 3D CNN's weights and activations in ``torch.channels_last_3d``
            (N, D, H, W, C) memory order, which oneDNN (CPU) and cuDNN (tensor cores, with
            ``trainer.precision: bf16-mixed``) convolve faster; only for clip models (2D frame
            encoders have their own ``channels_last``, on by default).
        cache_encoder: ``memory`` or ``disk``: a frozen frame encoder (``trainable: none``) runs
            once per clip before training, and every epoch trains from its outputs, kept in
            memory or as ``.npy`` files in the run directory (``encoder_cache/``). Training clips
            are then fixed: each is sampled and cropped as at validation (segment centres,
            centre crop, no augmentation), as with a feature cache. ``false``: off.
    """

    label_smoothing: float = 0.0
    channels_last: bool = False
    cache_encoder: Literal[False, "memory", "disk"] = False


#: multi-label runs with more classes (YouTube-8M: 3862) report GAP@20 and hit@1 without mAP,
#: whose exact computation keeps an (N, K) score matrix
MAP_MAX_CLASSES = 1000


def _metrics(num_classes: int, prefix: str, multilabel: bool = False) -> MetricCollection:
    if multilabel:  # GAP@20 and hit@1: YouTube-8M's measures (O(N k) memory)
        metrics = {"gap20": GlobalAveragePrecision(20), "hit1": HitAtOne()}
        if num_classes <= MAP_MAX_CLASSES:  # mAP keeps every score: (N, K) floats
            metrics = {"mAP": MeanAveragePrecision(num_classes), **metrics}
        return MetricCollection(metrics, prefix=prefix, compute_groups=False)
    return MetricCollection({
        "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
        "top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
        "mean_class_accuracy": MulticlassAccuracy(num_classes, top_k=1, average="macro"),
    }, prefix=prefix, compute_groups=False)  # top-k metrics must not share state


class ClassificationTask(L.LightningModule):
    """Train/evaluate a registered video classifier.

    Args:
        model_name: registry name (``vidrnn models`` lists them).
        model_kwargs: builder arguments (``num_classes`` is set from ``class_names``).
        class_names: the K class names, index order.
        optimizer: ``{"name": "adamw"|"sgd", "lr", "weight_decay", "momentum",
            "scheduler": "cosine"|"none", "warmup_epochs"}``.
        data: resolved data settings (saved for prediction).
        config: the resolved run config (saved for reference).
        label_smoothing: cross-entropy label smoothing.
        multilabel: multi-hot labels, sigmoid outputs, binary cross-entropy and mAP (the
            model is built with ``multilabel=True``).
        channels_last: ``torch.channels_last_3d`` weights and activations (clip models only).

    Raises:
        ValueError: unknown model, bad optimizer settings, or ``multilabel`` with a model
            that has no multi-label outputs.
        ConfigError: ``channels_last`` for a model that does not convolve clips.
    """

    def __init__(self, model_name: str, model_kwargs: dict | None = None, class_names: list[str] | None = None,
                 optimizer: dict | None = None, data: dict | None = None, config: dict | None = None,
                 label_smoothing: float = 0.0, multilabel: bool = False, channels_last: bool = False):
        super().__init__()
        if not class_names:
            raise ValueError("class_names must list the classes")
        self.save_hyperparameters()
        self.model = build_classifier(model_name, model_kwargs, len(class_names), multilabel=multilabel)
        self.multilabel = multilabel
        self.class_names = list(class_names)
        self.optim_cfg = dict(optimizer or {})
        self.use_cached_features((data or {}).get("source") == "features")
        if channels_last:
            if getattr(self.model, "input_kind", None) != "clip":
                raise ConfigError(f"classification.channels_last: {model_name} does not convolve clips; the option "
                                  "is for the 3D CNNs (c3d, r3d_18, mc3_18, r2plus1d_18, p3d, fusion_template)")
            self.model.to(memory_format=torch.channels_last_3d)
            self.model.memory_format = torch.channels_last_3d
        K = len(class_names)
        self.train_metrics = _metrics(K, "train/", multilabel)
        self.val_metrics = _metrics(K, "val/", multilabel)
        self.test_metrics = _metrics(K, "test/", multilabel)
        # per-frame mAP of dense multi-label data (batches with frame_labels)
        self.val_frame_map = MeanAveragePrecision(K) if multilabel else None
        self.test_frame_map = MeanAveragePrecision(K) if multilabel else None
        self.skipped_videos: set[str] = set()

    def use_cached_features(self, on: bool = True) -> None:
        """Feed the model precomputed encoder features (a feature cache) instead of video.

        Raises:
            ConfigError: ``on`` for a model without a per-frame encoder (a 3D CNN).
        """
        encoder = getattr(self.model, "encoder", None)
        if encoder is None:
            if on:
                raise ConfigError(f"{type(self.model).__name__} convolves whole clips and has no per-frame encoder: "
                                  "it cannot train from a feature cache (data.source=features)")
            return
        encoder.read_cache(on)

    # ------------------------------------------------------------------ forward
    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Video-level logits ``(B, K)`` for ``video (B, T, 3, H, W)`` (or cached features)."""
        return self.model(video).logits

    def _run(self, batch) -> ClassifierOutput:
        x = batch["features"] if batch.get("features") is not None else batch["video"]
        return self.model(x)

    def _note_skipped(self, batch) -> None:
        self.skipped_videos.update(batch.get("skipped") or [])

    # ------------------------------------------------------------------ loss
    def training_loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], ClassifierOutput, torch.Tensor]:
        """Forward and loss of one training batch, with nothing logged (``training_step`` logs;
        this is the part that ``torch.compile`` can take whole).

        Returns:
            ``(loss, terms to log, the model's output, targets per view)``.
        """
        out = self._run(batch)
        y = batch["label"].repeat_interleave(batch["views"], dim=0)
        loss = self._multilabel_loss(batch, out, y) if self.multilabel else self._loss(out, y)
        logs = {}
        for name, value in out.aux_losses.items():  # e.g. the attention penalty (already weighted)
            loss = loss + value
            logs[name] = value.detach()
        if out.policy is not None:  # hard attention: REINFORCE with reward = log-likelihood of the truth
            logits = out.logits.float()
            nll = (F.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(-1) if self.multilabel
                   else F.cross_entropy(logits, y, reduction="none"))  # (V,)
            loss = loss + out.policy.surrogate(-nll.detach())
            logs["reward_baseline"] = out.policy.baseline.value.detach().clone()
        return loss, logs, out, y

    def _loss(self, out: ClassifierOutput, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, per frame (weighted as the model aggregates) when the model has frames."""
        ls = self.hparams.label_smoothing
        if out.frame_logits is None:
            return F.cross_entropy(out.logits.float(), y, label_smoothing=ls)
        B, T, K = out.frame_logits.shape
        per_step = F.cross_entropy(out.frame_logits.reshape(B * T, K).float(), y.repeat_interleave(T),
                                   reduction="none", label_smoothing=ls).view(B, T)
        return (per_step * out.frame_weights[None]).sum(1).mean()

    @staticmethod
    def _frame_targets(batch, frames: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The batch's per-frame multi-hot labels ``(V_total, T, K)`` and the mask of real (not
        padded) frames ``(V_total, T)``, when the batch has per-frame labels."""
        fl = batch.get("frame_labels")  # one row per view, as the frames
        if fl is None or frames is None:
            return None
        if fl.shape != frames.shape:
            raise ValueError(f"the batch's frame_labels {tuple(fl.shape)} do not line up with the model's per-frame "
                             f"outputs {tuple(frames.shape)} (views x frames x classes)")
        mask = batch.get("frame_mask")
        mask = torch.ones(fl.shape[:2], dtype=torch.bool) if mask is None else mask
        return fl.to(frames.device), mask.to(frames.device)

    def _multilabel_loss(self, batch, out: ClassifierOutput, y: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy: every real frame against its own labels when the batch has
        per-frame labels (dense labelling), else the video-level logits against ``y``."""
        targets = self._frame_targets(batch, out.frame_logits)
        if targets is None:
            return F.binary_cross_entropy_with_logits(out.logits.float(), y)
        fl, mask = targets
        return F.binary_cross_entropy_with_logits(out.frame_logits.float()[mask], fl[mask])

    # ------------------------------------------------------------------ steps
    def training_step(self, batch, batch_idx):
        self._note_skipped(batch)
        if len(batch["label"]) == 0:
            return None  # every video of the batch failed to decode; skip the step
        loss, logs, out, y = self.training_loss(batch)
        for k, v in logs.items():
            self.log(f"train/{k}", v, batch_size=len(y))
        if self.multilabel:
            self.train_metrics.update(out.logits.detach().float().sigmoid(), y.long())
        else:
            self.train_metrics.update(out.logits.detach(), y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        return loss

    def on_train_epoch_start(self):
        if hasattr(self.model, "set_epoch"):  # e.g. the fusion template's DropPath warm-up
            self.model.set_epoch(self.current_epoch)

    def on_train_epoch_end(self):
        self.log_dict(self.train_metrics.compute(), prog_bar=False)
        self.train_metrics.reset()
        self.log("skipped_videos", float(len(self.skipped_videos)))

    def _eval_step(self, batch, metrics, stage: str):
        self._note_skipped(batch)
        if len(batch["label"]) == 0:
            return None
        out = self._run(batch)
        logp = average_views(out.logits, batch["views"], self.multilabel)  # (B, K)
        y = batch["label"]
        if self.multilabel:
            p = logp.exp().clamp(1e-6, 1 - 1e-6)
            y = y.float()  # BCE by hand: F.binary_cross_entropy refuses to run under CUDA autocast
            loss = -(y * p.log() + (1 - y) * torch.log1p(-p)).mean()
            metrics.update(p, y.long())
            targets = self._frame_targets(batch, out.frame_logits)
            if targets is not None:
                fl, mask = targets
                frame_map = self.val_frame_map if stage == "val" else self.test_frame_map
                frame_map.update(out.frame_logits.float().sigmoid()[mask], fl[mask].long())
        else:
            loss = F.nll_loss(logp, y)
            metrics.update(logp, y)
        self._attention_on_target(batch, out, stage)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", batch_size=len(y), sync_dist=True)
        return logp

    def _attention_on_target(self, batch, out: ClassifierOutput, stage: str) -> None:
        """With target boxes in the batch and spatial attention in the output: log the attention
        mass ratio (mass inside the box / the box's share of the frame; 1 = uniform)."""
        box = batch.get("box")
        if out.attention is None or out.attention_map is None or box is None or len(out.attention) != len(box):
            return
        size = tuple(batch["video"].shape[-2:]) if batch.get("video") is not None else batch["frame_size"]
        ratio = attention_mass_ratio(out.attention, box.to(out.attention.device), out.attention_map, size)
        self.log(f"{stage}/attention_mass_ratio", ratio.mean(), batch_size=len(ratio), sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics, "val")

    def _log_frame_map(self, metric, stage: str) -> None:
        if metric is not None and metric.update_count:
            self.log(f"{stage}/frame_mAP", metric.compute())
            metric.reset()

    def on_validation_epoch_end(self):
        self.log_dict(self.val_metrics.compute(), prog_bar=True)
        self.val_metrics.reset()
        self._log_frame_map(self.val_frame_map, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self):
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()
        self._log_frame_map(self.test_frame_map, "test")
        self.log("skipped_videos", float(len(self.skipped_videos)))

    def predict_step(self, batch, batch_idx):
        out = self._run(batch)
        return {"probs": average_views(out.logits, batch["views"], self.multilabel).exp(), "index": batch["index"]}

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        groups = self.model.param_groups() if hasattr(self.model, "param_groups") else self.parameters()
        return configure_optimizer(groups, self.optim_cfg, self.trainer)
