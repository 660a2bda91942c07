"""``auto``: method choice by cross-validated log-likelihood on gold, then a gold-clamped fit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quorum.truth import ESTIMATORS, METHODS, Auto, make_estimator
from quorum.truth.registry import gold_folds, out_of_fold_probas


def spammy_crowd(seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """Three good workers and four who always answer 0: majority vote is fooled, DS is not."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, 150)
    task = np.repeat(np.arange(150), 7)
    worker = np.tile(np.arange(7), 150)
    good = np.where(rng.random(task.size) < 0.9, truth[task], 1 - truth[task])
    label = np.where(worker < 3, good, 0)
    return task, worker, label, truth


def test_without_gold_auto_is_dawid_skene() -> None:
    task, worker, label, _ = spammy_crowd()
    auto = Auto().fit(task, worker, label)
    assert auto.method_ == "ds" and auto.scores_ == {}
    expected = ESTIMATORS["ds"]().fit(task, worker, label)
    assert np.array_equal(auto.labels_, expected.labels_)


def test_auto_picks_the_method_that_predicts_held_out_gold() -> None:
    task, worker, label, truth = spammy_crowd()
    gold = np.full(150, -1)
    gold[:40] = truth[:40]
    auto = Auto(candidates=("mv", "ds")).fit(task, worker, label, gold=gold)
    assert auto.method_ == "ds" and auto.scores_["ds"] > auto.scores_["mv"]
    assert np.array_equal(auto.labels_[:40], truth[:40])  # clamped
    assert 0.9 < auto.cv_accuracy_ <= 1.0 and auto.temperature_ > 0
    again = Auto(candidates=("mv", "ds")).fit(task, worker, label, gold=gold)
    assert again.scores_ == auto.scores_


def test_out_of_fold_posteriors_never_see_their_own_gold() -> None:
    task, worker, label, truth = spammy_crowd()
    gold = np.full(150, -1)
    gold[:30] = 1 - truth[:30]  # wrong on purpose: a leak would show up as certainty
    folds = gold_folds(gold, 3, random_state=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(30))
    probas = out_of_fold_probas("mv", task, worker, label, gold, folds, n_classes=2)
    held_out_gold = gold[np.concatenate(folds)]
    assert np.all(probas[np.arange(30), held_out_gold] < 1.0)


def test_registry_names() -> None:
    assert METHODS == ("mv", "wawa", "zbs", "ds", "ods", "glad", "mace", "auto")
    assert isinstance(make_estimator("auto"), Auto)
    with pytest.raises(ValueError, match="unknown method 'best'"):
        make_estimator("best")
    with pytest.raises(ValueError, match="candidates"):
        Auto(candidates=("ds", "best"))
