"""Bradley-Terry scores from pairwise preferences, with Davidson's model of ties."""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from quorum.truth._core import FloatArray, IntArray, as_codes, dot

TIE = -1
"""``winner`` value of a comparison that ended in a tie."""


def _outcomes(left: IntArray, right: IntArray, winner: IntArray) -> tuple[FloatArray, FloatArray]:
    """(+1 left won / -1 right won / 0 tie, 1 where tie) per comparison; raises on bad rows."""
    if np.any(left == right):
        raise ValueError(
            f"an item is compared with itself in row {np.flatnonzero(left == right)[0]}"
        )
    left_won, right_won, tie = winner == left, winner == right, winner == TIE
    bad = ~(left_won | right_won | tie)
    if bad.any():
        raise ValueError(f"winner in row {np.flatnonzero(bad)[0]} is neither left, right nor -1")
    return left_won.astype(np.float64) - right_won, tie.astype(np.float64)


class BradleyTerry:
    r"""Item $i$ has strength $\pi_i = e^{\theta_i}$; a comparison of $i$ and $j$ ends

    $P(i \succ j) = \pi_i / D$, $P(j \succ i) = \pi_j / D$,
    $P(\text{tie}) = \nu\sqrt{\pi_i\pi_j} / D$ with $D = \pi_i + \pi_j + \nu\sqrt{\pi_i \pi_j}$
    (Davidson's ties; $\nu = 0$ when no comparison is a tie, which is the plain Bradley-Terry
    model). $\theta$ and $\log\nu$ maximise the
    log-likelihood minus $\frac{\lambda}{2}(\lVert\theta\rVert^2 + \log^2\nu)$ (``l2`` $=
    \lambda$), by L-BFGS; the penalty keeps an item that never wins finite and fixes the scale.

    Bradley & Terry (1952), "Rank Analysis of Incomplete Block Designs: I. The Method of Paired
    Comparisons", Biometrika 39(3/4):324-345. doi:10.2307/2334029
    Davidson (1970), "On Extending the Bradley-Terry Model to Accommodate Ties in Paired
    Comparison Experiments", JASA 65(329):317-328. doi:10.1080/01621459.1970.10481082

    ``scores_`` are the strengths normalised to sum 1 (as crowd-kit's), ``tie_`` is $\nu$.

    >>> bt = BradleyTerry().fit([0, 0, 1, 0], [1, 2, 2, 2], [0, 0, 1, -1])
    >>> bt.scores_.argsort()[::-1].tolist(), round(float(bt.scores_.sum()), 6)
    ([0, 1, 2], 1.0)
    """

    scores_: FloatArray
    tie_: float
    log_likelihood_: float
    n_iter_: int
    converged_: bool

    def __init__(self, l2: float = 0.01, max_iter: int = 1000, tol: float = 1e-10) -> None:
        self.l2 = l2
        self.max_iter = max_iter
        self.tol = tol

    def fit(
        self,
        left: npt.ArrayLike,
        right: npt.ArrayLike,
        winner: npt.ArrayLike,
        *,
        n_items: int | None = None,
    ) -> Self:
        """Fit on comparisons of item codes; ``winner`` is the winning item's code or -1 (tie)."""
        lhs, rhs = as_codes("left", left, n_items), as_codes("right", right, n_items)
        won = np.asarray(winner).astype(np.intp, copy=False)
        if not lhs.size == rhs.size == won.size:
            raise ValueError("left, right and winner differ in length")
        sign, tie = _outcomes(lhs, rhs, won)
        size = (
            n_items
            if n_items is not None
            else int(max(lhs.max(initial=-1), rhs.max(initial=-1))) + 1
        )
        with_ties = bool(tie.any())
        start = np.zeros(size + 1)
        result = minimize(
            self._objective,
            start,
            args=(lhs, rhs, sign, tie, with_ties),
            method="L-BFGS-B",
            jac=True,
            options={"maxiter": self.max_iter, "ftol": self.tol, "gtol": 1e-8},
        )
        theta = result.x[:size] - result.x[:size].max(initial=0.0)
        self.scores_ = np.exp(theta) / np.exp(theta).sum() if size else np.zeros(0)
        self.tie_ = float(np.exp(result.x[size])) if with_ties else 0.0
        self.log_likelihood_ = -float(result.fun)
        self.n_iter_, self.converged_ = int(result.nit), bool(result.success)
        return self

    def predict_proba(self, left: npt.ArrayLike, right: npt.ArrayLike) -> FloatArray:
        """(n, 3) probabilities that left wins, right wins, or they tie."""
        lhs = as_codes("left", left, self.scores_.size)
        rhs = as_codes("right", right, self.scores_.size)
        p_left, p_right = self.scores_[lhs], self.scores_[rhs]
        p_tie = self.tie_ * np.sqrt(p_left * p_right)
        outcome = np.stack([p_left, p_right, p_tie], axis=1)
        shares: FloatArray = outcome / outcome.sum(axis=1, keepdims=True)
        return shares

    def _objective(
        self,
        params: FloatArray,
        left: IntArray,
        right: IntArray,
        sign: FloatArray,
        tie: FloatArray,
        with_ties: bool,
    ) -> tuple[float, FloatArray]:
        """Penalised negative log-likelihood and its gradient."""
        theta, log_nu = params[:-1], params[-1] if with_ties else -np.inf
        half_gap = 0.5 * (theta[left] - theta[right])
        log_d = np.logaddexp(np.logaddexp(half_gap, -half_gap), log_nu)
        log_lik = dot(sign, half_gap) - log_d.sum()
        d_gap = sign - (np.exp(half_gap - log_d) - np.exp(-half_gap - log_d))
        gradient = np.zeros_like(params)
        size = theta.size
        gradient[:size] = 0.5 * (
            np.bincount(left, weights=d_gap, minlength=size)
            - np.bincount(right, weights=d_gap, minlength=size)
        )
        penalty = dot(theta, theta)
        if with_ties:
            log_lik += tie.sum() * log_nu
            gradient[-1] = tie.sum() - np.exp(log_nu - log_d).sum() - self.l2 * log_nu
            penalty += log_nu**2
        gradient[:size] -= self.l2 * theta
        return -(log_lik - 0.5 * self.l2 * penalty), -gradient
