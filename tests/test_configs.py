import pytest
import torch

from vidrnn import create_model
from vidrnn.config import load_config, shipped_configs
from vidrnn.registry import model_task

CONFIGS = sorted(shipped_configs())


@pytest.mark.parametrize("path", CONFIGS)
def test_config_builds_its_model(path):
    cfg = load_config(path)
    kw = dict(cfg["model"])
    name = kw.pop("name")
    if model_task(name) == "classification":
        kw.update(pretrained=False, num_classes=5)
    with torch.device("meta"):  # checks every model argument without allocating weights
        create_model(name, **kw)
