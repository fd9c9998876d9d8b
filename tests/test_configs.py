from pathlib import Path

import pytest
import torch

from vidrnn import create_model
from vidrnn.config import load_config
from vidrnn.registry import model_task

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_builds_its_model(path):
    cfg = load_config(path)
    kw = dict(cfg["model"])
    name = kw.pop("name")
    if model_task(name) == "classification":
        kw.update(pretrained=False, num_classes=5)
    with torch.device("meta"):  # checks every model argument without allocating weights
        create_model(name, **kw)
