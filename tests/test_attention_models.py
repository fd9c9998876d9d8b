import pytest
import torch

from vidrnn import create_model
from vidrnn.models.attention_lstm import attention_penalty, reinforce_surrogate


def test_attention_penalty_hand_computed():
    w = torch.tensor([[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]])  # (B=1, T=2, N=3)
    # Σ_t l_ti = [1.5, 0.5, 0.0] -> (1-1.5)² + (1-0.5)² + (1-0)² = 0.25 + 0.25 + 1
    torch.testing.assert_close(attention_penalty(w), torch.tensor([1.5]))


@pytest.mark.parametrize("baseline", [0.0, "mean"])
def test_reinforce_gradient_matches_exact_gradient_of_expected_reward(baseline):
    torch.manual_seed(0)
    theta = torch.tensor([0.2, -0.4, 1.0, 0.1], requires_grad=True)
    r = torch.tensor([1.0, -2.0, 0.5, 3.0])
    exact = torch.autograd.grad((theta.softmax(-1) * r).sum(), theta)[0]
    M = 200_000
    dist = torch.distributions.Categorical(logits=theta.expand(M, 4))
    s = dist.sample()
    b = (theta.softmax(-1) * r).sum().detach() if baseline == "mean" else 0.0
    est = -torch.autograd.grad(reinforce_surrogate(dist.log_prob(s), r[s], b).mean(), theta)[0]
    # Monte-Carlo error: per-sample std < 5 here, so 5/sqrt(M) ~ 0.011; allow 0.03
    torch.testing.assert_close(est, exact, atol=0.03, rtol=0)


def test_soft_attention_weights_and_return_attention():
    torch.manual_seed(0)
    m = create_model("soft_attention_lstm_tiny", num_classes=3).eval()
    logits, w = m(torch.rand(2, 5, 3, 32, 32), return_attention=True)
    assert logits.shape == (2, 3) and w.shape == (2, 5, 16)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 5))
    with pytest.raises(ValueError, match="3x3 feature maps, got 4x4"):
        create_model("soft_attention_lstm_tiny", num_classes=3, map_size=3)(torch.rand(1, 2, 3, 32, 32))


def test_hard_attention_samples_in_training_and_uses_expectation_in_eval():
    torch.manual_seed(0)
    m = create_model("hard_attention_lstm_tiny", num_classes=3, soft_prob=0.0)
    video = torch.rand(4, 5, 3, 32, 32)
    m.train()
    logits = m(video)
    assert m._log_probs.shape == (4, 5) and (m._log_probs < 0).all()
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0]), reduction="none")
    loss, logs = m.auxiliary_loss(nll)
    loss.backward()
    assert m.loc.weight.grad is not None and m.loc.weight.grad.abs().sum() > 0  # REINFORCE reaches the locator
    torch.testing.assert_close(logs["reward_baseline"], 0.1 * (-nll.detach().mean()))
    m.eval()
    with torch.no_grad():
        a, b = m(video), m(video)
    torch.testing.assert_close(a, b)  # expectation: deterministic
    assert m._log_probs is None


def test_temporal_attention_window_masks_frames_before_the_start():
    torch.manual_seed(0)
    m = create_model("temporal_attention_lstm_tiny", num_classes=3, window=3).eval()
    _, w = m(torch.rand(2, 4, 3, 32, 32), return_attention=True)
    assert w.shape == (2, 4, 3)
    assert (w[:, 0, :2] == 0).all() and (w[:, 1, 0] == 0).all()  # no frames before t = 0
    torch.testing.assert_close(w[:, 0, 2], torch.ones(2))
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4))
