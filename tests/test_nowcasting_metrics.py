"""Contingency-table scores and NowcastingScores (vidrnn.metrics.nowcasting)."""

import math

import numpy as np
import pytest
import torch

from vidrnn.metrics.nowcasting import NowcastingScores, contingency, csi, far, hss, pod, scores_table

NAN = float("nan")
# pairs (forecast, observed) in mm/h; threshold 2 mm/h
PRED = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0, 5.0, NAN, 4.0, 1.0])
OBS = torch.tensor([0.0, 1.0, 0.4, 2.0, NAN, 0.0, 5.0, 6.0, 3.0])
#   >=: hits idx 3, 7; false alarm idx 5; miss idx 8; correct negatives idx 0, 1, 2; idx 4, 6 missing
#   > : idx 3 (exactly 2 vs 2) becomes a correct negative


def _counts(c):
    return [int(c[k]) for k in ("hits", "false_alarms", "misses", "correct_negatives")]


def test_hand_computed_table_and_scores():
    c = contingency(PRED, OBS, 2.0)
    assert _counts(c) == [2, 1, 1, 3]
    assert csi(c) == pytest.approx(2 / 4) and pod(c) == pytest.approx(2 / 3) and far(c) == pytest.approx(1 / 3)
    assert hss(c) == pytest.approx(2 * (2 * 3 - 1 * 1) / ((2 + 1) * (1 + 3) + (2 + 1) * (1 + 3)))  # 10/24


def test_strict_comparison_at_the_exact_threshold():
    c = contingency(PRED, OBS, 2.0, comparison=">")
    assert _counts(c) == [1, 1, 1, 4]
    assert csi(c) == pytest.approx(1 / 3) and pod(c) == pytest.approx(1 / 2) and far(c) == pytest.approx(1 / 2)
    assert hss(c) == pytest.approx(2 * (1 * 4 - 1 * 1) / (2 * 5 + 2 * 5))  # 0.3
    with pytest.raises(ValueError, match="comparison"):
        contingency(PRED, OBS, 2.0, comparison="<")


def test_nan_pixels_are_excluded():
    base = _counts(contingency(PRED, OBS, 2.0))
    # missing pixels whatever their partner: no count changes, nothing counted twice
    pred = torch.cat([PRED, torch.tensor([NAN, 9.0, NAN])])
    obs = torch.cat([OBS, torch.tensor([9.0, NAN, NAN])])
    assert _counts(contingency(pred, obs, 2.0)) == base
    assert sum(base) == 7  # 9 pairs, 2 with a NaN
    assert _counts(contingency(np.array([NAN]), np.array([NAN]), 1.0)) == [0, 0, 0, 0]


def test_hss_formula_and_undefined_scores():
    # HSS equals (correct - expected correct by chance) / (n - expected), its textbook definition
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b, c, d = (int(v) for v in rng.integers(1, 50, size=4))
        n = a + b + c + d
        expected = ((a + b) * (a + c) + (c + d) * (b + d)) / n
        table = {"hits": torch.tensor(a), "false_alarms": torch.tensor(b), "misses": torch.tensor(c),
                 "correct_negatives": torch.tensor(d)}
        assert float(hss(table)) == pytest.approx(((a + d) - expected) / (n - expected), rel=1e-6)
    perfect = contingency(torch.tensor([0.0, 5.0]), torch.tensor([0.0, 5.0]), 1.0)
    assert float(hss(perfect)) == 1.0 and float(csi(perfect)) == 1.0
    dry = contingency(torch.zeros(4), torch.zeros(4), 1.0)  # no event anywhere: 0/0
    assert all(math.isnan(float(f(dry))) for f in (csi, pod, far, hss))
    with pytest.raises(ValueError, match="missing"):
        csi({"hits": torch.tensor(1)})


def test_contingency_dims_and_shape_errors():
    pred = torch.tensor([[0.0, 3.0], [3.0, 3.0]])
    obs = torch.tensor([[3.0, 3.0], [0.0, NAN]])
    c = contingency(pred, obs, 1.0, dim=0)
    assert c["hits"].tolist() == [0, 1] and c["misses"].tolist() == [1, 0]
    assert c["false_alarms"].tolist() == [1, 0] and c["correct_negatives"].tolist() == [0, 0]
    with pytest.raises(ValueError, match="same shape"):
        contingency(pred, obs[0], 1.0)


def test_metric_accumulates_like_one_update():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(5, 3, 1, 6, 7, generator=g) * 12
    obs = torch.rand(5, 3, 1, 6, 7, generator=g) * 12
    obs[1, 2, 0, :3] = NAN
    pred[4, 0, 0, 0, :5] = NAN
    pred[0, 1, 0, 0, 0] = obs[0, 1, 0, 0, 0] = 5.0  # an exact-threshold pair
    thresholds = (0.5, 2, 5, 10)
    split = NowcastingScores(thresholds)
    split.update(pred[:2], obs[:2])
    split.update(pred[2:], obs[2:])
    whole = NowcastingScores(thresholds)
    whole.update(pred, obs)
    r1, r2 = split.compute(), whole.compute()
    assert set(r1) == {"csi", "pod", "far", "hss", "mae"}
    for k in r1:
        assert r1[k].shape == ((3,) if k == "mae" else (4, 3))
        torch.testing.assert_close(r1[k], r2[k], equal_nan=True)
    # each entry is the score of that threshold and lead time over the whole set
    for i, thr in enumerate(thresholds):
        for t in range(3):
            c = contingency(pred[:, t], obs[:, t], thr)
            assert float(r1["csi"][i, t]) == pytest.approx(float(csi(c)))
            assert float(r1["hss"][i, t]) == pytest.approx(float(hss(c)))
    # reset, then a different number of lead times is accepted; a mismatch is not
    split.reset()
    split.update(pred[:, :2], obs[:, :2])
    assert split.compute()["csi"].shape == (4, 2)
    with pytest.raises(ValueError, match="T=3 lead times, earlier updates had 2"):
        split.update(pred, obs)
    fixed = NowcastingScores(thresholds, lead_times=3)
    fixed.update(pred, obs)
    torch.testing.assert_close(fixed.compute()["pod"], r2["pod"], equal_nan=True)


def test_metric_comparison_and_table():
    pred = torch.tensor([[[2.0]], [[2.0]]]).reshape(1, 2, 1)
    obs = torch.full_like(pred, 2.0)
    ge, gt = NowcastingScores((2.0,)), NowcastingScores((2.0,), comparison=">")
    ge.update(pred, obs)
    gt.update(pred, obs)
    assert ge.compute()["csi"].tolist() == [[1.0, 1.0]]
    assert all(math.isnan(v) for v in gt.compute()["csi"].flatten().tolist())
    text = scores_table(ge.compute(), (2.0,), 6)
    lines = text.splitlines()
    assert "lead (min)" in lines[0] and "CSI>=2" in lines[0] and len(lines) == 3
    assert lines[1].split() == ["6", "1.000"] and lines[2].split() == ["12", "1.000"]
    text = scores_table(gt.compute(), (2.0,), [5, 10], score="hss", comparison=">")
    assert "HSS>2" in text and "nan" in text
    with pytest.raises(ValueError, match="lead_minutes"):
        scores_table(ge.compute(), (2.0,), [5])


def test_matches_pysteps_det_cat_fct():
    pytest.importorskip("pysteps")
    from pysteps.verification.detcatscores import det_cat_fct

    g = torch.Generator().manual_seed(1)
    pred, obs = torch.rand(2, 16, 16, generator=g) * 8, torch.rand(2, 16, 16, generator=g) * 8
    for thr in (1.0, 4.0):
        ref = det_cat_fct(pred.numpy(), obs.numpy(), thr, scores=["CSI", "POD", "FAR", "HSS"])  # event: > thr
        c = contingency(pred, obs, thr, comparison=">")
        for name, f in (("CSI", csi), ("POD", pod), ("FAR", far), ("HSS", hss)):
            assert float(f(c)) == pytest.approx(ref[name], rel=1e-6)
