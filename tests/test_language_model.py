"""Character-level language models: the model's two paths, the stateful stream layout, truncated
BPTT, clipping, sampling, the text properties and the commands (fit/test/sample/units/gradients)
on the real texts in ../shared/data/text."""

import io
import json
import math
import tokenize

import numpy as np
import pytest
import torch

from vidrnn import create_model, list_models
from vidrnn.cli import main
from vidrnn.data.text import StreamChunks, TextDataModule, Vocabulary, split_by_position, unigram_entropy
from vidrnn.data.text_properties import bracket_depth, column_position, indent_depth, python_string_mask
from vidrnn.inference.checkpoint import load_model
from vidrnn.inference.generate import sample_text
from vidrnn.inference.gradient_flow import gradient_flow
from vidrnn.inference.units import correlate_units
from vidrnn.tasks.language_model import LanguageModelTask, clip_gradients, detach_state

CELLS = ("rnn", "lstm", "gru")


@pytest.fixture(scope="module")
def shakespeare(shared_data):
    return shared_data / "text" / "tinyshakespeare.txt"


@pytest.fixture(scope="module")
def python_text(shared_data):
    return shared_data / "text" / "python_stdlib.txt"


# ---------------------------------------------------------------------------- models
def test_every_cell_has_a_model_and_a_tiny_variant():
    names = list_models(task="language_modeling")
    for cell in CELLS:
        assert f"char_{cell}" in names and f"char_{cell}_tiny" in names


@pytest.mark.parametrize("cell", CELLS)
def test_fused_and_equation_paths_give_the_same_outputs(cell):
    """The fused torch kernels and the readable cells: same weights, same logits and states (float64)."""
    torch.manual_seed(0)
    fused = create_model(f"char_{cell}", vocab_size=11, hidden_size=16, num_layers=3, embedding_dim=8).double().eval()
    eq = fused.with_equations()
    assert eq.implementation == "equations" and type(eq.rnn) is not type(fused.rnn)
    x = torch.randint(0, 11, (3, 9))
    la, sa = fused(x)
    lb, sb = eq(x)
    assert (la - lb).abs().max().item() <= 1e-6
    la2, _ = fused(x, sa)  # continuing from a carried state
    lb2, _ = eq(x, sb)
    assert (la2 - lb2).abs().max().item() <= 1e-6
    assert (eq.with_fused()(x)[0] - la).abs().max().item() <= 1e-6


def test_one_hot_input_and_shapes():
    m = create_model("char_gru_tiny", vocab_size=7, one_hot=True)
    logits, h = m(torch.randint(0, 7, (2, 5)))
    assert logits.shape == (2, 5, 7) and h.shape == (1, 2, 32)
    assert m.embedding is None


def test_bad_model_arguments_name_what_was_expected():
    with pytest.raises(ValueError, match="num_layers must be 1, 2 or 3"):
        create_model("char_lstm", vocab_size=5, num_layers=4)
    with pytest.raises(ValueError, match="steps\\(\\) reads every time step"):
        create_model("char_lstm_tiny", vocab_size=5).steps(torch.zeros(1, 2, dtype=torch.long))


# ---------------------------------------------------------------------------- data
def test_streams_continue_from_one_batch_to_the_next():
    ids = torch.arange(1000)
    ds = StreamChunks(ids, batch_size=3, seq_len=7)
    n = (1000 - 1) // 3
    assert len(ds) == n // 7
    for k in range(len(ds) - 1):
        a, b = ds[k], ds[k + 1]
        assert torch.equal(b["input"][:, 0], a["input"][:, -1] + 1)  # stream b of batch k+1 continues stream b of k
        assert torch.equal(a["target"], a["input"] + 1)  # targets: the next character
    assert torch.equal(ds[0]["input"][:, 0], torch.tensor([0, n, 2 * n]))  # B equal consecutive pieces
    eval_ds = StreamChunks(ids, batch_size=3, seq_len=7, drop_last=False)
    assert sum(eval_ds[k]["input"].numel() for k in range(len(eval_ds))) == 3 * n == eval_ds.num_characters


def test_split_by_position_and_vocabulary(shakespeare, tmp_path):
    s = split_by_position(1000, 0.05, 0.05)
    assert (s["train"], s["val"], s["test"]) == (slice(0, 900), slice(900, 950), slice(950, 1000))
    dm = TextDataModule({"path": str(shakespeare)})
    assert len(dm.vocab) == 65 and sum(len(v) for v in dm.ids.values()) == 1_115_394
    assert dm.vocab.decode(dm.ids["train"][:14]) == "First Citizen:"
    text = shakespeare.read_text()
    assert dm.vocab.decode(dm.ids["test"]) == text[-len(dm.ids["test"]):]  # the last 5%, in order


def test_bad_text_files_are_named(tmp_path):
    from vidrnn.errors import DataError

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.txt: empty text file"):
        TextDataModule({"path": str(empty)})
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café au lait\n".encode("latin-1"))
    with pytest.raises(DataError, match="latin1.txt: not UTF-8 text \\(byte 0xe9 at offset 3"):
        TextDataModule({"path": str(latin)})
    with pytest.raises(FileNotFoundError, match="text file not found"):
        TextDataModule({"path": str(tmp_path / "nope.txt")})
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij" * 5)
    with pytest.raises(DataError, match="the train split"):
        TextDataModule({"path": str(short), "batch_size": 8, "seq_len": 16})


# ---------------------------------------------------------------------------- truncated BPTT
def _task(cell="lstm", **kw):
    torch.manual_seed(0)
    vocab = [chr(ord("a") + i) for i in range(9)]
    return LanguageModelTask(f"char_{cell}_tiny", {"num_layers": 2}, vocab, **kw).double()


def test_state_values_cross_the_chunk_edge_and_gradients_do_not():
    task = _task()
    x = torch.randint(0, 9, (2, 12))
    first, second = x[:, :6], x[:, 6:]
    # values: chunk 2 from the carried state equals the second half of one pass over both chunks
    task.chunk_loss({"input": first, "target": first})
    carried = task._train_state
    assert all(not t.requires_grad for t in carried[0:2])
    logits2, _ = task.model(second, carried)
    full, _ = task.model(x)
    torch.testing.assert_close(logits2, full[:, 6:])
    # gradients: the loss of chunk 2 gives the same gradients as chunk 2 alone from a constant state ...
    task.model.zero_grad()
    loss = task.chunk_loss({"input": second, "target": second})
    loss.backward()
    truncated = [p.grad.clone() for p in task.model.parameters()]
    task.model.zero_grad()
    const = tuple(t.clone() for t in carried)
    logits, _ = task.model(second, const)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), second.flatten()).backward()
    for a, p in zip(truncated, task.model.parameters()):
        torch.testing.assert_close(a, p.grad)
    # ... and not those of full backpropagation through both chunks (which the edge would leak)
    task.model.zero_grad()
    logits, _ = task.model(x)
    torch.nn.functional.cross_entropy(logits[:, 6:].flatten(0, 1), second.flatten()).backward()
    assert any(not torch.allclose(a, p.grad) for a, p in zip(truncated, task.model.parameters()))


class _Streams:
    """A minimal data module: a text of 9 characters as StreamChunks (B=2, T=5)."""

    def __init__(self, n_train=2 * 5 * 3 + 1, n_val=2 * 5 * 2 + 1):
        g = torch.Generator().manual_seed(0)
        self.train = StreamChunks(torch.randint(0, 9, (n_train,), generator=g), 2, 5)
        self.val = StreamChunks(torch.randint(0, 9, (n_val,), generator=g), 2, 5, drop_last=False)


def test_training_loop_carries_the_state_resets_it_each_epoch_and_keeps_validation_apart():
    """Through Lightning (manual optimisation): the first chunk of every epoch starts from zeros,
    every other training chunk from the previous training chunk's final state (detached), and
    validation runs from its own zero state without disturbing the training streams."""
    import lightning as L
    from torch.utils.data import DataLoader

    task = _task().float()
    calls = []

    def spy(module, args, kwargs, output):
        state_in = args[1] if len(args) > 1 else kwargs.get("state")
        calls.append((module.training, state_in, output[1]))

    task.model.register_forward_hook(spy, with_kwargs=True)
    data = _Streams()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        log_every_n_steps=1)
    trainer.fit(task, DataLoader(data.train, batch_size=None), DataLoader(data.val, batch_size=None))
    train_calls = [c for c in calls if c[0]]
    val_calls = [c for c in calls if not c[0]]
    assert len(train_calls) == 2 * len(data.train) and len(val_calls) == 2 * len(data.val)
    per_epoch = len(data.train)
    for epoch in range(2):
        chunk = train_calls[epoch * per_epoch: (epoch + 1) * per_epoch]
        assert chunk[0][1] is None  # a new epoch starts the streams again
        for prev, cur in zip(chunk, chunk[1:]):
            for a, b in zip(prev[2], cur[1]):
                assert torch.equal(a, b) and not b.requires_grad  # the values carry, detached
    assert val_calls[0][1] is None and val_calls[len(data.val)][1] is None  # validation: its own zero state
    assert trainer.global_step == 2 * per_epoch  # one optimiser step per chunk
    assert {"train/grad_norm", "train/clipped", "val/loss", "val/bpc", "val/ppl"} <= set(trainer.logged_metrics)


def test_detach_state_keeps_structure():
    h = torch.ones(1, 2, 3, requires_grad=True) * 2
    assert detach_state(None) is None
    out = detach_state((h, h))
    assert isinstance(out, tuple) and not out[0].requires_grad and torch.equal(out[1], h.detach())


def test_gradient_clipping_by_norm_and_by_value():
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, -4.0, 0.0, 0.0])
    norm, clipped = clip_gradients([p], "norm", 1.0)
    assert norm == pytest.approx(5.0) and clipped and p.grad.norm().item() == pytest.approx(1.0, rel=1e-5)
    p.grad = torch.tensor([3.0, -7.0, 0.5, 0.0])
    norm, clipped = clip_gradients([p], "value", 5.0)
    assert norm == pytest.approx(math.sqrt(9 + 49 + 0.25)) and clipped
    assert p.grad.tolist() == [3.0, -5.0, 0.5, 0.0]
    p.grad = torch.tensor([0.1, 0.1, 0.0, 0.0])
    assert clip_gradients([p], "norm", 5.0)[1] is False and p.grad.tolist()[:2] == pytest.approx([0.1, 0.1])


# ---------------------------------------------------------------------------- sampling
def test_sampling_is_deterministic_with_a_seed_and_temperature_to_zero_is_greedy():
    torch.manual_seed(0)
    vocab = Vocabulary("abcdefgh \n")
    m = create_model("char_lstm_tiny", vocab_size=len(vocab))
    a = sample_text(m, vocab, "abc", 80, temperature=1.0, seed=3)
    assert a == sample_text(m, vocab, "abc", 80, temperature=1.0, seed=3)
    assert a != sample_text(m, vocab, "abc", 80, temperature=1.0, seed=4)
    assert a.startswith("abc") and len(a) == 83
    greedy = sample_text(m, vocab, "abc", 80, temperature=0.0)
    assert sample_text(m, vocab, "abc", 80, temperature=1e-6, seed=5) == greedy
    top1 = sample_text(m, vocab, "abc", 80, temperature=1.0, top_k=1, seed=6)
    assert top1 == greedy
    assert sample_text(m, vocab, "abc", 20, temperature=1e-45, seed=7) == greedy[:23]  # no overflow to NaN
    for bad in (float("nan"), -1.0):
        with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
            sample_text(m, vocab, "abc", 5, temperature=bad)


# ---------------------------------------------------------------------------- text properties
def test_string_mask_agrees_with_pythons_tokenizer(python_text):
    """On real stdlib source, the in-string property marks exactly the characters of the STRING
    tokens of Python's own tokenizer (f-strings included)."""
    text = python_text.read_text()[:60000]
    text = text[: text.rfind("\n# =====")]  # whole modules only
    mask = python_string_mask(text)
    expected = np.zeros(len(text), np.float32)
    line_starts = np.cumsum([0] + [len(line) for line in text.splitlines(keepends=True)])
    fstring_start = None
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        name = tokenize.tok_name[tok.type]
        a = line_starts[tok.start[0] - 1] + tok.start[1]
        b = line_starts[tok.end[0] - 1] + tok.end[1]
        if name == "STRING":
            expected[a:b] = 1
        elif name == "FSTRING_START":
            fstring_start = a
        elif name == "FSTRING_END":
            expected[fstring_start:b] = 1
    assert expected.sum() > 1000
    assert np.array_equal(mask, expected), f"{int((mask != expected).sum())} characters differ"


def test_depth_column_and_indent():
    text = "def f(a, b=[1, (2)]):  # (\n    return {'k': ')'}\n"
    d = bracket_depth(text)
    assert d[text.index("a")] == 1 and d[text.index("2")] == 3 and d[text.index(":")] == 0
    assert d[text.index("#") + 3] == 0  # a bracket in a comment does not count
    assert d[text.index("'k'") + 6] == 1  # nor one in a string
    assert column_position(text)[text.index("return")] == 4
    assert indent_depth(text)[text.index("return")] == 1 and indent_depth(text)[0] == 0


def test_quotation_mask():
    from vidrnn.data.text_properties import quotation_mask

    text = 'He said "go now" and “stay”.\n\nA "dangling quote\n\nnext'
    m = quotation_mask(text)
    inside = "".join(ch for ch, v in zip(text, m) if v)
    assert inside == '"go now"“stay”"dangling quote\n'  # marks included; reset at a blank line


def test_correlation_of_units():
    rng = np.random.default_rng(0)
    prop = rng.random(500)
    acts = np.stack([prop * 3 + 1, -prop, rng.random(500), np.ones(500)], 1)
    r = correlate_units(acts, prop)
    assert r[0] == pytest.approx(1.0) and r[1] == pytest.approx(-1.0) and abs(r[2]) < 0.2 and np.isnan(r[3])


# ---------------------------------------------------------------------------- gradient flow
def test_vanilla_rnn_gradient_vanishes_below_and_grows_above_sigma_one():
    """The powers of W_hh^T: with σ_max(W_hh) = 0.5 the gradient 40 steps back is orders of
    magnitude smaller than with σ_max = 3 (linear units: ReLU, so nothing saturates)."""
    torch.manual_seed(0)
    m = create_model("char_rnn_tiny", vocab_size=20, nonlinearity="relu")
    ids = torch.randint(0, 20, (400,))
    small = gradient_flow(m, ids, length=40, windows=8, warmup=20, sigma=0.5)
    large = gradient_flow(m, ids, length=40, windows=8, warmup=20, sigma=3.0)
    assert small["sigma_max"]["rnn.weight_hh_l0"] == pytest.approx(0.5)
    assert small["h"][1][-1] / small["h"][1][0] < 1e-8
    assert large["h"][1][-1] / large["h"][1][0] > 1e3


# ---------------------------------------------------------------------------- commands on real text
@pytest.fixture(scope="module")
def lm_run(tmp_path_factory, shakespeare):
    run = tmp_path_factory.mktemp("runs") / "lm"
    args = ["fit", "-c", "char_lstm_shakespeare", "--run-dir", str(run), "model={name: char_lstm_tiny, num_layers: 2}",
            f"data.path={shakespeare}", "data.max_chars=200000", "data.batch_size=32", "data.seq_len=64",
            "optimizer.lr=0.01", "optimizer.warmup_epochs=0", "trainer.max_epochs=3", "trainer.max_time=null",
            "trainer.accelerator=cpu"]
    assert main(args) == 0
    return run


def test_tiny_lm_learns_below_the_unigram_entropy(lm_run, shakespeare):
    """A few hundred truncated-BPTT steps take a tiny LSTM well below the loss of the best
    context-free model (the unigram entropy of its training text)."""
    summary = json.loads((lm_run / "summary.json").read_text())
    steps = 3 * summary["batches"]["train"]
    assert 200 <= steps <= 400
    text = shakespeare.read_text()[:200000]
    vocab = Vocabulary.from_text(text)
    h1 = unigram_entropy(vocab.encode(text[:180000]), len(vocab))
    assert summary["metrics"]["val/loss"] < h1 - 0.6, (summary["metrics"], h1)
    assert summary["metrics"]["val/bpc"] == pytest.approx(summary["metrics"]["val/loss"] / math.log(2), rel=1e-3)
    assert summary["metrics"]["val/ppl"] == pytest.approx(math.exp(summary["metrics"]["val/loss"]), rel=1e-3)
    log = (lm_run / "logs" / "metrics.csv").read_text().splitlines()[0]
    for column in ("train/grad_norm", "train/clipped", "train/sigma_max/rnn.weight_hh_l0",
                   "train/sigma_max/rnn.weight_hh_l1"):
        assert column in log
    assert json.loads((lm_run / "vocab.json").read_text()) == vocab.chars


def test_test_and_sample_from_the_checkpoint(lm_run, capsys):
    ckpt = str(lm_run / "checkpoints" / "best.ckpt")
    assert main(["test", ckpt]) == 0
    out = capsys.readouterr().out
    assert "nats/char" in out and "bits/char" in out and "perplexity" in out
    model = load_model(ckpt)
    assert model.vidrnn.task == "language_modeling" and len(model.vidrnn.vocab) == model.vocab_size
    assert main(["sample", ckpt, "--prime", "ROMEO:", "--length", "120", "--temperature", "0.8", "--seed", "1"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first) >= 120
    assert main(["sample", ckpt, "--prime", "ROMEO:", "--length", "120", "--temperature", "0.8", "--seed", "1"]) == 0
    assert capsys.readouterr().out == first


def test_bad_input_to_the_commands_is_one_line(lm_run, tmp_path, capsys):
    ckpt = str(lm_run / "checkpoints" / "best.ckpt")
    assert main(["sample", ckpt, "--prime", "ROMEÖ"]) == 2
    assert "--prime 'ROMEÖ': 1 character(s) not in the model's vocabulary of 62: 'Ö'" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["fit", "-c", "char_lstm_shakespeare", f"data.path={empty}", "--run-dir", str(tmp_path / "r")]) == 2
    assert "empty.txt: empty text file" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\xff\xfe")
    assert main(["units", ckpt, "--text", str(bad), "--out", str(tmp_path / "u")]) == 2
    assert "bad.txt: not UTF-8 text (byte 0xff at offset 2" in capsys.readouterr().err
    assert main(["fit", "-c", "char_lstm_shakespeare", "trainer.gradient_clip_val=1"]) == 2
    assert "trainer.gradient_clip_val: language models clip in the task" in capsys.readouterr().err
    assert main(["predict", ckpt, "x.mp4"]) == 2
    assert "vidrnn sample" in capsys.readouterr().err
    assert main(["sample", ckpt, "--device", "gpu"]) == 2
    assert "--device 'gpu': expected cpu, cuda" in capsys.readouterr().err
    assert main(["gradients", ckpt, "--out", str(tmp_path / "g"), "--length", "0"]) == 2
    assert "--length: expected a positive number, got 0" in capsys.readouterr().err
    assert main(["units", ckpt, "--text", str(bad), "--out", str(tmp_path / "u"), "--max-chars", "0"]) == 2
    assert "--max-chars: expected a positive number" in capsys.readouterr().err
    other = tmp_path / "other.txt"
    other.write_text("ROMEO: another text\n" * 50)
    assert main(["units", ckpt, "--text", str(other), "--out", str(tmp_path / "u"), "--split", "test"]) == 2
    assert "is not the text the model was trained on" in capsys.readouterr().err
    assert main(["gradients", ckpt, "--out", str(tmp_path / "g"), "--scale", "nan"]) == 2
    assert "--scale: largest singular values must be finite and > 0" in capsys.readouterr().err
    assert main(["sample", ckpt, "--device", "meta"]) == 2
    assert "--device 'meta': expected cpu, cuda, cuda:N or mps" in capsys.readouterr().err


def test_evaluating_reads_only_the_split_it_scores(lm_run, shakespeare, tmp_path, capsys):
    """A short text is enough to test on (its training part need not fill the training streams),
    and only the scored part must be in the vocabulary."""
    ckpt = str(lm_run / "checkpoints" / "best.ckpt")
    small = tmp_path / "small.txt"
    small.write_text("\u00d6" * 100 + shakespeare.read_text()[:6000])  # 'Ö' (not in the vocabulary) in the train part
    assert main(["test", ckpt, f"data.path={small}", "data.max_chars=null"]) == 0
    assert "test: " in capsys.readouterr().out


def test_units_and_gradients_commands_write_their_pictures(lm_run, shakespeare, tmp_path, capsys):
    ckpt = str(lm_run / "checkpoints" / "best.ckpt")
    assert main(["units", ckpt, "--text", str(shakespeare), "--out", str(tmp_path / "u"), "--max-chars", "3000",
                 "--show-chars", "400", "--split", "test"]) == 0
    assert "of the test split of" in capsys.readouterr().out
    report = json.loads((tmp_path / "u" / "units.json").read_text())
    assert set(report["properties"]) == {"in_quote", "column"}  # prose
    col = report["properties"]["column"]
    assert 0 < col["abs_r"] <= 1 and (tmp_path / "u" / "column.png").stat().st_size > 1000
    assert "<span" in (tmp_path / "u" / "column.html").read_text()
    assert main(["gradients", ckpt, "char_rnn_tiny", "--model-args", "nonlinearity=relu", "--out", str(tmp_path / "g"),
                 "--scale", "0.5", "4", "--windows", "4", "--length", "30"]) == 0
    g = json.loads((tmp_path / "g" / "gradient_flow.json").read_text())
    assert len(g["models"]) == 6 and (tmp_path / "g" / "gradient_flow.png").stat().st_size > 1000
    assert all(len(r["h"]["1"]) == 30 for r in g["models"].values())
    relu = {k: r["ratio_first_to_last"] for k, r in g["models"].items() if "relu" in k}
    assert len(relu) == 3 and min(relu.values()) < 1e-6 < 1e3 < max(relu.values())  # vanishing and exploding
    assert main(["gradients", "char_rnn_tiny", "--model-args", "nonlinearty=relu", "--out", str(tmp_path / "h"),
                 "--text", str(shakespeare)]) == 2
    assert "--model-args.nonlinearty: unknown key; did you mean --model-args.nonlinearity?" in capsys.readouterr().err


def test_sampling_from_a_checkpoint_needs_no_lightning(lm_run):
    """A trained language model is loaded and sampled from with torch alone."""
    import subprocess
    import sys

    code = ("import sys, vidrnn; from vidrnn.inference.generate import sample_text; "
            "m = vidrnn.load_model(sys.argv[1]); t = sample_text(m, m.vidrnn.vocab, 'ROMEO:', 50, seed=0); "
            "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('lightning', 'pytorch_lightning')); "
            "assert not bad, bad[:5]; print(len(t))")
    out = subprocess.run([sys.executable, "-c", code, str(lm_run / "checkpoints" / "best.ckpt")], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "56"
