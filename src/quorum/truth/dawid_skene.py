"""Dawid-Skene: per-worker confusion matrices fitted by EM, full and one-coin."""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt

from quorum.truth._core import (
    EPS,
    NO_GOLD,
    Crowd,
    FloatArray,
    IntArray,
    argmax,
    as_crowd,
    clamp_gold,
    column_sums,
    dot,
    normalize_votes,
    softmax_rows,
)


def posterior(
    task: npt.ArrayLike,
    worker: npt.ArrayLike,
    label: npt.ArrayLike,
    confusions: npt.ArrayLike,
    priors: npt.ArrayLike,
    *,
    weight: npt.ArrayLike | None = None,
    n_tasks: int | None = None,
) -> FloatArray:
    r"""Posterior of tasks given fixed worker confusion matrices; nothing is refitted.

    $P(z_t = k) \propto \pi_k \prod_{i \in t} \pi^{(w_i)}_{k, y_i}{}^{v_i}$, computed in log space.
    ``confusions[w, k, l]`` is $P(w$ answers $l \mid$ true class $k)$, ``priors[k]`` is
    $P(z = k)$, ``weight`` the optional per-label $v_i$. Tasks without labels get the priors.

    >>> confusions = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.6, 0.4], [0.4, 0.6]]])
    >>> posterior([0, 0, 1], [0, 1, 1], [1, 0, 0], confusions, [0.5, 0.5]).round(3).tolist()
    [[0.158, 0.842], [0.6, 0.4]]
    """
    conf = np.asarray(confusions, dtype=np.float64)
    n_workers, n_classes = conf.shape[0], conf.shape[1]
    crowd = as_crowd(
        task, worker, label, weight=weight, n_tasks=n_tasks,
        n_workers=n_workers, n_classes=n_classes,
    )  # fmt: skip
    table = _log_table(conf)[crowd.worker * n_classes + crowd.label]
    if crowd.weight is not None:
        table *= crowd.weight[:, None]
    log_joint = np.empty((crowd.n_tasks, n_classes))
    for k in range(n_classes):
        log_joint[:, k] = np.bincount(crowd.task, weights=table[:, k], minlength=crowd.n_tasks)
    log_joint += np.log(np.maximum(np.asarray(priors, dtype=np.float64), EPS))
    return softmax_rows(log_joint)[0]


def one_coin_confusions(skills: npt.ArrayLike, n_classes: int) -> FloatArray:
    r"""Confusion matrices of one-coin workers: $\pi_{kl} = s$ if $k = l$ else $(1-s)/(K-1)$.

    >>> one_coin_confusions([0.8], 3)[0].round(2).tolist()
    [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
    """
    s = np.asarray(skills, dtype=np.float64)[:, None, None]
    off = (1.0 - s) / max(n_classes - 1, 1)
    eye = np.eye(n_classes, dtype=bool)[None]
    return np.where(eye, s, off)


def _log_table(confusions: FloatArray) -> FloatArray:
    """(W, K, K) confusions [w, k, l] -> (W * K, K) table of log P(l | k), row w * K + l."""
    n_workers, n_classes = confusions.shape[0], confusions.shape[1]
    clipped = np.clip(confusions, EPS, 1.0)
    return np.log(clipped.transpose(0, 2, 1)).reshape(n_workers * n_classes, n_classes)


def _confusions(log_table: FloatArray, n_workers: int, n_classes: int) -> FloatArray:
    return np.exp(log_table.reshape(n_workers, n_classes, n_classes)).transpose(0, 2, 1).copy()


def _full_m_step(crowd: Crowd, probas: FloatArray) -> FloatArray:
    """Expected (worker, answer, true class) counts, floored at EPS, normalised per true class.

    As in crowd-kit, only answers a worker gave get the floor; the others stay at probability
    0 (log -inf), which the E-step never reads. A worker with few labels has counts below the
    floor for some true class, and the floor then decides its confusion column.
    """
    n_w, n_k = crowd.n_workers, crowd.n_classes
    answered = crowd.incidence.answered[:, None]
    counts = np.where(answered, np.maximum(crowd.incidence.per_answer(probas), EPS), 0.0)
    totals = counts.reshape(n_w, n_k, n_k).sum(axis=1, keepdims=True)
    shares = np.divide(
        counts.reshape(n_w, n_k, n_k), totals, where=totals > 0, out=counts.reshape(n_w, n_k, n_k)
    )
    log_table = np.full((n_w * n_k, n_k), -np.inf)
    np.log(shares.reshape(n_w * n_k, n_k), out=log_table, where=answered)
    return log_table


def _one_coin_skills(crowd: Crowd, probas: FloatArray) -> FloatArray:
    """Per worker, the mean posterior of the answers it gave; 1/K for workers without labels."""
    n_w, n_k = crowd.n_workers, crowd.n_classes
    counts = (crowd.incidence.per_answer(probas)).reshape(n_w, n_k, n_k)
    hits = np.einsum("wkk->w", counts)
    total = crowd.worker_weight
    skills: FloatArray = np.divide(hits, total, out=np.full(n_w, 1.0 / n_k), where=total > 0)
    return skills


def _one_coin_m_step(crowd: Crowd, probas: FloatArray) -> FloatArray:
    skills = _one_coin_skills(crowd, probas)
    confusions = np.clip(one_coin_confusions(skills, crowd.n_classes), EPS, 1.0 - EPS)
    return _log_table(confusions)


def _priors(crowd: Crowd, probas: FloatArray) -> FloatArray:
    """Mean posterior over the tasks that have labels (crowd-kit only knows those tasks)."""
    labeled = crowd.labeled.astype(np.float64)
    priors: FloatArray = column_sums(labeled, probas) / max(labeled.sum(), 1.0)
    return priors


def _e_step(
    crowd: Crowd, evidence: FloatArray, priors: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Posteriors and their logs; gold tasks clamped to their gold label."""
    log_joint = evidence + np.log(np.maximum(priors, EPS))
    probas, log_norm = softmax_rows(log_joint)
    log_probas = log_joint - log_norm[:, None]
    rows = np.flatnonzero(crowd.gold != NO_GOLD)
    if rows.size:
        clamp_gold(probas, crowd.gold)
        log_probas[rows] = np.where(probas[rows] > 0, 0.0, -np.inf)
    return probas, log_probas


def _evidence_lower_bound(
    crowd: Crowd, probas: FloatArray, log_probas: FloatArray, priors: FloatArray,
    evidence: FloatArray,
) -> float:  # fmt: skip
    """crowd-kit's ``_evidence_lower_bound``: its stopping rule, reproduced term by term.

    NOTE: crowd-kit adds log-priors once per *label* (not per task) and floors posteriors at EPS
    in the entropy; we keep both so that EM stops after the same iteration as crowd-kit's.
    """
    expected = dot(probas, evidence)
    expected += dot(column_sums(crowd.task_weight, probas), np.log(np.maximum(priors, EPS)))
    floored = np.maximum(probas, EPS)
    return expected - dot(floored, np.maximum(log_probas, np.log(EPS)))


class _DawidSkeneBase:
    """The EM loop shared by the full and one-coin models; subclasses give the M-step."""

    def _m_step(self, crowd: Crowd, probas: FloatArray) -> FloatArray:
        """Log-likelihood table from the current posteriors: row ``w * K + l``, column ``k`` is
        ``log P(worker w answers l | true class k)``."""
        raise NotImplementedError

    labels_: IntArray
    probas_: FloatArray
    priors_: FloatArray
    confusions_: FloatArray
    skills_: FloatArray
    loss_history_: list[float]
    n_iter_: int
    converged_: bool

    def __init__(self, max_iter: int = 100, tol: float = 1e-5) -> None:
        self.max_iter = max_iter
        self.tol = tol

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
        log_table = self._run_em(crowd)
        self.confusions_ = _confusions(log_table, crowd.n_workers, crowd.n_classes)
        self.labels_ = argmax(self.probas_)
        self._worker_weight = crowd.worker_weight
        return self

    def _run_em(self, crowd: Crowd) -> FloatArray:
        m_step, incidence = self._m_step, crowd.incidence
        probas = clamp_gold(normalize_votes(crowd.votes), crowd.gold)
        priors, log_table = _priors(crowd, probas), m_step(crowd, probas)
        evidence = incidence.matrix @ log_table
        loss, self.loss_history_, self.converged_, self.n_iter_ = -np.inf, [], False, 0
        while self.n_iter_ < self.max_iter and not self.converged_:
            self.n_iter_ += 1
            probas, log_probas = _e_step(crowd, evidence, priors)
            priors, log_table = _priors(crowd, probas), m_step(crowd, probas)
            evidence = incidence.matrix @ log_table
            elbo = _evidence_lower_bound(crowd, probas, log_probas, priors, evidence)
            self.loss_history_.append(elbo / max(crowd.total_weight, EPS))
            self.converged_ = self.loss_history_[-1] - loss < self.tol
            loss = self.loss_history_[-1]
        self.probas_, self.priors_ = probas, priors
        return log_table

    def predict_proba(
        self,
        task: npt.ArrayLike,
        worker: npt.ArrayLike,
        label: npt.ArrayLike,
        *,
        weight: npt.ArrayLike | None = None,
        n_tasks: int | None = None,
    ) -> FloatArray:
        """Posterior of the given tasks under the fitted confusions and priors, without refitting.

        Workers unseen in ``fit`` (codes past the fitted ones) get the label-weighted mean
        confusion matrix of the fitted workers.
        """
        workers = np.asarray(worker)
        n_extra = max(int(workers.max()) + 1 - self.confusions_.shape[0], 0) if workers.size else 0
        confusions = self.confusions_
        if n_extra:
            share = self._worker_weight / max(self._worker_weight.sum(), EPS)
            pooled = np.einsum("w,wkl->kl", share, confusions)
            confusions = np.concatenate([confusions, np.repeat(pooled[None], n_extra, axis=0)])
        return posterior(
            task, workers, label, confusions, self.priors_, weight=weight, n_tasks=n_tasks
        )


class DawidSkene(_DawidSkeneBase):
    r"""Each worker $w$ answers $l$ for true class $k$ with probability $\pi^{(w)}_{kl}$.

    Tasks are independent with class priors $p_k$; labels are independent given the true class:
    $P(z_t = k, y) = p_k \prod_{i \in t} \pi^{(w_i)}_{k y_i}$. EM starts from majority-vote
    posteriors, alternates the E-step (posteriors, in log space; gold tasks clamped to their
    gold label) and the M-step (expected counts, floored at $10^{-10}$, normalised per true
    class), and stops when crowd-kit's evidence lower bound per label gains less than ``tol``.
    ``weight`` makes a label count $v_i$ times in both steps.

    Dawid & Skene (1979), "Maximum Likelihood Estimation of Observer Error-Rates Using the EM
    Algorithm", Applied Statistics 28(1):20-28. doi:10.2307/2346806

    ``confusions_[w, k, l]`` is $\pi^{(w)}_{kl}$; ``skills_[w]`` is $\sum_k p_k \pi^{(w)}_{kk}$,
    the chance that $w$ is right.

    >>> ds = DawidSkene().fit([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 1, 0, 0, 0, 1])
    >>> ds.labels_.tolist(), ds.probas_.sum(axis=1).round(6).tolist()
    ([1, 0], [1.0, 1.0])
    """

    def _m_step(self, crowd: Crowd, probas: FloatArray) -> FloatArray:
        return _full_m_step(crowd, probas)

    def _run_em(self, crowd: Crowd) -> FloatArray:
        log_table = super()._run_em(crowd)
        confusions = _confusions(log_table, crowd.n_workers, crowd.n_classes)
        self.skills_ = np.einsum("wkk,k->w", confusions, self.priors_)
        return log_table


class OneCoinDawidSkene(_DawidSkeneBase):
    r"""Dawid-Skene where worker $w$ is right with probability $s_w$ whatever the true class.

    $\pi^{(w)}_{kl} = s_w$ if $l = k$ else $(1 - s_w)/(K - 1)$; the M-step sets $s_w$ to the mean
    posterior of the answers $w$ gave. Otherwise as :class:`DawidSkene` (EM, log space, gold
    clamped, crowd-kit's stopping rule).

    Zhang, Chen, Zhou & Jordan (2016), "Spectral Methods Meet EM: A Provably Optimal Algorithm
    for Crowdsourcing", JMLR 17(102):1-44. arXiv:1406.3824

    >>> ods = OneCoinDawidSkene().fit([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 1, 0, 0, 0, 1])
    >>> ods.labels_.tolist(), (ods.skills_ > 0.5).tolist()
    ([1, 0], [True, True, False])
    """

    def _m_step(self, crowd: Crowd, probas: FloatArray) -> FloatArray:
        return _one_coin_m_step(crowd, probas)

    def _run_em(self, crowd: Crowd) -> FloatArray:
        log_table = super()._run_em(crowd)
        self.skills_ = _one_coin_skills(crowd, self.probas_)
        return log_table
