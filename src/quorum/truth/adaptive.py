r"""Adaptive overlap: ask for one more label only while more labels could still change the answer.

The quality loop (DESIGN section 6) calls this after every submission for that task, and for all
tasks after each periodic re-aggregation. Everything here is arrays in, arrays out, vectorised
over tasks and deterministic; it knows nothing of projects or databases.

**The rule.** Let a task have $n$ labels, of which the model below makes the posterior
$p_k \propto \left(\pi_k \prod_i \pi^{(w_i)}_{k y_i}\right)^{1/T}$ and the current answer
$a = \arg\max_k p_k$. Up to $h = \text{max\_overlap} - n$ more labels may come, from workers
not known yet, modelled by the pooled confusion matrix $\bar\pi$ (the average label's). The
*flip probability* is the chance that the answer after all $h$ of them differs from $a$:

$$P_{\text{flip}} = \sum_k p_k \sum_{c} \mathrm{Mult}(c \mid h, \bar\pi_{k\cdot})\,
\Big[\arg\max_j \big(\log \pi_j + \textstyle\sum_i \log \pi^{(w_i)}_{j y_i}
+ \sum_l c_l \log \bar\pi_{jl}\big) \ne a\Big]$$

summed over every way $c$ of splitting $h$ answers among the $K$ classes. A task needs another
label while it has fewer than ``overlap`` labels, or while $P_{\text{flip}} > 1 -
\text{target}$ and it has fewer than ``max_overlap``. With a long horizon this is the usual
"top posterior below the target" rule ($P_{\text{flip}} \to 1 - p_a$); with a short one it
stops as soon as the labels still allowed cannot overturn the answer (three agreeing labels out
of five), which is where a fixed overlap of five wastes most. It is the stopping rule of the
sequential-testing view of label collection (Wald (1945), "Sequential Tests of Statistical
Hypotheses", Ann. Math. Statist. 16(2):117-186; for crowds, Abraham, Alonso, Kandylas, Patel,
Shelford & Slivkins (2016), "How Many Workers to Ask? Adaptive Exploration for Collecting High
Quality Labels", SIGIR, doi:10.1145/2911451.2911514, arXiv:1411.0149), with the answer that
*all* allowed labels would give as the thing to predict, rather than the truth.

**The model.** ``confusions[w, k, l]`` is $P(w$ answers $l \mid$ true class $k)$ and
``priors[k]`` the class prior, as Dawid-Skene fits them; :func:`worker_model` builds them from
the posteriors of any re-aggregation, shrinking each worker's expected counts towards the pooled
matrix with ``strength`` pseudo-labels per true class (a worker seen twice is not certain of
anything). EM posteriors are over-confident (labels on one task are not independent, and the
confusions are estimates), so the posterior is tempered by $T$ (``temperature``; Guo, Pleiss,
Sun & Weinberger (2017), arXiv:1706.04599) before it weighs the futures; the answers themselves
use the untempered evidence.

**Routing.** :func:`label_value` is the expected information one more label from a given
worker brings about a task's true class (mutual information, in nats): the router prefers the
eligible annotator with the most, which sends a disputed task to a reliable annotator without
assuming one. :func:`reserve_higher_tier` is the escalation rule of the issue: once a task has
had ``after`` extra labels and still needs more, its next slot is kept for a higher tier.

**Defaults** (``TARGET``, ``TEMPERATURE``, ``STRENGTH``) are one global setting chosen by
replaying 18 real label sets offline without looking at their gold answers
(benchmarks/adaptive_policy_offline.py, docs/truth.md "Adaptive overlap").
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import combinations
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln

from quorum.truth._core import (
    EPS,
    BoolArray,
    FloatArray,
    IntArray,
    as_codes,
    as_weights,
    softmax_rows,
)

TARGET = 0.999
"""Default ``target``: stop once the answer would change with probability at most 0.1%."""

TEMPERATURE = 2.0
"""Default ``temperature``: log-posteriors are halved before they weigh the futures."""

STRENGTH = 2.0
"""Default ``strength`` of :func:`worker_model`: pseudo-labels per true class."""

ESCALATE_AFTER = 2
"""Extra labels after which a task that still needs more is escalated to a higher tier."""

MAX_OUTCOMES = 20_000
"""Largest number of ways to split the horizon among the classes that is enumerated exactly;
beyond it (e.g. 10 classes and 6 more labels) the flip probability is taken as ``1 - p_a``, its
limit for a long horizon."""

_CELLS = 1 << 22
"""Tasks x outcomes x classes per block of the enumeration, to bound memory."""


class WorkerModel(NamedTuple):
    """What the stopping rule needs to know about workers, from one re-aggregation."""

    confusions: FloatArray
    """(n_workers, K, K): ``[w, k, l]`` = P(worker ``w`` answers ``l`` | true class ``k``)."""
    priors: FloatArray
    """(K,): class priors, the mean posterior of the tasks that have labels."""
    pooled: FloatArray
    """(K, K): the confusion matrix of an average label, used for workers not seen yet."""


def worker_model(
    task: npt.ArrayLike,
    worker: npt.ArrayLike,
    label: npt.ArrayLike,
    probas: npt.ArrayLike,
    *,
    n_workers: int | None = None,
    strength: float = STRENGTH,
    weight: npt.ArrayLike | None = None,
) -> WorkerModel:
    r"""Shrunk confusion matrices, priors and the pooled matrix from a re-aggregation.

    ``probas`` is the (n_tasks, K) posterior of any estimator fitted on these labels. Expected
    counts $n_{wkl} = \sum_{i: w_i = w, y_i = l} v_i\, p_{t_i k}$ get ``strength`` times the
    pooled matrix $\bar\pi$ (all workers' counts, normalised per true class) added to each true
    class row before normalising, so a worker without labels has exactly $\bar\pi$.

    >>> model = worker_model([0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 1, 0], [[1, 0], [0, 1]])
    >>> model.pooled.tolist()  # class 0 always answered 0; class 1 half the time
    [[1.0, 0.0], [0.5, 0.5]]
    >>> model.confusions[0].round(2).tolist()  # right twice, pulled towards the pool
    [[1.0, 0.0], [0.33, 0.67]]
    """
    post = np.asarray(probas, dtype=np.float64)
    if post.ndim != 2:
        raise ValueError(f"probas must be (n_tasks, n_classes), got shape {post.shape}")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    n_tasks, n_classes = post.shape
    t, w, y = _codes(task, worker, label, n_tasks=n_tasks, n_classes=n_classes)
    n_w = _size(n_workers, w, "n_workers")
    v = as_weights(weight, t.size)
    counts = np.empty((n_w, n_classes, n_classes))  # [worker, true, answer]
    cell = w * n_classes + y
    for k in range(n_classes):
        mass = post[t, k] if v is None else post[t, k] * v
        counts[:, k, :] = np.bincount(cell, mass, n_w * n_classes).reshape(n_w, n_classes)
    pooled = _normalise(counts.sum(axis=0))
    shrunk = counts + strength * pooled
    empty = shrunk.sum(axis=2, keepdims=True) <= 0
    confusions = np.where(empty, pooled, _normalise(shrunk))
    labelled = np.bincount(t, minlength=n_tasks) > 0
    priors = post[labelled].mean(axis=0) if labelled.any() else np.full(n_classes, 1 / n_classes)
    return WorkerModel(confusions, priors, pooled)


def flip_probability(
    task: npt.ArrayLike,
    worker: npt.ArrayLike,
    label: npt.ArrayLike,
    confusions: npt.ArrayLike,
    priors: npt.ArrayLike,
    *,
    horizon: npt.ArrayLike,
    temperature: float = TEMPERATURE,
    pooled: npt.ArrayLike | None = None,
    n_tasks: int | None = None,
    weight: npt.ArrayLike | None = None,
) -> FloatArray:
    """Per task, the probability that ``horizon`` more labels change its answer (module doc).

    ``horizon`` is a number or one per task. Worker codes past the rows of ``confusions`` are
    workers the model has not seen; they and the future labels get ``pooled`` (default: the
    mean of ``confusions``). ``weight`` scales each label's evidence as in the estimators.

    >>> five = [[[0.7, 0.3], [0.3, 0.7]]] * 5
    >>> flip_probability([0] * 3, [0, 1, 2], [1, 1, 1], five, [0.5, 0.5], horizon=2).tolist()
    [0.0]
    >>> flip_probability([0] * 2, [0, 1], [1, 1], five, [0.5, 0.5], horizon=3).round(3).tolist()
    [0.122]
    """
    log_joint, conf_pooled = _log_joint(
        task, worker, label, confusions, priors, pooled=pooled, n_tasks=n_tasks, weight=weight
    )
    return _flip(log_joint, conf_pooled, _per_task(horizon, log_joint.shape[0]), temperature)


def task_posterior(
    task: npt.ArrayLike,
    worker: npt.ArrayLike,
    label: npt.ArrayLike,
    confusions: npt.ArrayLike,
    priors: npt.ArrayLike,
    *,
    temperature: float = TEMPERATURE,
    pooled: npt.ArrayLike | None = None,
    n_tasks: int | None = None,
    weight: npt.ArrayLike | None = None,
) -> FloatArray:
    """(n_tasks, K) tempered posterior the rule weighs futures with; arguments as
    :func:`flip_probability`. Its top value is the task's confidence; its argmax is the answer.

    >>> five = [[[0.7, 0.3], [0.3, 0.7]]] * 5
    >>> task_posterior([0, 0], [0, 1], [1, 1], five, [0.5, 0.5]).round(2).tolist()
    [[0.3, 0.7]]
    """
    log_joint, _ = _log_joint(
        task, worker, label, confusions, priors, pooled=pooled, n_tasks=n_tasks, weight=weight
    )
    return _tempered(log_joint, temperature)


def needs_more_labels(
    task: npt.ArrayLike,
    worker: npt.ArrayLike,
    label: npt.ArrayLike,
    confusions: npt.ArrayLike,
    priors: npt.ArrayLike,
    *,
    overlap: int | npt.ArrayLike,
    max_overlap: int | npt.ArrayLike,
    target: float = TARGET,
    temperature: float = TEMPERATURE,
    pooled: npt.ArrayLike | None = None,
    n_tasks: int | None = None,
    weight: npt.ArrayLike | None = None,
) -> BoolArray:
    """Per task: should it get one more label?

    True while a task has fewer than ``overlap`` labels, or while its flip probability over the
    labels still allowed (``max_overlap`` minus the labels it has, counted from ``task``) is
    above ``1 - target``; never at ``max_overlap`` or beyond. ``overlap`` and ``max_overlap``
    are numbers or one per task; the other arguments are those of :func:`flip_probability`.

    >>> five = [[[0.7, 0.3], [0.3, 0.7]]] * 5
    >>> needs_more_labels([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 1, 1, 1, 0, 1], five,
    ...                   [0.5, 0.5], overlap=3, max_overlap=5).tolist()
    [False, True]
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target must be in (0, 1], got {target}")
    log_joint, conf_pooled = _log_joint(
        task, worker, label, confusions, priors, pooled=pooled, n_tasks=n_tasks, weight=weight
    )
    size = log_joint.shape[0]
    n_labels = np.bincount(as_codes("task", task), minlength=size)
    cap, base = _per_task(max_overlap, size), _per_task(overlap, size)
    open_ = n_labels < cap
    horizon = np.where(open_, cap - n_labels, 0)
    unsure = np.zeros(size, dtype=bool)
    rows = np.flatnonzero(open_ & (n_labels >= base))
    if rows.size:
        flip = _flip(log_joint[rows], conf_pooled, horizon[rows], temperature)
        unsure[rows] = flip > 1.0 - target
    needs: BoolArray = open_ & ((n_labels < base) | unsure)
    return needs


def label_value(probas: npt.ArrayLike, confusions: npt.ArrayLike) -> FloatArray:
    r"""Expected information (nats) one label from a worker gives about a task's true class.

    $I = H(p) - \sum_l P(l)\, H(p \mid l)$ with $P(l) = \sum_k p_k \pi_{kl}$ and
    $p(k \mid l) \propto p_k \pi_{kl}$: the mutual information between the worker's answer and
    the class. ``probas`` is (..., K), ``confusions`` (..., K, K); they broadcast, so one task's
    posterior against every worker's matrix gives one value per worker. Zero for a task that is
    certain and for a worker who answers at random.

    >>> label_value([0.5, 0.5], [[[0.9, 0.1], [0.1, 0.9]], [[0.5, 0.5], [0.5, 0.5]]]).round(3)
    array([0.368, 0.   ])
    """
    p = np.asarray(probas, dtype=np.float64)
    conf = np.asarray(confusions, dtype=np.float64)
    joint = p[..., :, None] * conf  # [..., true, answer]
    answer = joint.sum(axis=-2)
    cond = joint / np.maximum(answer[..., None, :], 1e-300)
    value: FloatArray = _entropy(p, axis=-1) - (answer * _entropy(cond, axis=-2)).sum(axis=-1)
    return np.maximum(value, 0.0)


def reserve_higher_tier(
    n_labels: npt.ArrayLike,
    needs: npt.ArrayLike,
    *,
    overlap: int | npt.ArrayLike,
    after: int = ESCALATE_AFTER,
) -> BoolArray:
    """Per task: keep its next slot for a higher tier (disagreement persists after ``after``
    extra labels beyond ``overlap``, and :func:`needs_more_labels` still says yes).

    >>> reserve_higher_tier([3, 5, 5], [True, True, False], overlap=3).tolist()
    [False, True, False]
    """
    n = np.asarray(n_labels)
    reserve: BoolArray = np.asarray(needs, dtype=bool) & (n >= np.asarray(overlap) + after)
    return reserve


def _codes(
    task: npt.ArrayLike, worker: npt.ArrayLike, label: npt.ArrayLike, *, n_tasks: int,
    n_classes: int,
) -> tuple[IntArray, IntArray, IntArray]:  # fmt: skip
    t = as_codes("task", task, n_tasks)
    w, y = as_codes("worker", worker), as_codes("label", label, n_classes)
    if not t.size == w.size == y.size:
        raise ValueError(f"task, worker, label lengths differ: {t.size}, {w.size}, {y.size}")
    return t, w, y


def _size(given: int | None, codes: IntArray, name: str) -> int:
    inferred = int(codes.max()) + 1 if codes.size else 0
    if given is not None and given < inferred:
        raise ValueError(f"{name}={given} but codes go up to {inferred - 1}")
    return inferred if given is None else int(given)


def _normalise(counts: FloatArray) -> FloatArray:
    """Rows over the last axis summing to one; an empty row becomes uniform."""
    total = counts.sum(axis=-1, keepdims=True)
    uniform = np.full_like(counts, 1.0 / counts.shape[-1])
    rows: FloatArray = np.divide(counts, total, out=uniform, where=total > 0)
    return rows


def _per_task(value: int | npt.ArrayLike, size: int) -> IntArray:
    array = np.asarray(value)
    if array.ndim not in (0, 1) or (array.ndim == 1 and array.shape != (size,)):
        raise ValueError(f"expected a number or {size} values, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise ValueError(f"expected whole numbers of labels, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise ValueError("numbers of labels must be >= 0")
    per_task: IntArray = np.broadcast_to(array.astype(np.intp), (size,))
    return per_task


def _log_joint(
    task: npt.ArrayLike, worker: npt.ArrayLike, label: npt.ArrayLike,
    confusions: npt.ArrayLike, priors: npt.ArrayLike, *, pooled: npt.ArrayLike | None,
    n_tasks: int | None, weight: npt.ArrayLike | None,
) -> tuple[FloatArray, FloatArray]:  # fmt: skip
    """(n_tasks, K) log prior plus log-likelihood of each task's labels, and the pooled matrix."""
    conf = np.asarray(confusions, dtype=np.float64)
    if conf.ndim != 3 or conf.shape[1] != conf.shape[2]:
        raise ValueError(f"confusions must be (n_workers, K, K), got shape {conf.shape}")
    n_classes = conf.shape[1]
    prior = np.asarray(priors, dtype=np.float64)
    if prior.shape != (n_classes,):
        raise ValueError(f"priors must have shape ({n_classes},), got {prior.shape}")
    mean = conf.mean(axis=0) if conf.shape[0] else np.full((n_classes,) * 2, 1.0 / n_classes)
    pool = mean if pooled is None else np.asarray(pooled, dtype=np.float64)
    if pool.shape != (n_classes, n_classes):
        raise ValueError(f"pooled must have shape ({n_classes}, {n_classes}), got {pool.shape}")
    t0 = as_codes("task", task)
    size = _size(n_tasks, t0, "n_tasks")
    t, w, y = _codes(t0, worker, label, n_tasks=size, n_classes=n_classes)
    v = as_weights(weight, t.size)
    table = np.log(np.clip(np.concatenate([conf, pool[None]]), EPS, 1.0))  # last row: unseen
    rows = np.minimum(w, conf.shape[0])
    evidence = table[rows, :, y]  # (n_labels, K): log P(answer | class k)
    if v is not None:
        evidence = evidence * v[:, None]
    log_joint = np.empty((size, n_classes))
    for k in range(n_classes):
        log_joint[:, k] = np.bincount(t, weights=evidence[:, k], minlength=size)
    log_joint += np.log(np.maximum(prior, EPS))
    return log_joint, pool


def _flip(
    log_joint: FloatArray, pooled: FloatArray, horizon: IntArray, temperature: float
) -> FloatArray:
    """Flip probability of each row of ``log_joint`` given its horizon (module doc)."""
    n_tasks, n_classes = log_joint.shape
    probas = _tempered(log_joint, temperature)
    answer = log_joint.argmax(axis=1) if n_classes else np.zeros(n_tasks, dtype=np.intp)
    flip = np.zeros(n_tasks)
    if n_classes < 2:
        return flip
    log_pool = np.log(np.clip(pooled, EPS, 1.0))
    for h in np.unique(horizon[horizon > 0]):
        rows = np.flatnonzero(horizon == h)
        if math.comb(int(h) + n_classes - 1, n_classes - 1) > MAX_OUTCOMES:
            flip[rows] = 1.0 - probas[rows, answer[rows]]
            continue
        counts, log_coef = _outcomes(int(h), n_classes)
        added = counts @ log_pool.T  # (outcomes, K): evidence the outcome adds to each class
        chance = np.exp(log_coef[:, None] + added)  # (outcomes, K): P(outcome | true class k)
        block = max(_CELLS // (counts.shape[0] * n_classes), 1)
        for start in range(0, rows.size, block):
            part = rows[start : start + block]
            final = (log_joint[part, None, :] + added[None]).argmax(axis=2)
            changed = (final != answer[part, None]).astype(np.float64)
            flip[part] = np.einsum("rc,ck,rk->r", changed, chance, probas[part])
    return np.clip(flip, 0.0, 1.0)


def _tempered(log_joint: FloatArray, temperature: float) -> FloatArray:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not log_joint.shape[1]:
        return log_joint.copy()
    return softmax_rows(log_joint / temperature)[0]


@lru_cache(maxsize=256)
def _outcomes(horizon: int, n_classes: int) -> tuple[IntArray, FloatArray]:
    """Every split of ``horizon`` answers among the classes, and its log multinomial coefficient.

    Stars and bars: ``n_classes - 1`` bars among ``horizon + n_classes - 1`` slots; the counts
    are the gaps between bars.
    """
    slots = horizon + n_classes - 1
    n_splits = math.comb(slots, n_classes - 1)
    bars = np.array(list(combinations(range(slots), n_classes - 1)), dtype=np.intp)
    bars = bars.reshape(n_splits, n_classes - 1)
    edges = np.hstack([np.full((bars.shape[0], 1), -1), bars, np.full((bars.shape[0], 1), slots)])
    counts: IntArray = np.diff(edges, axis=1) - 1
    log_coef: FloatArray = gammaln(horizon + 1) - gammaln(counts + 1).sum(axis=1)
    counts.flags.writeable = False
    log_coef.flags.writeable = False
    return counts, log_coef


def _entropy(p: FloatArray, *, axis: int) -> FloatArray:
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    entropy: FloatArray = terms.sum(axis=axis)
    return entropy
