"""Per-task answers with a confidence, from a project's labels: the one place that aggregates.

The dashboard and the vendor audit report call :func:`aggregate_project`; the export calls
:func:`load_labels` then :func:`aggregate` to reuse or filter the labels, and the quality loop
reads labels and gold here too (:func:`load_labels`, :func:`load_gold`). Every step is
vectorized over all labels at once (NumPy and PyArrow); nothing loops per label in Python.

Rules per question kind (docs/import-export.md):

- ``choice``, ``preference`` (``"tie"`` is one more class) and ``rating`` (each value a class):
  categorical labels through the chosen ``quorum.truth`` estimator; the answer is the most
  probable class and its confidence that posterior, calibrated on the question's gold when at
  least ``aggregation_rules.MIN_CALIBRATION_GOLD`` labelled tasks have gold (a temperature fitted
  on posteriors that did not see the gold; the answers do not change).
- ``multi_choice``: one binary decision per option (did the annotator select it?) through the same
  estimator; the answer holds the options more likely selected than not, topped up or cut to
  ``min_selected``/``max_selected`` by probability; its confidence is the product over options of
  the probability of the decision taken, each calibrated as for ``choice`` (the decisions of
  gold tasks fit the temperature; the count is of tasks, and the answers do not change).
- ``spans``: one binary decision per distinct exact ``(start, end, label)`` span any annotator
  marked, voted on by everyone who answered the question on that task, through the estimator; the
  answer holds the spans more likely present than not (of two overlapping spans with one label,
  the likelier); confidence as for multi_choice.
- ``ranking``: Borda count (an item at position ``r`` of ``n`` scores ``n - 1 - r``; ties go to
  the lower item index); confidence is the mean share of item pairs each annotator ordered as
  the consensus does, ``(1 + Kendall's tau) / 2``. ``method`` does not apply.
- ``text``: no aggregate; the answer and confidence are null (the texts are in the labels).

Gold is clamped, as the estimators do (DESIGN §5): where a task has gold for a question, its
answer is the gold with confidence 1. With ``clamp_gold=False`` (``use_gold=False``) it is not:
every answer is the crowd's own, from one fit that never sees the gold, and the gold only
calibrates the confidences, of gold tasks too (spans: only the spans someone marked are
candidates). Labels rejected in review are left out, and so are the labels of annotators paused
in the project (``quorum.domain.pause``).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.json as pa_json
from sqlalchemy import Select, Text, cast, literal_column, select
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, Project, ReviewStatus, Task
from quorum.domain import aggregation_rules as rules
from quorum.domain import bulk
from quorum.domain.aggregation_rules import QuestionAggregate
from quorum.domain.pause import usable_label
from quorum.domain.projects import schema_of
from quorum.domain.questions import (
    MultiChoiceQuestion,
    Question,
    QuestionSchema,
    RankingQuestion,
    SpansQuestion,
)
from quorum.truth import METHODS

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
DEFAULT_METHOD = "ds"
CATEGORICAL = {"choice", "preference", "rating"}
SPAN = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("label", pa.string())])
ANSWER_TYPES = {
    "choice": pa.string(),
    "preference": pa.string(),
    "text": pa.string(),
    "rating": pa.int64(),
    "multi_choice": pa.list_(pa.string()),
    "ranking": pa.list_(pa.int64()),
    "spans": pa.list_(SPAN),
}
FETCH_ROWS = 50_000
JSON_BLOCK_BYTES = 32 << 20  # above the longest answer a text question allows


def answers_schema(schema: QuestionSchema) -> pa.Schema:
    """The Arrow type of each question's answer: the columns of :attr:`Labels.answers`."""
    return pa.schema([(q.name, ANSWER_TYPES[q.kind]) for q in schema.questions])


@dataclass(frozen=True)
class Labels:
    """A project's labels as columns, one row per label, sorted by task then label id.

    ``answers`` has one column per question (typed by :func:`answers_schema`), null where the
    annotator left the question out. Text answers are not aggregated and only loaded when asked
    for (``load_labels(..., texts=True)``): they can be most of a project's bytes.
    """

    annotation_id: IntArray
    task_id: IntArray
    worker_id: IntArray
    submitted_at: npt.NDArray[np.datetime64]
    duration_ms: FloatArray  # NaN where not given
    answers: pa.Table

    def take(self, rows: npt.NDArray[np.int64]) -> "Labels":
        return Labels(
            self.annotation_id[rows],
            self.task_id[rows],
            self.worker_id[rows],
            self.submitted_at[rows],
            self.duration_ms[rows],
            self.answers.take(pa.array(rows, pa.int64())),
        )


@dataclass(frozen=True)
class Gold:
    """Tasks with gold, and the gold as an answers table (one column per question)."""

    task_id: IntArray
    answers: pa.Table


@dataclass(frozen=True)
class Aggregate:
    """Every task with at least one label (ascending id), its label count and answers."""

    method: str
    task_id: IntArray
    n_labels: IntArray
    questions: dict[str, QuestionAggregate]  # by question name, in schema order

    def positions(self, task_ids: npt.ArrayLike) -> IntArray:
        """Index of each task id in ``task_id``, -1 for tasks without labels."""
        ids = np.asarray(task_ids, dtype=np.int64)
        found = np.searchsorted(self.task_id, ids).clip(max=max(self.task_id.size - 1, 0))
        hit = self.task_id[found] == ids if self.task_id.size else np.zeros(ids.size, bool)
        return np.where(hit, found, -1)

    def min_confidence(self) -> FloatArray:
        """Per task, the lowest confidence over its questions (NaN when none has one)."""
        if not self.questions:
            return np.full(self.task_id.size, np.nan)
        stacked = np.stack([q.confidence for q in self.questions.values()])
        lowest: FloatArray = np.fmin.reduce(stacked, axis=0)
        return lowest

    def for_task(self, task_id: int) -> dict[str, tuple[Any, float | None]]:
        """``{question: (answer, confidence)}`` of one task; empty when it has no labels."""
        position = int(self.positions([task_id])[0])
        if position < 0:
            return {}
        return {
            name: (q.answer[position].as_py(), _float_or_none(q.confidence[position]))
            for name, q in self.questions.items()
        }


def _float_or_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    return method


def aggregate_project(
    session: Session, project: Project, *, method: str = DEFAULT_METHOD, use_gold: bool = True
) -> Aggregate:
    """Aggregate every usable label of ``project``, its gold clamped. ``use_gold=False`` for
    the crowd's own answers (to show or measure against gold): gold is not clamped, but still
    calibrates the confidences when there is enough of it."""
    schema = schema_of(project)
    labels = load_labels(session, project.id, schema)
    gold = load_gold(session, project.id, schema)
    return aggregate(schema, labels, method=method, gold=gold, clamp_gold=use_gold)


def load_labels(
    session: Session,
    project_id: int,
    schema: QuestionSchema,
    *,
    up_to_id: int | None = None,
    texts: bool = False,
) -> Labels:
    """The project's labels not rejected in review and not of annotators paused in it (with
    ``up_to_id``, those up to that id)."""
    query: Select[int, int, int, Any, int | None, str] = select(
        Annotation.id,
        Annotation.task_id,
        Annotation.user_id,
        literal_column("annotations.submitted_at"),  # raw: parsed below for all rows at once
        Annotation.duration_ms,
        cast(Annotation.answers, Text),
    ).where(
        Annotation.project_id == project_id,
        Annotation.review_status != ReviewStatus.rejected,
        usable_label(),  # a paused annotator's labels are kept, but left out
    )
    if up_to_id is not None:
        query = query.where(Annotation.id <= up_to_id)
    types = answers_schema(schema)
    parsed = types if texts else _without_text(schema, types)
    parts = [_columns(rows, parsed) for rows in bulk.read_rows(session, query, FETCH_ROWS)]
    if not parts:
        empty, nothing = np.zeros(0, np.int64), np.zeros(0, "datetime64[us]")
        return Labels(empty, empty, empty, nothing, np.zeros(0), types.empty_table())
    ids, tasks, workers, times, durations, tables = zip(*parts, strict=True)
    labels = Labels(
        np.concatenate(ids),
        np.concatenate(tasks),
        np.concatenate(workers),
        np.concatenate(times),
        np.concatenate(durations),
        _with_all_columns(pa.concat_tables(tables), types, sum(len(i) for i in ids)),
    )
    return labels.take(np.lexsort((labels.annotation_id, labels.task_id)))


def _without_text(schema: QuestionSchema, types: pa.Schema) -> pa.Schema:
    return pa.schema([types.field(q.name) for q in schema.questions if q.kind != "text"])


def _with_all_columns(table: pa.Table, types: pa.Schema, n_rows: int) -> pa.Table:
    """``table`` with a null column for every question it lacks, in schema order."""
    columns = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(n_rows, f.type)
        for f in types
    ]
    return pa.table(columns, schema=types)


def _columns(rows: list[Any], types: pa.Schema) -> tuple[Any, ...]:
    ids, tasks, workers, times, durations, texts = zip(*rows, strict=True)
    return (
        np.array(ids, np.int64),
        np.array(tasks, np.int64),
        np.array(workers, np.int64),
        utc_times(times),
        np.array(durations, np.float64),  # None becomes NaN
        parse_json_lines(texts, types),
    )


def utc_times(values: Sequence[Any]) -> npt.NDArray[np.datetime64]:
    """Raw driver values of a UTC time column (SQLite text, PostgreSQL datetimes) as datetime64."""
    if values and isinstance(values[0], str):
        array = pa.array(values, pa.string()).cast(pa.timestamp("us"))
    else:
        array = pa.array(values, pa.timestamp("us", tz="UTC"))
    # Through int64: converting timestamps directly would import pandas.
    micros = array.cast(pa.int64()).to_numpy(zero_copy_only=False)
    times: npt.NDArray[np.datetime64] = micros.view("datetime64[us]")
    return times


def parse_json_lines(texts: Sequence[str | None], types: pa.Schema) -> pa.Table:
    """JSON objects (None for a null) parsed at once into a table of the given columns."""
    if not texts or not len(types):
        return types.empty_table()
    body = "\n".join(text if text is not None else "{}" for text in texts).encode()
    options = pa_json.ParseOptions(explicit_schema=types, unexpected_field_behavior="ignore")
    read = pa_json.ReadOptions(block_size=JSON_BLOCK_BYTES)
    table = pa_json.read_json(pa.BufferReader(body), read_options=read, parse_options=options)
    return table.select(types.names).cast(types)


def load_gold(session: Session, project_id: int, schema: QuestionSchema) -> Gold:
    query = select(Task.id, cast(Task.gold, Text)).where(
        Task.project_id == project_id, Task.gold.is_not(None)
    )
    rows = session.execute(query).all()
    ids = np.array([row[0] for row in rows], np.int64)
    texts = [row[1] for row in rows]
    types = answers_schema(schema)
    return Gold(ids, parse_json_lines(texts, types))


def aggregate(
    schema: QuestionSchema,
    labels: Labels,
    *,
    method: str = DEFAULT_METHOD,
    gold: Gold | None = None,
    clamp_gold: bool = True,
) -> Aggregate:
    """Answers and confidences of every labelled task, question by question (rules above);
    ``clamp_gold=False``: gold only calibrates."""
    check_method(method)
    task_ids, task = np.unique(labels.task_id, return_inverse=True)
    worker_ids, worker = np.unique(labels.worker_id, return_inverse=True)
    gold = gold or Gold(np.zeros(0, np.int64), answers_schema(schema).empty_table())
    found = np.searchsorted(task_ids, gold.task_id).clip(max=max(task_ids.size - 1, 0))
    hit = task_ids[found] == gold.task_id if task_ids.size else np.zeros(gold.task_id.size, bool)
    crowd = rules.Crowd(
        method, task.reshape(-1), worker.reshape(-1), task_ids.size, worker_ids.size,
        np.where(hit, found, -1), gold.answers, clamp_gold,
    )  # fmt: skip
    questions = {
        q.name: _aggregate_question(crowd, q, labels.answers.column(q.name).combine_chunks())
        for q in schema.questions
    }
    n_labels = np.bincount(crowd.task, minlength=crowd.n_tasks).astype(np.int64)
    return Aggregate(method, task_ids.astype(np.int64), n_labels, questions)


def _aggregate_question(
    crowd: rules.Crowd, question: Question, column: pa.Array
) -> QuestionAggregate:
    answered = column.is_valid().to_numpy(zero_copy_only=False)
    if not answered.any() or question.kind == "text":
        return rules.nothing(crowd, ANSWER_TYPES[question.kind])
    if isinstance(question, MultiChoiceQuestion):
        return rules.multi_choice(crowd, question, column, answered)
    if isinstance(question, SpansQuestion):
        return rules.spans(crowd, question, column, answered)
    if isinstance(question, RankingQuestion):
        return rules.ranking(crowd, question, column, answered)
    return rules.categorical(crowd, question.name, column, answered)
