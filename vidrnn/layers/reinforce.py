"""The REINFORCE estimator for stochastic (hard) attention: surrogate loss, reward baseline and
the terms a model hands to its task.

Williams, "Simple statistical gradient-following algorithms for connectionist reinforcement
learning", Machine Learning 8, 1992; used for hard attention by Mnih, Heess, Graves, Kavukcuoglu,
"Recurrent Models of Visual Attention", NeurIPS 2014 (arXiv:1406.6247) and Xu et al., "Show,
Attend and Tell", ICML 2015 (arXiv:1502.03044, Sec. 4.1: moving-average baseline, entropy bonus).

A model that samples (where to look, which word) returns a :class:`PolicyTerms` in its output;
the task, which knows the reward (e.g. the log-likelihood of the true class), calls
:meth:`PolicyTerms.surrogate`. Nothing is left on the module between the forward pass and the
loss, so two forwards before one backward, and ``torch.compile``, work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

__all__ = ["reinforce_surrogate", "RewardBaseline", "PolicyTerms"]


def reinforce_surrogate(log_prob: torch.Tensor, reward: torch.Tensor, baseline: torch.Tensor | float = 0.0,
                        entropy: torch.Tensor | None = None, entropy_weight: float = 0.0) -> torch.Tensor:
    """Loss whose gradient is the REINFORCE estimate of ``−∇ E[reward]`` (Williams 1992), per sample.

    ``−(r − b) · log π(s)`` with ``r`` and ``b`` treated as constants, minus an entropy bonus.

    Shape:
        log_prob ``(B, ...)`` summed over the trailing axes; reward ``(B,)`` -> ``(B,)``.
    """
    lp = log_prob.flatten(1).sum(1) if log_prob.dim() > 1 else log_prob
    loss = -(reward - baseline).detach() * lp
    if entropy is not None and entropy_weight:
        ent = entropy.flatten(1).sum(1) if entropy.dim() > 1 else entropy
        loss = loss - entropy_weight * ent
    return loss


class RewardBaseline(nn.Module):
    """Moving-average reward baseline ``b ← decay·b + (1 − decay)·mean(r)`` (Xu et al. 2015).

    It starts at the first batch's mean reward, not at 0 (a baseline of 0 with rewards around
    ``−log K`` makes the first updates push every sampled action down). Both the value and
    whether it has started are persistent buffers, so the baseline survives a checkpoint.

    Args:
        decay: weight of the old value (0.9 in Xu et al.).
    """

    def __init__(self, decay: float = 0.9):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"baseline decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.register_buffer("value", torch.zeros(()))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, reward: torch.Tensor) -> torch.Tensor:
        """The baseline to use for ``reward (B,)`` (the value before this batch, or the batch's
        mean on the very first batch); then moves the average towards the batch's mean."""
        mean = reward.detach().float().mean()
        b = torch.where(self.started, self.value, mean)
        self.value.copy_(self.decay * b + (1.0 - self.decay) * mean)
        self.started.fill_(True)
        return b


@dataclass
class PolicyTerms:
    """What a sampling model returns for the REINFORCE estimator.

    Attributes:
        log_prob: ``(B,)`` log-probability of the actions sampled for each sample (summed over
            its steps; 0 for steps that used the expectation instead of a sample).
        entropy: ``(B,)`` entropy of the sampling distributions, summed over steps.
        entropy_weight: weight of the entropy bonus.
        baseline: the model's :class:`RewardBaseline`.
    """

    log_prob: torch.Tensor
    entropy: torch.Tensor
    entropy_weight: float
    baseline: RewardBaseline

    def surrogate(self, reward: torch.Tensor) -> torch.Tensor:
        """Mean REINFORCE surrogate loss for ``reward (B,)`` (treated as a constant); updates the
        baseline."""
        b = self.baseline.update(reward)
        return reinforce_surrogate(self.log_prob, reward, b, self.entropy, self.entropy_weight).mean()
