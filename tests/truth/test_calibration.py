"""Temperature scaling and expected calibration error."""

from __future__ import annotations

import numpy as np
import pytest

from quorum.truth import (
    DawidSkene,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
)


def overconfident(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Posteriors that say 0.99 for labels that are right 80% of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, 2000)
    predicted = np.where(rng.random(2000) < 0.8, truth, 1 - truth)
    probas = np.where(np.eye(2, dtype=bool)[predicted], 0.99, 0.01)
    return probas, truth


def test_temperature_fitted_on_gold_removes_overconfidence() -> None:
    probas, truth = overconfident()
    temperature = fit_temperature(probas, truth)
    calibrated = apply_temperature(probas, temperature)
    assert temperature > 1
    assert calibrated.max(axis=1).mean() == pytest.approx(0.8, abs=0.02)
    assert (
        expected_calibration_error(calibrated, truth)
        < 0.02
        < expected_calibration_error(probas, truth)
    )
    assert np.array_equal(calibrated.argmax(axis=1), probas.argmax(axis=1))


def test_expected_calibration_error_by_hand() -> None:
    probas = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.4, 0.6]])
    # bins: two at 0.95 (both right: gap 0.05), two at 0.6 (one right: gap 0.1)
    ece = expected_calibration_error(probas, [0, 0, 0, 0])
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.1)


def test_temperature_one_changes_nothing_but_the_floor() -> None:
    probas = np.array([[0.7, 0.2, 0.1]])
    np.testing.assert_allclose(apply_temperature(probas, 1.0), probas)


def triage_crowd(seed: int = 29) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The demo's blood-pressure project in miniature: 80 readings in 5 ordered categories,
    3-5 labels each from six annotators, five who slip to a neighbouring category now and
    then and one who answers at random. Returns task, worker, label and the true category."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, 80)
    slips = [0.05, 0.1, 0.1, 0.15, 0.2, 1.0]  # the last one answers at random
    rows = []
    for t in range(truth.size):
        for w in rng.choice(len(slips), rng.integers(3, 6), replace=False):
            answer, slipped = truth[t], rng.random() < slips[w]
            if slipped and slips[w] == 1.0:
                answer = rng.integers(0, 5)
            elif slipped:
                answer = np.clip(answer + rng.choice([-1, 1]), 0, 4)
            rows.append((t, w, answer))
    task, worker, label = np.array(rows).T
    return task, worker, label, truth


def test_gold_the_crowd_gets_all_right_does_not_make_every_answer_sure() -> None:
    """The demo's bug: the blind fit got 26 of 26 gold tasks right, the likelihood then grows
    as T -> 0, and a temperature of 0.05 made every answer 1.0, split labels included."""
    task, worker, label, truth = triage_crowd()
    ds = DawidSkene().fit(task, worker, label, n_classes=5)
    gold = np.arange(26)
    assert np.array_equal(ds.labels_[gold], truth[gold])
    split = [t for t in range(26, 80) if np.unique(label[task == t]).size == np.sum(task == t)]
    assert ds.probas_[split].max() > 0.99  # three labels, no two alike, and DS is sure of one

    temperature = fit_temperature(ds.probas_[gold], truth[gold])
    calibrated = apply_temperature(ds.probas_, temperature)
    assert np.all(calibrated[split].max(axis=1) < 0.99)
    assert temperature >= 1
    # 26 of 26 right says the accuracy is about 27/28 (Laplace), not 1
    assert calibrated[gold, truth[gold]].mean() == pytest.approx(27 / 28, abs=1e-3)


def test_with_a_miss_the_likelihood_decides_and_may_sharpen() -> None:
    """Vote shares of 0.6 for answers right 9 times in 10 are under-confident: maximum
    likelihood sharpens them to 0.9 (mv and wawa need this; EM posteriors rarely do)."""
    probas = np.tile([[0.6, 0.4]], (10, 1))
    truth = np.r_[np.zeros(9, np.int64), 1]
    calibrated = apply_temperature(probas, fit_temperature(probas, truth))
    np.testing.assert_allclose(calibrated[:, 0], 0.9, atol=1e-4)


def test_no_miss_sharpens_to_the_rule_of_succession_only() -> None:
    """10 of 10 right where the posteriors said 0.6: the accuracy is about 11/12, not 1."""
    probas = np.tile([[0.6, 0.4]], (10, 1))
    calibrated = apply_temperature(probas, fit_temperature(probas, np.zeros(10, np.int64)))
    np.testing.assert_allclose(calibrated[:, 0], 11 / 12)


def test_gold_tied_with_another_class_does_not_drive_the_fit() -> None:
    """Vote shares: 5 gold tasks unanimous, 5 split one-one. No temperature moves a tie, so
    the 5 unanimous ones set it (6/7 of right answers); a 2-1 vote is tempered, not made sure."""
    probas = np.array([[1.0, 0.0]] * 5 + [[0.5, 0.5]] * 5)
    temperature = fit_temperature(probas, np.zeros(10, np.int64))
    assert apply_temperature(probas[:5], temperature)[:, 0] == pytest.approx(6 / 7)
    assert apply_temperature([[2 / 3, 1 / 3]], temperature)[0, 0] < 2 / 3
    assert fit_temperature([[0.5, 0.5]] * 10, np.zeros(10, np.int64)) == 1.0
