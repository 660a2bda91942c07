"""Bradley-Terry: the maximum-likelihood scores, ties (Davidson), and input checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quorum.truth import BradleyTerry


def comparisons(strength: Any, rounds: int, tie: float, seed: int) -> tuple[Any, Any, Any]:
    """Every pair compared ``rounds`` times under Davidson's model."""
    rng = np.random.default_rng(seed)
    left, right = np.triu_indices(strength.size, k=1)
    left, right = np.tile(left, rounds), np.tile(right, rounds)
    p_left, p_right = strength[left], strength[right]
    p_tie = tie * np.sqrt(p_left * p_right)
    draw = rng.random(left.size) * (p_left + p_right + p_tie)
    winner = np.where(draw < p_left, left, np.where(draw < p_left + p_right, right, -1))
    return left, right, winner


def minorize_maximize(left: Any, right: Any, winner: Any, n_items: int) -> Any:
    """Hunter (2004)'s MM iteration for plain Bradley-Terry: an independent reference."""
    wins = np.bincount(winner, minlength=n_items).astype(float)
    strength = np.ones(n_items)
    for _ in range(5000):
        share = 1.0 / (strength[left] + strength[right])
        games = np.bincount(left, share, n_items) + np.bincount(right, share, n_items)
        strength = wins / games
        strength /= strength.sum()
    return strength


def test_scores_are_the_bradley_terry_maximum_likelihood() -> None:
    left, right, winner = comparisons(np.array([1.0, 2.0, 4.0, 0.5, 3.0]), 30, 0.0, seed=0)
    fitted = BradleyTerry(l2=0.0).fit(left, right, winner)
    np.testing.assert_allclose(fitted.scores_, minorize_maximize(left, right, winner, 5), rtol=1e-4)
    assert fitted.tie_ == 0.0 and fitted.converged_


def test_davidson_ties_recover_the_tie_parameter() -> None:
    strength = np.array([1.0, 2.0, 4.0, 0.5, 3.0, 1.5])
    left, right, winner = comparisons(strength, 400, 0.8, seed=1)
    fitted = BradleyTerry().fit(left, right, winner)
    assert fitted.tie_ == pytest.approx(0.8, abs=0.08)
    np.testing.assert_allclose(fitted.scores_, strength / strength.sum(), rtol=0.1)
    probabilities = fitted.predict_proba([2], [3])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities[0, 0] > probabilities[0, 1]


def test_an_item_that_never_wins_keeps_a_finite_score() -> None:
    fitted = BradleyTerry().fit([0, 0, 1], [1, 2, 2], [0, 0, 1])
    assert np.all(np.isfinite(fitted.scores_)) and fitted.scores_.argmin() == 2


def test_inputs_are_not_mutated() -> None:
    left, right, winner = (np.array(a) for a in ([0, 1, 2], [1, 2, 0], [0, -1, 2]))
    copies = [a.copy() for a in (left, right, winner)]
    BradleyTerry().fit(left, right, winner)
    assert all(np.array_equal(a, b) for a, b in zip((left, right, winner), copies, strict=True))


@pytest.mark.parametrize(
    ("left", "right", "winner", "message"),
    [
        ([0], [0], [0], "compared with itself"),
        ([0], [1], [2], "neither left, right nor -1"),
        ([0, 1], [1], [0], "differ in length"),
    ],
)
def test_bad_comparisons_raise(left: Any, right: Any, winner: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BradleyTerry().fit(left, right, winner)
