"""The model-task contract: models return everything the task needs in their output, nothing is
left on the module; so two forwards before one backward and torch.compile work, and a checkpoint
restores a model (with its REINFORCE baseline) exactly."""

import pytest
import torch

from vidrnn import create_model
from vidrnn.data.clip_dataset import collate_clips
from vidrnn.data.digits import MovingDigits
from vidrnn.tasks.classification import ClassificationTask

CLASSES = ["right", "left", "down", "up"]
COMPILE_BACKEND = "aot_eager"  # dynamo + AOTAutograd; inductor (the default) passes too but adds ~85 s of C++ codegen


def _batch(split="train", n=4, seed=0):
    d = MovingDigits(split, 16, num_frames=4, seed=seed)
    return collate_clips([d[i] for i in range(n)])


def _grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", ["soft_attention_lstm_tiny", "temporal_attention_lstm_tiny", "lrcn_tiny"])
def test_two_forwards_before_one_backward(name):
    """The loss of two batches summed gives the sum of the two batches' gradients: each output
    carries its own attention penalty (a model keeping `last_attention` would penalise only the
    second batch twice)."""
    torch.manual_seed(0)
    task = ClassificationTask(name, {}, CLASSES)
    a, b = _batch(seed=0), _batch(seed=1)
    separate = []
    for batch in (a, b):
        task.zero_grad()
        task.training_loss(batch)[0].backward()
        separate.append(_grads(task))
    task.zero_grad()
    (task.training_loss(a)[0] + task.training_loss(b)[0]).backward()
    together = _grads(task)
    assert together.keys() == separate[0].keys()
    for k in together:
        torch.testing.assert_close(together[k], separate[0][k] + separate[1][k], rtol=1e-4, atol=1e-6)


def test_hard_attention_outputs_are_self_contained():
    torch.manual_seed(0)
    m = create_model("hard_attention_lstm_tiny", num_classes=4, soft_prob=0.0).train()
    x1, x2 = torch.rand(2, 4, 3, 32, 32), torch.rand(3, 4, 3, 32, 32)
    o1, o2 = m(x1), m(x2)
    assert o1.policy.log_prob.shape == (2,) and o2.policy.log_prob.shape == (3,)
    assert o1.attention.shape == (2, 4, 16) and o2.attention.shape == (3, 4, 16)
    loss = o1.policy.surrogate(torch.zeros(2)) + o2.policy.surrogate(torch.ones(3))
    loss.backward()
    assert m.loc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["soft_attention_lstm_tiny", "hard_attention_lstm_tiny"])
def test_compiled_training_step_matches_eager(name):
    """torch.compile takes the attention model's whole training loss (forward, penalty, REINFORCE
    with its baseline update) and gives the eager loss and gradients."""
    torch.manual_seed(0)
    task = ClassificationTask(name, {"soft_prob": 1.0} if name.startswith("hard") else {}, CLASSES)
    batch = _batch()
    state = {k: v.clone() for k, v in task.state_dict().items()}

    def step(b):
        loss, logs, out, _ = task.training_loss(b)
        return loss, logs["attention_penalty"]

    task.zero_grad()
    eager_loss, eager_pen = step(batch)
    eager_loss.backward()
    eager = _grads(task)
    task.load_state_dict(state)  # the baseline update of the eager step undone
    task.zero_grad()
    compiled = torch.compile(step, backend=COMPILE_BACKEND)
    loss, pen = compiled(batch)
    loss.backward()
    torch.testing.assert_close(loss, eager_loss)
    torch.testing.assert_close(pen, eager_pen)
    got = _grads(task)
    assert got.keys() == eager.keys()
    for k in got:
        torch.testing.assert_close(got[k], eager[k], rtol=1e-4, atol=1e-6)
    if name.startswith("hard"):
        assert bool(task.model.reward_baseline.started)  # the compiled step updated the baseline buffers


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    """A trained task saved through the atomic CheckpointIO and loaded back (plain model without
    Lightning, and the task) gives the same outputs; the reward baseline comes back too."""
    import lightning as L

    from vidrnn.inference.checkpoint import load_model, load_task
    from vidrnn.runner import AtomicCheckpointIO

    torch.manual_seed(0)
    task = ClassificationTask("hard_attention_lstm_tiny", {}, CLASSES, data={"source": "digits"})
    d = MovingDigits("train", 16, num_frames=4)
    loader = torch.utils.data.DataLoader(d, batch_size=8, collate_fn=collate_clips)
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", plugins=[AtomicCheckpointIO()])
    trainer.fit(task, loader)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]  # no temporary file left
    task.eval()
    video = _batch("test")["video"]
    with torch.no_grad():
        expected = task.model(video)
        model = load_model(path)
        got = model(video)
        again = load_task(path).model(video)
    assert not model.training and model.vidrnn.class_names == CLASSES and model.vidrnn.name == "hard_attention_lstm_tiny"
    assert torch.equal(got.logits, expected.logits) and torch.equal(got.attention, expected.attention)
    assert torch.equal(again.logits, expected.logits)
    assert float(model.reward_baseline.value) == float(task.model.reward_baseline.value)
    assert bool(model.reward_baseline.started)


def test_interrupted_checkpoint_write_keeps_the_old_file(tmp_path, monkeypatch):
    from vidrnn.runner import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1}, path)

    def broken_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_load_model_needs_no_lightning(tmp_path):
    """vidrnn.load_model gives the nn.Module with its metadata without importing Lightning."""
    import subprocess
    import sys

    import lightning as L

    from vidrnn.runner import AtomicCheckpointIO

    task = ClassificationTask("lrcn_tiny", {}, CLASSES, data={"source": "digits", "transform": {"size": 32}})
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", plugins=[AtomicCheckpointIO()])
    trainer.strategy.connect(task)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    code = ("import sys, vidrnn; m = vidrnn.load_model(sys.argv[1]); "
            "assert m.vidrnn.class_names == ['right', 'left', 'down', 'up'] and m.vidrnn.data['transform'] == {'size': 32}; "
            "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('lightning', 'pytorch_lightning')); "
            "assert not bad, bad[:5]; print(type(m).__name__)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.ckpt")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "LRCN"
