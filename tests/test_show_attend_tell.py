"""Show, Attend and Tell (soft attention): shapes, attention weights, the doubly stochastic
regulariser, teacher forcing with padding, decoding through beam search."""

import pytest
import torch

from vidrnn import create_model, list_models
from vidrnn.models.show_attend_tell import caption_attention_penalty

V, START, END, PAD = 12, 1, 2, 0


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("show_attend_tell_tiny", vocab_size=V).eval()


def test_registered_with_a_tiny_variant():
    names = list_models(task="captioning")
    assert "show_attend_tell" in names and "show_attend_tell_tiny" in names


def test_shapes_and_attention_weights_sum_to_one(model):
    images = torch.rand(3, 3, 32, 32)
    captions = torch.tensor([[START, 5, 6, 7, END], [START, 8, END, PAD, PAD], [START, 9, 9, END, PAD]])
    out = model(images, captions)
    assert out.logits.shape == (3, 4, V) and out.attention.shape == (3, 4, 16)  # 4x4 regions
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(3, 4))
    assert out.aux_losses["attention_penalty"].item() > 0


def test_padding_a_batch_changes_nothing_for_the_real_tokens(model):
    """Teacher forcing is causal: padding added at the end of a caption leaves the logits of its
    real steps and its attention penalty unchanged."""
    images = torch.rand(1, 3, 32, 32)
    short = torch.tensor([[START, 5, 6, END]])
    padded = torch.tensor([[START, 5, 6, END, PAD, PAD]])
    a, b = model(images, short), model(images, padded)
    torch.testing.assert_close(a.logits, b.logits[:, :3])
    torch.testing.assert_close(a.aux_losses["attention_penalty"], b.aux_losses["attention_penalty"])


def test_penalty_against_a_hand_computed_case():
    w = torch.tensor([[[0.5, 0.5, 0.0], [0.2, 0.2, 0.6], [1.0, 0.0, 0.0]]])  # (1, T=3, L=3)
    # all steps: sums over t are (1.7, 0.7, 0.6): (1-1.7)^2 + (1-0.7)^2 + (1-0.6)^2 = 0.49 + 0.09 + 0.16
    assert caption_attention_penalty(w).item() == pytest.approx(0.74)
    # the last step is padding: sums (0.7, 0.7, 0.6): 0.09 + 0.09 + 0.16
    mask = torch.tensor([[True, True, False]])
    assert caption_attention_penalty(w, mask).item() == pytest.approx(0.34)


def test_beam_of_one_is_greedy_and_beams_always_return(model):
    images = torch.rand(2, 3, 32, 32)
    g, g_lp = model.generate(images, start=START, end=END, beam_size=1, max_length=7)
    from vidrnn.layers.decoding import beam_search

    state = model.initial_state(images)
    b, b_lp = beam_search(model.decode_step, state, 2, start=START, end=END, max_length=7, beam_size=1,
                          length_penalty=0.0)
    assert torch.equal(g, b[:, : g.shape[1]])
    torch.testing.assert_close(g_lp, b_lp)
    tokens, score = model.generate(images, start=START, end=END, beam_size=4, max_length=7)
    assert tokens.shape[0] == 2 and tokens.shape[1] <= 7 and torch.isfinite(score).all()


def test_gradients_reach_the_encoder_attention_and_decoder(model):
    m = create_model("show_attend_tell_tiny", vocab_size=V)
    out = m(torch.rand(2, 3, 32, 32), torch.tensor([[START, 5, 6, END], [START, 7, END, PAD]]))
    loss = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), torch.tensor([5, 6, END, 7, END, PAD]),
                                             ignore_index=PAD) + out.aux_losses["attention_penalty"]
    loss.backward()
    for name in ("encoder.trunk", "attention.W", "f_beta", "lstm", "L_o", "init_h"):
        grads = [p.grad for n, p in m.named_parameters() if n.startswith(name)]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads), name


def test_model_penalty_is_per_caption_over_its_real_steps(model):
    """lambda sum_i (1 - sum_t alpha_ti)^2 of each caption's real steps, divided by their number
    (the paper's balance against a summed NLL, for the task's per-token mean), averaged."""
    images = torch.rand(2, 3, 32, 32)
    captions = torch.tensor([[START, 5, 6, END], [START, 8, END, PAD]])
    out = model(images, captions)
    a = out.attention
    first = (1 - a[0, :3].sum(0)).square().sum() / 3
    second = (1 - a[1, :2].sum(0)).square().sum() / 2
    torch.testing.assert_close(out.aux_losses["attention_penalty"], model.penalty * (first + second) / 2)
