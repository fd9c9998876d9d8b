"""vidrnn: recurrent and attention-based video models (LRCN, "Beyond Short Snippets" pooling
and deep LSTMs, attention LSTMs, ConvLSTM/ConvGRU/TrajGRU encoder-forecasters) on PyTorch and
Lightning.

``create_model(name, **kwargs)`` builds a registered model (``list_models("lrcn*")``);
``load_model(checkpoint)`` rebuilds a trained one, with its class names and input settings,
without Lightning.
"""

__version__ = "0.2.0"

import vidrnn.models  # noqa: E402,F401  (registers the builders)
from vidrnn.registry import create_model, list_models, register_model  # noqa: E402


def load_model(path, **kwargs):
    """The trained ``nn.Module`` of a vidrnn checkpoint, with its metadata in ``model.vidrnn``;
    see :func:`vidrnn.inference.checkpoint.load_model`."""
    from vidrnn.inference.checkpoint import load_model as _load

    return _load(path, **kwargs)


__all__ = ["create_model", "list_models", "register_model", "load_model", "__version__"]
