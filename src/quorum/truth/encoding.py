"""Hashable ``(task, worker, label)`` columns to dense integer codes, and back.

Codes follow the sorted order of the values, so class 0 is the smallest label: that is the
order ties break in (see docs/truth.md), the same as crowd-kit's column order.

>>> data = encode_labels(["b", "a", "a"], ["w1", "w2", "w1"], ["yes", "no", "yes"])
>>> data.task.tolist(), data.worker.tolist(), data.label.tolist()
([1, 0, 0], [0, 1, 0], [1, 0, 1])
>>> data.classes.tolist()
['no', 'yes']
>>> data.encode_gold(["a", "zzz"], ["no", "yes"]).tolist()  # "zzz" has no crowd label
[0, -1]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from quorum.truth._core import NO_GOLD, IntArray


def encode(values: npt.ArrayLike, vocabulary: npt.ArrayLike | None = None) -> tuple[IntArray, Any]:
    """Codes of ``values`` in a sorted vocabulary: ``(codes, vocabulary)``.

    With ``vocabulary`` given (sorted, unique), values outside it raise ``ValueError``.

    >>> codes, vocabulary = encode([30, 10, 30])
    >>> codes.tolist(), vocabulary.tolist()
    ([1, 0, 1], [10, 30])
    """
    array = _as_1d(values)
    if vocabulary is None:
        try:
            vocab, codes = np.unique(array, return_inverse=True)
        except TypeError as error:
            raise ValueError(f"values of mixed, unorderable types: {error}") from None
        return codes.astype(np.intp, copy=False).reshape(-1), vocab
    vocab = _as_1d(vocabulary)
    codes = np.searchsorted(vocab, array).astype(np.intp)
    inside = codes < vocab.size
    known = np.zeros(array.size, dtype=bool)
    known[inside] = vocab[codes[inside]] == array[inside]
    if not known.all():
        raise ValueError(f"value {array[~known][0]!r} is not in the vocabulary")
    return codes, vocab


def _as_1d(values: npt.ArrayLike) -> Any:
    array = np.asarray(values)
    if array.ndim != 1:
        array = np.asarray(list(values), dtype=object)  # type: ignore[arg-type]
    return array


@dataclass(frozen=True)
class EncodedLabels:
    """Integer-coded crowd labels plus the sorted vocabularies that decode them."""

    task: IntArray
    worker: IntArray
    label: IntArray
    tasks: Any
    workers: Any
    classes: Any

    @property
    def n_tasks(self) -> int:
        return int(self.tasks.size)

    @property
    def n_workers(self) -> int:
        return int(self.workers.size)

    @property
    def n_classes(self) -> int:
        return int(self.classes.size)

    def encode_gold(self, task: npt.ArrayLike, label: npt.ArrayLike) -> IntArray:
        """Gold as one class code per task, ``-1`` where there is none.

        Gold for tasks without crowd labels is dropped; a gold value outside the classes raises.
        """
        gold_task, gold_label = _as_1d(task), _as_1d(label)
        codes = np.full(self.n_tasks, NO_GOLD, dtype=np.intp)
        position = np.searchsorted(self.tasks, gold_task).clip(max=max(self.n_tasks - 1, 0))
        known = self.tasks[position] == gold_task if self.n_tasks else np.zeros(0, bool)
        codes[position[known]] = encode(gold_label[known], self.classes)[0]
        return codes

    def decode_labels(self, codes: npt.ArrayLike) -> Any:
        """Class values for class codes."""
        return self.classes[np.asarray(codes, dtype=np.intp)]


def encode_labels(
    task: npt.ArrayLike,
    worker: npt.ArrayLike,
    label: npt.ArrayLike,
    *,
    classes: npt.ArrayLike | None = None,
) -> EncodedLabels:
    """Encode three equal-length columns; ``classes`` adds class values no worker used."""
    task_codes, tasks = encode(task)
    worker_codes, workers = encode(worker)
    labels = _as_1d(label)
    if classes is not None:
        labels_and_classes = np.concatenate([labels, _as_1d(classes)])
        label_codes, vocab = encode(labels_and_classes)
        label_codes = label_codes[: labels.size]
    else:
        label_codes, vocab = encode(labels)
    if not task_codes.size == worker_codes.size == label_codes.size:
        raise ValueError("task, worker and label columns differ in length")
    return EncodedLabels(task_codes, worker_codes, label_codes, tasks, workers, vocab)
