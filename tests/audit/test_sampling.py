"""The audit statistics (quorum.truth.sampling): Wilson against statsmodels, sample sizes that
just reach the wanted width, allocations, and the coverage of both intervals in simulation."""

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from quorum.truth.sampling import (
    allocate,
    sample_size,
    stratified_accuracy,
    stratified_bootstrap,
    wilson_interval,
)

SETTINGS = settings(max_examples=80, deadline=None, derandomize=True)


@SETTINGS
@given(st.integers(0, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_statsmodels(counts: tuple[int, int]) -> None:
    successes, n = counts
    expected = proportion_confint(successes, n, alpha=0.05, method="wilson") if n else (0, 1)
    np.testing.assert_allclose(wilson_interval(successes, n), expected, atol=1e-12)


@pytest.mark.parametrize("expected", [0.5, 0.8, 0.95])
@pytest.mark.parametrize("width", [0.05, 0.1, 0.2])
def test_sample_size_is_the_smallest_that_reaches_the_width(width: float, expected: float) -> None:
    n = sample_size(width, expected=expected)

    def wide(m: int) -> float:
        low, high = wilson_interval(expected * m, m)
        return high - low

    assert wide(n) <= width < wide(n - 1)


def test_a_finite_delivery_needs_fewer_and_never_more_than_it_has() -> None:
    assert sample_size(0.1, population=200) < sample_size(0.1)
    assert sample_size(0.01, population=50) == 50
    assert sample_size(0.1, population=0) == 0


@SETTINGS
@given(st.lists(st.integers(0, 500), min_size=1, max_size=8), st.integers(0, 600))
def test_allocation_is_proportional_within_bounds(sizes: list[int], n: int) -> None:
    counts = allocate(sizes, n, minimum=2)
    size = np.array(sizes)
    assert np.all(counts <= size) and np.all(counts >= np.minimum(size, 2))
    assert counts.sum() >= min(n, size.sum())
    if size.sum():
        share = size * min(n, size.sum()) / size.sum()
        assert np.all(counts >= np.floor(share))  # nobody gets less than their share


def test_estimate_of_a_fully_checked_delivery_is_exact() -> None:
    estimate = stratified_accuracy([10, 5], [10, 5], [9, 5])
    assert estimate.low == estimate.value == estimate.high == pytest.approx(14 / 15)


def test_bootstrap_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="stratum"):
        stratified_bootstrap([0, 3], [True, False], [10, 10])
    with pytest.raises(ValueError, match="successes"):
        stratified_accuracy([10], [5], [6])


@dataclass(frozen=True)
class Scenario:
    size: int
    class_shares: tuple[float, ...]
    class_accuracy: tuple[float, ...]  # the vendor's chance of being right, by the class it gave
    width: float


SCENARIOS = [
    Scenario(2000, (0.6, 0.3, 0.1), (0.95, 0.8, 0.6), 0.1),
    Scenario(1000, (0.7, 0.2, 0.1), (0.99, 0.97, 0.9), 0.1),
    Scenario(800, (0.8, 0.2), (0.99, 0.95), 0.2),  # near 1: the plain percentile bootstrap fails
    Scenario(3000, (0.4, 0.4, 0.2), (0.7, 0.6, 0.5), 0.15),
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_intervals_cover_the_true_accuracy_of_the_delivery(scenario: Scenario) -> None:
    """A simulated vendor with known accuracy per class; the truth is the share of its labels
    that are right in this very delivery (what an audit estimates). 95% intervals must cover it
    at least 93% of the time."""
    rng = np.random.default_rng(7)
    runs, wilson, bootstrap = 500, 0, 0
    for run in range(runs):
        given_class = rng.choice(len(scenario.class_shares), scenario.size, p=scenario.class_shares)
        right = rng.random(scenario.size) < np.array(scenario.class_accuracy)[given_class]
        sizes = np.bincount(given_class, minlength=len(scenario.class_shares))
        n = sample_size(scenario.width, expected=0.8, population=scenario.size)
        drawn = allocate(sizes, n)
        stratum = np.repeat(np.arange(sizes.size), drawn)
        checked = np.concatenate(
            [
                right[rng.choice(np.flatnonzero(given_class == h), k, replace=False)]
                for h, k in enumerate(drawn)
            ]
        )
        truth = right.mean()
        estimate = stratified_accuracy(sizes, drawn, np.bincount(stratum, checked, sizes.size))
        low, high = stratified_bootstrap(stratum, checked, sizes, n_boot=1000, random_state=run)
        wilson += estimate.low <= truth <= estimate.high
        bootstrap += low <= truth <= high
    assert wilson / runs >= 0.93
    assert bootstrap / runs >= 0.93
