"""Video classification as a LightningModule: loss, metrics, optimiser, multi-view evaluation.

* Loss: cross-entropy. Models with a prediction at every frame (LRCN, DeepLSTM) are trained
  with the per-frame cross-entropy weighted by the model's aggregation weights (uniform for
  LRCN's average, linearly growing for Ng et al.'s weighting), as in the papers.
* Metrics (torchmetrics): ``top1``, ``top5`` (micro accuracy) and ``mean_class_accuracy``
  (macro recall), logged as ``train/``, ``val/``, ``test/``.
* Evaluation is video-level: the softmax outputs of all views (clips) of a video are
  averaged before the metrics (LRCN tests 16-frame clips with stride 8 and averages).
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

from vidrnn.registry import create_model
from vidrnn.tasks.optim import configure_optimizer

__all__ = ["ClassificationTask", "average_views"]


def average_views(logits: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
    """Video-level log-probabilities from per-view logits.

    Args:
        logits: ``(V_total, K)`` logits of every view, videos one after another.
        views: ``(B,)`` number of views of each video.

    Returns:
        ``(B, K)``: log of the mean of the views' softmax probabilities.
    """
    probs = logits.float().softmax(-1)
    sums = torch.zeros(len(views), logits.shape[-1], device=logits.device).index_add_(
        0, torch.repeat_interleave(torch.arange(len(views), device=logits.device), views.to(logits.device)), probs)
    return (sums / views.to(logits.device)[:, None]).clamp_min(1e-12).log()


def _metrics(num_classes: int, prefix: str) -> MetricCollection:
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

    Raises:
        ValueError: unknown model or bad optimizer settings.
    """

    def __init__(self, model_name: str, model_kwargs: dict | None = None, class_names: list[str] | None = None,
                 optimizer: dict | None = None, data: dict | None = None, config: dict | None = None,
                 label_smoothing: float = 0.0):
        super().__init__()
        if not class_names:
            raise ValueError("class_names must list the classes")
        self.save_hyperparameters()
        self.model = create_model(model_name, num_classes=len(class_names), **(model_kwargs or {}))
        self.class_names = list(class_names)
        self.optim_cfg = {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "momentum": 0.9, "scheduler": "cosine",
                          "warmup_epochs": 0, **(optimizer or {})}
        K = len(class_names)
        self.train_metrics = _metrics(K, "train/")
        self.val_metrics = _metrics(K, "val/")
        self.test_metrics = _metrics(K, "test/")
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
        y = batch["label"].repeat_interleave(batch["views"])
        ls = self.hparams.label_smoothing
        if frames is not None:
            B, T, K = frames.shape
            per_step = F.cross_entropy(frames.reshape(B * T, K).float(), y.repeat_interleave(T),
                                       reduction="none", label_smoothing=ls).view(B, T)
            loss = (per_step * self.model.frame_weights(T, frames.device)[None]).sum(1).mean()
        else:
            loss = F.cross_entropy(logits.float(), y, label_smoothing=ls)
        if hasattr(self.model, "auxiliary_loss"):  # attention penalty, REINFORCE for hard attention
            aux, logs = self.model.auxiliary_loss(F.cross_entropy(logits.float(), y, reduction="none"))
            loss = loss + aux
            for k, v in logs.items():
                self.log(f"train/{k}", v, batch_size=len(y))
        self.train_metrics.update(logits.detach(), y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        return loss

    def on_train_epoch_end(self):
        self.log_dict(self.train_metrics.compute(), prog_bar=False)
        self.train_metrics.reset()
        self.log("skipped_videos", float(len(self.skipped_videos)))

    def _eval_step(self, batch, metrics, stage: str):
        self._note_skipped(batch)
        if len(batch["label"]) == 0:
            return None
        logits, _ = self.forward_views(batch)
        logp = average_views(logits, batch["views"])  # (B, K)
        y = batch["label"]
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

    def on_validation_epoch_end(self):
        self.log_dict(self.val_metrics.compute(), prog_bar=True)
        self.val_metrics.reset()

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self):
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()
        self.log("skipped_videos", float(len(self.skipped_videos)))

    def predict_step(self, batch, batch_idx):
        logits, _ = self.forward_views(batch)
        return {"probs": average_views(logits, batch["views"]).exp(), "index": batch["index"]}

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        return configure_optimizer(self.parameters(), self.optim_cfg, self.trainer)
