"""The audit estimators (quorum.truth.sampling) when the sample is only partly checked: a class
with no checked label has an unknown accuracy, so the interval of the whole delivery must make
room for it being all wrong or all right."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quorum.truth.sampling import (
    allocate,
    sample_size,
    stratified_accuracy,
    stratified_bootstrap,
)

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)
Strata = tuple[list[int], list[int], list[int]]


@st.composite
def strata(draw: st.DrawFn) -> Strata:
    """Labels per class, how many of them were checked and how many of those were right; at
    least one class has a checked label, and some classes may have none."""
    population = draw(st.lists(st.integers(1, 300), min_size=1, max_size=6))
    sampled = [draw(st.integers(0, size)) for size in population]
    if not any(sampled):
        sampled[draw(st.integers(0, len(population) - 1))] = 1
    successes = [draw(st.integers(0, n)) for n in sampled]
    return population, sampled, successes


def extremes(
    population: list[int], sampled: list[int], successes: list[int]
) -> tuple[float, float]:
    """The delivery's accuracy if the checked classes are as accurate as their checked labels and
    the unchecked ones are all wrong, or all right."""
    big_n, n, x = (np.array(a, np.float64) for a in (population, sampled, successes))
    seen = n > 0
    known = float(big_n[seen] @ (x[seen] / n[seen]))
    return known / big_n.sum(), (known + big_n[~seen].sum()) / big_n.sum()


def test_two_checked_labels_do_not_make_the_accuracy_of_a_hundred_exact() -> None:
    """The reported bug: a class of 2 labels fully checked, a class of 100 not at all."""
    estimate = stratified_accuracy([100, 2], [0, 2], [0, 2])
    assert estimate.low <= 2 / 102 and estimate.high == 1.0
    assert (estimate.value, estimate.covered) == (1.0, 2)  # the accuracy of the checked class
    low, high = stratified_bootstrap([1, 1], [True, True], [100, 2])
    assert low <= 2 / 102 and high == 1.0


@SETTINGS
@given(strata())
def test_the_interval_holds_every_accuracy_the_unchecked_classes_allow(counts: Strata) -> None:
    worst, best = extremes(*counts)
    estimate = stratified_accuracy(*counts)
    assert estimate.low <= worst + 1e-12 and estimate.high >= best - 1e-12
    population, sampled, _ = counts
    unchecked = sum(size for size, n in zip(population, sampled, strict=True) if n == 0)
    assert estimate.high - estimate.low >= unchecked / sum(population) - 1e-12


@SETTINGS
@given(strata())
def test_the_bootstrap_interval_holds_them_too(counts: Strata) -> None:
    population, sampled, successes = counts
    stratum = np.repeat(np.arange(len(population)), sampled)
    right = np.concatenate([np.arange(n) < x for n, x in zip(sampled, successes, strict=True)])
    worst, best = extremes(*counts)
    low, high = stratified_bootstrap(stratum, right, population, n_boot=200)
    assert low <= worst + 1e-12 and high >= best - 1e-12


@SETTINGS
@given(strata())
def test_the_estimate_is_the_checked_classes_and_says_how_many_labels_they_hold(
    counts: Strata,
) -> None:
    population, sampled, successes = counts
    seen = [(size, x / n) for size, n, x in zip(*counts, strict=True) if n]
    covered = sum(size for size, _ in seen)
    estimate = stratified_accuracy(population, sampled, successes)
    assert estimate.covered == covered and estimate.n == sum(sampled)
    assert estimate.value == pytest.approx(sum(size * p for size, p in seen) / covered)
    assert estimate.low <= estimate.value <= estimate.high


def test_a_complete_sample_gives_what_it_always_gave() -> None:
    """Every class has a checked label: nothing to bound, the figures of before (pinned)."""
    estimate = stratified_accuracy([700, 300], [30, 20], [27, 15])
    assert (estimate.value, estimate.covered, estimate.n) == (pytest.approx(0.855), 1000, 50)
    assert (estimate.low, estimate.high) == (0.7330206826703571, 0.9268129130166227)
    assert estimate.n_effective == pytest.approx(50.5263157894737)
    right = [True] * 27 + [False] * 3 + [True] * 15 + [False] * 5
    stratum = [0] * 30 + [1] * 20
    interval = stratified_bootstrap(stratum, right, [700, 300])
    assert interval == (0.7526036866359447, 0.9442703533026113)


def test_intervals_read_mid_sample_cover_the_delivery() -> None:
    """Sampled tasks are checked one class after another (import order); a report read at any
    point must still cover the delivery's true accuracy 95% of the time. The class checked
    first is small and nearly always right, the big ones are poor: an interval over the checked
    classes alone misses the truth."""
    rng = np.random.default_rng(11)
    shares, accuracy, size = (0.1, 0.6, 0.3), np.array([0.99, 0.7, 0.85]), 1000
    stops = (0.05, 0.15, 0.4, 0.7, 1.0)
    runs, covered = 300, np.zeros((2, len(stops)))
    for run in range(runs):
        given_class = rng.choice(len(shares), size, p=shares)
        right = rng.random(size) < accuracy[given_class]
        sizes = np.bincount(given_class, minlength=len(shares))
        drawn = allocate(sizes, sample_size(0.1, expected=0.8, population=size))
        stratum = np.repeat(np.arange(sizes.size), drawn)  # handed out class by class
        checked = np.concatenate(
            [
                right[rng.choice(np.flatnonzero(given_class == h), k, replace=False)]
                for h, k in enumerate(drawn)
            ]
        )
        for at, stop in enumerate(stops):
            k = max(1, round(stop * stratum.size))
            n = np.bincount(stratum[:k], minlength=sizes.size)
            x = np.bincount(stratum[:k], checked[:k], sizes.size)
            estimate = stratified_accuracy(sizes, n, x)
            low, high = stratified_bootstrap(
                stratum[:k], checked[:k], sizes, n_boot=300, random_state=run
            )
            covered[0, at] += estimate.low <= right.mean() <= estimate.high
            covered[1, at] += low <= right.mean() <= high
    assert np.all(covered / runs >= 0.93), covered / runs
