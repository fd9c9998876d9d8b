"""Character-level language models: char-rnn (Karpathy 2015) as studied in Karpathy, Johnson and
Fei-Fei 2015, "Visualizing and Understanding Recurrent Networks" (arXiv:1506.02078).

A character ``x_t`` (an index into the vocabulary) is embedded (or one-hot encoded), passed
through 1-3 layers of vanilla RNN, LSTM or GRU, and a linear layer gives the logits of the next
character; the softmax over the vocabulary is the predicted distribution ``p(x_{t+1} | x_{<=t})``.
Trained on "hell" it learns to output "ello". The recurrent layers are torch's fused
``nn.RNN``/``nn.LSTM``/``nn.GRU`` (``implementation="fused"``, the default) or the same maths
written out step by step (``"equations"``: :mod:`vidrnn.layers.rnn_cells`, same state_dict, so a
trained model can be loaded either way); the equation path can hand out every step's state
(:meth:`CharLM.steps`) for the gradient-flow and hidden-unit analyses.

Deviation from char-rnn: dropout is applied between recurrent layers (torch's ``dropout``) and
before the output layer, as char-rnn, but not on the embedding.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from vidrnn.layers import rnn_cells
from vidrnn.registry import register_model

__all__ = ["CharLM", "CELLS"]

CELLS = ("rnn", "lstm", "gru")
Cell = Literal["rnn", "lstm", "gru"]
Implementation = Literal["fused", "equations"]

_FUSED = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_EQUATIONS = {"rnn": rnn_cells.RNN, "lstm": rnn_cells.LSTM, "gru": rnn_cells.GRU}


class CharLM(nn.Module):
    """A character-level recurrent language model.

    Args:
        vocab_size: V, the number of distinct characters.
        cell: ``"rnn"`` (vanilla, ``h_t = φ(W_hh h_{t-1} + W_xh x_t + b)``), ``"lstm"`` or ``"gru"``.
        hidden_size: H of every layer.
        num_layers: 1-3 stacked layers.
        dropout: between recurrent layers and before the output layer.
        embedding_dim: size of the learned character embedding (ignored with ``one_hot``).
        one_hot: feed one-hot vectors of size V instead of an embedding (as char-rnn).
        nonlinearity: ``"tanh"`` or ``"relu"`` (vanilla RNN only).
        implementation: ``"fused"`` (torch's kernels) or ``"equations"`` (the readable cells).

    Shape:
        ``forward(tokens (B, T) int64, state=None) -> (logits (B, T, V), state)``; the state is
        ``h (num_layers, B, H)``, for the LSTM ``(h, c)``; None starts from zeros. Feed the
        returned state back (detached, for truncated BPTT) to continue a text.

    Raises:
        ValueError: an unknown cell, nonlinearity or implementation, or sizes out of range.
    """

    def __init__(self, vocab_size: int, cell: str = "lstm", hidden_size: int = 256, num_layers: int = 2,
                 dropout: float = 0.0, embedding_dim: int = 64, one_hot: bool = False, nonlinearity: str = "tanh",
                 implementation: str = "fused"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell={cell!r}: expected one of {CELLS}")
        if implementation not in ("fused", "equations"):
            raise ValueError(f"implementation={implementation!r}: expected 'fused' or 'equations'")
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
        if not 1 <= num_layers <= 3:
            raise ValueError(f"num_layers must be 1, 2 or 3, got {num_layers}")
        if nonlinearity != "tanh" and cell != "rnn":
            raise ValueError(f"nonlinearity={nonlinearity!r} applies to the vanilla RNN only (cell='rnn')")
        self.vocab_size, self.cell, self.hidden_size, self.num_layers = vocab_size, cell, hidden_size, num_layers
        self.one_hot, self.implementation = one_hot, implementation
        self.embedding = None if one_hot else nn.Embedding(vocab_size, embedding_dim)
        in_size = vocab_size if one_hot else embedding_dim
        kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        make = (_FUSED if implementation == "fused" else _EQUATIONS)[cell]
        self.rnn = make(in_size, hidden_size, num_layers=num_layers, batch_first=True,
                        dropout=dropout if num_layers > 1 else 0.0, **kwargs)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` indices -> ``(B, T, E)`` inputs of the first recurrent layer."""
        if self.one_hot:
            return nn.functional.one_hot(tokens, self.vocab_size).to(self.head.weight.dtype)
        return self.embedding(tokens)

    def forward(self, tokens: torch.Tensor, state=None):
        out, state = self.rnn(self.embed(tokens), state)
        return self.head(self.dropout(out)), state

    def steps(self, tokens: torch.Tensor, state=None):
        """As :meth:`forward`, keeping each step's state: ``(logits, state, states)`` with
        ``states[layer][t]`` the graph tensor ``h_t`` (LSTM: ``(h_t, c_t)``). Needs
        ``implementation="equations"``: use :meth:`with_equations` on a fused model.

        Raises:
            ValueError: a fused model.
        """
        if self.implementation != "equations":
            raise ValueError("steps() reads every time step of the equation cells; call model.with_equations() first")
        out, state, states = self.rnn.steps(self.embed(tokens), state)
        return self.head(self.dropout(out)), state, states

    def with_equations(self) -> "CharLM":
        """A copy of this model running the equation cells (same weights, same outputs)."""
        return self._copy("equations")

    def with_fused(self) -> "CharLM":
        """A copy of this model running torch's fused kernels (same weights, same outputs)."""
        return self._copy("fused")

    def _copy(self, implementation: str) -> "CharLM":
        rnn = self.rnn
        other = CharLM(self.vocab_size, self.cell, self.hidden_size, self.num_layers, rnn.dropout,
                       self.embedding.embedding_dim if self.embedding is not None else 64, self.one_hot,
                       getattr(rnn, "nonlinearity", "tanh"), implementation)
        other.dropout.p = self.dropout.p
        other.load_state_dict(self.state_dict())
        other.train(self.training)
        return other.to(self.head.weight.device, self.head.weight.dtype)


# ---------------------------------------------------------------------------- registry
# vocab_size comes from the text's vocabulary (the language-modelling task sets it).
@register_model(task="language_modeling")
def char_rnn(vocab_size: int, hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.0,
             embedding_dim: int = 64, one_hot: bool = False, nonlinearity: Literal["tanh", "relu"] = "tanh",
             implementation: Implementation = "fused") -> CharLM:
    """Character-level vanilla RNN language model (char-rnn; Karpathy et al. 2015), 2 x 256"""
    return CharLM(vocab_size, "rnn", hidden_size, num_layers, dropout, embedding_dim, one_hot, nonlinearity,
                  implementation)


@register_model(task="language_modeling")
def char_lstm(vocab_size: int, hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.0,
              embedding_dim: int = 64, one_hot: bool = False, implementation: Implementation = "fused") -> CharLM:
    """Character-level LSTM language model (char-rnn; Karpathy et al. 2015), 2 x 256"""
    return CharLM(vocab_size, "lstm", hidden_size, num_layers, dropout, embedding_dim, one_hot,
                  implementation=implementation)


@register_model(task="language_modeling")
def char_gru(vocab_size: int, hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.0,
             embedding_dim: int = 64, one_hot: bool = False, implementation: Implementation = "fused") -> CharLM:
    """Character-level GRU language model (char-rnn; Karpathy et al. 2015), 2 x 256"""
    return CharLM(vocab_size, "gru", hidden_size, num_layers, dropout, embedding_dim, one_hot,
                  implementation=implementation)


@register_model(task="language_modeling")
def char_rnn_tiny(vocab_size: int, hidden_size: int = 32, num_layers: int = 1, one_hot: bool = False,
                  nonlinearity: Literal["tanh", "relu"] = "tanh", implementation: Implementation = "fused") -> CharLM:
    """Character-level vanilla RNN language model, tiny (1 x 32, embedding 16) for tests"""
    return CharLM(vocab_size, "rnn", hidden_size, num_layers, 0.0, 16, one_hot, nonlinearity, implementation)


@register_model(task="language_modeling")
def char_lstm_tiny(vocab_size: int, hidden_size: int = 32, num_layers: int = 1, one_hot: bool = False,
                   implementation: Implementation = "fused") -> CharLM:
    """Character-level LSTM language model, tiny (1 x 32, embedding 16) for tests"""
    return CharLM(vocab_size, "lstm", hidden_size, num_layers, 0.0, 16, one_hot, implementation=implementation)


@register_model(task="language_modeling")
def char_gru_tiny(vocab_size: int, hidden_size: int = 32, num_layers: int = 1, one_hot: bool = False,
                  implementation: Implementation = "fused") -> CharLM:
    """Character-level GRU language model, tiny (1 x 32, embedding 16) for tests"""
    return CharLM(vocab_size, "gru", hidden_size, num_layers, 0.0, 16, one_hot, implementation=implementation)
