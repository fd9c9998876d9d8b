"""Temporal pooling semantics of the "Beyond Short Snippets" models (Ng et al., CVPR 2015,
Section 3.1 and Fig. 2): which models are blind to frame order, the windows of 10 frames with
stride 5, and slow/local pooling computed by hand from the models' own parts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidrnn import create_model
from vidrnn.layers.pooling import num_windows, windowed_max
from vidrnn.models.base import TINY_MAP_ENCODER, build_encoder
from vidrnn.models.snippets import LocalPooling

T = 8  # frames of the test clips (local_pooling_tiny is built for 8)


def _model(name: str, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, num_classes=5, **kwargs).eval()


def _video(seed: int = 1, B: int = 2, frames: int = T) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, frames, 3, 32, 32, generator=g)


@torch.no_grad()
def _logits(model, video):
    return model(video).logits


def _window_sets(perm: list[int], window: int, stride: int) -> list[frozenset[int]]:
    """The original frames that each window sees after ``video[:, perm]``."""
    n = num_windows(len(perm), window, stride)
    return [frozenset(perm[k * stride:k * stride + window]) for k in range(n)]


# ============================================================================ order
@pytest.mark.parametrize("name", ["conv_pooling_tiny", "late_pooling_tiny", "avg_pooling_tiny"])
def test_order_blind_models_ignore_frame_order(name):
    """Conv Pooling and Late Pooling max-pool over all frames (Average Pooling averages): any
    permutation of the frames gives the same output."""
    model, video = _model(name), _video()
    ref = _logits(model, video)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        perm = torch.randperm(T, generator=g)
        assert not torch.equal(perm, torch.arange(T))
        torch.testing.assert_close(_logits(model, video[:, perm]), ref, rtol=1e-5, atol=1e-6)
    # not trivially constant: other content changes the output
    assert (_logits(model, _video(seed=3)) - ref).abs().max() > 1e-4


# a permutation that moves frames across windows (window 4, stride 2 in the tiny builders):
# frames 0 and 7 swap, so the first and last windows see other frames
_CROSS_WINDOW = [7, 1, 2, 3, 4, 5, 6, 0]


@pytest.mark.parametrize("name", ["slow_pooling_tiny", "local_pooling_tiny", "time_domain_conv_tiny"])
def test_order_aware_models_depend_on_frame_order(name):
    """Slow Pooling, Local Pooling and Time-Domain Convolution see local windows of time:
    moving frames across windows changes the output."""
    model, video = _model(name), _video()
    window = getattr(model, "window", None) or model.kernel_size
    stride = getattr(model, "stride", None) or model.conv.stride[0]
    assert _window_sets(_CROSS_WINDOW, window, stride) != _window_sets(list(range(T)), window, stride)
    diff = (_logits(model, video[:, _CROSS_WINDOW]) - _logits(model, video)).abs().max()
    assert diff > 1e-4, f"{name}: output unchanged ({diff:.2e}) when frames 0 and 7 swap"


# ============================================================================ windows
def test_windowed_max_paper_windows():
    """10-frame windows every 5 frames over 30 frames: [0,10), [5,15), [10,20), [15,25), [20,30)."""
    assert num_windows(30, 10, 5) == 5
    x = torch.randn(1, 30, 6, generator=torch.Generator().manual_seed(0))
    out = windowed_max(x, window=10, stride=5)
    expected = torch.stack([x[:, s:s + 10].max(dim=1).values for s in (0, 5, 10, 15, 20)], dim=1)
    assert out.shape == (1, 5, 6)
    assert torch.equal(out, expected)
    # the boundaries: a spike at frame f is seen exactly by the windows containing f
    for frame, seen in [(0, [1, 0, 0, 0, 0]), (4, [1, 0, 0, 0, 0]), (5, [1, 1, 0, 0, 0]), (9, [1, 1, 0, 0, 0]),
                        (10, [0, 1, 1, 0, 0]), (14, [0, 1, 1, 0, 0]), (15, [0, 0, 1, 1, 0]),
                        (25, [0, 0, 0, 0, 1]), (29, [0, 0, 0, 0, 1])]:
        spike = torch.zeros(1, 30, 1)
        spike[0, frame, 0] = 1.0
        assert windowed_max(spike, 10, 5)[0, :, 0].tolist() == seen, frame


@pytest.fixture(scope="module")
def full_models():
    """The full-size builders on the meta device (no weights allocated)."""
    with torch.device("meta"):
        return {name: create_model(name, num_classes=101, pretrained=False)
                for name in ("slow_pooling", "local_pooling", "time_domain_conv")}


def _linears(mlp: nn.Module) -> list[nn.Linear]:
    return [m for m in mlp.modules() if isinstance(m, nn.Linear)]


def test_full_builders_use_paper_windows(full_models):
    slow, local, tdc = full_models["slow_pooling"], full_models["local_pooling"], full_models["time_domain_conv"]
    # Slow Pooling: windows of 10, stride 5, one shared FC layer per window
    assert (slow.window, slow.stride) == (10, 5)
    assert len(_linears(slow.mlp)) == 1
    # Local Pooling: 30 frames -> 5 windows, two shared FC layers, softmax over all 5 concatenated
    assert (local.window, local.stride, local.num_frames) == (10, 5, 30)
    assert local.num_windows == 5
    hidden = _linears(local.mlp)[-1].out_features
    assert len(_linears(local.mlp)) == 2
    assert local.fc.in_features == 5 * hidden
    # Time-Domain Convolution: 256 kernels of 3x3 spanning 10 frames, frame stride 5
    assert tdc.conv.kernel_size == (10, 3, 3) and tdc.conv.stride[0] == 5
    assert tdc.conv.out_channels == 256


# ============================================================================ by hand
@torch.no_grad()
def test_slow_pooling_is_window_max_shared_fc_then_max_over_windows():
    model, video = _model("slow_pooling_tiny"), _video()
    maps = model.encode(video)  # (B, T, C, h, w)
    m = model.maps(maps)
    starts = range(0, T - model.window + 1, model.stride)
    windows = [m[:, s:s + model.window].max(dim=1).values for s in starts]  # each (B, C, h, w)
    assert len(windows) == num_windows(T, model.window, model.stride) == 3
    torch.testing.assert_close(windowed_max(m, model.window, model.stride), torch.stack(windows, dim=1))
    per_window = torch.stack([model.mlp(w.flatten(1)) for w in windows], dim=1)  # (B, W, hidden), shared FC
    expected = per_window.max(dim=1).values
    torch.testing.assert_close(model.forward_features(maps), expected)
    torch.testing.assert_close(model(video).logits, model.fc(expected))


# local_pooling_tiny: 8 frames, window 4, stride 2 -> windows [0,4), [2,6), [4,8)
@torch.no_grad()
def test_local_pooling_sees_the_last_window():
    """Changing frames that only the last window holds changes that window's features alone
    (the others are equal) and the output."""
    model, video = _model("local_pooling_tiny"), _video()
    assert (model.window, model.stride, model.num_windows) == (4, 2, 3)
    hidden = _linears(model.mlp)[-1].out_features
    changed = video.clone()
    changed[:, 6:] = _video(seed=5)[:, 6:]  # frames 6, 7: only in window [4, 8)
    f0, f1 = model.forward_features(model.encode(video)), model.forward_features(model.encode(changed))
    torch.testing.assert_close(f1[:, :2 * hidden], f0[:, :2 * hidden])
    assert (f1[:, 2 * hidden:] - f0[:, 2 * hidden:]).abs().max() > 1e-4
    assert (_logits(model, changed) - _logits(model, video)).abs().max() > 1e-4


@torch.no_grad()
def test_local_pooling_ignores_order_inside_windows_of_the_tiny_model():
    """Swapping frames 0<->1, 2<->3, 4<->5, 6<->7: each pair lies in the same windows, so every
    window's max, and the output, stay the same."""
    model, video = _model("local_pooling_tiny"), _video()
    perm = [1, 0, 3, 2, 5, 4, 7, 6]
    assert _window_sets(perm, 4, 2) == _window_sets(list(range(T)), 4, 2)
    torch.testing.assert_close(_logits(model, video[:, perm]), _logits(model, video), rtol=1e-5, atol=1e-6)


def _local_pooling(window: int, stride: int, num_frames: int = T, hidden_size: int = 16) -> LocalPooling:
    torch.manual_seed(0)
    encoder = build_encoder(None, False, "all", TINY_MAP_ENCODER)
    return LocalPooling(encoder, 5, num_frames=num_frames, input_size=32, map_size=None, hidden_size=hidden_size,
                        window=window, stride=stride, dropout=0.0).eval()


@torch.no_grad()
def test_local_pooling_depends_on_window_order():
    """Non-overlapping windows (window == stride == 4, two windows): frames permuted inside a
    window change nothing; swapping the two windows' contents swaps their features and
    changes the output (each window has its own weights in the softmax layer)."""
    model, video = _local_pooling(window=4, stride=4), _video()
    assert model.num_windows == 2 and model.fc.in_features == 2 * 16
    ref = _logits(model, video)
    inside = [2, 0, 3, 1, 7, 4, 6, 5]
    torch.testing.assert_close(_logits(model, video[:, inside]), ref, rtol=1e-5, atol=1e-6)
    swapped = [4, 5, 6, 7, 0, 1, 2, 3]
    f0 = model.forward_features(model.encode(video))
    f1 = model.forward_features(model.encode(video[:, swapped]))
    torch.testing.assert_close(f1, torch.cat([f0[:, 16:], f0[:, :16]], dim=1))
    assert (_logits(model, video[:, swapped]) - ref).abs().max() > 1e-4


def test_local_pooling_rejects_other_clip_lengths():
    model = _local_pooling(window=4, stride=4)
    with pytest.raises(ValueError, match="num_frames=8"):
        model(_video(frames=12))
