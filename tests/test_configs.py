import inspect

import pytest
import torch

from vidrnn import create_model
from vidrnn.config import load_config, shipped_configs
from vidrnn.registry import get_model_builder, model_task

CONFIGS = sorted(shipped_configs())


@pytest.mark.parametrize("path", CONFIGS)
def test_config_builds_its_model(path):
    cfg = load_config(path)
    kw = dict(cfg["model"])
    name = kw.pop("name")
    if model_task(name) == "classification":
        kw.update(num_classes=5)
        if "pretrained" in inspect.signature(get_model_builder(name)).parameters:  # 3D CNNs take weights=PATH
            kw.update(pretrained=False)
    if model_task(name) == "language_modeling":
        kw.update(vocab_size=65)
    if model_task(name) == "captioning":
        kw.update(pretrained=False, vocab_size=40)
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
    (["model.encoder={name: tiny, chanels: [8]}"], "model.encoder.chanels: unknown key; did you mean model.encoder.channels"),
    (["data.sampler.num_segments=3"], "data.sampler.num_segments: unknown key"),
    (["data.sampler.name=segment"], "data.sampler.name: expected one of dense, fps, segments, uniform"),
    (["optimizer.lr=fast"], "optimizer.lr: expected a number, got 'fast'"),
    (["optimizer.name=adam"], "optimizer.name: expected one of 'adamw', 'sgd', 'rmsprop'"),
    (["trainer.logger=false"], "trainer.logger: set by vidrnn"),
    (["model.num_classes=3"], "model.num_classes: set from the data's classes"),
    (["forecasting.loss=mse"], "forecasting: settings for forecasting models, but 'lrcn_tiny' is a classification"),
    (["seeed=1"], "seeed: unknown key; did you mean seed?"),
    (["label_smoothing=0.1"], "label_smoothing: moved to classification.label_smoothing"),
    (["data.distractors.size=3"], "data.distractors: settings of data.source=distractors, but data.source is 'digits'"),
    (["-c", "convlstm_movingmnist", "data.source=digits"], "data.source: expected one of 'moving_mnist', 'radar'"),
    (["-c", "convlstm_movingmnist", "model.num_output=3"], "model.num_output: set data.num_output instead"),
    (["-c", "lrcn_asl", "data.root=/nonexistent/videos"], "video folder not found: /nonexistent/videos"),
    (["trainer.accelerator=cpu", "trainer.devices=0"], "trainer: `Trainer(devices=0)`"),  # fails after the run dir is made
    (["-c", "char_lstm_shakespeare", "data.seq_length=50"], "data.seq_length: unknown key; did you mean data.seq_len?"),
    (["-c", "char_lstm_shakespeare", "model.vocab_size=50"], "model.vocab_size: set from the text's vocabulary"),
    (["-c", "char_lstm_shakespeare", "language_modeling.clip=l2"],
     "language_modeling.clip: expected one of 'norm', 'value', 'none', got 'l2'"),
    (["-c", "char_lstm_shakespeare", "trainer.devices=2"], "trainer.devices: language models train on one device"),
    (["-c", "char_lstm_shakespeare", "language_modeling.clip_value=-1"],
     "language_modeling.clip_value: expected a finite number > 0, got -1.0"),
    (["-c", "char_lstm_shakespeare", "classification.label_smoothing=0.1"],
     "classification: settings for classification models, but 'char_lstm' is a language_modeling model"),
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
    assert cfg["trainer"]["max_epochs"] == 4 and cfg["classification"] == {"label_smoothing": 0.0, "channels_last": False,
                                                                              "cache_encoder": False}
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


def test_nested_run_dir_is_removed_whole_when_the_run_fails_before_training(tmp_path, capsys):
    from vidrnn.cli import main

    assert main(["fit", "--run-dir", str(tmp_path / "a" / "b" / "run"), "trainer.accelerator=cpu",
                 "trainer.devices=0"]) == 2
    assert list(tmp_path.iterdir()) == []
    empty = tmp_path / "mine"
    empty.mkdir()  # the user's own empty directory is kept (and left empty)
    assert main(["fit", "--run-dir", str(empty), "trainer.accelerator=cpu", "trainer.devices=0"]) == 2
    assert empty.is_dir() and list(empty.iterdir()) == []


def test_exponent_floats_are_numbers_in_files_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optimizer: {lr: 1e-3, weight_decay: 5E-5}\n")
    cfg = load_config(f, ["data.crop_fraction=8e-1"])
    assert cfg["optimizer"]["lr"] == 0.001 and cfg["optimizer"]["weight_decay"] == 5e-5
    assert cfg["data"]["crop_fraction"] == 0.8
    assert load_config(None, ["run.name=1e3x"])["run"]["name"] == "1e3x"  # not every string with an e


def test_configs_saved_by_earlier_versions_and_other_sources_still_load():
    from vidrnn.config import upgrade_saved_config

    # what vidrnn 0.1 saved for a classifier: every task's section, top-level label_smoothing, the
    # settings of every embedded source
    old = {"seed": 0, "model": {"name": "lrcn_tiny"}, "label_smoothing": 0.1,
           "forecasting": {"loss": "bce", "scheduled_sampling": None, "ssim": True},
           "data": {"source": "digits", "digits": {"num_train": 48}, "distractors": {"num_train": 4000},
                    "multilabel_digits": {"num_train": 4000}, "batch_size": 8},
           "optimizer": {"name": "adamw"}, "trainer": {"max_epochs": 1}, "run": {"root": "runs", "name": None}}
    cfg = load_config(None, [], saved=old)
    assert cfg["classification"]["label_smoothing"] == 0.1 and "forecasting" not in cfg
    assert cfg["data"]["digits"]["num_train"] == 48 and "distractors" not in cfg["data"]
    # evaluating a digits checkpoint on real videos: the saved digits section gives way
    moved = load_config(None, ["data.source=folder", "data.root=/videos"], saved=cfg)
    assert moved["data"]["source"] == "folder" and "digits" not in moved["data"]
    # ...but a user's own setting for another source is still an error
    with pytest.raises(ValueError, match="data.digits: settings of data.source=digits"):
        load_config(None, ["data.source=folder", "data.digits.num_train=3"], saved=cfg)
    assert upgrade_saved_config(cfg) == cfg  # a current config is left as it is


def test_model_compile_is_checked_and_compiles_the_model_in_place():
    from vidrnn.errors import ConfigError
    from vidrnn.runner import build_datamodule, build_task

    cfg = load_config(None, ["model.compile=true", "data.digits.num_train=4", "data.digits.num_val=2",
                             "data.digits.num_test=2"])
    assert cfg["model"]["compile"] is True
    task = build_task(cfg, build_datamodule(cfg))
    assert task.model._compiled_call_impl is not None  # torch.compile'd __call__, compiled lazily on first use
    assert all(not k.startswith("model._orig_mod") for k in task.state_dict())  # checkpoints keep their keys
    assert "compile" not in task.hparams["model_kwargs"]
    with pytest.raises(ConfigError, match="model.compile"):
        load_config(None, ["model.compile=fast"])
