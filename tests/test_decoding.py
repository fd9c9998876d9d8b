"""Greedy decoding and batched beam search on decoders whose best sequences are known."""

import math

import pytest
import torch

from vidrnn.layers.decoding import beam_search, greedy_decode

PAD, START, END, A, B = 0, 1, 2, 3, 4
V = 5


def table_step(table: dict):
    """A decoder whose next-token distribution depends on the previous token only (its state,
    the consumed token, is carried but unused)."""

    def step(tokens, state):
        probs = torch.stack([torch.tensor(table.get(int(t), [0.2] * V), dtype=torch.float) for t in tokens])
        return probs.clamp_min(1e-30).log(), tokens[:, None].clone()

    return step


# after START: a 0.6, b 0.4; after a: end 0.3, a 0.35, b 0.35; after b: end 0.9, a 0.05, b 0.05
TABLE = {START: [0, 0, 0, 0.6, 0.4], A: [0, 0, 0.3, 0.35, 0.35], B: [0, 0, 0.9, 0.05, 0.05]}


def _start_state(n):
    return torch.full((n, 1), START)


def test_beam_search_finds_the_best_sequence_greedy_misses():
    step = table_step(TABLE)
    greedy, lp = greedy_decode(step, _start_state(1), 1, start=START, end=END, max_length=6)
    assert greedy[0, 0] == A  # greedy takes a (0.6) first ...
    tokens, score = beam_search(step, _start_state(1), 1, start=START, end=END, max_length=6, beam_size=2,
                                length_penalty=0.0)
    assert tokens[0].tolist()[:2] == [B, END] and set(tokens[0].tolist()[2:]) <= {PAD}  # ... beam finds b <end>
    assert score.item() == pytest.approx(math.log(0.4 * 0.9), abs=1e-5)


def test_beam_of_one_equals_greedy_on_a_random_decoder():
    torch.manual_seed(0)
    W = torch.randn(7, 7) * 3

    def step(tokens, state):
        h = torch.tanh(state + W[tokens])
        return torch.log_softmax(h @ W.T, -1), h

    state = torch.randn(4, 7)
    g, g_lp = greedy_decode(step, state, 4, start=1, end=2, max_length=12)
    b, b_score = beam_search(step, state, 4, start=1, end=2, max_length=12, beam_size=1, length_penalty=0.0)
    assert torch.equal(g, b[:, : g.shape[1]]) and (b[:, g.shape[1]:] == 0).all()
    torch.testing.assert_close(g_lp, b_score)


def test_a_beam_that_never_ends_still_returns_its_best_sequence():
    never = {START: [0, 0, 0, 0.7, 0.3], A: [0, 0, 0, 0.5, 0.5], B: [0, 0, 0, 0.9, 0.1]}
    tokens, score = beam_search(table_step(never), _start_state(3), 3, start=START, end=END, max_length=5,
                                beam_size=3)
    assert tokens.shape == (3, 5) and (tokens != PAD).all() and torch.isfinite(score).all()
    assert tokens.tolist() == [[A, B, A, B, A]] * 3  # the likeliest 5 tokens: 0.7 * 0.5 * 0.9 * 0.5 * 0.9
    assert score[0].item() == pytest.approx(math.log(0.7 * 0.5 * 0.9 * 0.5 * 0.9) / 5, abs=1e-5)


def test_identical_items_agree_and_scores_are_length_normalised():
    # two identical items give identical results (independence proper: the stateful test below)
    step = table_step(TABLE)
    state = torch.tensor([[START], [START]])
    t, _ = beam_search(step, state, 2, start=START, end=END, max_length=6, beam_size=3, length_penalty=0.0)
    assert t[0].tolist() == t[1].tolist()
    # length normalisation: the score of the chosen sequence is its summed log-prob / length ** alpha
    m, score = beam_search(step, _start_state(1), 1, start=START, end=END, max_length=6, beam_size=3,
                           length_penalty=1.0)
    assert m[0].tolist()[:2] == [B, END] and score.item() == pytest.approx(math.log(0.36) / 2, abs=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        beam_search(table_step(TABLE), _start_state(1), 1, start=START, end=END, max_length=3, beam_size=0)


def test_a_wide_beam_is_exhaustive_search_on_a_stateful_decoder():
    """With k >= all partial sequences, beam search (sum of log-probs) returns the best of all
    sequences found by enumeration; the decoder's output depends on its state, so a wrongly
    reordered state would give other scores."""
    import itertools

    torch.manual_seed(1)
    W, U = torch.randn(V, 6) * 2, torch.randn(6, 6)

    def step(tokens, h):
        h = torch.tanh(h @ U + W[tokens])
        logits = h @ W.T
        logits[:, [PAD, START]] = -1e9
        return torch.log_softmax(logits, -1), h

    h0 = torch.randn(2, 6)
    best = []
    for i in range(2):
        scored = []
        for seq in itertools.product(range(V), repeat=3):
            if seq[0] == END:
                seq = seq[:1]
            elif seq[1] == END:
                seq = seq[:2]
            h, last, lp = h0[i: i + 1], torch.tensor([START]), 0.0
            for tok in seq:
                logp, h = step(last, h)
                lp += float(logp[0, tok])
                last = torch.tensor([tok])
            scored.append((lp, list(seq)))
        best.append(max(scored))
    tokens, score = beam_search(step, h0, 2, start=START, end=END, max_length=3, beam_size=V * V,
                                length_penalty=0.0)
    for i in range(2):
        n = len(best[i][1])
        assert tokens[i].tolist()[:n] == best[i][1]
        assert score[i].item() == pytest.approx(best[i][0], abs=1e-4)
    # items of a batch are independent: each alone gives what it gave in the batch
    for i in range(2):
        alone, alone_score = beam_search(step, h0[i: i + 1], 1, start=START, end=END, max_length=3, beam_size=3,
                                         length_penalty=1.0)
        both, both_score = beam_search(step, h0, 2, start=START, end=END, max_length=3, beam_size=3,
                                       length_penalty=1.0)
        assert alone[0].tolist() == both[i].tolist()[: alone.shape[1]]
        assert alone_score.item() == pytest.approx(both_score[i].item(), abs=1e-5)
