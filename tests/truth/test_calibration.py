"""Temperature scaling and expected calibration error."""

from __future__ import annotations

import numpy as np
import pytest

from quorum.truth import apply_temperature, expected_calibration_error, fit_temperature


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
