"""Training-ready export: one row per task with its aggregated answers and every label.

:func:`prepare` aggregates the project's labels first (so a bad request fails before anything
is sent); :meth:`Export.batches` then reads tasks and their labels a batch of tasks at a time,
as Arrow record batches of :func:`row_schema`, which ``quorum.io.export_files`` writes as JSONL,
CSV or Parquet. Memory holds the aggregate (a few numbers per label) and one batch.

Both passes stop at the last task and label that existed when the export began, so a label
submitted meanwhile cannot show up in one pass and not the other.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from sqlalchemy import Select, Text, cast, func, select, text
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, Project, Task, TaskStatus, User
from quorum.domain import aggregation, bulk
from quorum.domain.aggregation import Aggregate, Labels, answers_schema, parse_json_lines
from quorum.domain.errors import Invalid
from quorum.domain.projects import schema_of
from quorum.domain.questions import QuestionSchema

BATCH_TASKS = 20_000
TIME = pa.timestamp("us", tz="UTC")
TaskRow = tuple[int, str | None, str, str | None]  # id, external_id, data and gold as JSON
Pseudonyms = tuple[npt.NDArray[np.int64], pa.Array]  # sorted user ids, their pseudonyms


@dataclass(frozen=True)
class ExportFilter:
    """Which tasks to export: ``complete_only`` those with all their labels; ``min_confidence``
    those whose every aggregated question is at least that sure; ``since``/``until`` those whose
    latest label was submitted in ``[since, until)``."""

    complete_only: bool = False
    min_confidence: float | None = None
    since: datetime | None = None
    until: datetime | None = None

    def check(self) -> "ExportFilter":
        """The filter checked, its times made aware: a time without a zone is UTC (the API
        hands on ``since=2026-11-25T12:00`` as it is)."""
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise Invalid.one("min_confidence", "must be between 0 and 1")
        checked = replace(self, since=_aware(self.since), until=_aware(self.until))
        if checked.since and checked.until and checked.until <= checked.since:
            raise Invalid.one("until", "must be after since")
        return checked

    @property
    def needs_labels(self) -> bool:
        return self.min_confidence is not None or self.since is not None or self.until is not None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def row_schema(schema: QuestionSchema) -> pa.Schema:
    """One exported task (docs/import-export.md). ``data`` is JSON text: task data is free-form
    and differs from task to task, so no one Parquet type fits it."""
    answers = pa.struct(list(answers_schema(schema)))
    annotation = pa.struct(
        [
            ("annotator", pa.string()),
            ("answers", answers),
            ("submitted_at", TIME),
            ("duration_ms", pa.int64()),
        ]
    )
    return pa.schema(
        [
            pa.field("task_id", pa.int64(), nullable=False),
            ("external_id", pa.string()),
            pa.field("data", pa.string(), nullable=False),
            ("gold", answers),
            ("n_labels", pa.int64()),
            ("answers", answers),
            ("confidence", pa.struct([(q.name, pa.float64()) for q in schema.questions])),
            ("annotations", pa.list_(annotation)),
        ]
    )


def prepare(
    session: Session,
    project: Project,
    *,
    method: str = aggregation.DEFAULT_METHOD,
    filters: ExportFilter | None = None,
    batch_tasks: int = BATCH_TASKS,
) -> "Export":
    """Aggregate the project's labels; the returned Export streams the rows."""
    try:
        aggregation.check_method(method)
    except ValueError as error:
        raise Invalid.one("method", str(error)) from None
    filters = (filters or ExportFilter()).check()
    schema = schema_of(project)
    last_label = session.scalar(
        select(func.max(Annotation.id)).where(Annotation.project_id == project.id)
    )
    labels = aggregation.load_labels(session, project.id, schema, up_to_id=last_label or 0)
    gold = aggregation.load_gold(session, project.id, schema)
    aggregate = aggregation.aggregate(schema, labels, method=method, gold=gold)
    last_task = session.scalar(select(func.max(Task.id)).where(Task.project_id == project.id))
    return Export(
        session=session,
        project_id=project.id,
        schema=schema,
        filters=filters,
        labels=labels,
        aggregate=aggregate,
        chosen=_chosen(aggregate, labels, filters),
        pseudonyms=_pseudonyms(session, labels.worker_id),
        last_task=last_task or 0,
        last_label=last_label or 0,
        batch_tasks=batch_tasks,
    )


def _pseudonyms(session: Session, worker_ids: npt.NDArray[np.int64]) -> Pseudonyms:
    """The annotators' sorted user ids and their pseudonyms."""
    ids = np.unique(worker_ids)
    query = select(User.id, User.pseudonym).where(User.id.in_(ids.tolist())).order_by(User.id)
    rows = session.execute(query).all() if ids.size else []
    return np.array([r[0] for r in rows], np.int64), pa.array([r[1] for r in rows], pa.string())


def _chosen(
    aggregate: Aggregate, labels: aggregation.Labels, filters: ExportFilter
) -> npt.NDArray[np.bool_]:
    """Per labelled task (``aggregate.task_id``), whether the label filters let it through."""
    chosen = np.ones(aggregate.task_id.size, bool)
    if filters.min_confidence is not None:
        lowest = aggregate.min_confidence()
        chosen &= ~np.isnan(lowest) & (lowest >= filters.min_confidence - 1e-12)
    if filters.since is not None or filters.until is not None:
        latest = np.full(aggregate.task_id.size, np.datetime64("NaT", "us"))
        position = aggregate.positions(labels.task_id)
        order = np.argsort(labels.submitted_at, kind="stable")
        latest[position[order]] = labels.submitted_at[order]  # the last write wins: the latest
        if filters.since is not None:
            chosen &= latest >= _naive(filters.since)
        if filters.until is not None:
            chosen &= latest < _naive(filters.until)
    return chosen


def _naive(moment: datetime) -> np.datetime64:
    """As UTC datetime64, like utc_times gives; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(moment, "us")


@dataclass
class Export:
    """A prepared export: the labels (as columns) and their aggregate, ready to be joined with
    the tasks a batch at a time."""

    session: Session
    project_id: int
    schema: QuestionSchema
    filters: ExportFilter
    labels: Labels
    aggregate: Aggregate
    chosen: npt.NDArray[np.bool_]
    pseudonyms: Pseudonyms
    last_task: int
    last_label: int  # labels submitted after the export was prepared are not in it
    batch_tasks: int

    @property
    def row_schema(self) -> pa.Schema:
        return row_schema(self.schema)

    @property
    def answer_types(self) -> pa.Schema:
        return answers_schema(self.schema)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The exported rows, in task id order, a batch of tasks at a time."""
        after = 0
        while rows := bulk.read_all(self.session, self._tasks_after(after)):
            after = rows[-1][0]
            batch = self._batch(rows)
            if batch.num_rows:
                yield batch

    def data_fields(self) -> list[str]:
        """Every top-level field of the exported tasks' data, sorted (the columns of a CSV)."""
        if self.session.get_bind().dialect.name == "postgresql":
            query = "SELECT DISTINCT jsonb_object_keys(data) FROM tasks WHERE project_id = :p"
        else:
            query = (
                "SELECT DISTINCT j.key FROM tasks, json_each(tasks.data) AS j "
                "WHERE tasks.project_id = :p"
            )
        return sorted(self.session.scalars(text(query), {"p": self.project_id}))

    def _tasks_after(self, after: int) -> Select[int, str | None, str, str | None]:
        """The next tasks after id ``after``: id, external_id, data and gold as JSON text."""
        query = select(Task.id, Task.external_id, cast(Task.data, Text), cast(Task.gold, Text))
        query = query.where(
            Task.project_id == self.project_id, Task.id > after, Task.id <= self.last_task
        )
        if self.filters.complete_only:
            query = query.where(Task.status == TaskStatus.complete)
        return query.order_by(Task.id).limit(self.batch_tasks)

    def _batch(self, rows: Sequence[TaskRow]) -> pa.RecordBatch:
        ids = np.array([r[0] for r in rows], np.int64)
        position = self.aggregate.positions(ids)
        labelled = position >= 0
        keep = np.full(ids.size, not self.filters.needs_labels)
        keep[labelled] = self.chosen[position[labelled]]
        kept = [row for row, k in zip(rows, keep, strict=True) if k]
        ids, position = ids[keep], position[keep]
        annotations, counts = self._annotations(ids)
        gold = [r[3] for r in kept]
        columns = [
            pa.array(ids, pa.int64()),
            pa.array([r[1] for r in kept], pa.string()),
            pa.array([r[2] for r in kept], pa.string()),
            _struct(parse_json_lines(gold, self.answer_types), [g is None for g in gold]),
            pa.array(counts, pa.int64()),
            self._answers(position),
            self._confidence(position),
            annotations,
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self.row_schema)

    def _answers(self, position: npt.NDArray[np.int64]) -> pa.Array:
        """The aggregated answers of the tasks at ``position`` (-1: no labels, all null)."""
        index = pa.array(position, mask=position < 0)
        fields = [q.answer.take(index) for q in self.aggregate.questions.values()]
        return pa.StructArray.from_arrays(fields, fields=list(self.answer_types))

    def _confidence(self, position: npt.NDArray[np.int64]) -> pa.Array:
        labelled = position >= 0
        fields = []
        for q in self.aggregate.questions.values():
            values = np.full(position.size, np.nan)
            values[labelled] = q.confidence[position[labelled]]
            fields.append(pa.array(values, pa.float64(), mask=np.isnan(values)))
        return pa.StructArray.from_arrays(fields, names=list(self.aggregate.questions))

    def _annotations(self, ids: npt.NDArray[np.int64]) -> tuple[pa.Array, npt.NDArray[np.int64]]:
        """The labels of the tasks ``ids`` (ascending) as one list per task, and their counts."""
        if not ids.size:
            return pa.array([], self.row_schema.field("annotations").type), np.zeros(0, np.int64)
        start = int(np.searchsorted(self.labels.task_id, ids[0], side="left"))
        stop = int(np.searchsorted(self.labels.task_id, ids[-1], side="right"))
        rows = np.arange(start, stop)
        rows = rows[np.isin(self.labels.task_id[rows], ids)]
        labels = self.labels.take(rows)
        user_ids, names = self.pseudonyms
        annotation = pa.StructArray.from_arrays(
            [
                names.take(pa.array(np.searchsorted(user_ids, labels.worker_id))),
                _struct(self._with_texts(labels, int(ids[0]), int(ids[-1])), None),
                pa.array(labels.submitted_at.astype(np.int64), pa.int64()).cast(TIME),
                pa.array(labels.duration_ms, pa.float64(), from_pandas=True).cast(pa.int64()),
            ],
            fields=list(self.row_schema.field("annotations").type.value_type),
        )
        counts = np.bincount(np.searchsorted(ids, labels.task_id), minlength=ids.size)
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32())
        return pa.ListArray.from_arrays(offsets, annotation), counts.astype(np.int64)

    def _with_texts(self, labels: Labels, first: int, last: int) -> pa.Table:
        """The labels' answers, with the text answers (not kept in memory) read back in."""
        texts = [q.name for q in self.schema.questions if q.kind == "text"]
        if not texts or not labels.annotation_id.size:
            return labels.answers
        # NOTE: by task id range alone, so every database walks its task_id index; rows of
        # other projects' tasks in the range find no label below and are dropped.
        query = select(
            Annotation.id, *(Annotation.answers[name].as_string() for name in texts)
        ).where(Annotation.task_id >= first, Annotation.task_id <= last)
        found = bulk.read_all(self.session, query)
        # Row of each label in ``found``, -1 for none: a scatter by annotation id.
        order = np.argsort(labels.annotation_id)
        ids = np.array([r[0] for r in found], np.int64)
        found_at = np.searchsorted(labels.annotation_id, ids, sorter=order)
        spot = order[found_at.clip(max=order.size - 1)]
        hit = labels.annotation_id[spot] == ids
        source = np.full(labels.annotation_id.size, -1, np.int64)
        source[spot[hit]] = np.flatnonzero(hit)
        index = pa.array(source, mask=source < 0)
        answers = labels.answers
        for k, name in enumerate(texts, start=1):
            values = pa.array([r[k] for r in found], pa.string()).take(index)
            answers = answers.set_column(answers.column_names.index(name), name, values)
        return answers


def _struct(table: pa.Table, missing: list[bool] | None) -> pa.Array:
    """A table's columns as one struct column, null where ``missing``."""
    mask = pa.array(missing, pa.bool_()) if missing is not None else None
    arrays = [column.combine_chunks() for column in table.columns]
    return pa.StructArray.from_arrays(arrays, fields=list(table.schema), mask=mask)
