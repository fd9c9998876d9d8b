"""Models actually learn: short, seeded CPU runs through the in-process CLI reach measured bounds.

Every bound below was measured (torch 2.14 CPU, 2 cores) and is stated with its margin. The runs
are deterministic for a given seed on one machine; the other seeds listed show the spread.
"""

import json

import torch
import yaml

from vidrnn.cli import main

CPU = ["trainer.accelerator=cpu", "data.num_workers=0", "seed=0"]

# Moving Digits (the embedded default data; the class is the direction of motion): 8 epochs of
# 1024 clips, batch 8 (1024 steps), 64 validation and 400 test clips. About 10 s a run.
DIGITS = [*CPU, "trainer.max_epochs=8", "data.batch_size=8", "data.digits.num_train=1024",
          "data.digits.num_val=64", "data.digits.num_test=400"]


def _fit(run, *args) -> dict:
    assert main(["fit", "--run-dir", str(run), *args]) == 0
    return json.loads((run / "summary.json").read_text())


def test_lrcn_learns_the_direction_of_motion(tmp_path):
    # Measured test top-1 with these settings, seeds 0-4: 0.975, 0.965, 0.975, 0.9625, 0.9725
    # (seed 0 is the one run here). With 6 epochs seed 0 only reached 0.9025, so 8 it is.
    summary = _fit(tmp_path / "lrcn", "model.name=lrcn_tiny", *DIGITS)
    assert summary["metrics"]["test/top1"] >= 0.9


def test_order_blind_average_pooling_does_not(tmp_path):
    # Same data and budget as above. Measured test top-1, seeds 0-4: 0.285, 0.2825, 0.3075, 0.29,
    # 0.305 -- about the 4-class chance level, below the ~0.5 that a single frame could reach in
    # principle (horizontal vs vertical); either way far from the 0.9 of the recurrent model.
    summary = _fit(tmp_path / "avg", "model.name=avg_pooling_tiny", *DIGITS)
    assert summary["metrics"]["test/top1"] <= 0.65


def test_convlstm_beats_blank_and_persistence_on_moving_mnist(tmp_path, shared_data):
    from vidrnn.data.forecast_datamodule import ForecastDataModule
    from vidrnn.metrics.forecasting import frame_mse

    # 3 input -> 3 forecast frames of real MNIST digits, 8 epochs of 512 fresh sequences, batch 8
    # (512 steps), lr 0.01; 128 test sequences. About 10 s.
    run = tmp_path / "mm"
    summary = _fit(run, "-c", "convlstm_movingmnist", "model={name: convlstm_tiny}", *CPU, "trainer.max_epochs=8",
                   "data.batch_size=8", "data.num_input=3", "data.num_output=3",
                   f"data.moving_mnist.root={shared_data / 'mnist'}", "data.moving_mnist.num_train=512",
                   "data.moving_mnist.num_val=16", "data.moving_mnist.num_test=128", "optimizer.lr=0.01",
                   "forecasting.ssim=false")
    model_mse = summary["metrics"]["test/mse"]

    # the baselines on the very same test sequences (the run's resolved data section)
    data = yaml.safe_load((run / "config.yaml").read_text())["data"]
    test = ForecastDataModule(data).splits["test"]
    inputs = torch.stack([test[i]["input"] for i in range(len(test))])  # (N, 3, 1, 64, 64)
    target = torch.stack([test[i]["target"] for i in range(len(test))])  # (N, 3, 1, 64, 64)
    blank = frame_mse(torch.zeros_like(target), target).item()
    persistence = frame_mse(inputs[:, -1:].expand_as(target), target).item()
    mean_frame = frame_mse(torch.full_like(target, target.mean().item()), target).item()

    # Measured: blank 182.37, persistence 247.24, and 171.58 for predicting the mean intensity
    # everywhere (an input-blind constant). The model, seeds 0-6: 143.50, 133.02, 140.12,
    # 171.66, 133.82, 171.67, 143.16 (seed 0 is the one run here). Seeds 3 and 5 collapse in
    # the first epoch to exactly that constant (saturated ConvLSTM states, no dependence on the
    # input) -- which still "beats" blank by 6 % -- so the bound, 0.85 x the better baseline
    # (155.0), is set to fail a collapsed model, and passes seed 0 with 7 % to spare.
    assert persistence > blank > mean_frame  # two digits over 3 frames: blank is the stronger baseline
    assert model_mse < 0.85 * min(blank, persistence)
    assert model_mse < mean_frame
