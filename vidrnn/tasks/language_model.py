"""Character-level language modelling as a LightningModule, with truncated backpropagation
through time and gradient clipping made visible.

* **Truncated BPTT** (Williams & Peng 1990; char-rnn): batches are ``B`` parallel contiguous
  streams (:class:`vidrnn.data.text.StreamChunks`); the hidden state is carried from one chunk
  to the next and detached at each chunk edge, so its *values* cross the edge and its
  *gradients* do not. Lightning 2 has no ``truncated_bptt_steps``: the task uses manual
  optimisation (one backward and one optimiser step per chunk). The state restarts from zeros
  at the start of every epoch and of every evaluation.
* **Gradient clipping** (Pascanu et al. 2013), the ``language_modeling`` section
  (:class:`LanguageModelingSettings`): by the global norm (default) or by value (char-rnn
  clamps every gradient to [-5, 5]), in ``on_before_optimizer_step`` (after Lightning unscales
  16-mixed gradients). Logged at every ``log_every_n_steps``: ``train/grad_norm`` (before
  clipping), ``train/clipped`` (1 when clipping changed the gradient) and
  ``train/sigma_max/<weight>``, the largest singular value of each recurrent weight matrix
  ``W_hh``.
* **Metrics**: loss in nats per character (cross-entropy, natural log), bits per character
  (``nats / ln 2``) and perplexity (``exp(nats)``), on val and test over the characters of the
  split's streams (:class:`~vidrnn.data.text.StreamChunks`: up to ``B - 1`` trailing
  characters dropped), the state carried across its chunks; the mean is accumulated in
  float64 with torchmetrics' ``MeanMetric`` (torchmetrics' ``Perplexity`` takes the log of a
  float32 softmax, which underflows to ``inf`` for one very unlikely character).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from vidrnn.errors import ConfigError
from vidrnn.layers.rnn_cells import largest_singular_values
from vidrnn.tasks.build import build_language_model
from vidrnn.tasks.optim import configure_optimizer

__all__ = ["LanguageModelingSettings", "LanguageModelTask", "detach_state", "clip_gradients"]

LN2 = math.log(2.0)


def _positive(value: float, where: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{where}: expected a finite number > 0, got {value}")
    return value


@dataclass
class LanguageModelingSettings:
    """The ``language_modeling:`` section.

    Attributes:
        clip: ``norm`` (rescale the whole gradient to norm <= ``clip_value``), ``value``
            (clamp every component to ``[-clip_value, clip_value]``, as char-rnn) or ``none``.
        clip_value: the norm or value threshold.
    """

    clip: Literal["norm", "value", "none"] = "norm"
    clip_value: Annotated[float, _positive] = 5.0


def detach_state(state):
    """The state with every tensor detached (a truncated-BPTT chunk edge); None stays None."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state.detach()


def clip_gradients(parameters, mode: str, value: float) -> tuple[float, bool]:
    """Clip the gradients of ``parameters`` in place.

    Args:
        mode: ``"norm"``, ``"value"`` or ``"none"``.
        value: the threshold.

    Returns:
        ``(global gradient norm before clipping, whether clipping changed the gradient)``.
    """
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return 0.0, False
    grads = [p.grad for p in params]
    norm = torch.nn.utils.get_total_norm(grads)
    clipped = False
    if mode == "norm":
        clipped = bool(norm > value)
        torch.nn.utils.clip_grads_with_norm_(params, value, norm)
    elif mode == "value":
        clipped = bool(max(g.abs().max() for g in grads) > value)
        for g in grads:
            g.clamp_(-value, value)
    return float(norm), clipped


class LanguageModelTask(L.LightningModule):
    """Train/evaluate a registered character-level language model with truncated BPTT.

    Args:
        model_name: registry name of a language model (``vidrnn models char*``).
        model_kwargs: builder arguments (``vocab_size`` comes from ``vocab``).
        vocab: the characters in index order (saved in checkpoints for sampling).
        optimizer: the ``optimizer`` section.
        data: resolved data settings (saved for reference).
        config: the resolved run config.
        clip, clip_value: the ``language_modeling`` section.

    Batches: ``{"input": (B, T), "target": (B, T)}`` int64, consecutive batches continuing
    the same B streams.
    """

    def __init__(self, model_name: str, model_kwargs: dict | None = None, vocab: list[str] | None = None,
                 optimizer: dict | None = None, data: dict | None = None, config: dict | None = None,
                 clip: str = "norm", clip_value: float = 5.0):
        super().__init__()
        if clip not in ("norm", "value", "none"):
            raise ValueError(f"clip={clip!r}: expected 'norm', 'value' or 'none'")
        _positive(clip_value, "clip_value")
        if not vocab:
            raise ValueError("a language model needs its vocabulary (the characters in index order)")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.model = build_language_model(model_name, model_kwargs, len(vocab))
        self.optim_cfg = dict(optimizer or {})
        # nats per character, a character-weighted mean accumulated in float64 (perplexity = exp of it)
        self.val_nll, self.test_nll = MeanMetric().set_dtype(torch.float64), MeanMetric().set_dtype(torch.float64)
        self._train_state = None
        self._eval_state = None
        self.last_eval: dict = {}

    def forward(self, tokens: torch.Tensor, state=None):
        """``(logits (B, T, V), state)`` for ``tokens (B, T)``."""
        return self.model(tokens, state)

    # ------------------------------------------------------------------ training
    def on_train_epoch_start(self):
        self._train_state = None  # the streams start again from the beginning of the text

    def chunk_loss(self, batch) -> torch.Tensor:
        """Mean cross-entropy (nats/char) of one training chunk, starting from the state carried
        from the previous chunk (detached: values cross the chunk edge, gradients do not); the
        new state is kept (detached) for the next chunk."""
        x, y = batch["input"], batch["target"]
        logits, state = self.model(x, detach_state(self._train_state))
        self._train_state = detach_state(state)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        x = batch["input"]
        loss = self.chunk_loss(batch)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()  # clipping happens in on_before_optimizer_step, after 16-mixed's unscaling
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        B = x.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=B)
        self.log("train/bpc", loss / LN2, batch_size=B)
        return loss

    def on_before_optimizer_step(self, optimizer):
        """Clip the gradients (Lightning calls this after unscaling them under 16-mixed) and
        log their norm before clipping, whether clipping changed them, and σ_max of every ``W_hh``."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        norm, clipped = clip_gradients(params, self.hparams.clip, self.hparams.clip_value)
        self.log("train/grad_norm", norm)
        self.log("train/clipped", float(clipped))
        every = max(1, int(getattr(self.trainer, "log_every_n_steps", 50) or 50))
        if (self.global_step + 1) % every == 0:  # the steps Lightning writes (global_step counts after this one)
            for name, s in largest_singular_values(self.model).items():
                self.log(f"train/sigma_max/{name}", s)

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch, metric: MeanMetric):
        logits, self._eval_state = self.model(batch["input"], self._eval_state)
        y = batch["target"]
        nll = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())  # log-softmax: no underflow
        metric.update(nll.double(), y.numel())

    def _eval_end(self, metric: MeanMetric, stage: str):
        nats = metric.compute()
        metric.reset()
        ppl = torch.exp(nats)
        self.log_dict({f"{stage}/loss": nats.float(), f"{stage}/bpc": (nats / LN2).float(), f"{stage}/ppl": ppl.float()},
                      prog_bar=stage == "val")
        self.last_eval[stage] = {"nats_per_char": float(nats), "bits_per_char": float(nats) / LN2,
                                 "perplexity": float(ppl)}

    def on_validation_epoch_start(self):
        self._eval_state = None

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_nll)

    def on_validation_epoch_end(self):
        self._eval_end(self.val_nll, "val")

    def on_test_epoch_start(self):
        self._eval_state = None

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_nll)

    def on_test_epoch_end(self):
        self._eval_end(self.test_nll, "test")

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        return configure_optimizer(self.parameters(), self.optim_cfg, self.trainer)
