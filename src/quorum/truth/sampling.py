"""Audit statistics: how many labels to check, and how accurate a delivery is from a sample.

A vendor's delivery is a finite population of labels; an audit checks a sample of them against
experts, stratified by the class the vendor gave (every class is seen, and a vendor that is
wrong on one class cannot hide behind the others). Everything here is arrays in, numbers out.

- :func:`wilson_interval`: the Wilson score interval of a proportion, which stays inside
  [0, 1] and keeps its coverage near 0 and 1, where the normal interval fails.
- :func:`sample_size` and :func:`allocate`: the sample size whose Wilson interval is at most a
  wanted width, and its split over strata in proportion to their size.
- :func:`stratified_accuracy`: the stratified estimate with a Wilson interval on the Kish
  effective sample size, with the finite population correction.
- :func:`stratified_bootstrap`: a percentile interval from resampling tasks within strata.

Both intervals are for the whole population. Read mid-sample, some strata may have nothing
checked yet: their accuracy is unknown, anywhere in [0, 1], and the interval makes room for it
(worst-case bounds), while the estimate is that of the strata checked so far.

>>> [round(bound, 4) for bound in wilson_interval(45, 50)]
[0.7864, 0.9565]
>>> sample_size(0.1, expected=0.9)
141
>>> allocate([700, 200, 100], 50).tolist()
[35, 10, 5]
>>> e = stratified_accuracy([700, 300], [30, 20], [27, 15])
>>> round(e.value, 3), e.low < e.value < e.high
(0.855, True)
>>> e = stratified_accuracy([100, 2], [0, 2], [0, 2])  # 2 of 102 labels checked, both right
>>> e.value, e.covered, round(e.low, 4), e.high
(1.0, 2, 0.0196, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from quorum.truth._core import FloatArray, IntArray, as_codes

__all__ = [
    "Estimate",
    "allocate",
    "sample_size",
    "stratified_accuracy",
    "stratified_bootstrap",
    "wilson_interval",
]


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    r"""The Wilson score interval of a proportion from ``successes`` out of ``n`` trials:
    $\frac{\hat p + z^2/2n \pm z\sqrt{\hat p(1-\hat p)/n + z^2/4n^2}}{1 + z^2/n}$.

    ``n`` may be fractional (an effective sample size). With ``n == 0`` nothing is known:
    ``(0.0, 1.0)``.

    Wilson (1927), "Probable Inference, the Law of Succession, and Statistical Inference",
    JASA 22(158):209-212. doi:10.1080/01621459.1927.10502953
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = successes / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # NOTE: at p = 0 (p = 1) the lower (upper) bound is exactly 0 (1), but rounding can put it
    # a hair to either side: outside [0, 1], or past the estimate itself.
    low = 0.0 if p == 0 else max(0.0, center - half)
    high = 1.0 if p == 1 else min(1.0, center + half)
    return float(low), float(high)


def _effective_n(n: float, population: float | None) -> float:
    """A sample of ``n`` out of ``population`` without replacement is worth this many draws
    with replacement: the finite population correction folded into the sample size."""
    if population is None or n <= 1:
        return n
    if n >= population:
        return float("inf")
    return n * (population - 1) / (population - n)


def sample_size(
    width: float,
    *,
    expected: float = 0.5,
    confidence: float = 0.95,
    population: int | None = None,
) -> int:
    """The smallest sample whose Wilson interval is at most ``width`` wide (high minus low)
    when the observed proportion is ``expected``; never more than ``population``.

    ``expected=0.5`` is the worst case: the interval is widest there.
    """
    if not 0.0 < width < 1.0:
        raise ValueError(f"width must be in (0, 1), got {width}")
    if not 0.0 <= expected <= 1.0:
        raise ValueError(f"expected must be in [0, 1], got {expected}")
    ceiling = population if population is not None else 10**7
    if ceiling <= 0:
        return 0

    def wide_enough(n: int) -> bool:
        n_eff = _effective_n(n, population)
        if np.isinf(n_eff):
            return True
        low, high = wilson_interval(expected * n_eff, n_eff, confidence)
        return high - low <= width

    low, high = 1, ceiling  # the width shrinks as n grows: bisect for the first n that fits
    if not wide_enough(high):
        return high
    while low < high:
        middle = (low + high) // 2
        if wide_enough(middle):
            high = middle
        else:
            low = middle + 1
    return low


def allocate(sizes: npt.ArrayLike, n: int, *, minimum: int = 2) -> IntArray:
    """Split a sample of ``n`` over strata of ``sizes`` in proportion to their size (largest
    remainders), giving every stratum at least ``minimum`` (or all it has) so each class is
    seen; never more than a stratum holds. The total may exceed ``n`` by the minimums."""
    size = as_codes("sizes", sizes)
    total = int(size.sum())
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if total == 0:
        return np.zeros(size.size, np.intp)
    n = min(n, total)
    share = size * (n / total)
    counts = np.floor(share).astype(np.intp)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    counts = np.maximum(counts, np.minimum(size, minimum))
    result: IntArray = np.minimum(counts, size)
    return result


@dataclass(frozen=True)
class Estimate:
    """A proportion with its interval at level ``confidence``; ``n`` units were checked, worth
    ``n_effective`` simple random draws (Kish; infinite when the whole population was checked).

    ``value`` is the estimate over the ``covered`` units of the strata with a checked unit;
    ``low`` and ``high`` bound the whole population, whatever the unchecked strata hold."""

    value: float
    low: float
    high: float
    confidence: float
    n: int
    n_effective: float
    covered: int


def _strata(
    population: npt.ArrayLike, sampled: npt.ArrayLike, successes: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    big_n = np.asarray(population, np.float64)
    n = np.asarray(sampled, np.float64)
    x = np.asarray(successes, np.float64)
    if not big_n.shape == n.shape == x.shape or big_n.ndim != 1:
        raise ValueError("population, sampled and successes need one value per stratum each")
    if np.any(x < 0) or np.any(x > n) or np.any(n > big_n):
        raise ValueError("need 0 <= successes <= sampled <= population in every stratum")
    return big_n, n, x


def stratified_accuracy(
    population: npt.ArrayLike,
    sampled: npt.ArrayLike,
    successes: npt.ArrayLike,
    confidence: float = 0.95,
) -> Estimate:
    r"""The share of correct labels in a population, from a stratified sample.

    Stratum $h$ holds $N_h$ labels, $n_h$ were checked and $x_h$ were right; the estimate is
    $\hat p = \sum_h W_h x_h / n_h$ with $W_h = N_h / N$. The interval is Wilson's at $\hat p$
    with the Kish effective size $n_\mathrm{eff} = (\sum_i w_i)^2 / \sum_i w_i^2$ over the
    checked labels' weights $w_i = N_h / n_h$, corrected for sampling without replacement.
    Kish's size depends on the weights alone, not on the observed proportions, so a stratum
    where every label was right cannot make the interval falsely narrow.

    Strata with nothing checked (a report read mid-sample) say nothing of their accuracy.
    ``value`` is then the estimate over the checked strata $S$ alone (weights renormalised over
    them; ``covered`` counts their labels), and the interval $[L_S, U_S]$ above, also over
    them, is widened to the whole population by Manski's worst-case bounds: with
    $W_S = \sum_{h \in S} N_h / N$, the accuracy lies in
    $[W_S L_S,\ W_S U_S + (1 - W_S)]$ (the unchecked labels all wrong, or all right). It holds
    the accuracy whenever $[L_S, U_S]$ holds that of the checked strata, so its coverage is at
    least the nominal level (Horowitz & Manski's interval for the whole identification region,
    conservative by design). With every stratum checked $W_S = 1$ and nothing changes.

    Kish (1965), Survey Sampling, Wiley, section 11.7; Dean & Pagano (2015), "Evaluating
    confidence interval methods for binomial proportions in clustered surveys", Journal of
    Survey Statistics and Methodology 3(4):484-503. doi:10.1093/jssam/smv024
    Manski (1989), "Anatomy of the Selection Problem", Journal of Human Resources
    24(3):343-360. doi:10.2307/145818; Horowitz & Manski (2000), "Nonparametric analysis of
    randomized experiments with missing covariate and outcome data", JASA 95(449):77-84.
    doi:10.1080/01621459.2000.10473902
    """
    big_n, n, x = _strata(population, sampled, successes)
    seen = n > 0
    checked = int(n.sum())
    if not seen.any():
        return Estimate(float("nan"), 0.0, 1.0, confidence, 0, 0.0, 0)
    covered = float(big_n[seen].sum())
    weight = big_n[seen] / covered
    value = float(weight @ (x[seen] / n[seen]))
    unit_weight = big_n[seen] / n[seen]
    kish = float((unit_weight @ n[seen]) ** 2 / ((unit_weight**2) @ n[seen]))
    # The finite population correction, with the checked strata's sampling fraction.
    fraction = checked / covered
    n_eff = kish / (1.0 - fraction) if fraction < 1.0 else float("inf")
    if np.isinf(n_eff):  # every label of the checked strata checked: their accuracy is known
        low, high = value, value
    else:
        low, high = wilson_interval(value * n_eff, n_eff, confidence)
    low, high = _unchecked_bounds(low, high, covered / float(big_n.sum()))
    return Estimate(value, low, high, confidence, checked, n_eff, int(covered))


def _unchecked_bounds(low: float, high: float, share_checked: float) -> tuple[float, float]:
    """An interval for the checked strata's accuracy, widened to the whole population: the
    ``1 - share_checked`` of labels in unchecked strata may be all wrong or all right (Manski's
    worst-case bounds). With ``share_checked == 1`` the interval comes back unchanged."""
    unknown = 1.0 - share_checked
    # NOTE: min: share * high + unknown can round a hair above 1 when high is 1.
    return share_checked * low, min(1.0, share_checked * high + unknown)


def stratified_bootstrap(
    stratum: npt.ArrayLike,
    correct: npt.ArrayLike,
    population: npt.ArrayLike,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> tuple[float, float]:
    """A percentile bootstrap interval of the stratified accuracy, resampling the checked
    labels within their stratum; ``stratum`` codes index ``population`` (labels per stratum in
    the whole delivery), ``correct`` says whether each checked label was right.

    Resampling a stratum's 0/1 outcomes with replacement is one binomial draw per replicate,
    so all replicates come from one vectorised draw. NOTE: each stratum is resampled from
    ``(x + 1/2) / (n + 1)`` rather than ``x / n``, and the replicates recentred on the
    estimate: a stratum where every checked label was right otherwise never varies, and the
    plain percentile interval of a 99%-accurate vendor then covers the truth about two times in
    three (tests/audit/test_sampling.py).

    Strata with no checked label are widened into the interval as :func:`stratified_accuracy`
    does: their labels may be all wrong or all right (Manski's worst-case bounds).
    """
    big_n = np.asarray(population, np.float64)
    codes = as_codes("stratum", stratum, big_n.size)
    right = np.asarray(correct, bool)
    if right.shape != codes.shape:
        raise ValueError("stratum and correct need one value per checked label")
    n = np.bincount(codes, minlength=big_n.size).astype(np.float64)[big_n > 0]
    x = np.bincount(codes, weights=right, minlength=big_n.size)[big_n > 0]
    big_n = big_n[big_n > 0]
    seen = n > 0
    if not seen.any():
        return 0.0, 1.0
    share_checked = float(big_n[seen].sum() / big_n.sum())
    n, x, weight = n[seen], x[seen], big_n[seen] / big_n[seen].sum()
    smoothed = (x + 0.5) / (n + 1.0)
    rng = np.random.default_rng(random_state)
    draws = rng.binomial(n.astype(np.int64), smoothed, size=(n_boot, n.size))
    replicates = (draws / n) @ weight + (weight @ (x / n) - weight @ smoothed)
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return _unchecked_bounds(float(max(0.0, low)), float(min(1.0, high)), share_checked)
