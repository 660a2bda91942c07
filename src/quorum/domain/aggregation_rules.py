"""The aggregation rule of each question kind, on arrays (see quorum.domain.aggregation).

Each rule takes the labels of one question as an Arrow column (one row per label, null where the
annotator left the question out) and returns one answer and one confidence per task.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from quorum.domain.questions import MultiChoiceQuestion, RankingQuestion, SpansQuestion
from quorum.truth import Auto, Estimator, apply_temperature, fit_temperature, make_estimator

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
PAIR_BUDGET = 20_000_000  # item pairs compared at once when scoring rankings
# Labelled gold tasks a question needs before its confidences are calibrated on them
# (benchmarks/truth_calibration.py: with 10 the fitted temperature is already mostly right).
MIN_CALIBRATION_GOLD = 10


@dataclass(frozen=True)
class QuestionAggregate:
    """One question's answer and confidence per task, aligned with ``Aggregate.task_id``;
    a null answer and a NaN confidence where there is none."""

    answer: pa.Array
    confidence: FloatArray


@dataclass(frozen=True)
class Crowd:
    """Dense codes every question shares: the labelled tasks, the workers, and the gold."""

    method: str
    task: IntArray  # per label, the code of its task
    worker: IntArray  # per label, the code of its worker
    n_tasks: int
    n_workers: int
    gold_task: IntArray  # per row of ``gold``, the code of its task (-1: it has no labels)
    gold: pa.Table  # gold answers, one column per question
    clamp_gold: bool  # else gold only calibrates: the answers are the crowd's own

    def gold_column(self, name: str, kind: pa.DataType) -> tuple[IntArray, pa.Array]:
        """Task codes and gold values of the labelled tasks that have gold for ``name``."""
        if not self.gold.num_rows:
            return np.zeros(0, np.int64), pa.array([], kind)
        values = self.gold.column(name).combine_chunks()
        keep = (self.gold_task >= 0) & values.is_valid().to_numpy(zero_copy_only=False)
        return self.gold_task[keep], values.filter(pa.array(keep))

    def calibrated_fit(
        self,
        item: IntArray,
        worker: IntArray,
        label: IntArray,
        gold: IntArray,
        n_classes: int,
        item_task: IntArray | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Posteriors ``(len(gold), n_classes)`` of items from their labels, and the same
        tempered by the temperature that best fits the gold (``quorum.truth.calibration``) when
        at least ``MIN_CALIBRATION_GOLD`` tasks have labelled items with gold; ``item_task[i]``
        is the task of item ``i`` (by default each item is a task).

        With ``clamp_gold`` the gold is clamped and only the items without gold are tempered,
        by a temperature fitted on posteriors that did not see the gold: ``auto``'s out-of-fold
        ones, else a second fit without it. Without, the one fit is blind (``auto`` is then
        Dawid-Skene), every item is tempered, and a gold code ``n_classes`` is a value no label
        gave. Decide on the first: tempering keeps the order of an item's classes, but floors
        posteriors at 1e-6 first, which can tie them."""
        blind_gold = np.full_like(gold, -1)
        fitted = self._estimator(
            item, worker, label, gold if self.clamp_gold else blind_gold, n_classes
        )
        labelled = np.bincount(item, minlength=gold.size) > 0
        known = np.flatnonzero((gold >= 0) & labelled)
        tasks = known if item_task is None else np.unique(item_task[known])
        if tasks.size < MIN_CALIBRATION_GOLD:
            return fitted.probas_, fitted.probas_
        if not self.clamp_gold:
            temperature = _fit_blind_temperature(fitted.probas_[known], gold[known])
            return fitted.probas_, apply_temperature(fitted.probas_, temperature)
        if isinstance(fitted, Auto):
            temperature = fitted.temperature_
        else:
            blind = self._estimator(item, worker, label, blind_gold, n_classes)
            temperature = fit_temperature(blind.probas_[known], gold[known])
        tempered = apply_temperature(fitted.probas_, temperature)
        return fitted.probas_, np.where((gold >= 0)[:, None], fitted.probas_, tempered)

    def _estimator(
        self, item: IntArray, worker: IntArray, label: IntArray, gold: IntArray, n_classes: int
    ) -> Estimator:
        return make_estimator(self.method).fit(
            item, worker, label, gold=gold, n_tasks=gold.size,
            n_workers=self.n_workers, n_classes=n_classes,
        )  # fmt: skip

    def answered(self, answered: BoolArray) -> BoolArray:
        """Per task, whether any label answers the question."""
        present: BoolArray = np.bincount(self.task[answered], minlength=self.n_tasks) > 0
        return present


def _fit_blind_temperature(probas: FloatArray, gold: IntArray) -> float:
    """:func:`fit_temperature` where a gold code past the last class (a value no label gave) is
    a class of posterior 0: a sure miss, which the temperature must account for."""
    unseen = int(gold.max(initial=-1)) + 1 - probas.shape[1]
    return fit_temperature(np.pad(probas, ((0, 0), (0, max(unseen, 0)))), gold)


def nothing(crowd: Crowd, kind: pa.DataType) -> QuestionAggregate:
    return QuestionAggregate(pa.nulls(crowd.n_tasks, kind), np.full(crowd.n_tasks, np.nan))


def categorical(
    crowd: Crowd, name: str, column: pa.Array, answered: BoolArray
) -> QuestionAggregate:
    """choice, preference, rating: the most probable class under the estimator; its posterior,
    calibrated on the question's gold when there is enough (``Crowd.calibrated_fit``)."""
    gold_task, gold_values = crowd.gold_column(name, column.type)
    values = column.filter(pa.array(answered))
    gold = np.full(crowd.n_tasks, -1, np.int64)
    if crowd.clamp_gold:  # a gold value no label gave is one more class, the answer of its tasks
        classes, codes = _encode(pa.concat_arrays([values, gold_values]))
        gold[gold_task] = codes[len(values) :]
        codes = codes[: len(values)]
    else:
        # NOTE: the labels' classes only, as without gold. A class without labels still moves
        # the posteriors of DS, ODS, GLAD and MACE (by up to 0.11 in a simulation) and could
        # take an answer; a gold value no label gave calibrates as a class of posterior 0.
        classes, codes = _encode(values)
        found = pc.index_in(gold_values, value_set=classes).fill_null(len(classes))
        gold[gold_task] = found.to_numpy(zero_copy_only=False)
    probas, calibrated = crowd.calibrated_fit(
        crowd.task[answered], crowd.worker[answered], codes, gold, len(classes)
    )
    best = probas.argmax(axis=1)
    present = crowd.answered(answered)
    answer = classes.take(pa.array(best, mask=~present))
    confidence = np.take_along_axis(calibrated, best[:, None], axis=1)[:, 0]
    return QuestionAggregate(answer, np.where(present, confidence, np.nan))


def _encode(values: pa.Array) -> tuple[pa.Array, IntArray]:
    """Sorted distinct values and each value's code among them (class 0 is the smallest)."""
    encoded = values.dictionary_encode()
    order = pc.sort_indices(encoded.dictionary).to_numpy()
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    codes: IntArray = rank[encoded.indices.to_numpy(zero_copy_only=False)]
    return encoded.dictionary.take(pa.array(order)), codes


def _yes_probability(
    crowd: Crowd, item: IntArray, worker: IntArray, bit: IntArray, gold: IntArray, task: IntArray
) -> tuple[FloatArray, FloatArray]:
    """P(yes) per item (``task[i]`` is the task of item ``i``) from yes/no labels, through the
    chosen estimator (gold clamped when the crowd clamps it): as fitted, to decide on, and as
    calibrated on the gold tasks' decisions (``Crowd.calibrated_fit``), for the confidence."""
    if gold.size == 0:
        return np.zeros(0), np.zeros(0)
    probas, calibrated = crowd.calibrated_fit(item, worker, bit, gold, 2, task)
    return probas[:, 1], calibrated[:, 1]


def multi_choice(
    crowd: Crowd, question: MultiChoiceQuestion, column: pa.Array, answered: BoolArray
) -> QuestionAggregate:
    """One yes/no decision per option; the likely ones, within min/max_selected. The
    confidence is that all decisions are right, from the calibrated P(yes) of each."""
    options = pa.array(question.options)
    n = len(question.options)
    chosen = _option_bits(column.filter(pa.array(answered)), options)
    item = (crowd.task[answered][:, None] * n + np.arange(n)).ravel()
    worker = np.repeat(crowd.worker[answered], n)
    gold_task, gold_values = crowd.gold_column(question.name, column.type)
    gold = np.full(crowd.n_tasks * n, -1, np.int64)
    gold[(gold_task[:, None] * n + np.arange(n)).ravel()] = _option_bits(
        gold_values, options
    ).ravel()
    option_task = np.repeat(np.arange(crowd.n_tasks), n)
    yes = _yes_probability(crowd, item, worker, chosen.ravel(), gold, option_task)
    p, calibrated = yes[0].reshape(-1, n), yes[1].reshape(-1, n)
    selected = _select(p, question.min_selected, question.max_selected or n)
    present = crowd.answered(answered)
    _, picks = np.nonzero(selected)
    answer = pa.ListArray.from_arrays(
        _offsets(selected.sum(axis=1)), options.take(pa.array(picks)), mask=pa.array(~present)
    )
    confidence = np.where(selected, calibrated, 1 - calibrated).prod(axis=1)
    return QuestionAggregate(answer, np.where(present, confidence, np.nan))


def _offsets(counts: IntArray) -> pa.Array:
    return pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32())


def _option_bits(lists: pa.Array, options: pa.Array) -> IntArray:
    """``(len(lists), len(options))``: 1 where a list holds the option."""
    bits = np.zeros((len(lists), len(options)), np.int64)
    if len(lists):
        flat = pc.list_flatten(lists)
        parent = pc.list_parent_indices(lists).to_numpy()
        bits[parent, pc.index_in(flat, value_set=options).to_numpy()] = 1
    return bits


def _select(p: FloatArray, least: int, most: int) -> BoolArray:
    """The options more likely chosen than not, topped up to ``least`` or cut to ``most`` by
    probability (ties: the earlier option)."""
    order = np.argsort(-p, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(p.shape[1]), p.shape), axis=1)
    count = np.clip((p > 0.5).sum(axis=1), least, most)
    chosen: BoolArray = rank < count[:, None]
    return chosen


@dataclass(frozen=True)
class _Spans:
    """Flattened spans: the row of the list each came from, and its (start, end, label)."""

    row: IntArray
    start: IntArray
    end: IntArray
    label: IntArray  # rank of the label in sorted order, so spans sort as stored answers do

    @classmethod
    def of(cls, lists: pa.Array, labels: pa.Array) -> "_Spans":
        flat = pc.list_flatten(lists)
        return cls(
            pc.list_parent_indices(lists).to_numpy().astype(np.int64),
            flat.field("start").to_numpy().astype(np.int64),
            flat.field("end").to_numpy().astype(np.int64),
            pc.index_in(flat.field("label"), value_set=labels).to_numpy().astype(np.int64),
        )


def spans(
    crowd: Crowd, question: SpansQuestion, column: pa.Array, answered: BoolArray
) -> QuestionAggregate:
    """One yes/no decision per distinct span anyone marked (or clamped gold holds), voted on
    by all who answered; confidence as for :func:`multi_choice`."""
    labels = pc.sort_indices(pa.array(question.labels))
    labels = pa.array(question.labels).take(labels)
    marked = _Spans.of(column.filter(pa.array(answered)), labels)
    label_task, label_worker = crowd.task[answered], crowd.worker[answered]
    gold_task, gold_values = crowd.gold_column(question.name, column.type)
    golden = _Spans.of(gold_values, labels)
    found, mark, gold = _candidates(crowd, label_task, marked, gold_task, golden)
    c_task, c_start, c_end, c_label = found
    votes = _span_votes(label_task, c_task, marked.row, mark, crowd.n_tasks)
    p, calibrated = _yes_probability(
        crowd, votes[1], label_worker[votes[0]], votes[2], gold, c_task
    )
    keep = _drop_overlaps(p > 0.5, p, c_task, c_start, c_end, c_label)
    present = crowd.answered(answered)
    spans_of = pa.StructArray.from_arrays(
        [pa.array(c_start[keep]), pa.array(c_end[keep]), labels.take(pa.array(c_label[keep]))],
        fields=list(column.type.value_type),
    )
    counts = np.bincount(c_task[keep], minlength=crowd.n_tasks)
    answer = pa.ListArray.from_arrays(_offsets(counts), spans_of, mask=pa.array(~present))
    sure = np.log(np.where(keep, calibrated, 1 - calibrated).clip(min=1e-300))
    confidence = np.exp(np.bincount(c_task, weights=sure, minlength=crowd.n_tasks))
    return QuestionAggregate(answer, np.where(present, confidence, np.nan))


def _candidates(
    crowd: Crowd, label_task: IntArray, marked: _Spans, gold_task: IntArray, golden: _Spans
) -> tuple[IntArray, IntArray, IntArray]:
    """The candidate spans as rows task, start, end, label (sorted by task), the candidate of
    each marked span, and each candidate's gold decision (-1: none).

    A gold task's candidates are all gold decisions (clamped if gold is, fitting the temperature
    either way): yes for its gold spans, no for the others. With gold clamped its gold spans are
    all candidates (those nobody marked too: the crowd's misses); else only the spans someone
    marked are, so that gold never adds a span to the crowd's answer."""
    task = np.concatenate([label_task[marked.row], gold_task[golden.row]])
    start, end = (
        np.concatenate([marked.start, golden.start]),
        np.concatenate([marked.end, golden.end]),
    )
    label = np.concatenate([marked.label, golden.label])
    order = np.lexsort((label, end, start, task))
    key = np.stack([task, start, end, label])[:, order]
    new = np.ones(order.size, bool)
    new[1:] = (key[:, 1:] != key[:, :-1]).any(axis=0)
    candidate = np.empty(order.size, np.int64)
    candidate[order] = np.cumsum(new) - 1  # each span's candidate; candidates sorted by task
    found, mark = key[:, new], candidate[: marked.row.size]
    gold = np.full(found.shape[1], -1, np.int64)
    has_gold = np.zeros(crowd.n_tasks, bool)
    has_gold[gold_task] = True
    gold[has_gold[found[0]]] = 0
    gold[candidate[marked.row.size :]] = 1
    if crowd.clamp_gold:
        return found, mark, gold
    someone = np.zeros(gold.size, bool)
    someone[mark] = True
    return found[:, someone], (np.cumsum(someone) - 1)[mark], gold[someone]


def _span_votes(
    label_task: IntArray, c_task: IntArray, row: IntArray, mark: IntArray, n_tasks: int
) -> tuple[IntArray, IntArray, IntArray]:
    """Every (label, candidate of its task) pair and whether that label marked the candidate."""
    first = np.searchsorted(c_task, np.arange(n_tasks))
    count = np.bincount(c_task, minlength=n_tasks)[label_task]
    pair_label = np.repeat(np.arange(label_task.size), count)
    within = np.arange(pair_label.size) - np.repeat(np.cumsum(count) - count, count)
    pair_candidate = first[label_task][pair_label] + within
    n_candidates = max(c_task.size, 1)
    marked = np.isin(pair_label * n_candidates + pair_candidate, row * n_candidates + mark)
    return pair_label, pair_candidate, marked.astype(np.int64)


def _drop_overlaps(
    keep: BoolArray, p: FloatArray, task: IntArray, start: IntArray, end: IntArray, label: IntArray
) -> BoolArray:
    """Of kept spans that overlap with the same label, keep the likelier (rare: a loop over
    just those)."""
    kept = np.flatnonzero(keep)
    order = kept[np.lexsort((start[kept], label[kept], task[kept]))]
    new_group = np.ones(order.size, bool)
    new_group[1:] = (task[order][1:] != task[order][:-1]) | (label[order][1:] != label[order][:-1])
    group = np.cumsum(new_group) - 1
    # A span clashes when it starts before the furthest end of those before it in its group
    # (not only the one just before: [0, 12) overlaps [9, 12) across [5, 7)). The running
    # maximum is taken over end + group * reach, so each group starts above the last.
    reach = int(end.max(initial=0)) + 1
    furthest = np.maximum.accumulate(end[order] + group * reach) - group * reach
    clash = ~new_group[1:] & (start[order][1:] < furthest[:-1])
    if not clash.any():
        return keep
    keep = keep.copy()
    involved = order[np.isin(group, group[1:][clash])]  # every span of a group with a clash
    for i in involved[np.argsort(-p[involved], kind="stable")]:
        if keep[i]:
            rivals = involved[
                (task[involved] == task[i]) & (label[involved] == label[i]) & (involved != i)
            ]
            overlapping = rivals[(start[rivals] < end[i]) & (start[i] < end[rivals])]
            keep[overlapping] = False
    return keep


def ranking(
    crowd: Crowd, question: RankingQuestion, column: pa.Array, answered: BoolArray
) -> QuestionAggregate:
    """Borda count per task; confidence is the labels' mean pairwise agreement with it."""
    lists = column.filter(pa.array(answered))
    label_task = crowd.task[answered]
    length = pc.list_value_length(lists).to_numpy().astype(np.int64)
    flat = pc.list_flatten(lists).to_numpy().astype(np.int64)
    row = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
    position = np.arange(flat.size) - np.repeat(np.cumsum(length) - length, length)
    width = int(length.max())
    size = np.zeros(crowd.n_tasks, np.int64)
    np.maximum.at(size, label_task, length)
    score = np.bincount(
        label_task[row] * width + flat,
        weights=length[row] - 1 - position,
        minlength=crowd.n_tasks * width,
    ).reshape(crowd.n_tasks, width)
    score[np.arange(width)[None, :] >= size[:, None]] = -np.inf
    consensus = np.argsort(-score, axis=1, kind="stable")
    present = crowd.answered(answered)
    gold_task, gold_values = crowd.gold_column(question.name, column.type)
    # Gold where no label ranks the task: its answer is null anyway, and its list may be
    # longer than any ranked one. Without clamping, gold has no estimator to calibrate here.
    ranked = present[gold_task] & crowd.clamp_gold
    gold_task, gold_values = gold_task[ranked], gold_values.filter(pa.array(ranked))
    consensus[gold_task] = _padded(gold_values, width)
    places = np.full((len(lists), width), -1, np.int64)
    places[row, flat] = position
    agreement = _pair_agreement(places, consensus[label_task], length)
    confidence = np.bincount(label_task, weights=agreement, minlength=crowd.n_tasks) / np.maximum(
        np.bincount(label_task, minlength=crowd.n_tasks), 1
    )
    confidence[gold_task] = 1.0
    ordered = consensus[np.arange(width)[None, :] < size[:, None]]
    answer = pa.ListArray.from_arrays(_offsets(size), pa.array(ordered), mask=pa.array(~present))
    return QuestionAggregate(answer, np.where(present, confidence, np.nan))


def _padded(lists: pa.Array, width: int) -> IntArray:
    """Rankings as rows of ``width`` item indices, the unused tail filled with the rest."""
    rows = np.tile(np.arange(width), (len(lists), 1))
    for i, ranked in enumerate(lists.to_pylist()):  # gold rankings: a handful of tasks
        rows[i] = ranked + [k for k in range(width) if k not in ranked]
    return rows


def _pair_agreement(places: IntArray, consensus: IntArray, length: IntArray) -> FloatArray:
    """Per label, the share of item pairs it orders as the consensus does: (1 + tau) / 2."""
    width = places.shape[1]
    agreed = np.empty(places.shape[0])
    chunk = max(PAIR_BUDGET // max(width * width, 1), 1)
    upper = np.triu(np.ones((width, width), bool), k=1)
    for begin in range(0, places.shape[0], chunk):
        part = slice(begin, begin + chunk)
        cons = np.empty_like(places[part])
        np.put_along_axis(cons, consensus[part], np.arange(width)[None, :], axis=1)
        mine = places[part][:, :, None] < places[part][:, None, :]
        theirs = cons[:, :, None] < cons[:, None, :]
        inside = np.arange(width)[None, :] < length[part][:, None]
        pairs = upper[None] & inside[:, :, None] & inside[:, None, :]
        agreed[part] = ((mine == theirs) & pairs).sum(axis=(1, 2)) / np.maximum(
            pairs.sum(axis=(1, 2)), 1
        )
    return agreed
