"""GLAD: worker ability and task difficulty, fitted by EM with a conjugate-gradient M-step."""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from quorum.truth._core import (
    EPS,
    Crowd,
    FloatArray,
    IntArray,
    argmax,
    as_crowd,
    clamp_gold,
    dot,
    softmax_rows,
)

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def _log_sigmoids(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(log sigma(x), log(1 - sigma(x)), sigma(x)), stable for any x."""
    log_sigma = np.log1p(np.exp(-np.abs(x)))
    log_sigma += np.maximum(-x, 0.0)
    np.negative(log_sigma, out=log_sigma)
    return log_sigma, log_sigma - x, np.exp(log_sigma)


class GLAD:
    r"""Worker $w$ with ability $\alpha_w$ is right on task $t$ of difficulty $\beta_t$ with
    probability $\sigma(\alpha_w e^{\beta_t})$; wrong answers are spread evenly over the other
    $K - 1$ classes.

    $P(y_i = l \mid z_t = k) = \sigma(\alpha_w e^{\beta_t})$ if $l = k$ else
    $(1 - \sigma(\alpha_w e^{\beta_t}))/(K-1)$, with fixed class priors (uniform unless
    ``priors`` is given) and standard normal priors on $\alpha_w - 1$ and $\beta_t - 1$. EM: the
    E-step computes posteriors in log space (gold tasks clamped), the M-step maximises the
    expected complete log-likelihood $Q$ over all $\alpha, \beta$ by conjugate gradient (SciPy
    ``CG``, at most ``m_step_max_iter`` steps, gradient tolerance ``m_step_tol``); EM stops when
    $Q$ per (label, class) pair gains less than ``tol``. These are crowd-kit's defaults and
    stopping rule, so both give the same labels.

    Whitehill, Ruvolo, Wu, Bergsma & Movellan (2009), "Whose Vote Should Count More: Optimal
    Integration of Labels from Labelers of Unknown Expertise", NeurIPS 22:2035-2043.

    ``alphas_`` (= ``skills_``) are worker abilities, ``betas_`` log inverse task difficulties.

    >>> glad = GLAD().fit([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 1, 0, 0, 0, 1])
    >>> glad.labels_.tolist(), glad.probas_.sum(axis=1).round(6).tolist()
    ([1, 0], [1.0, 1.0])
    """

    labels_: IntArray
    probas_: FloatArray
    alphas_: FloatArray
    betas_: FloatArray
    skills_: FloatArray
    priors_: FloatArray
    loss_history_: list[float]
    n_iter_: int
    converged_: bool

    def __init__(
        self,
        max_iter: int = 100,
        tol: float = 1e-5,
        m_step_max_iter: int = 25,
        m_step_tol: float = 1e-2,
        priors: npt.ArrayLike | None = None,
    ) -> None:
        self.max_iter = max_iter
        self.tol = tol
        self.m_step_max_iter = m_step_max_iter
        self.m_step_tol = m_step_tol
        self.priors = priors

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
        k = crowd.n_classes
        self.priors_ = np.full(k, 1.0 / k) if self.priors is None else np.asarray(self.priors)
        params = np.ones(crowd.n_workers + crowd.n_tasks)
        self.probas_ = self._e_step(crowd, params)
        loss, self.loss_history_, self.converged_, self.n_iter_ = -np.inf, [], False, 0
        while self.n_iter_ < self.max_iter and not self.converged_ and crowd.n_labels:
            self.n_iter_ += 1
            self.probas_ = self._e_step(crowd, params)
            params = self._m_step(crowd, params)
            q = -self._objective(params, crowd, self.probas_[crowd.task, crowd.label])[0]
            self.loss_history_.append(q / max(crowd.total_weight * k, EPS))
            self.converged_ = self.loss_history_[-1] - loss < self.tol
            loss = self.loss_history_[-1]
        self.alphas_, self.betas_ = params[: crowd.n_workers], params[crowd.n_workers :]
        self.skills_, self.labels_ = self.alphas_, argmax(self.probas_)
        return self

    def _e_step(self, crowd: Crowd, params: FloatArray) -> FloatArray:
        a, b = self._answer_logs(crowd, params)[:2]
        k = crowd.n_classes
        log_joint = np.zeros((crowd.n_tasks, k))
        log_joint += np.bincount(crowd.task, weights=b, minlength=crowd.n_tasks)[:, None]
        flat = crowd.task * k + crowd.label
        log_joint += np.bincount(flat, weights=a - b, minlength=crowd.n_tasks * k).reshape(-1, k)
        log_joint += np.log(np.maximum(self.priors_, EPS))
        return clamp_gold(softmax_rows(log_joint)[0], crowd.gold)

    @staticmethod
    def _answer_logs(
        crowd: Crowd, params: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Per label: weighted log P(right), log P(a given wrong answer), sigma, exp(beta)."""
        alpha, exp_beta = params[: crowd.n_workers], np.exp(params[crowd.n_workers :])
        scale = exp_beta[crowd.task]
        log_right, log_wrong, sigma = _log_sigmoids(alpha[crowd.worker] * scale)
        log_wrong = log_wrong - np.log(max(crowd.n_classes - 1, 1))
        if crowd.weight is not None:
            log_right, log_wrong = log_right * crowd.weight, log_wrong * crowd.weight
        return log_right, log_wrong, sigma, scale

    def _m_step(self, crowd: Crowd, params: FloatArray) -> FloatArray:
        result = minimize(
            self._objective,
            params,
            args=(crowd, self.probas_[crowd.task, crowd.label]),
            method="CG",
            jac=True,
            tol=self.m_step_tol,
            options={"maxiter": self.m_step_max_iter},
        )
        return np.asarray(result.x)

    @staticmethod
    def _objective(
        params: FloatArray, crowd: Crowd, p_given: FloatArray
    ) -> tuple[float, FloatArray]:
        """-Q and its gradient; Q is the expected complete log-likelihood plus the log-priors.

        ``p_given[i]`` is the posterior of the answer label ``i`` gave.
        """
        log_right, log_wrong, sigma, scale = GLAD._answer_logs(crowd, params)
        q = dot(p_given, log_right) + dot(1.0 - p_given, log_wrong)
        centred = params - 1.0
        q -= 0.5 * dot(centred, centred) + _LOG_SQRT_2PI * params.size
        slope = p_given - sigma
        if crowd.weight is not None:
            slope *= crowd.weight
        alpha = params[: crowd.n_workers]
        d_alpha = np.bincount(crowd.worker, weights=slope * scale, minlength=crowd.n_workers)
        d_beta = np.bincount(
            crowd.task, weights=slope * scale * alpha[crowd.worker], minlength=crowd.n_tasks
        )
        gradient = np.concatenate([d_alpha, d_beta]) - centred
        return -float(q), -gradient
