"""Multi-label mean average precision over the classes that occur (the Charades/SlowFast convention).

torchmetrics' macro ``MultilabelAveragePrecision`` gives a class without any positive in the
evaluation set an AP of 0 and averages it in, so a small or unbalanced test set drags the mean
down for classes it cannot score. Charades' evaluation (and SlowFast's ``get_map``) leave such
classes out; :class:`MeanAveragePrecision` does the same.
"""

from __future__ import annotations

import torch
from torchmetrics.classification import MultilabelAveragePrecision
from torchmetrics.utilities.data import dim_zero_cat

__all__ = ["MeanAveragePrecision"]


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
