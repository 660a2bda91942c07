"""Agreement metrics against krippendorff, scikit-learn and statsmodels, to 1e-9."""

from __future__ import annotations

from typing import Any

import krippendorff
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

from quorum.truth import cohen_kappa, fleiss_kappa, krippendorff_alpha, percent_agreement

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)
QUICK = {"n_boot": 0}


@st.composite
def reliability_data(draw: st.DrawFn) -> tuple[Any, Any]:
    """(raters x units matrix of value codes with NaN for missing, sorted value domain)."""
    n_raters, n_units = draw(st.integers(2, 6)), draw(st.integers(1, 25))
    domain = np.array(sorted(draw(st.sets(st.integers(0, 50), min_size=2, max_size=5))), float)
    codes = draw(arrays(np.float64, (n_raters, n_units), elements=st.integers(0, domain.size - 1)))
    missing = draw(arrays(np.bool_, (n_raters, n_units)))
    return np.where(missing, np.nan, codes), domain


def as_labels(matrix: Any) -> tuple[Any, Any]:
    rater, unit = np.nonzero(~np.isnan(matrix))
    return unit, matrix[rater, unit].astype(np.intp)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@SETTINGS
@given(data=reliability_data())
def test_krippendorff_alpha_matches_the_krippendorff_package(level: str, data: Any) -> None:
    matrix, domain = data
    pairable = (~np.isnan(matrix)).sum(axis=0) >= 2
    values = matrix[:, pairable]
    assume(np.unique(values[~np.isnan(values)]).size >= 2)  # else alpha is 0/0
    coded = np.where(np.isnan(matrix), np.nan, domain[np.nan_to_num(matrix).astype(int)])
    expected = krippendorff.alpha(
        reliability_data=coded, value_domain=domain, level_of_measurement=level
    )
    unit, label = as_labels(matrix)
    got = krippendorff_alpha(
        unit, label, level=level, values=domain, n_classes=domain.size, **QUICK
    )
    assert got.value == pytest.approx(expected, abs=1e-9)


@SETTINGS
@given(
    table=st.integers(2, 5).flatmap(
        lambda raters: arrays(
            np.intp,
            st.tuples(st.integers(1, 30), st.just(raters)),
            elements=st.integers(0, 3),
        )
    )
)
def test_fleiss_kappa_matches_statsmodels(table: Any) -> None:
    n_units, n_raters = table.shape
    assume(np.unique(table).size >= 2)
    counts = np.stack([np.bincount(row, minlength=4) for row in table])
    unit = np.repeat(np.arange(n_units), n_raters)
    got = fleiss_kappa(unit, table.ravel(), n_classes=4, **QUICK)
    assert got.value == pytest.approx(statsmodels_fleiss(counts), abs=1e-9)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@SETTINGS
@given(
    pairs=st.integers(2, 40).flatmap(
        lambda n: st.tuples(
            arrays(np.intp, n, elements=st.integers(0, 4)),
            arrays(np.intp, n, elements=st.integers(0, 4)),
        )
    )
)
def test_cohen_kappa_matches_scikit_learn(weights: str | None, pairs: Any) -> None:
    first, second = pairs
    assume(np.unique(first).size >= 2 or np.unique(second).size >= 2)
    present, codes = np.unique(np.r_[first, second], return_inverse=True)
    n = first.size
    task, worker = np.r_[np.arange(n), np.arange(n)], np.r_[np.zeros(n, int), np.ones(n, int)]
    got = cohen_kappa(task, worker, codes, weights=weights, n_classes=present.size, **QUICK)
    assert got.value == pytest.approx(cohen_kappa_score(first, second, weights=weights), abs=1e-9)


@SETTINGS
@given(data=reliability_data())
def test_percent_agreement_is_the_mean_share_of_agreeing_pairs(data: Any) -> None:
    matrix, _ = data
    shares = []
    for column in matrix.T:
        values = column[~np.isnan(column)]
        if values.size >= 2:
            pairs = [(a, b) for i, a in enumerate(values) for j, b in enumerate(values) if i != j]
            shares.append(np.mean([a == b for a, b in pairs]))
    assume(shares)
    unit, label = as_labels(matrix)
    assert percent_agreement(unit, label, **QUICK).value == pytest.approx(np.mean(shares), abs=1e-9)


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 200)
    task = np.repeat(np.arange(200), 4)
    label = np.where(rng.random(800) < 0.8, truth[task], rng.integers(0, 3, 800))
    first = krippendorff_alpha(task, label, random_state=1)
    assert first == krippendorff_alpha(task, label, random_state=1)
    assert first != krippendorff_alpha(task, label, random_state=2)
    assert first.low < first.value < first.high
    assert first.n_units == 200 and first.confidence == 0.95
    narrow = krippendorff_alpha(task, label, confidence=0.5, random_state=1)
    assert first.low < narrow.low < narrow.high < first.high


def test_inputs_without_pairs_or_with_the_wrong_raters_raise() -> None:
    with pytest.raises(ValueError, match="enough labels"):
        krippendorff_alpha([0, 1], [0, 1])
    with pytest.raises(ValueError, match="exactly two workers"):
        cohen_kappa([0, 0, 0], [0, 1, 2], [0, 1, 0])
    with pytest.raises(ValueError, match="same task twice"):
        cohen_kappa([0, 0, 0], [0, 0, 1], [0, 1, 0])
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha([0, 0], [0, 1], level="cardinal")  # type: ignore[arg-type]
