"""Calibrated confidence: temperature scaling fitted on gold, and expected calibration error.

EM posteriors treat labels as independent evidence, so they come out over-confident: a task
with five agreeing labels gets 0.9999 where the observed accuracy of such tasks is lower.
Temperature scaling divides the log-posteriors by one number $T$ fitted on gold (Guo, Pleiss,
Sun & Weinberger (2017), "On Calibration of Modern Neural Networks", ICML, arXiv:1706.04599).
When the crowd gets all the gold right, the likelihood has no maximum and Laplace's rule of
succession sets it instead (:func:`fit_temperature`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq, minimize_scalar

from quorum.truth._core import FloatArray, IntArray, as_codes, softmax_rows

FLOOR = 1e-6
"""Posteriors are floored here before a log, so that one confident mistake stays finite."""
LOWEST, HIGHEST = 0.05, 20.0
"""The range of the fitted temperature."""


def _log_probas(probas: npt.ArrayLike) -> FloatArray:
    array = np.asarray(probas, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"probas must be (n_tasks, n_classes), got shape {array.shape}")
    return np.log(np.maximum(array, FLOOR))


def apply_temperature(probas: npt.ArrayLike, temperature: float) -> FloatArray:
    """Posteriors with their log-probabilities divided by ``temperature`` and renormalised.

    >>> apply_temperature([[0.9, 0.1]], 2.0).round(3).tolist()
    [[0.75, 0.25]]
    """
    return softmax_rows(_log_probas(probas) / temperature)[0]


def log_likelihood(probas: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Mean log-probability of the true labels (posteriors floored at ``FLOOR``)."""
    log_p = _log_probas(probas)
    truth = as_codes("labels", labels, log_p.shape[1])
    return float(log_p[np.arange(truth.size), truth].mean()) if truth.size else 0.0


def fit_temperature(probas: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The temperature, in [0.05, 20], that best fits the gold ``labels``.

    While some gold label is not a most probable class, the one of maximum likelihood. When
    every gold label is a most probable class, the likelihood only grows as T -> 0 and has no
    maximum: the lowest temperature would make every answer 1.0, split labels included. The
    temperature is then the one at which the gold labels' mean probability is
    (n + 1) / (n + 2), Laplace's rule of succession for n right out of n, as Platt sets his
    targets for the same reason (J. Platt (1999), "Probabilistic Outputs for Support Vector
    Machines", Advances in Large Margin Classifiers, MIT Press): posteriors surer than that
    are tempered, less sure ones sharpened, never to 1.

    >>> probas = [[0.99, 0.01], [0.99, 0.01], [0.01, 0.99], [0.99, 0.01]]
    >>> round(fit_temperature(probas, [0, 0, 1, 1]), 1)  # 3 of 4 right: 0.99 becomes 0.75
    4.2
    >>> round(fit_temperature(probas, [0, 0, 1, 0]), 2)  # 4 of 4 right: 0.99 becomes 5/6
    2.86
    >>> round(fit_temperature([[0.6, 0.4]] * 4, [0] * 4), 2)  # 4 of 4 right: 0.6 becomes 5/6
    0.25
    """
    log_p = _log_probas(probas)
    truth = as_codes("labels", labels, log_p.shape[1])
    if not truth.size:
        return 1.0
    rows = np.arange(truth.size)
    top = log_p >= log_p.max(axis=1, keepdims=True)
    if np.all(top[rows, truth]):
        # NOTE: a gold label tied with another class stays tied at any temperature and never
        # reaches the target; the gold labels that are the one most probable class set it.
        alone = top.sum(axis=1) == 1
        return _succession_temperature(log_p[alone], truth[alone]) if alone.any() else 1.0

    def negative_log_likelihood(log_t: float) -> float:
        return -float(_log_tempered(log_p, np.exp(log_t))[rows, truth].sum())

    bounds = (np.log(LOWEST), np.log(HIGHEST))
    result = minimize_scalar(negative_log_likelihood, bounds=bounds, method="bounded")
    return float(np.exp(result.x))


def _succession_temperature(log_p: FloatArray, truth: IntArray) -> float:
    """The temperature at which the mean probability of ``truth`` is (n + 1) / (n + 2); it
    falls as the temperature rises, ``truth`` being the most probable class of every row."""
    rows, target = np.arange(truth.size), (truth.size + 1) / (truth.size + 2)

    def excess(temperature: float) -> float:
        return float(np.exp(_log_tempered(log_p, temperature)[rows, truth]).mean()) - target

    if excess(LOWEST) <= 0:
        return LOWEST
    if excess(HIGHEST) >= 0:
        return HIGHEST
    return float(brentq(excess, LOWEST, HIGHEST))


def _log_tempered(log_p: FloatArray, temperature: float) -> FloatArray:
    log_q = log_p / temperature
    return log_q - np.logaddexp.reduce(log_q, axis=1, keepdims=True)


def expected_calibration_error(
    probas: npt.ArrayLike, labels: npt.ArrayLike, *, n_bins: int = 15
) -> float:
    r"""$\sum_b \frac{|B_b|}{n} |\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|$ over ``n_bins``
    equal-width bins of the top-class probability (Naeini, Cooper & Hauskrecht (2015),
    "Obtaining Well Calibrated Probabilities Using Bayesian Binning", AAAI).

    >>> round(expected_calibration_error([[0.9, 0.1], [0.8, 0.2]], [0, 1]), 6)
    0.45
    """
    array = np.asarray(probas, dtype=np.float64)
    truth: IntArray = as_codes("labels", labels, array.shape[1] if array.ndim == 2 else None)
    if not truth.size:
        return 0.0
    return calibration_error(array.max(axis=1), array.argmax(axis=1) == truth, n_bins=n_bins)


def calibration_error(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, *, n_bins: int = 15
) -> float:
    """:func:`expected_calibration_error` of answers given with their confidence (whatever
    chose them) and whether each was right.

    >>> round(calibration_error([0.9, 0.8], [True, False]), 6)
    0.45
    """
    given = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct, dtype=np.float64)
    if given.shape != right.shape or given.ndim != 1:
        raise ValueError(f"confidence {given.shape} and correct {right.shape} must be equal 1-D")
    if not given.size:
        return 0.0
    bins = np.minimum((given * n_bins).astype(np.intp), n_bins - 1)
    gap = np.bincount(bins, weights=right - given, minlength=n_bins)
    return float(np.abs(gap).sum() / given.size)
