"""Vote-counting estimators: majority vote, Wawa and zero-based skill."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from quorum.truth._core import (
    Crowd,
    FloatArray,
    IntArray,
    argmax,
    as_crowd,
    clamp_gold,
    normalize_votes,
    weighted_votes,
)


@dataclass(frozen=True)
class _Answers:
    """Each distinct (task, worker, label) once, with the largest weight it was given.

    crowd-kit scores a worker's accuracy on distinct answers (``get_accuracy`` drops exact
    duplicates) while it counts every duplicate as a vote; we keep both conventions.
    """

    task: IntArray
    worker: IntArray
    label: IntArray
    weight: FloatArray | None

    @classmethod
    def distinct(cls, crowd: Crowd) -> _Answers:
        n_w, n_k = crowd.n_workers, crowd.n_classes
        key = (crowd.task * n_w + crowd.worker) * n_k + crowd.label
        if crowd.weight is None:
            keys, weight = np.sort(key), None
            keep = np.ones(keys.size, dtype=bool)
            keep[1:] = keys[1:] != keys[:-1]
            keys = keys[keep]
        else:
            order = np.argsort(key, kind="stable")
            sorted_keys = key[order]
            starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
            keys = sorted_keys[starts]
            weight = np.maximum.reduceat(crowd.weight[order], starts) if starts.size else None
        return cls(keys // (n_w * n_k), keys // n_k % n_w, keys % n_k, weight)

    def accuracy(self, reference: IntArray, n_workers: int) -> FloatArray:
        """Per worker, the weighted share of answers equal to ``reference[task]``; NaN if none."""
        correct = (self.label == reference[self.task]).astype(np.float64)
        if self.weight is not None:
            correct *= self.weight
        hits = np.bincount(self.worker, weights=correct, minlength=n_workers)
        total = np.bincount(self.worker, weights=self.weight, minlength=n_workers)
        accuracy: FloatArray = np.divide(
            hits, total, out=np.full(n_workers, np.nan), where=total > 0
        )
        return accuracy


def _vote_posterior(crowd: Crowd, skills: FloatArray | None) -> FloatArray:
    return clamp_gold(normalize_votes(weighted_votes(crowd, skills)), crowd.gold)


def _skill_or_mean(skills: FloatArray, n_workers: int) -> FloatArray:
    """Skills for worker codes ``0..n_workers-1``: unknown or NaN ones get the mean skill."""
    known = skills[np.isfinite(skills)]
    fill = float(known.mean()) if known.size else 1.0
    out = np.full(n_workers, fill)
    n = min(n_workers, skills.size)
    out[:n] = np.where(np.isfinite(skills[:n]), skills[:n], fill)
    return out


class _VoteEstimator:
    """Shared ``predict_proba`` for the estimators whose posterior is a skill-weighted vote."""

    n_classes_: int
    skills_: FloatArray
    _weighs_by_skill = True

    def predict_proba(
        self,
        task: npt.ArrayLike,
        worker: npt.ArrayLike,
        label: npt.ArrayLike,
        *,
        weight: npt.ArrayLike | None = None,
        n_tasks: int | None = None,
    ) -> FloatArray:
        """Posterior of the given tasks from their labels and the fitted skills, without refitting.

        Workers unseen in ``fit`` vote with the mean skill.
        """
        crowd = as_crowd(
            task, worker, label, weight=weight, n_tasks=n_tasks, n_classes=self.n_classes_
        )
        skills = _skill_or_mean(self.skills_, crowd.n_workers) if self._weighs_by_skill else None
        return normalize_votes(weighted_votes(crowd, skills))


class MajorityVote(_VoteEstimator):
    r"""The class with the most votes: $\hat z_t = \arg\max_k \sum_{i \in t} v_i [y_i = k]$.

    Each label ``i`` votes with its weight $v_i$ (1 unless ``weight`` is given). ``probas_`` are
    vote shares; ties go to the smallest class code. ``skills_`` is each worker's accuracy
    against the result, on distinct answers (as crowd-kit's ``get_accuracy``).

    Condorcet (1785), *Essai sur l'application de l'analyse*; the crowdsourcing baseline in
    Zheng et al., "Truth Inference in Crowdsourcing: Is the Problem Solved?", PVLDB 10(5), 2017.

    >>> mv = MajorityVote().fit([0, 0, 0, 1, 1], [0, 1, 2, 0, 1], [1, 1, 0, 0, 1])
    >>> mv.labels_.tolist(), mv.probas_[0].round(3).tolist()
    ([1, 0], [0.333, 0.667])
    """

    _weighs_by_skill = False

    labels_: IntArray
    probas_: FloatArray
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
    ) -> Self:
        crowd = as_crowd(
            task, worker, label, gold=gold, weight=weight,
            n_tasks=n_tasks, n_workers=n_workers, n_classes=n_classes,
        )  # fmt: skip
        self.probas_ = _vote_posterior(crowd, None)
        self.labels_ = argmax(self.probas_)
        self.skills_ = _Answers.distinct(crowd).accuracy(self.labels_, crowd.n_workers)
        self.n_classes_, self.n_iter_, self.converged_ = crowd.n_classes, 1, True
        return self


class Wawa(_VoteEstimator):
    r"""Worker agreement with aggregate: majority vote weighted by agreement with majority vote.

    $s_w$ is the share of $w$'s distinct answers equal to the majority vote, then
    $\hat z_t = \arg\max_k \sum_{i \in t} v_i\, s_{w_i} [y_i = k]$.
    Gold tasks count as their gold label when skills are measured.

    Appen (Figure Eight), "Calculating Worker Agreement with Aggregate (Wawa)", 2021;
    as implemented in crowd-kit: Ustalov et al., "Learning from Crowds with Crowd-Kit", 2021,
    arXiv:2109.08584.

    >>> wawa = Wawa().fit([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 1, 0, 0, 1, 0])
    >>> wawa.labels_.tolist(), wawa.skills_.round(2).tolist()
    ([1, 0], [1.0, 0.5, 0.5])
    """

    labels_: IntArray
    probas_: FloatArray
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
    ) -> Self:
        crowd = as_crowd(
            task, worker, label, gold=gold, weight=weight,
            n_tasks=n_tasks, n_workers=n_workers, n_classes=n_classes,
        )  # fmt: skip
        majority = argmax(_vote_posterior(crowd, None))
        self.skills_ = _Answers.distinct(crowd).accuracy(majority, crowd.n_workers)
        self.probas_ = _vote_posterior(crowd, np.nan_to_num(self.skills_))
        self.labels_ = argmax(self.probas_)
        self.n_classes_, self.n_iter_, self.converged_ = crowd.n_classes, 1, True
        return self


class ZeroBasedSkill(_VoteEstimator):
    r"""Skill-weighted vote whose skills move towards each worker's accuracy against it.

    Starting from $s_w = 1/K + \epsilon$, each of ``n_iter`` rounds computes
    $\hat z_t = \arg\max_k \sum_{i \in t} v_i s_{w_i} [y_i = k]$ and sets
    $s_w \leftarrow s_w + \eta\,(\mathrm{acc}_w(\hat z) - s_w)$, with the learning rate $\eta$
    multiplied by ``lr_reduce_factor`` every ``lr_steps_to_reduce`` rounds.

    As in crowd-kit's ``ZeroBasedSkill`` (Ustalov et al., "Learning from Crowds with Crowd-Kit",
    2021, arXiv:2109.08584), which runs all ``n_iter`` rounds; ``converged_`` says whether the
    labels stopped changing.

    >>> zbs = ZeroBasedSkill().fit([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 1, 0, 0, 1, 0])
    >>> zbs.labels_.tolist()
    [1, 0]
    """

    labels_: IntArray
    probas_: FloatArray
    n_iter_: int
    converged_: bool

    def __init__(
        self,
        n_iter: int = 100,
        lr_init: float = 1.0,
        lr_steps_to_reduce: int = 20,
        lr_reduce_factor: float = 0.5,
        eps: float = 1e-5,
    ) -> None:
        self.n_iter = n_iter
        self.lr_init = lr_init
        self.lr_steps_to_reduce = lr_steps_to_reduce
        self.lr_reduce_factor = lr_reduce_factor
        self.eps = eps

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
        answers = _Answers.distinct(crowd)
        skills = np.full(crowd.n_workers, 1.0 / crowd.n_classes + self.eps)
        rate, labels, self.converged_ = self.lr_init, argmax(crowd.votes), False
        for iteration in range(1, self.n_iter + 1):
            if iteration % self.lr_steps_to_reduce == 0:
                rate *= self.lr_reduce_factor
            previous, labels = labels, argmax(_vote_posterior(crowd, skills))
            accuracy = answers.accuracy(labels, crowd.n_workers)
            accuracy = np.where(np.isnan(accuracy), skills, accuracy)
            skills = skills + rate * (accuracy - skills)
            self.converged_ = bool(np.array_equal(previous, labels))
        self.skills_ = skills
        self.probas_ = _vote_posterior(crowd, skills)
        self.labels_ = argmax(self.probas_)
        self.n_classes_, self.n_iter_ = crowd.n_classes, self.n_iter
        return self


__all__ = ["MajorityVote", "Wawa", "ZeroBasedSkill"]
