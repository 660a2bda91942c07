"""Shared plumbing for the estimators: validation, vote counts, incidence matrices, softmax."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

EPS = 1e-10
"""Floor for probabilities before a log, as in crowd-kit (``_EPS``)."""

NO_GOLD = -1
"""Marks a task without a gold label in a gold array."""


def as_codes(name: str, values: npt.ArrayLike, bound: int | None = None) -> IntArray:
    """Check that ``values`` is a 1-D array of integer codes in ``[0, bound)`` and return it.

    The caller's array is returned as is when it already has the right dtype; nothing writes to it.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer codes, got dtype {array.dtype}")
    array = array.astype(np.intp, copy=False)
    if array.size and array.min() < 0:
        raise ValueError(f"{name} codes must be >= 0, got {array.min()}")
    if bound is not None and array.size and array.max() >= bound:
        raise ValueError(f"{name} code {array.max()} is out of range for {bound} values")
    return array


def as_weights(weight: npt.ArrayLike | None, n: int) -> FloatArray | None:
    """Check an optional per-label weight array: finite, non-negative, one per label."""
    if weight is None:
        return None
    array = np.asarray(weight, dtype=np.float64)
    if array.shape != (n,):
        raise ValueError(f"weight must have shape ({n},), got {array.shape}")
    if not np.all(np.isfinite(array)) or (array.size and array.min() < 0):
        raise ValueError("weight must be finite and >= 0")
    return array


def _size(given: int | None, codes: IntArray, name: str) -> int:
    inferred = int(codes.max()) + 1 if codes.size else 0
    if given is None:
        return inferred
    if given < inferred:
        raise ValueError(f"{name}={given} but codes go up to {inferred - 1}")
    return int(given)


@dataclass(frozen=True)
class Crowd:
    """One validated crowd: integer-coded labels plus sizes, gold and optional weights."""

    task: IntArray
    worker: IntArray
    label: IntArray
    weight: FloatArray | None
    gold: IntArray
    n_tasks: int
    n_workers: int
    n_classes: int

    @property
    def n_labels(self) -> int:
        return int(self.task.size)

    @property
    def total_weight(self) -> float:
        return float(self.n_labels if self.weight is None else self.weight.sum())

    @cached_property
    def votes(self) -> FloatArray:
        """(n_tasks, n_classes) sum of label weights (counts when unweighted)."""
        return weighted_votes(self, None)

    @cached_property
    def task_weight(self) -> FloatArray:
        """Per task, the total weight of its labels (its label count when unweighted)."""
        counts = np.bincount(self.task, weights=self.weight, minlength=self.n_tasks)
        return counts.astype(np.float64, copy=False)

    @cached_property
    def labeled(self) -> BoolArray:
        """Tasks with at least one label of positive weight."""
        return self.task_weight > 0

    @cached_property
    def worker_weight(self) -> FloatArray:
        counts = np.bincount(self.worker, weights=self.weight, minlength=self.n_workers)
        return counts.astype(np.float64, copy=False)

    @cached_property
    def incidence(self) -> Incidence:
        return Incidence.build(self)


def as_crowd(
    task: npt.ArrayLike,
    worker: npt.ArrayLike,
    label: npt.ArrayLike,
    *,
    gold: npt.ArrayLike | None = None,
    weight: npt.ArrayLike | None = None,
    n_tasks: int | None = None,
    n_workers: int | None = None,
    n_classes: int | None = None,
) -> Crowd:
    """Validate the arrays every estimator takes and infer the sizes they leave out.

    ``n_tasks`` defaults to ``len(gold)`` when gold is given, else to ``task.max() + 1``.
    """
    t, w, y = as_codes("task", task), as_codes("worker", worker), as_codes("label", label)
    if not t.size == w.size == y.size:
        raise ValueError(f"task, worker, label lengths differ: {t.size}, {w.size}, {y.size}")
    gold_codes = None if gold is None else np.asarray(gold)
    if n_tasks is None and gold_codes is not None:
        n_tasks = int(gold_codes.size)
    n_t, n_w, n_k = _size(n_tasks, t, "n_tasks"), _size(n_workers, w, "n_workers"), 0
    n_k = max(_size(n_classes, y, "n_classes"), 1)
    gold_array = _as_gold(gold_codes, n_t, n_k)
    return Crowd(t, w, y, as_weights(weight, t.size), gold_array, n_t, n_w, n_k)


def _as_gold(gold: Any, n_tasks: int, n_classes: int) -> IntArray:
    if gold is None:
        return np.full(n_tasks, NO_GOLD, dtype=np.intp)
    if gold.shape != (n_tasks,) or (gold.size and gold.dtype.kind not in "iu"):
        raise ValueError(f"gold must be {n_tasks} integer codes (-1 for none), got {gold.shape}")
    codes: IntArray = gold.astype(np.intp, copy=False)
    if codes.size and (codes.min() < NO_GOLD or codes.max() >= n_classes):
        raise ValueError(f"gold codes must be -1 or in [0, {n_classes})")
    return codes


def weighted_votes(crowd: Crowd, worker_skill: FloatArray | None) -> FloatArray:
    """(n_tasks, n_classes) vote totals; each label counts its weight times its worker's skill."""
    weight = crowd.weight
    if worker_skill is not None:
        skill = worker_skill[crowd.worker]
        weight = skill if weight is None else weight * skill
    flat = crowd.task * crowd.n_classes + crowd.label
    size = crowd.n_tasks * crowd.n_classes
    votes = np.bincount(flat, weights=weight, minlength=size).astype(np.float64, copy=False)
    return votes.reshape(crowd.n_tasks, crowd.n_classes)


def normalize_votes(votes: FloatArray) -> FloatArray:
    """Vote shares per task; a task without votes gets the uniform distribution."""
    totals = votes.sum(axis=1, keepdims=True)
    uniform = np.full_like(votes, 1.0 / votes.shape[1])
    shares: FloatArray = np.divide(votes, totals, out=uniform, where=totals > 0)
    return shares


def clamp_gold(probas: FloatArray, gold: IntArray) -> FloatArray:
    """Overwrite the posterior of gold tasks with their one-hot gold label, in place."""
    rows = np.flatnonzero(gold != NO_GOLD)
    if rows.size:
        probas[rows] = 0.0
        probas[rows, gold[rows]] = 1.0
    return probas


def argmax(probas: FloatArray) -> IntArray:
    """Most probable class per task; ties go to the smallest class code (see docs/truth.md)."""
    if not probas.size:
        return np.zeros(0, dtype=np.intp)
    best: IntArray = probas.argmax(axis=1).astype(np.intp, copy=False)
    return best


def dot(a: FloatArray, b: FloatArray) -> float:
    """Sum of the elementwise product of two same-shape arrays.

    NOTE: einsum, not np.dot: OpenBLAS spreads a long dot over its thread pool, and on a busy
    2-core machine its spinning threads made GLAD's objective 4-8x slower.
    """
    subscripts = "ij,ij->" if a.ndim == 2 else "i,i->"
    return float(np.einsum(subscripts, a, b))


def column_sums(weights: FloatArray, x: FloatArray) -> FloatArray:
    """``weights @ x`` for a long vector and a narrow matrix, without BLAS (see :func:`dot`)."""
    return np.asarray(np.einsum("i,ik->k", weights, x))


def row_max(x: FloatArray) -> FloatArray:
    # NOTE: a Python loop over the (few) classes beats x.max(axis=1), which is slow for a narrow
    # trailing axis; same for row_sum.
    out = x[:, 0].copy()
    for k in range(1, x.shape[1]):
        np.maximum(out, x[:, k], out=out)
    return out


def row_sum(x: FloatArray) -> FloatArray:
    out = x[:, 0].copy()
    for k in range(1, x.shape[1]):
        out += x[:, k]
    return out


def softmax_rows(log_joint: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Normalise each row of log-joint probabilities: (posterior, per-row log normaliser).

    Shifting by the row maximum first keeps exp() in range whatever the number of labels.
    """
    shift = row_max(log_joint) if log_joint.shape[1] else np.zeros(log_joint.shape[0])
    probas = np.exp(log_joint - shift[:, None])
    total = row_sum(probas)
    probas /= total[:, None]
    return probas, shift + np.log(total)


@dataclass(frozen=True)
class Incidence:
    """Sparse task x (worker, label) counts: ``matrix[t, w * K + l]`` is the weight of worker
    ``w`` answering ``l`` on task ``t``.

    ``matrix @ table`` sums a per-(worker, label) table over each task's labels (an E-step);
    ``per_answer(posteriors)`` sums task posteriors per (worker, label) (an M-step). Duplicate
    (task, worker, label) rows add up, as they do in crowd-kit.
    """

    matrix: Any

    def per_answer(self, probas: FloatArray) -> FloatArray:
        """(n_workers * n_classes, n_classes): posteriors summed per (worker, answer) column.

        NOTE: ``matrix.T @ probas`` walks the task-major matrix in order and scatters into a
        small table; a precomputed CSR transpose instead gathers task rows at random and was
        9x slower on 1M tasks.
        """
        return np.asarray(self.matrix.T @ probas)

    @cached_property
    def answer_weight(self) -> FloatArray:
        """Per (worker, label) column, the total weight of those answers (their count)."""
        n_columns = self.matrix.shape[1]
        totals = np.bincount(self.matrix.indices, weights=self.matrix.data, minlength=n_columns)
        return totals.astype(np.float64, copy=False)

    @cached_property
    def answered(self) -> BoolArray:
        """Per (worker, label) column: did the worker ever give that label (with weight > 0)?"""
        counts: IntArray = np.bincount(self.matrix.indices, minlength=self.matrix.shape[1])
        return counts > 0

    @classmethod
    def build(cls, crowd: Crowd) -> Incidence:
        n_columns = crowd.n_workers * crowd.n_classes
        column = crowd.worker * crowd.n_classes + crowd.label
        index_type = np.int32 if max(n_columns, crowd.n_tasks) < 2**31 else np.int64
        task, data = crowd.task, np.ones(crowd.n_labels)
        if crowd.weight is not None:  # zero weights would leave explicit zeros in the matrix
            kept = crowd.weight > 0
            task, column, data = task[kept], column[kept], crowd.weight[kept]
        matrix = sp.csr_matrix(
            (data, (task.astype(index_type), column.astype(index_type))),
            shape=(crowd.n_tasks, n_columns),
        )
        return cls(matrix)
