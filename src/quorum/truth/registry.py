"""Estimators by CLI name, and ``auto``: the one that cross-validates best on gold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, Self

import numpy as np
import numpy.typing as npt

from quorum.truth._core import NO_GOLD, FloatArray, IntArray, as_crowd
from quorum.truth.calibration import apply_temperature, fit_temperature, log_likelihood
from quorum.truth.dawid_skene import DawidSkene, OneCoinDawidSkene
from quorum.truth.glad import GLAD
from quorum.truth.mace import MACE
from quorum.truth.majority import MajorityVote, Wawa, ZeroBasedSkill


class Estimator(Protocol):
    """What every label estimator offers (STYLE section 8)."""

    labels_: IntArray
    probas_: FloatArray
    skills_: FloatArray
    n_iter_: int
    converged_: bool

    def fit(
        self,
        task: npt.ArrayLike,
        worker: npt.ArrayLike,
        label: npt.ArrayLike,
        *,
        gold: npt.ArrayLike | None = None,
        weight: npt.ArrayLike | None = None,
        n_tasks: int | None = None,
        n_workers: int | None = None,
        n_classes: int | None = None,
    ) -> Self: ...


ESTIMATORS: dict[str, Callable[[], Estimator]] = {
    "mv": MajorityVote,
    "wawa": Wawa,
    "zbs": ZeroBasedSkill,
    "ds": DawidSkene,
    "ods": OneCoinDawidSkene,
    "glad": GLAD,
    "mace": MACE,
}
"""CLI method names to estimator classes (all with default hyperparameters)."""

METHODS: tuple[str, ...] = (*ESTIMATORS, "auto")


def make_estimator(method: str) -> Estimator:
    """A new, unfitted estimator for a CLI method name (``auto`` included).

    >>> type(make_estimator("ds")).__name__
    'DawidSkene'
    """
    if method == "auto":
        return Auto()
    if method not in ESTIMATORS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return ESTIMATORS[method]()


def gold_folds(gold: IntArray, n_folds: int, random_state: int | None) -> list[IntArray]:
    """Gold tasks split into at most ``n_folds`` shuffled, near-equal folds (seeded)."""
    tasks = np.flatnonzero(gold != NO_GOLD)
    np.random.default_rng(random_state).shuffle(tasks)
    return [fold for fold in np.array_split(tasks, max(min(n_folds, tasks.size), 1)) if fold.size]


def out_of_fold_probas(
    method: str,
    task: npt.ArrayLike,
    worker: npt.ArrayLike,
    label: npt.ArrayLike,
    gold: IntArray,
    folds: list[IntArray],
    *,
    weight: npt.ArrayLike | None = None,
    n_workers: int | None = None,
    n_classes: int | None = None,
) -> FloatArray:
    """Posteriors of the gold tasks, each from a fit that saw the other folds' gold only.

    Rows follow ``np.concatenate(folds)``.
    """
    rows = []
    for fold in folds:
        hidden = gold.copy()
        hidden[fold] = NO_GOLD
        fitted = make_estimator(method).fit(
            task, worker, label, gold=hidden, weight=weight,
            n_tasks=gold.size, n_workers=n_workers, n_classes=n_classes,
        )  # fmt: skip
        rows.append(fitted.probas_[fold])
    return np.concatenate(rows)


class Auto:
    r"""Pick the method whose gold-clamped posteriors best predict held-out gold.

    For each candidate, ``n_folds``-fold cross-validation over the gold tasks gives every gold
    task a posterior from a fit that did not see its gold; the candidate with the highest mean
    log-likelihood of the gold labels, after a temperature fitted on those same posteriors,
    wins (ties: the earlier candidate). It is then refitted with all the gold clamped.
    Without gold (or with fewer than two gold tasks) it is Dawid-Skene.

    Fitted: ``method_``, ``estimator_``, ``scores_`` (method -> cross-validated
    log-likelihood), ``temperature_`` (for :func:`~quorum.truth.calibration.apply_temperature`
    on ``probas_``), ``cv_accuracy_`` (the chosen method's out-of-fold accuracy on gold), and
    the chosen estimator's ``labels_``, ``probas_``, ``skills_``, ``n_iter_``, ``converged_``.

    >>> task, worker = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3], [0, 1, 2] * 4
    >>> label = [1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    >>> Auto().fit(task, worker, label).method_  # no gold: Dawid-Skene
    'ds'
    >>> auto = Auto(candidates=("ds", "mv")).fit(task, worker, label, gold=[1, 0, -1, 0])
    >>> sorted(auto.scores_), auto.labels_.tolist()
    (['ds', 'mv'], [1, 0, 1, 0])
    """

    method_: str
    estimator_: Estimator
    scores_: dict[str, float]
    temperature_: float
    cv_accuracy_: float
    labels_: IntArray
    probas_: FloatArray
    skills_: FloatArray
    n_iter_: int
    converged_: bool

    def __init__(
        self,
        candidates: tuple[str, ...] = ("ds", "ods", "glad", "mace", "zbs", "wawa", "mv"),
        n_folds: int = 5,
        random_state: int | None = 0,
    ) -> None:
        unknown = set(candidates) - set(ESTIMATORS)
        if unknown or not candidates:
            raise ValueError(f"candidates must be among {', '.join(ESTIMATORS)}: {unknown}")
        self.candidates = candidates
        self.n_folds = n_folds
        self.random_state = random_state

    def fit(
        self,
        task: npt.ArrayLike,
        worker: npt.ArrayLike,
        label: npt.ArrayLike,
        *,
        gold: npt.ArrayLike | None = None,
        weight: npt.ArrayLike | None = None,
        n_tasks: int | None = None,
        n_workers: int | None = None,
        n_classes: int | None = None,
    ) -> Self:
        crowd = as_crowd(
            task, worker, label, gold=gold, weight=weight,
            n_tasks=n_tasks, n_workers=n_workers, n_classes=n_classes,
        )  # fmt: skip
        sizes = {"n_workers": crowd.n_workers, "n_classes": crowd.n_classes}
        folds = gold_folds(crowd.gold, self.n_folds, self.random_state)
        self.scores_, self.temperature_, self.cv_accuracy_ = {}, 1.0, float("nan")
        self.method_ = (
            "ds"
            if len(folds) < 2
            else self._choose(crowd.gold, folds, task, worker, label, weight, sizes)
        )
        self.estimator_ = make_estimator(self.method_).fit(
            task, worker, label, gold=crowd.gold, weight=weight, n_tasks=crowd.n_tasks, **sizes
        )
        for name in ("labels_", "probas_", "skills_", "n_iter_", "converged_"):
            setattr(self, name, getattr(self.estimator_, name))
        return self

    def _choose(
        self,
        gold: IntArray,
        folds: list[IntArray],
        task: npt.ArrayLike,
        worker: npt.ArrayLike,
        label: npt.ArrayLike,
        weight: npt.ArrayLike | None,
        sizes: dict[str, int],
    ) -> str:
        truth = gold[np.concatenate(folds)]
        best: tuple[float, str] | None = None
        for method in self.candidates:
            probas = out_of_fold_probas(
                method, task, worker, label, gold, folds, weight=weight, **sizes
            )
            temperature = fit_temperature(probas, truth)
            score = log_likelihood(apply_temperature(probas, temperature), truth)
            self.scores_[method] = score
            # NOTE: a tie within rounding keeps the earlier candidate: when every candidate gets
            # every held-out gold task right, calibration gives all of them the same gold mean
            # (fit_temperature), and the last digits would pick the winner.
            if best is None or score > best[0] + 1e-9 * max(1.0, abs(best[0])):
                best = (score, method)
                self.temperature_ = temperature
                self.cv_accuracy_ = float(np.mean(probas.argmax(axis=1) == truth))
        assert best is not None
        return best[1]
