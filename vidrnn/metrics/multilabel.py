"""Multi-label mean average precision over the classes that occur (the Charades/SlowFast convention).

torchmetrics' macro ``MultilabelAveragePrecision`` gives a class without any positive in the
evaluation set an AP of 0 and averages it in, so a small or unbalanced test set drags the mean
down for classes it cannot score. Charades' evaluation (and SlowFast's ``get_map``) leave such
classes out; :class:`MeanAveragePrecision` does the same.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.classification import MultilabelAveragePrecision
from torchmetrics.utilities.data import dim_zero_cat

__all__ = ["MeanAveragePrecision", "GlobalAveragePrecision", "HitAtOne", "global_average_precision"]


class MeanAveragePrecision(MultilabelAveragePrecision):
    """Mean over classes with at least one positive of the per-class average precision.

    Args:
        num_labels: K.

    Shape:
        ``update(preds (N, K) probabilities, target (N, K) 0/1)``; ``compute() -> scalar``
        (NaN when no class has a positive).
    """

    def __init__(self, num_labels: int, **kwargs):
        super().__init__(num_labels, average=None, thresholds=None, **kwargs)

    def compute(self) -> torch.Tensor:
        ap = super().compute()  # (K,)
        present = dim_zero_cat(self.target).sum(0) > 0
        if not bool(present.any()):
            return torch.tensor(float("nan"), device=ap.device)
        return ap[present].mean()


def global_average_precision(preds: torch.Tensor, target: torch.Tensor, top_k: int = 20) -> torch.Tensor:
    """YouTube-8M's GAP@k (its starter code's ``eval_util.calculate_gap``).

    Each video contributes its ``top_k`` most confident predictions; all of them, pooled over
    the videos, are sorted by confidence and scored as one ranked list:
    ``GAP = sum_i P(i) rel(i) / N_pos``, with ``P(i)`` the precision of the first ``i``
    predictions, ``rel(i)`` 1 when prediction ``i`` is a true label, and ``N_pos`` the number of
    true labels of all the videos (including those outside the top k).

    Args:
        preds: ``(N, K)`` confidences. target: ``(N, K)`` 0/1.
        top_k: predictions per video (20 in the challenge).

    Returns:
        A scalar (0 when there is no positive).
    """
    conf, rel = _top_k_hits(preds, target, top_k)
    return _pooled_ap(conf, rel, target.double().sum())


def _top_k_hits(preds: torch.Tensor, target: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each video's ``top_k`` confidences and whether each is a true label, flattened ``(N k,)``."""
    conf, idx = preds.float().topk(min(top_k, preds.shape[-1]), dim=-1)  # (N, k)
    return conf.flatten(), target.float().gather(-1, idx).flatten()


def _pooled_ap(conf: torch.Tensor, rel: torch.Tensor, n_pos: torch.Tensor) -> torch.Tensor:
    """Average precision of pooled predictions ranked by confidence, over ``n_pos`` positives."""
    if n_pos == 0 or len(rel) == 0:
        return torch.tensor(0.0, device=conf.device)
    rel = rel[conf.argsort(descending=True, stable=True)]
    precision = rel.cumsum(0) / torch.arange(1, len(rel) + 1, device=rel.device)
    return ((precision * rel).sum() / n_pos).float()


class GlobalAveragePrecision(Metric):
    """GAP@k over everything seen (:func:`global_average_precision`), keeping only what it reads:
    each video's top-k confidences and whether they are true labels, and the count of positives
    (memory ``O(N k)``, not ``O(N K)``: YouTube-8M has 3862 classes).

    Shape:
        ``update(preds (N, K), target (N, K))``; ``compute() -> scalar``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, top_k: int = 20, **kwargs):
        super().__init__(**kwargs)
        self.top_k = int(top_k)
        self.add_state("conf", default=[], dist_reduce_fx="cat")
        self.add_state("hits", default=[], dist_reduce_fx="cat")
        self.add_state("positives", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        conf, rel = _top_k_hits(preds, target, self.top_k)
        self.conf.append(conf)
        self.hits.append(rel)
        self.positives += target.double().sum()

    def compute(self) -> torch.Tensor:
        if not self.conf:
            return torch.tensor(0.0, device=self.positives.device)
        return _pooled_ap(dim_zero_cat(self.conf), dim_zero_cat(self.hits), self.positives)


class HitAtOne(Metric):
    """YouTube-8M's hit@1: the fraction of videos whose most confident class is a true label.

    Shape:
        ``update(preds (N, K), target (N, K))``; ``compute() -> scalar``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("hits", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        top = preds.argmax(-1, keepdim=True)
        self.hits += target.float().gather(-1, top).sum()
        self.total += len(preds)

    def compute(self) -> torch.Tensor:
        return self.hits / self.total.clamp_min(1)
