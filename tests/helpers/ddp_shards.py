"""Run by tests/test_cli.py: 2 DDP processes (gloo) train vidrnn's task on vidrnn's data module for
one epoch and test it; every process records the dataset indices it was given, and rank 0 writes
them all (gathered over the processes) to the JSON file named on the command line."""

import json
import sys

import lightning as L
import torch

from vidrnn.config import load_config
from vidrnn.runner import build_datamodule, build_task


class Record(L.Callback):
    def __init__(self):
        self.seen = {"train": [], "test": []}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.seen["train"] += batch["index"].tolist()

    def on_test_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        self.seen["test"] += batch["index"].tolist()


def main(out: str) -> None:
    cfg = load_config(None, ["data.num_workers=0", "data.batch_size=8", "data.digits.num_train=48",
                             "data.digits.num_val=16", "data.digits.num_test=30"])
    dm = build_datamodule(cfg)
    task = build_task(cfg, dm)
    rec = Record()
    trainer = L.Trainer(strategy="ddp", devices=2, accelerator="cpu", max_epochs=1, callbacks=[rec], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(task, datamodule=dm)
    trainer.test(task, datamodule=dm, verbose=False)
    gathered = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, rec.seen)
    if trainer.global_rank == 0:
        with open(out, "w") as f:
            json.dump(gathered, f)


if __name__ == "__main__":
    main(sys.argv[1])
