"""Inter-annotator agreement with seeded bootstrap confidence intervals.

Every statistic here is a function of per-task sufficient statistics summed over tasks (the
units). The bootstrap resamples tasks with replacement: a replicate is the same sum with
multinomial task weights, so all replicates of a chunk come from one sparse matrix product.

>>> task, label = [0, 0, 1, 1, 2, 2, 2], [0, 0, 1, 1, 0, 1, 1]
>>> round(percent_agreement(task, label).value, 4)
0.7778
>>> result = krippendorff_alpha(task, label, level="nominal", n_boot=200)
>>> round(result.value, 4), result.low <= result.value <= result.high
(0.5, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from quorum.truth._core import FloatArray, IntArray, as_codes

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval", "ratio")
Statistic = Callable[[FloatArray], FloatArray]
"""Maps summed per-unit statistics, shape (..., d), to the metric, shape (...)."""

_CHUNK_ENTRIES = 1 << 24  # bootstrap weights held in memory at once (128 MB of float64)


@dataclass(frozen=True)
class Agreement:
    """A point estimate with its percentile bootstrap interval at level ``confidence``."""

    value: float
    low: float
    high: float
    confidence: float
    n_units: int
    """Tasks that enter the statistic (two or more labels; both raters for Cohen's kappa)."""


def _unit_counts(task: IntArray, label: IntArray, n_classes: int) -> FloatArray:
    """(n_units, n_classes) label counts of the tasks with two or more labels."""
    n_tasks = int(task.max()) + 1 if task.size else 0
    flat = np.bincount(task * n_classes + label, minlength=n_tasks * n_classes)
    counts: FloatArray = flat.reshape(n_tasks, n_classes).astype(np.float64)
    pairable: FloatArray = counts[counts.sum(axis=1) >= 2]
    return pairable


def _inputs(
    task: npt.ArrayLike, label: npt.ArrayLike, n_classes: int | None
) -> tuple[IntArray, IntArray, int]:
    t, y = as_codes("task", task), as_codes("label", label, n_classes)
    if t.size != y.size:
        raise ValueError(f"task and label lengths differ: {t.size}, {y.size}")
    k = n_classes if n_classes is not None else (int(y.max()) + 1 if y.size else 1)
    return t, y, k


def _bootstrap(
    stats: Any,
    statistic: Statistic,
    *,
    n_boot: int,
    confidence: float,
    random_state: int | None,
) -> Agreement:
    """Point estimate and percentile interval of ``statistic`` over unit-resampled sums.

    ``stats`` is a (n_units, d) array or sparse matrix of per-unit statistics.
    """
    matrix = sp.csr_matrix(stats)
    n_units = matrix.shape[0]
    if n_units == 0:
        raise ValueError("no task has enough labels to measure agreement")
    value = float(statistic(np.asarray(matrix.sum(axis=0)).ravel()))
    rng = np.random.default_rng(random_state)
    replicates, chunk = [], max(1, _CHUNK_ENTRIES // n_units)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        draws = (
            rng.integers(0, n_units, size=(size, n_units)) + (np.arange(size) * n_units)[:, None]
        )
        weights = np.bincount(draws.ravel(), minlength=size * n_units).reshape(size, n_units)
        sums = np.asarray(matrix.T @ weights.T.astype(np.float64)).T
        replicates.append(statistic(sums))
    values = np.concatenate(replicates) if replicates else np.zeros(0)
    values = values[np.isfinite(values)]
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(values, [tail, 100.0 - tail]) if values.size else (np.nan, np.nan)
    return Agreement(value, float(low), float(high), confidence, n_units)


def _pair_agreement(counts: FloatArray) -> FloatArray:
    """Per unit, the share of ordered label pairs that agree (Fleiss's $P_i$)."""
    m = counts.sum(axis=1)
    shares: FloatArray = (counts * (counts - 1.0)).sum(axis=1) / (m * (m - 1.0))
    return shares


def percent_agreement(
    task: npt.ArrayLike,
    label: npt.ArrayLike,
    *,
    n_classes: int | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> Agreement:
    r"""Mean over tasks of the share of label pairs that agree,
    $\frac{1}{U}\sum_u \frac{\sum_k n_{uk}(n_{uk}-1)}{m_u(m_u-1)}$, over tasks with two or more
    labels (Fleiss's $\bar P$).
    """
    t, y, k = _inputs(task, label, n_classes)
    counts = _unit_counts(t, y, k)
    stats = np.column_stack([_pair_agreement(counts), np.ones(len(counts))])
    return _bootstrap(
        stats,
        lambda s: s[..., 0] / s[..., 1],
        n_boot=n_boot,
        confidence=confidence,
        random_state=random_state,
    )


def fleiss_kappa(
    task: npt.ArrayLike,
    label: npt.ArrayLike,
    *,
    n_classes: int | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> Agreement:
    r"""$\kappa = (\bar P - P_e) / (1 - P_e)$ with $P_e = \sum_k p_k^2$, $p_k$ the share of all
    labels in class $k$ (tasks with two or more labels). With the same number of labels on every
    task this is Fleiss's kappa; with varying numbers each task's $P_u$ uses its own $m_u$.

    Fleiss (1971), "Measuring Nominal Scale Agreement Among Many Raters", Psychological
    Bulletin 76(5):378-382. doi:10.1037/h0031619
    """
    t, y, k = _inputs(task, label, n_classes)
    counts = _unit_counts(t, y, k)
    stats = np.column_stack([_pair_agreement(counts), np.ones(len(counts)), counts])

    def kappa(s: FloatArray) -> FloatArray:
        observed = s[..., 0] / s[..., 1]
        shares = s[..., 2:] / s[..., 2:].sum(axis=-1, keepdims=True)
        expected = (shares**2).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray((observed - expected) / (1.0 - expected))

    return _bootstrap(stats, kappa, n_boot=n_boot, confidence=confidence, random_state=random_state)


def _cohen_weights(n_classes: int, weights: str | None) -> FloatArray:
    codes = np.arange(n_classes, dtype=np.float64)
    gap = np.abs(codes[:, None] - codes[None, :])
    if weights is None:
        return (gap > 0).astype(np.float64)
    if weights == "linear":
        return gap
    if weights == "quadratic":
        return gap**2
    raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")


def cohen_kappa(
    task: npt.ArrayLike,
    worker: npt.ArrayLike,
    label: npt.ArrayLike,
    *,
    weights: str | None = None,
    n_classes: int | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> Agreement:
    r"""Cohen's kappa of exactly two workers on the tasks both labelled:
    $\kappa = 1 - \sum_{ck} w_{ck} O_{ck} / \sum_{ck} w_{ck} E_{ck}$, $O$ the observed table,
    $E$ its product of margins, $w$ the disagreement weights (``None``: 0/1, ``"linear"``:
    $|c-k|$, ``"quadratic"``: $(c-k)^2$ on class codes), as scikit-learn's
    ``cohen_kappa_score``.

    Cohen (1960), "A Coefficient of Agreement for Nominal Scales", Educational and Psychological
    Measurement 20(1):37-46. doi:10.1177/001316446002000104
    """
    t, y, k = _inputs(task, label, n_classes)
    w = as_codes("worker", worker)
    raters = np.unique(w)
    if raters.size != 2 or w.size != t.size:
        raise ValueError(f"Cohen's kappa needs exactly two workers, got {raters.size}")
    first, second = _pair_up(t, w == raters[0], y), _pair_up(t, w == raters[1], y)
    both = (first >= 0) & (second >= 0)
    cells = first[both] * k + second[both]
    stats = sp.csr_matrix(
        (np.ones(cells.size), (np.arange(cells.size), cells)), (cells.size, k * k)
    )
    disagreement = _cohen_weights(k, weights).ravel()

    def kappa(s: FloatArray) -> FloatArray:
        table = s.reshape(*s.shape[:-1], k, k)
        expected = table.sum(axis=-1)[..., :, None] * table.sum(axis=-2)[..., None, :]
        expected = expected.reshape(s.shape) / s.sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(1.0 - (s @ disagreement) / (expected @ disagreement))

    return _bootstrap(stats, kappa, n_boot=n_boot, confidence=confidence, random_state=random_state)


def _pair_up(task: IntArray, mine: npt.NDArray[np.bool_], label: IntArray) -> IntArray:
    """Per task, the label this rater gave (-1 if none); a second label for a task raises."""
    n_tasks = int(task.max()) + 1 if task.size else 0
    if np.bincount(task[mine], minlength=n_tasks).max(initial=0) > 1:
        raise ValueError("a worker labelled the same task twice; Cohen's kappa needs one label")
    out = np.full(n_tasks, -1, dtype=np.intp)
    out[task[mine]] = label[mine]
    return out


def _coincidences(counts: FloatArray) -> Any:
    """Per unit, its coincidence-matrix contribution $(n_{uc} n_{uk} - [c = k] n_{uc}) /
    (m_u - 1)$, flattened: a sparse (n_units, K*K) matrix built from each unit's present
    classes only."""
    n_units, k = counts.shape
    unit, cls = np.nonzero(counts)
    sizes = np.bincount(unit, minlength=n_units)
    starts = np.cumsum(sizes) - sizes
    repeat = sizes[unit]
    left = np.repeat(np.arange(unit.size), repeat)
    offset = np.arange(left.size) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    right = starts[unit[left]] + offset
    u, c, d = unit[left], cls[left], cls[right]
    n_c, n_d = counts[u, c], counts[u, d]
    value = (n_c * n_d - np.where(c == d, n_c, 0.0)) / (counts.sum(axis=1)[u] - 1.0)
    return sp.csr_matrix((value, (u, c * k + d)), shape=(n_units, k * k))


def _distances(level: Level, values: FloatArray, marginals: FloatArray) -> FloatArray:
    """Squared distances between classes, (..., K, K); ordinal ones depend on the marginals."""
    v = values
    if level == "nominal":
        return np.broadcast_to(1.0 - np.eye(v.size), marginals.shape[:-1] + (v.size, v.size))
    if level == "interval":
        return np.broadcast_to((v[:, None] - v[None, :]) ** 2, marginals.shape[:-1] + (v.size,) * 2)
    if level == "ratio":
        total = v[:, None] + v[None, :]
        safe = np.where(total == 0, 1.0, total)
        ratio = np.where(total == 0, 0.0, ((v[:, None] - v[None, :]) / safe) ** 2)
        return np.broadcast_to(ratio, marginals.shape[:-1] + (v.size,) * 2)
    cumulative = np.cumsum(marginals, axis=-1)
    low, high = (
        np.minimum.outer(np.arange(v.size), np.arange(v.size)),
        np.maximum.outer(np.arange(v.size), np.arange(v.size)),
    )
    between = cumulative[..., high] - cumulative[..., low] + marginals[..., low]
    return np.asarray((between - (marginals[..., :, None] + marginals[..., None, :]) / 2.0) ** 2)


def krippendorff_alpha(
    task: npt.ArrayLike,
    label: npt.ArrayLike,
    *,
    level: Level = "nominal",
    values: npt.ArrayLike | None = None,
    n_classes: int | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> Agreement:
    r"""Krippendorff's alpha, $1 - D_o / D_e = 1 - (n - 1)\frac{\sum_{ck} o_{ck}\,\delta^2_{ck}}
    {\sum_{ck} n_c n_k\,\delta^2_{ck}}$, from the coincidence matrix $o$ of the tasks with two or
    more labels (any number of workers, missing labels allowed).

    ``level`` picks $\delta^2$: nominal $[c \ne k]$; ordinal
    $(\sum_{g=c}^{k} n_g - \frac{n_c + n_k}{2})^2$ in class-code order; interval
    $(v_c - v_k)^2$; ratio $((v_c - v_k)/(v_c + v_k))^2$, with $v$ = ``values`` (the numeric
    value of each class code; default the codes themselves).

    Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", Annenberg School for
    Communication, University of Pennsylvania. https://repository.upenn.edu/asc_papers/43
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    t, y, k = _inputs(task, label, n_classes)
    v = np.arange(k, dtype=np.float64) if values is None else np.asarray(values, np.float64)
    if v.shape != (k,):
        raise ValueError(f"values must give one number per class ({k}), got shape {v.shape}")
    stats = _coincidences(_unit_counts(t, y, k))

    def alpha(s: FloatArray) -> FloatArray:
        coincidence = s.reshape(*s.shape[:-1], k, k)
        marginals = coincidence.sum(axis=-1)
        delta = _distances(level, v, marginals)
        n = marginals.sum(axis=-1)
        observed = (coincidence * delta).sum(axis=(-2, -1))
        expected = (marginals[..., :, None] * marginals[..., None, :] * delta).sum(axis=(-2, -1))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(1.0 - (n - 1.0) * observed / expected)

    return _bootstrap(stats, alpha, n_boot=n_boot, confidence=confidence, random_state=random_state)
