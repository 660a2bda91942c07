"""Properties every estimator keeps, on random crowds (hypothesis)."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quorum.truth import (
    ESTIMATORS,
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    apply_temperature,
    fit_temperature,
    posterior,
)

Crowd = tuple[Any, Any, Any, int]
FAST = settings(max_examples=25, deadline=None, derandomize=True)  # same examples every run


@st.composite
def crowds(draw: st.DrawFn, max_tasks: int = 20) -> Crowd:
    """Every task has a label; sizes, workers and labels are random."""
    n_tasks = draw(st.integers(1, max_tasks))
    n_workers = draw(st.integers(1, 6))
    n_classes = draw(st.integers(2, 4))
    extra = draw(st.integers(0, 3 * n_tasks))
    more_tasks = draw(arrays(np.intp, extra, elements=st.integers(0, n_tasks - 1)))
    task = np.concatenate([np.arange(n_tasks), more_tasks])
    worker = draw(arrays(np.intp, task.size, elements=st.integers(0, n_workers - 1)))
    label = draw(arrays(np.intp, task.size, elements=st.integers(0, n_classes - 1)))
    return task, worker, label, n_classes


def fit(method: str, crowd: Crowd, **kwargs: Any) -> Any:
    task, worker, label, n_classes = crowd
    return ESTIMATORS[method]().fit(task, worker, label, n_classes=n_classes, **kwargs)


def decisive(probas: Any, margin: float = 1e-7) -> Any:
    """Tasks whose top two classes differ by more than rounding (argmax is stable there)."""
    ordered = np.sort(probas, axis=1)
    return ordered[:, -1] - ordered[:, -2] > margin


@pytest.mark.parametrize("method", sorted(ESTIMATORS))
@FAST
@given(crowd=crowds())
def test_posteriors_are_distributions_and_labels_their_argmax(method: str, crowd: Crowd) -> None:
    fitted = fit(method, crowd)
    assert fitted.probas_.shape == (crowd[0].max() + 1, crowd[3])
    assert np.all(fitted.probas_ >= 0) and np.all(fitted.probas_ <= 1 + 1e-12)
    np.testing.assert_allclose(fitted.probas_.sum(axis=1), 1.0, rtol=1e-9)
    assert np.array_equal(fitted.labels_, fitted.probas_.argmax(axis=1))


@pytest.mark.parametrize("method", sorted(ESTIMATORS))
@FAST
@given(crowd=crowds(), data=st.data())
def test_inputs_are_not_mutated_and_fits_are_deterministic(
    method: str, crowd: Crowd, data: st.DataObject
) -> None:
    task, worker, label, n_classes = crowd
    n_tasks = int(task.max()) + 1
    gold = data.draw(arrays(np.intp, n_tasks, elements=st.integers(-1, n_classes - 1)))
    weight = data.draw(arrays(np.float64, task.size, elements=st.floats(0.5, 2.0)))
    inputs = [task, worker, label, gold, weight]
    before = [array.copy() for array in inputs]
    first = fit(method, crowd, gold=gold, weight=weight)
    second = fit(method, crowd, gold=gold, weight=weight)
    for array, copy in zip(inputs, before, strict=True):
        assert np.array_equal(array, copy)
    assert np.array_equal(first.probas_, second.probas_)


@pytest.mark.parametrize("method", sorted(ESTIMATORS))
@FAST
@given(crowd=crowds())
def test_unit_weights_give_exactly_the_unweighted_result(method: str, crowd: Crowd) -> None:
    unweighted = fit(method, crowd)
    weighted = fit(method, crowd, weight=np.ones(crowd[0].size))
    assert np.array_equal(unweighted.probas_, weighted.probas_)


@pytest.mark.parametrize("method", sorted(ESTIMATORS))
@FAST
@given(crowd=crowds(), data=st.data())
def test_gold_is_clamped(method: str, crowd: Crowd, data: st.DataObject) -> None:
    n_tasks = int(crowd[0].max()) + 1
    gold = data.draw(arrays(np.intp, n_tasks, elements=st.integers(-1, crowd[3] - 1)))
    fitted = fit(method, crowd, gold=gold)
    known = gold >= 0
    assert np.array_equal(fitted.labels_[known], gold[known])
    assert np.all(fitted.probas_[known].max(axis=1) == 1.0)


@pytest.mark.parametrize("method", sorted(ESTIMATORS))
@FAST
@given(crowd=crowds(), data=st.data())
def test_permuting_task_and_worker_ids_permutes_the_output(
    method: str, crowd: Crowd, data: st.DataObject
) -> None:
    task, worker, label, n_classes = crowd
    n_tasks, n_workers = int(task.max()) + 1, int(worker.max()) + 1
    task_perm = np.asarray(data.draw(st.permutations(range(n_tasks))), dtype=np.intp)
    worker_perm = np.asarray(data.draw(st.permutations(range(n_workers))), dtype=np.intp)
    rows = np.asarray(data.draw(st.permutations(range(task.size))), dtype=np.intp)
    renumbered = (task_perm[task][rows], worker_perm[worker][rows], label[rows], n_classes)
    original, permuted = fit(method, crowd), fit(method, renumbered)
    np.testing.assert_allclose(permuted.probas_[task_perm], original.probas_, atol=1e-6)
    stable = decisive(original.probas_)
    assert np.array_equal(permuted.labels_[task_perm][stable], original.labels_[stable])


@FAST
@given(crowd=crowds(), data=st.data())
def test_calibration_on_gold_without_a_miss_never_gives_certainty(
    crowd: Crowd, data: st.DataObject
) -> None:
    """Gold the blind fit gets all right (often drawn so) leaves the gold answers' mean
    probability at (n + 1) / (n + 2) at most, tempering whenever the posteriors were surer.
    Whenever the temperature is 1 or more, no task gets surer, one whose labels all disagree
    included."""
    task, worker, label, n_classes = crowd
    ds = DawidSkene().fit(task, worker, label, n_classes=n_classes)
    n_tasks = ds.probas_.shape[0]
    guess = data.draw(arrays(np.intp, n_tasks, elements=st.integers(0, n_classes - 1)))
    agrees = data.draw(arrays(np.bool_, n_tasks))
    known = data.draw(arrays(np.bool_, n_tasks))
    gold = np.where(agrees, ds.labels_, guess)[known]
    temperature = fit_temperature(ds.probas_[known], gold)
    calibrated = apply_temperature(ds.probas_, temperature)
    assert 0.05 <= temperature <= 20.0
    on_gold = calibrated[known][np.arange(gold.size), gold]
    if gold.size and np.all(on_gold >= calibrated[known].max(axis=1)):  # no miss
        laplace = (gold.size + 1) / (gold.size + 2)
        assert on_gold.mean() <= laplace + 1e-9
        raw = apply_temperature(ds.probas_[known], 1.0)[np.arange(gold.size), gold]
        assert temperature >= 1 or raw.mean() < laplace
    if temperature >= 1:
        raw_top, top = ds.probas_.max(axis=1), calibrated.max(axis=1)
        distinct = np.unique(np.c_[task, label], axis=0)[:, 0]  # a task per distinct label
        disagree = np.bincount(distinct, minlength=n_tasks) == np.bincount(task, minlength=n_tasks)
        assert np.all(top[disagree] <= raw_top[disagree] + 1e-12)
        assert np.all(top <= raw_top + 1e-12)


FIXED_ITERATIONS = {"tol": -np.inf, "max_iter": 30}
"""EM for exactly 30 iterations: a ``tol`` test on nearly equal losses could stop one of two
fits that should agree an iteration before the other."""


@FAST
@given(crowd=crowds())
def test_dawid_skene_copies_of_every_task_get_the_original_labels(crowd: Crowd) -> None:
    """Twice the tasks doubles every count, which the M-step normalises away.

    Exactly so but for crowd-kit's 1e-10 floor on counts: in crowds a worker separates
    perfectly, counts of 1e-11 get floored, doubling moves them against the floor, and the
    posteriors of a borderline task can drift by a few points; labels of clear tasks stay.
    """
    task, worker, label, n_classes = crowd
    n_tasks = int(task.max()) + 1
    model = partial(DawidSkene, **FIXED_ITERATIONS)
    once = model().fit(task, worker, label, n_classes=n_classes)
    twice = model().fit(
        np.r_[task, task + n_tasks], np.r_[worker, worker], np.r_[label, label], n_classes=n_classes
    )
    clear = decisive(once.probas_, margin=0.2)
    for copy in (slice(0, n_tasks), slice(n_tasks, 2 * n_tasks)):
        assert np.abs(twice.probas_[copy] - once.probas_).mean() < 0.02
        assert np.array_equal(twice.labels_[copy][clear], once.labels_[clear])


@pytest.mark.parametrize("model", [partial(DawidSkene, **FIXED_ITERATIONS), MajorityVote])
@FAST
@given(crowd=crowds())
def test_duplicated_workers_at_half_weight_change_nothing(model: Any, crowd: Crowd) -> None:
    """Each worker and an identical copy, each label at weight 1/2, is the original crowd.

    With full weight the copies count the evidence twice: Dawid-Skene's maximum-likelihood
    fit then moves, and it can relabel ambiguous tasks (docs/truth.md, "Duplicated workers").
    (One-coin fits often reach skill 1, where the 1e-10 floor decides the rest: left out.)
    """
    task, worker, label, n_classes = crowd
    n_workers = int(worker.max()) + 1
    original = model().fit(task, worker, label, n_classes=n_classes)
    doubled = model().fit(
        np.r_[task, task],
        np.r_[worker, worker + n_workers],
        np.r_[label, label],
        weight=np.full(2 * task.size, 0.5),
        n_classes=n_classes,
    )
    np.testing.assert_allclose(doubled.probas_, original.probas_, atol=1e-3)  # the 1e-10 floor
    stable = decisive(original.probas_, margin=1e-2)
    assert np.array_equal(doubled.labels_[stable], original.labels_[stable])


@pytest.mark.parametrize("model", [DawidSkene, OneCoinDawidSkene, MajorityVote])
@FAST
@given(crowd=crowds(), data=st.data())
def test_zero_weight_is_like_leaving_the_label_out(
    model: Any, crowd: Crowd, data: st.DataObject
) -> None:
    task, worker, label, n_classes = crowd
    n_tasks, n_workers = int(task.max()) + 1, int(worker.max()) + 1
    keep = data.draw(arrays(np.bool_, task.size))
    keep[:n_tasks] = True  # every task keeps a label
    sizes = {"n_tasks": n_tasks, "n_workers": n_workers, "n_classes": n_classes}
    dropped = model().fit(task[keep], worker[keep], label[keep], **sizes)
    zeroed = model().fit(task, worker, label, weight=keep.astype(float), **sizes)
    np.testing.assert_allclose(zeroed.probas_, dropped.probas_, atol=1e-9)


@FAST
@given(crowd=crowds())
def test_predict_proba_reuses_the_fitted_confusions(crowd: Crowd) -> None:
    task, worker, label, n_classes = crowd
    ds = DawidSkene().fit(task, worker, label, n_classes=n_classes)
    again = ds.predict_proba(task, worker, label)
    direct = posterior(task, worker, label, ds.confusions_, ds.priors_)
    np.testing.assert_allclose(again, direct)
    np.testing.assert_allclose(again.sum(axis=1), 1.0)


def test_posterior_of_unlabelled_tasks_and_unknown_workers() -> None:
    ds = DawidSkene().fit([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1], [0, 0, 1, 1, 0, 1])
    probas = ds.predict_proba([1, 1], [0, 7], [0, 0], n_tasks=3)  # worker 7 is new
    np.testing.assert_allclose(probas[0], ds.priors_ / ds.priors_.sum())  # task 0: no labels
    assert probas[1].argmax() == 0


def test_one_coin_posterior_matches_the_closed_form() -> None:
    confusions = np.array([[[0.8, 0.2], [0.2, 0.8]]])
    probas = posterior([0, 0], [0, 0], [1, 1], confusions, [0.5, 0.5])
    np.testing.assert_allclose(probas, [[0.2**2 / (0.2**2 + 0.8**2), 0.8**2 / (0.2**2 + 0.8**2)]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": [0, -1], "worker": [0, 0], "label": [0, 0]}, "task codes must be >= 0"),
        ({"task": [0, 1], "worker": [0], "label": [0, 0]}, "lengths differ"),
        ({"task": [0.5], "worker": [0], "label": [0]}, "integer codes"),
        ({"task": [0], "worker": [0], "label": [3], "n_classes": 2}, "n_classes=2"),
        ({"task": [0], "worker": [0], "label": [0], "weight": [-1.0]}, "weight"),
        ({"task": [0], "worker": [0], "label": [0], "gold": [5], "n_classes": 2}, "gold codes"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs: dict[str, Any], message: str) -> None:
    arrays_ = {k: kwargs.pop(k) for k in ("task", "worker", "label")}
    with pytest.raises(ValueError, match=message):
        DawidSkene().fit(arrays_["task"], arrays_["worker"], arrays_["label"], **kwargs)


@pytest.mark.parametrize("method", sorted(ESTIMATORS))
def test_empty_and_one_class_crowds(method: str) -> None:
    empty = np.zeros(0, dtype=np.intp)
    assert ESTIMATORS[method]().fit(empty, empty, empty).labels_.size == 0
    fitted = ESTIMATORS[method]().fit([0, 0, 1], [0, 1, 0], [0, 0, 0])
    assert fitted.labels_.tolist() == [0, 0]
    np.testing.assert_allclose(fitted.probas_, 1.0)
