"""The dashboard's computed figures, from labels already loaded: agreement per question (by
``quorum.truth``), coincidence and gold confusion matrices, per-task agreement, throughput.

Pure functions over plain rows, so they are tested without a database.
"""

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from quorum.domain.questions import (
    ChoiceQuestion,
    MultiChoiceQuestion,
    PreferenceQuestion,
    Question,
    RankingQuestion,
    RatingQuestion,
)
from quorum.truth import encode, krippendorff_alpha, percent_agreement

BOOTSTRAP = 200  # enough for a dashboard's interval, and fast on every page view


@dataclass(frozen=True)
class Label:
    """One annotator's answer to one question of one task."""

    task_id: int
    annotator: str
    value: Any


@dataclass(frozen=True)
class QuestionAgreement:
    question: str
    kind: str
    metric: str
    value: float | None
    low: float | None
    high: float | None
    percent: float | None
    tasks: int  # tasks with two or more labels
    note: str = ""


@dataclass(frozen=True)
class Confusion:
    question: str
    labels: list[str]
    pairs: list[list[int]]  # how often two annotators of one task gave labels (row, column)
    gold: list[list[int]] | None  # rows: gold label, columns: the annotator's label

    @property
    def empty(self) -> bool:
        """Nothing counted yet: a heatmap of zeros would only show an empty scale."""
        return not _counted(self.gold or self.pairs)


@dataclass(frozen=True)
class TaskAgreement:
    task_id: int
    labels: int
    agreement: float  # share of label pairs that agree, averaged over the task's questions


def units(question: Question, labels: Iterable[Label]) -> tuple[list[Hashable], list[Hashable]]:
    """Agreement units and the value compared in each: usually the task and the answer.

    multi_choice compares each option as yes/no (one unit per task and option); ranking
    compares the item ranked first.
    """
    tasks: list[Hashable] = []
    values: list[Hashable] = []
    for label in labels:
        if isinstance(question, MultiChoiceQuestion):
            for option in question.options:
                tasks.append((label.task_id, option))
                values.append(option in label.value)
        elif isinstance(question, RankingQuestion):
            tasks.append(label.task_id)
            values.append(label.value[0] if label.value else -1)
        else:
            tasks.append(label.task_id)
            values.append(label.value)
    return tasks, values


def _metric(question: Question) -> str | None:
    if isinstance(question, RatingQuestion):
        return "Krippendorff's α (interval)"
    if isinstance(question, ChoiceQuestion | PreferenceQuestion):
        return "Krippendorff's α (nominal)"
    if isinstance(question, MultiChoiceQuestion):
        return "Krippendorff's α (nominal, per option)"
    if isinstance(question, RankingQuestion):
        return "Krippendorff's α (nominal, item ranked first)"
    return None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def agreement(question: Question, labels: Sequence[Label]) -> QuestionAgreement:
    metric = _metric(question)
    if metric is None:
        return QuestionAgreement(
            question.name,
            question.kind,
            "—",
            None,
            None,
            None,
            None,
            0,
            f"not measured for {question.kind} answers",
        )
    labelled = Counter(label.task_id for label in labels)
    pairable = sum(1 for n in labelled.values() if n >= 2)
    if not pairable:
        return QuestionAgreement(
            question.name,
            question.kind,
            metric,
            None,
            None,
            None,
            None,
            0,
            "no task has two labels yet",
        )
    tasks, values = units(question, labels)
    task_codes, _ = encode([repr(t) for t in tasks])
    interval = isinstance(question, RatingQuestion)
    compared: list[Any] = list(values) if interval else [repr(v) for v in values]
    label_codes, vocabulary = encode(compared)
    alpha = krippendorff_alpha(
        task_codes,
        label_codes,
        level="interval" if interval else "nominal",
        values=vocabulary.astype(float) if interval else None,
        n_boot=BOOTSTRAP,
        random_state=0,
    )
    percent = percent_agreement(task_codes, label_codes, n_boot=0)
    value = _finite(alpha.value)
    if value is None:  # one class only: no expected disagreement to compare with
        return QuestionAgreement(
            question.name,
            question.kind,
            metric,
            None,
            None,
            None,
            _finite(percent.value),
            pairable,
            "every label is the same, so α is undefined",
        )
    return QuestionAgreement(
        question.name,
        question.kind,
        metric,
        value,
        _finite(alpha.low),
        _finite(alpha.high),
        _finite(percent.value),
        pairable,
    )


def confusion(question: ChoiceQuestion, labels: Sequence[Label], gold: dict[int, Any]) -> Confusion:
    names = list(question.options)
    index = {name: i for i, name in enumerate(names)}
    pairs = [[0] * len(names) for _ in names]
    by_task: dict[int, list[int]] = defaultdict(list)
    for label in labels:
        if label.value in index:
            by_task[label.task_id].append(index[label.value])
    for answers in by_task.values():
        for i, first in enumerate(answers):
            for j, second in enumerate(answers):
                if i != j:
                    pairs[first][second] += 1
    against: list[list[int]] | None = None
    known = {task: value for task, value in gold.items() if value in index}
    if known:
        against = [[0] * len(names) for _ in names]
        for label in labels:
            if label.task_id in known and label.value in index:
                against[index[known[label.task_id]]][index[label.value]] += 1
        if not _counted(against):
            against = None  # no label on a gold task yet: pairs of annotators say more
    return Confusion(question.name, names, pairs, against)


def _counted(matrix: list[list[int]]) -> bool:
    return any(any(row) for row in matrix)


def task_agreement(
    questions: Sequence[Question], labels: Mapping[str, Sequence[Label]]
) -> list[TaskAgreement]:
    """Per task with two or more labels: the share of agreeing label pairs (Fleiss's P_i),
    averaged over the questions agreement is measured for."""
    shares: dict[int, list[float]] = defaultdict(list)
    counts: dict[int, int] = {}
    for question in questions:
        if _metric(question) is None:
            continue
        by_task: dict[int, Counter[Hashable]] = defaultdict(Counter)
        for label in labels.get(question.name, ()):
            by_task[label.task_id][_comparable(question, label.value)] += 1
        for task_id, counter in by_task.items():
            m = sum(counter.values())
            if m >= 2:
                shares[task_id].append(sum(n * (n - 1) for n in counter.values()) / (m * (m - 1)))
                counts[task_id] = max(counts.get(task_id, 0), m)
    return [
        TaskAgreement(task_id, counts[task_id], sum(s) / len(s)) for task_id, s in shares.items()
    ]


def _comparable(question: Question, value: Any) -> Hashable:
    if isinstance(question, MultiChoiceQuestion):
        return tuple(sorted(value))
    if isinstance(question, RankingQuestion):
        return value[0] if value else None
    return value if isinstance(value, Hashable) else repr(value)


def lowest(tasks: Sequence[TaskAgreement], limit: int = 10) -> list[TaskAgreement]:
    return sorted(tasks, key=lambda t: (t.agreement, -t.labels, t.task_id))[:limit]


def throughput(times: Sequence[datetime]) -> tuple[str, list[tuple[datetime, int]]]:
    """Labels per hour (under two days of data), per day (under half a year), else per week."""
    if not times:
        return "day", []
    first, last = min(times), max(times)
    span = last - first
    if span <= timedelta(days=2):
        unit, step = "hour", timedelta(hours=1)
        start = first.replace(minute=0, second=0, microsecond=0)
    else:
        unit, step = (
            ("day", timedelta(days=1))
            if span <= timedelta(days=183)
            else ("week", timedelta(weeks=1))
        )
        start = first.replace(hour=0, minute=0, second=0, microsecond=0)
        if unit == "week":
            start -= timedelta(days=start.weekday())
    counts = Counter((t - start) // step for t in times)
    buckets = range(int((last - start) // step) + 1)
    return unit, [(start + i * step, counts.get(i, 0)) for i in buckets]
