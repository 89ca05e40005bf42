"""Exact metric values on hand-computed examples, and the histogram sweep against brute-force thresholding."""

from __future__ import annotations

import pytest
import torch

from ml import metrics
from ml.metrics import Stats, ThresholdCurve


def _b(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


@pytest.fixture
def stats() -> Stats:
    # Image 0: tp 1, fp 1, fn 1, tn 1. Image 1: nothing predicted, nothing there (tn 4).
    pred = _b([[1, 1, 0, 0], [0, 0, 0, 0]])
    target = _b([[1, 0, 1, 0], [0, 0, 0, 0]])
    return metrics.get_stats(pred, target)


def test_get_stats_counts_per_image(stats: Stats) -> None:
    assert stats.tp.tolist() == [1, 0]
    assert stats.fp.tolist() == [1, 0]
    assert stats.fn.tolist() == [1, 0]
    assert stats.tn.tolist() == [1, 4]
    assert stats.tp.dtype == torch.int64


def test_get_stats_flattens_any_trailing_shape() -> None:
    pred = torch.zeros(3, 1, 4, 5, dtype=torch.bool)
    pred[1, 0, 2, :3] = True
    target = torch.zeros_like(pred)
    target[1, 0, 2, 1:4] = True
    s = metrics.get_stats(pred, target)
    assert s.tp.tolist() == [0, 2, 0] and s.fp.tolist() == [0, 1, 0] and s.fn.tolist() == [0, 1, 0]
    assert (s.tp + s.fp + s.fn + s.tn).tolist() == [20, 20, 20]


def test_pooled_scores(stats: Stats) -> None:
    got = metrics.scores(stats, "pooled")
    assert got == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "iou": 1 / 3, "dice": 0.5})


def test_per_image_zero_division_is_explicit(stats: Stats) -> None:
    assert metrics.f1_score(stats, "per_image").tolist() == [0.5, 1.0]
    assert metrics.f1_score(stats, "per_image", zero_division=0.0).tolist() == [0.5, 0.0]
    assert metrics.precision(stats, "per_image").tolist() == [0.5, 1.0]
    assert metrics.iou_score(stats, "per_image").tolist() == pytest.approx([1 / 3, 1.0])
    assert float(metrics.f1_score(stats, "mean")) == pytest.approx(0.75)
    assert float(metrics.f1_score(stats, "mean", zero_division=0.0)) == pytest.approx(0.25)


def test_nothing_predicted_on_a_cracked_image_scores_zero_f1() -> None:
    s = metrics.get_stats(_b([[0, 0, 0]]), _b([[1, 1, 0]]))
    assert float(metrics.f1_score(s)) == 0.0
    assert float(metrics.recall(s)) == 0.0
    assert float(metrics.precision(s)) == 1.0  # 0/0 → zero_division


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.get_stats(_b([[1, 0]]), _b([[1, 0, 0]]))
    with pytest.raises(ValueError, match="threshold probabilities first"):
        metrics.get_stats(torch.rand(1, 4), _b([[1, 0, 0, 1]]))
    with pytest.raises(ValueError, match="reduction"):
        metrics.f1_score(metrics.get_stats(_b([[1]]), _b([[1]])), "macro")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strictly increasing"):
        ThresholdCurve(torch.tensor([0.5, 0.2]))
    with pytest.raises(ValueError, match="empty"):
        ThresholdCurve().ods()


@pytest.fixture
def curve() -> ThresholdCurve:
    """Two images on thresholds 0.25 / 0.5 / 0.75 (worked through in the test below)."""
    c = ThresholdCurve(torch.tensor([0.25, 0.5, 0.75]))
    # A: 0.5 sits exactly on a threshold and counts as crack there (probability >= threshold).
    c.update(torch.tensor([[0.9, 0.5, 0.3, 0.1]]), _b([[1, 1, 0, 0]]))
    c.update(torch.tensor([[0.8, 0.4, 0.7, 0.3]]), _b([[0, 1, 0, 1]]))
    return c


def test_threshold_curve_counts(curve: ThresholdCurve) -> None:
    # A: t=.25 tp2 fp1 fn0 | t=.5 tp2 fp0 fn0 | t=.75 tp1 fp0 fn1
    # B: t=.25 tp2 fp2 fn0 | t=.5 tp0 fp2 fn2 | t=.75 tp0 fp1 fn2
    s = curve.stats_at(0)
    assert (s.tp.tolist(), s.fp.tolist(), s.fn.tolist(), s.tn.tolist()) == ([2, 2], [1, 2], [0, 0], [1, 0])
    s = curve.stats_at(1)
    assert (s.tp.tolist(), s.fp.tolist(), s.fn.tolist()) == ([2, 0], [0, 2], [0, 2])
    s = curve.stats_at(2)
    assert (s.tp.tolist(), s.fp.tolist(), s.fn.tolist()) == ([1, 0], [0, 1], [1, 2])
    p, r, f = curve.pr_curve()
    # pooled: .25 tp4 fp3 fn0 → F1 8/11 | .5 tp2 fp2 fn2 → 1/2 | .75 tp1 fp1 fn3 → 1/3
    assert f.tolist() == pytest.approx([8 / 11, 1 / 2, 1 / 3])
    assert p.tolist() == pytest.approx([4 / 7, 1 / 2, 1 / 2])
    assert r.tolist() == pytest.approx([1.0, 1 / 2, 1 / 4])


def test_ods(curve: ThresholdCurve) -> None:
    ods = curve.ods()
    assert ods.threshold == 0.25 and ods.index == 0
    assert ods.f1 == pytest.approx(8 / 11)
    assert (ods.precision, ods.recall) == pytest.approx((4 / 7, 1.0))


def test_ois_bsds_pooled_and_mean(curve: ThresholdCurve) -> None:
    # A is best at 0.5 (F1 1.0: tp2 fp0 fn0), B at 0.25 (F1 2/3: tp2 fp2 fn0).
    ois = curve.ois()
    assert ois.thresholds == [0.5, 0.25]
    assert ois.per_image_f1 == pytest.approx([1.0, 2 / 3])
    assert ois.f1 == pytest.approx(0.8)  # pooled tp4 fp2 fn0 → 8/10
    assert (ois.precision, ois.recall) == pytest.approx((2 / 3, 1.0))
    assert ois.f1_mean == pytest.approx(5 / 6)


def test_ois_prefers_predicting_nothing_on_a_crack_free_image() -> None:
    c = ThresholdCurve(torch.tensor([0.25, 0.5, 0.75]))
    c.update(torch.tensor([[0.6, 0.3]]), _b([[0, 0]]))
    ois = c.ois()
    assert ois.thresholds == [0.75] and ois.per_image_f1 == [1.0]


def test_histogram_sweep_equals_brute_force_thresholding() -> None:
    gen = torch.Generator().manual_seed(0)
    # Probabilities on the grid itself (k/100) hit every boundary case of ">=".
    probs = torch.randint(0, 101, (5, 1, 17, 23), generator=gen).float() / 100
    probs[0] = torch.rand(1, 17, 23, generator=gen)
    target = torch.rand(5, 1, 17, 23, generator=gen) > 0.8
    target[3] = False  # one crack-free image
    c = ThresholdCurve()
    c.update(probs[:2], target[:2])
    c.update(probs[2:], target[2:])
    assert len(c) == 5
    for j, t in enumerate(c.thresholds.tolist()):
        expected = metrics.get_stats(probs >= t, target)
        got = c.stats_at(j)
        for name in ("tp", "fp", "fn", "tn"):
            assert torch.equal(getattr(got, name), getattr(expected, name)), (t, name)
    assert c.index_of(0.5) == 49 and c.index_of(0.505) is None


def test_p2_is_the_best_threshold_of_the_mean_per_image_f1(curve: ThresholdCurve) -> None:
    # Per-image F1 — A: .25 → 4/5, .5 → 1, .75 → 2/3; B: .25 → 2/3, .5 → 0, .75 → 0.
    p2 = curve.best_mean()
    assert p2.threshold == 0.25 and p2.index == 0
    assert p2.f1 == pytest.approx((4 / 5 + 2 / 3) / 2)
    # It differs from pooled ODS on data where one big-crack image dominates the pooled counts.
    c = ThresholdCurve(torch.tensor([0.25, 0.5, 0.75]))
    c.update(torch.tensor([[0.6] * 8 + [0.1] * 2]), _b([[1] * 8 + [0] * 2]))  # many crack pixels, found at .5
    c.update(torch.tensor([[0.3, 0.3, 0.3, 0.3]]), _b([[1, 0, 0, 0]]))  # a hairline only seen at .25, noisily
    assert c.ods().threshold == 0.5 and c.best_mean().threshold == 0.25


def test_average_precision_is_the_step_sum_under_the_pooled_pr_curve(curve: ThresholdCurve) -> None:
    # recall 1, 1/2, 1/4 with precision 4/7, 1/2, 1/2: (1 - 1/2)·4/7 + (1/2 - 1/4)·1/2 + (1/4 - 0)·1/2
    assert curve.average_precision() == pytest.approx(0.5 * 4 / 7 + 0.25 * 0.5 + 0.25 * 0.5)
    perfect = ThresholdCurve()
    perfect.update(torch.tensor([[1.0, 1.0, 0.0, 0.0]]), _b([[1, 1, 0, 0]]))
    assert perfect.average_precision() == pytest.approx(1.0)


def test_tolerance_curve_forgives_a_one_pixel_shift_and_only_that() -> None:
    from ml.metrics import ToleranceCurve

    target = torch.zeros(1, 20, 20, dtype=torch.bool)
    target[0, 10, 2:18] = True  # a horizontal crack
    shifted = torch.zeros(1, 20, 20)
    shifted[0, 11, 2:18] = 0.9  # the same crack one row lower
    exact = ThresholdCurve()
    exact.update(shifted, target)
    assert exact.ods().f1 == 0.0
    k1 = ToleranceCurve(1)
    k1.update(shifted, target)
    assert k1.ods().f1 == pytest.approx(1.0)
    far = torch.zeros(1, 20, 20)
    far[0, 13, 2:18] = 0.9  # three rows away: beyond k = 2
    k2 = ToleranceCurve(2)
    k2.update(far, target)
    assert k2.ods().f1 == 0.0
    with pytest.raises(ValueError, match="at least 1 pixel"):
        ToleranceCurve(0)


def test_tolerance_precision_and_recall_count_their_own_pixels() -> None:
    from ml.metrics import ToleranceCurve

    target = torch.zeros(1, 10, 10, dtype=torch.bool)
    target[0, 5, 0:10] = True  # 10 crack pixels
    probs = torch.zeros(1, 10, 10)
    probs[0, 5, 0:5] = 0.8  # finds half of the crack
    probs[0, 0, 0:5] = 0.8  # and 5 false alarms far away
    tol = ToleranceCurve(1, torch.tensor([0.5]))
    tol.update(probs, target)
    p, r, f = tol.pr_curve()
    # precision 5/10; recall: GT pixels 0..5 have a prediction within 1 px (x=5 sees x=4): 6/10
    assert float(p[0]) == pytest.approx(0.5) and float(r[0]) == pytest.approx(0.6)
    assert float(f[0]) == pytest.approx(2 * 0.5 * 0.6 / 1.1)
