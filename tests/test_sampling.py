import numpy as np
import pytest

from vidrnn.io.sampling import (DenseSampler, FixedRateSampler, SegmentSampler, UniformSampler, build_sampler)

TS30 = np.arange(300) / 30.0  # 10 s at 30 frames/s


def test_uniform_centres_of_equal_parts():
    t = UniformSampler(4).sample(TS30, 10.0)
    assert t.shape == (1, 4)
    np.testing.assert_allclose(t[0] * 30, [37, 112, 187, 262])


def test_segments_random_in_training_centre_at_test():
    s = SegmentSampler(5, test_views=2)
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = np.round(s.sample(TS30, 10.0, training=True, rng=rng)[0] * 30).astype(int)
        assert idx.shape == (5,)
        assert np.all((idx >= np.arange(5) * 60) & (idx < (np.arange(5) + 1) * 60))  # one frame per segment
    test = np.round(s.sample(TS30, 10.0) * 30).astype(int)
    assert test.shape == (2, 5)
    np.testing.assert_array_equal(test[0], np.arange(5) * 60 + 15)
    np.testing.assert_array_equal(test[1], np.arange(5) * 60 + 45)


def test_dense_clips_stride_and_short_video():
    s = DenseSampler(16, stride=8)
    idx = np.round(s.sample(TS30, 10.0) * 30).astype(int)
    assert idx.shape == ((300 - 16) // 8 + 1, 16)
    np.testing.assert_array_equal(idx[1], np.arange(8, 24))
    short = np.arange(5) / 30.0  # 5 frames, shorter than the clip: last frame repeats
    idx = np.round(DenseSampler(8, frame_interval=2).sample(short, 5 / 30, training=True) * 30).astype(int)
    np.testing.assert_array_equal(idx[0], [0, 2, 4, 4, 4, 4, 4, 4])
    train = DenseSampler(16, frame_interval=2).sample(TS30, 10.0, training=True, rng=np.random.default_rng(1))
    assert np.allclose(np.diff(train[0]) * 30, 2)


def test_fixed_rate_uses_duration_only_and_caps():
    s = FixedRateSampler(fps=1.0)
    assert not s.needs_timestamps
    t = s.sample(None, 139.4)
    assert t.shape == (1, 140) and t[0, 0] == 0 and t[0, -1] == 139
    capped = FixedRateSampler(fps=2.0, max_frames=10).sample(None, 30.0, training=True, rng=np.random.default_rng(0))
    assert capped.shape == (1, 10) and np.allclose(np.diff(capped[0]), 0.5)
    padded = FixedRateSampler(fps=1.0, num_frames=6).sample(None, 3.2)
    np.testing.assert_allclose(padded[0], [0, 1, 2, 3, 3, 3])


def test_variable_frame_rate_indices_map_to_real_timestamps():
    ts = np.array([0.0, 0.1, 0.2, 1.5, 1.6, 4.0, 4.1, 4.2])
    t = UniformSampler(4).sample(ts, 4.3)
    assert set(t[0]) <= set(ts)


def test_segment_restriction_and_errors():
    t = UniformSampler(4).sample(TS30, 10.0, start=2.0, end=4.0)
    assert t.min() >= 2.0 and t.max() < 4.0
    with pytest.raises(ValueError, match="no frame"):
        UniformSampler(4).sample(TS30, 10.0, start=20.0, end=30.0)
    with pytest.raises(ValueError, match="num_frames"):
        UniformSampler(0)
    with pytest.raises(ValueError, match="sampler name"):
        build_sampler({"name": "bogus"})
    assert build_sampler(DenseSampler(4).to_dict()) == DenseSampler(4)
