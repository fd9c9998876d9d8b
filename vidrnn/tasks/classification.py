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
* Models with ``auxiliary_loss`` (the attention LSTMs) add it: the doubly stochastic
  attention penalty, and REINFORCE terms for hard attention (reward: the log-likelihood of
  the true class).
* Bad videos skipped by the dataset are counted (``skipped_videos``) and listed in the run
  summary.

The checkpoint's hyper-parameters carry everything needed to rebuild the model and its input
pipeline: model name and arguments, class names, the data settings (sampler, transform,
decode size) and the resolved config.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from vidrnn.metrics.multilabel import MeanAveragePrecision
from vidrnn.registry import create_model
from vidrnn.tasks.optim import configure_optimizer

__all__ = ["ClassificationTask", "average_views"]


def average_views(logits: torch.Tensor, views: torch.Tensor, multilabel: bool = False) -> torch.Tensor:
    """Video-level log-probabilities from per-view logits.

    Args:
        logits: ``(V_total, K)`` logits of every view, videos one after another.
        views: ``(B,)`` number of views of each video.
        multilabel: independent sigmoid probabilities instead of a softmax over classes.

    Returns:
        ``(B, K)``: log of the mean of the views' softmax (or sigmoid) probabilities.
    """
    probs = logits.float().sigmoid() if multilabel else logits.float().softmax(-1)
    sums = torch.zeros(len(views), logits.shape[-1], device=logits.device).index_add_(
        0, torch.repeat_interleave(torch.arange(len(views), device=logits.device), views.to(logits.device)), probs)
    return (sums / views.to(logits.device)[:, None]).clamp_min(1e-12).log()


def _metrics(num_classes: int, prefix: str, multilabel: bool = False) -> MetricCollection:
    if multilabel:
        return MetricCollection({"mAP": MeanAveragePrecision(num_classes)}, prefix=prefix)
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

    Raises:
        ValueError: unknown model, bad optimizer settings, or ``multilabel`` with a model
            that has no multi-label outputs.
    """

    def __init__(self, model_name: str, model_kwargs: dict | None = None, class_names: list[str] | None = None,
                 optimizer: dict | None = None, data: dict | None = None, config: dict | None = None,
                 label_smoothing: float = 0.0, multilabel: bool = False):
        super().__init__()
        if not class_names:
            raise ValueError("class_names must list the classes")
        self.save_hyperparameters()
        kwargs = dict(model_kwargs or {})
        if multilabel:
            kwargs.setdefault("multilabel", True)
        try:
            self.model = create_model(model_name, num_classes=len(class_names), **kwargs)
        except TypeError as e:
            if multilabel and "multilabel" in str(e):
                raise ValueError(f"model {model_name!r} has no multi-label outputs; the data is multi-label "
                                 "(use temporal_attention_lstm or temporal_attention_lstm_tiny)") from None
            raise
        if multilabel and not getattr(self.model, "multilabel", False):
            raise ValueError(f"model {model_name!r} was built with multilabel=False but the data is multi-label")
        self.multilabel = multilabel
        self.class_names = list(class_names)
        self.optim_cfg = {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "momentum": 0.9, "scheduler": "cosine",
                          "warmup_epochs": 0, **(optimizer or {})}
        K = len(class_names)
        self.train_metrics = _metrics(K, "train/", multilabel)
        self.val_metrics = _metrics(K, "val/", multilabel)
        self.test_metrics = _metrics(K, "test/", multilabel)
        # per-frame mAP of dense multi-label data (batches with frame_labels)
        self.val_frame_map = MeanAveragePrecision(K) if multilabel else None
        self.test_frame_map = MeanAveragePrecision(K) if multilabel else None
        self.skipped_videos: set[str] = set()

    # ------------------------------------------------------------------ forward
    def _input(self, batch):
        if batch.get("features") is not None:
            return batch["features"], True
        return batch["video"], False

    def forward_views(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(view logits (V_total, K), per-frame logits (V_total, T, K) or None)``."""
        x, cached = self._input(batch)
        if hasattr(self.model, "forward_frames"):
            frames = self.model.forward_frames_cached(x) if cached else self.model.forward_frames(x)
            return self.model.aggregate(frames), frames
        return (self.model.forward_cached(x) if cached else self.model(x)), None

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Video-level logits ``(B, K)`` for ``video (B, T, 3, H, W)``."""
        return self.model(video)

    def _note_skipped(self, batch) -> None:
        self.skipped_videos.update(batch.get("skipped") or [])

    # ------------------------------------------------------------------ steps
    def training_step(self, batch, batch_idx):
        self._note_skipped(batch)
        if len(batch["label"]) == 0:
            return None  # every video of the batch failed to decode; skip the step
        logits, frames = self.forward_views(batch)
        y = batch["label"].repeat_interleave(batch["views"], dim=0)
        loss = self._multilabel_loss(batch, logits, frames, y) if self.multilabel else self._loss(logits, frames, y)
        if hasattr(self.model, "auxiliary_loss"):  # attention penalty, REINFORCE for hard attention
            nll = (F.binary_cross_entropy_with_logits(logits.float(), y, reduction="none").sum(-1) if self.multilabel
                   else F.cross_entropy(logits.float(), y, reduction="none"))  # per sample; reward = -nll
            aux, logs = self.model.auxiliary_loss(nll)
            loss = loss + aux
            for k, v in logs.items():
                self.log(f"train/{k}", v, batch_size=len(y))
        if self.multilabel:
            self.train_metrics.update(logits.detach().float().sigmoid(), y.long())
        else:
            self.train_metrics.update(logits.detach(), y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        return loss

    def _loss(self, logits, frames, y):
        """Cross-entropy, per frame (weighted as the model aggregates) when the model has frames."""
        ls = self.hparams.label_smoothing
        if frames is None:
            return F.cross_entropy(logits.float(), y, label_smoothing=ls)
        B, T, K = frames.shape
        per_step = F.cross_entropy(frames.reshape(B * T, K).float(), y.repeat_interleave(T),
                                   reduction="none", label_smoothing=ls).view(B, T)
        return (per_step * self.model.frame_weights(T, frames.device)[None]).sum(1).mean()

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

    def _multilabel_loss(self, batch, logits, frames, y):
        """Binary cross-entropy: every real frame against its own labels when the batch has
        per-frame labels (dense labelling), else the video-level logits against ``y``."""
        targets = self._frame_targets(batch, frames)
        if targets is None:
            return F.binary_cross_entropy_with_logits(logits.float(), y)
        fl, mask = targets
        return F.binary_cross_entropy_with_logits(frames.float()[mask], fl[mask])

    def on_train_epoch_end(self):
        self.log_dict(self.train_metrics.compute(), prog_bar=False)
        self.train_metrics.reset()
        self.log("skipped_videos", float(len(self.skipped_videos)))

    def _eval_step(self, batch, metrics, stage: str):
        self._note_skipped(batch)
        if len(batch["label"]) == 0:
            return None
        logits, frames = self.forward_views(batch)
        logp = average_views(logits, batch["views"], self.multilabel)  # (B, K)
        y = batch["label"]
        if self.multilabel:
            p = logp.exp().clamp(1e-6, 1 - 1e-6)
            y = y.float()  # BCE by hand: F.binary_cross_entropy refuses to run under CUDA autocast
            loss = -(y * p.log() + (1 - y) * torch.log1p(-p)).mean()
            metrics.update(p, y.long())
            targets = self._frame_targets(batch, frames)
            if targets is not None:
                fl, mask = targets
                frame_map = self.val_frame_map if stage == "val" else self.test_frame_map
                frame_map.update(frames.float().sigmoid()[mask], fl[mask].long())
        else:
            loss = F.nll_loss(logp, y)
            metrics.update(logp, y)
        self._attention_on_target(batch, stage)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", batch_size=len(y), sync_dist=True)
        return logp

    def _attention_on_target(self, batch, stage: str) -> None:
        """With target boxes in the batch and a spatial-attention model: log the attention mass
        ratio (mass inside the box / the box's share of the frame; 1 = uniform)."""
        att = getattr(self.model, "last_attention", None)
        box = batch.get("box")
        if att is None or box is None or getattr(self.model, "input_kind", "") != "map" or len(att) != len(box):
            return
        from vidrnn.metrics.attention import attention_mass_ratio

        ms = self.model.map_size
        ratio = attention_mass_ratio(att, box.to(att.device), (ms, ms), tuple(batch["video"].shape[-2:]))
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
        logits, _ = self.forward_views(batch)
        return {"probs": average_views(logits, batch["views"], self.multilabel).exp(), "index": batch["index"]}

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        return configure_optimizer(self.parameters(), self.optim_cfg, self.trainer)
