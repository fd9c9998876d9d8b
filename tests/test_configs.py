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


# ------------------------------------------------------------------------------------------ bad input
TYPOS = [
    (["model.hidden_sz=3"], "model.hidden_sz: unknown key; did you mean model.hidden_size?"),
    (["data.batchsize=4"], "data.batchsize: unknown key; did you mean data.batch_size?"),
    (["-c", "nosuchconfig"], "config 'nosuchconfig' not found"),
    (["model.name=lrnc_tiny"], "model.name: unknown model 'lrnc_tiny'; did you mean lrcn_tiny"),
    (["trainer.max_epochs=ten"], "trainer.max_epochs: expected an int or null, got 'ten' (a string)"),
    (["data.digits.num_trian=3"], "data.digits.num_trian: unknown key; did you mean data.digits.num_train"),
    (["trainer.precision=bf17"], "trainer.precision: expected one of"),
    (["model.cell=gru"], "model.cell: expected one of 'lstm', 'peephole', got 'gru'"),
    (["model.encoder={name: tiny, chanels: [8]}"], "model.encoder.chanels: unknown key; did you mean model.encoder.channels?"),
    (["data.sampler.num_segments=3"], "data.sampler.num_segments: unknown key"),
    (["data.sampler.name=segment"], "data.sampler.name: expected one of dense, fps, segments, uniform"),
    (["optimizer.lr=fast"], "optimizer.lr: expected a number, got 'fast'"),
    (["optimizer.name=adam"], "optimizer.name: expected one of 'adamw', 'sgd', 'rmsprop'"),
    (["trainer.logger=false"], "trainer.logger: set by vidrnn"),
    (["model.num_classes=3"], "model.num_classes: set from the data's classes"),
    (["forecasting.loss=mse"], "forecasting: settings for forecasting models, but 'lrcn_tiny' is a classification"),
    (["seeed=1"], "seeed: unknown key; did you mean seed?"),
    (["data.distractors.size=3"], "data.distractors: settings of data.source=distractors, but data.source is 'digits'"),
    (["-c", "convlstm_movingmnist", "data.source=digits"], "data.source: expected one of 'moving_mnist', 'radar'"),
    (["-c", "convlstm_movingmnist", "model.num_output=3"], "model.num_output: set data.num_output instead"),
    (["-c", "lrcn_asl", "data.root=/nonexistent/videos"], "video folder not found: /nonexistent/videos"),
    (["trainer.accelerator=cpu", "trainer.devices=0"], "trainer: `Trainer(devices=0)`"),  # fails after the run dir is made
]


@pytest.mark.parametrize("args, message", TYPOS, ids=[" ".join(a) for a, _ in TYPOS])
def test_bad_config_is_one_line_and_leaves_no_run_directory(args, message, tmp_path, monkeypatch, capsys):
    from vidrnn.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["fit", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vidrnn fit: error: "), err
    assert message in err, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no runs/ directory, nothing else written


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    from vidrnn.cli import main
    from vidrnn.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="hidden_sz"):
        main(["--debug", "fit", "model.hidden_sz=3"])


def test_resolved_config_fills_every_section_from_one_place():
    from vidrnn.data.datamodule import VideoDataSettings
    from vidrnn.schema import section_defaults
    from vidrnn.tasks.optim import OptimizerSettings

    cfg = load_config()
    assert list(cfg) == ["seed", "model", "data", "optimizer", "trainer", "run", "classification"]
    assert cfg["model"] == {"name": "lrcn_tiny"}  # the builder's signature keeps the model's defaults
    assert cfg["optimizer"] == section_defaults(OptimizerSettings)
    defaults = section_defaults(VideoDataSettings)
    assert cfg["data"]["batch_size"] == defaults["batch_size"] and cfg["data"]["digits"]["num_train"] == 2000
    assert "distractors" not in cfg["data"]  # only the chosen source's section
    assert cfg["trainer"]["max_epochs"] == 4 and cfg["classification"] == {"label_smoothing": 0.0}
    # a sampler given without a name updates the default one; with a name it replaces it
    assert load_config(None, ["data.sampler.num_frames=4"])["data"]["sampler"] == {"name": "uniform", "num_frames": 4}
    seg = load_config(None, ["data.sampler={name: segments, num_segments: 3}"])["data"]["sampler"]
    assert seg == {"name": "segments", "num_segments": 3, "test_views": 1}
    # forecasting models get the forecasting data schema and task section
    fc = load_config(None, ["model.name=convlstm_tiny"])
    assert fc["data"]["source"] == "moving_mnist" and fc["forecasting"]["loss"] == "bce" and "classification" not in fc
    # the resolved config is a fixed point (a run's config.yaml reloads to itself)
    from vidrnn.config import resolve_config

    assert resolve_config(fc) == fc and resolve_config(cfg) == cfg


def test_shipped_config_by_name_and_the_configs_command(capsys):
    from vidrnn.cli import main

    cfg = load_config("lrcn_asl")
    assert cfg["run"]["name"] == "lrcn_asl" and cfg["model"]["name"] == "lrcn"
    assert main(["configs"]) == 0
    out = capsys.readouterr().out.splitlines()
    listed = {line.split()[0] for line in out if line and not line.startswith("run one")}
    assert listed == set(CONFIGS)
    assert all(len(line.split(None, 1)) == 2 for line in out[:len(CONFIGS)])  # name and a one-line summary
