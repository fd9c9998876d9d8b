"""vidrnn: recurrent and attention-based video models (LRCN, "Beyond Short Snippets" pooling
and deep LSTMs, ConvLSTM/ConvGRU/TrajGRU encoder-forecasters) on PyTorch and Lightning."""

__version__ = "0.1.0"

from vidrnn.registry import create_model, list_models, register_model  # noqa: E402


def load_model(path, **kwargs):
    """Rebuild a trained model from a vidrnn checkpoint; see :func:`vidrnn.inference.checkpoint.load_model`."""
    from vidrnn.inference.checkpoint import load_model as _load

    return _load(path, **kwargs)


__all__ = ["create_model", "list_models", "register_model", "load_model", "__version__"]
