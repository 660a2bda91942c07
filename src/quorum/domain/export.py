"""Training-ready export: one row per task with its aggregated answers and every label.

:func:`prepare` aggregates the project's labels first (so a bad request fails before anything
is sent); :meth:`Export.batches` then reads tasks and their labels a batch of tasks at a time,
as Arrow record batches of :func:`row_schema`, which ``quorum.io.export_files`` writes as JSONL,
CSV or Parquet. Memory holds the aggregate (a few numbers per label) and one batch.

Both passes stop at the last task and label that existed when the export began, so a label
submitted meanwhile cannot show up in one pass and not the other.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from sqlalchemy import Row, Select, Text, cast, func, literal_column, select, text
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, Project, ReviewStatus, Task, TaskStatus, User
from quorum.domain import aggregation
from quorum.domain.aggregation import Aggregate, answers_schema, parse_json_lines, utc_times
from quorum.domain.errors import Invalid
from quorum.domain.projects import schema_of
from quorum.domain.questions import QuestionSchema

BATCH_TASKS = 20_000
TIME = pa.timestamp("us", tz="UTC")
TaskRow = Row[int, str | None, str, str | None]  # id, external_id, data and gold as JSON
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
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise Invalid.one("min_confidence", "must be between 0 and 1")
        if self.since and self.until and self.until <= self.since:
            raise Invalid.one("until", "must be after since")
        return self

    @property
    def needs_labels(self) -> bool:
        return self.min_confidence is not None or self.since is not None or self.until is not None


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
        aggregate=aggregate,
        chosen=_chosen(aggregate, labels, filters),
        last_task=last_task or 0,
        last_label=last_label or 0,
        batch_tasks=batch_tasks,
    )


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
    """A prepared export: the aggregate, ready to be joined with tasks batch by batch."""

    session: Session
    project_id: int
    schema: QuestionSchema
    filters: ExportFilter
    aggregate: Aggregate
    chosen: npt.NDArray[np.bool_]
    last_task: int
    last_label: int
    batch_tasks: int

    @property
    def row_schema(self) -> pa.Schema:
        return row_schema(self.schema)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The exported rows, in task id order, a batch of tasks at a time."""
        pseudonyms = self._pseudonyms()
        after = 0
        while True:
            rows = self.session.execute(self._tasks_after(after)).all()
            if not rows:
                return
            after = rows[-1][0]
            batch = self._batch(rows, pseudonyms)
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

    def _pseudonyms(self) -> Pseudonyms:
        """Annotators of the project: sorted user ids and their pseudonyms."""
        annotators = select(Annotation.user_id).where(Annotation.project_id == self.project_id)
        query = select(User.id, User.pseudonym).where(User.id.in_(annotators)).order_by(User.id)
        rows = self.session.execute(query).all()
        return np.array([r[0] for r in rows], np.int64), pa.array([r[1] for r in rows], pa.string())

    def _batch(self, rows: Sequence[TaskRow], pseudonyms: Pseudonyms) -> pa.RecordBatch:
        ids = np.array([r[0] for r in rows], np.int64)
        position = self.aggregate.positions(ids)
        labelled = position >= 0
        keep = np.full(ids.size, not self.filters.needs_labels)
        keep[labelled] = self.chosen[position[labelled]]
        kept = [row for row, k in zip(rows, keep, strict=True) if k]
        ids, position = ids[keep], position[keep]
        annotations, counts = self._annotations(ids, pseudonyms)
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

    @property
    def answer_types(self) -> pa.Schema:
        return answers_schema(self.schema)

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

    def _annotations(
        self, ids: npt.NDArray[np.int64], pseudonyms: Pseudonyms
    ) -> tuple[pa.Array, npt.NDArray[np.int64]]:
        """The labels of the tasks ``ids`` as one list per task, and how many each has."""
        rows = self.session.execute(self._labels_of(ids)).all() if ids.size else []
        task = np.array([r[0] for r in rows], np.int64)
        wanted = np.isin(task, ids)
        rows = [row for row, w in zip(rows, wanted, strict=True) if w]
        task = task[wanted]
        user_ids, names = pseudonyms
        user = np.array([r[1] for r in rows], np.int64)
        annotation = pa.StructArray.from_arrays(
            [
                names.take(pa.array(np.searchsorted(user_ids, user), pa.int64())),
                _struct(parse_json_lines([r[4] for r in rows], self.answer_types), None),
                pa.array(utc_times(tuple(r[2] for r in rows)), pa.timestamp("us")).cast(TIME),
                pa.array([r[3] for r in rows], pa.int64()),
            ],
            fields=list(self.row_schema.field("annotations").type.value_type),
        )
        counts = np.bincount(np.searchsorted(ids, task), minlength=ids.size).astype(np.int64)
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32())
        return pa.ListArray.from_arrays(offsets, annotation), counts

    def _labels_of(self, ids: npt.NDArray[np.int64]) -> Select[int, int, object, int | None, str]:
        """The usable labels of the tasks from ``ids[0]`` to ``ids[-1]``, by task then id."""
        query: Select[int, int, object, int | None, str] = select(
            Annotation.task_id,
            Annotation.user_id,
            literal_column("annotations.submitted_at"),
            Annotation.duration_ms,
            cast(Annotation.answers, Text),
        ).where(
            Annotation.project_id == self.project_id,
            Annotation.task_id >= int(ids[0]),
            Annotation.task_id <= int(ids[-1]),
            Annotation.id <= self.last_label,
            Annotation.review_status != ReviewStatus.rejected,
        )
        return query.order_by(Annotation.task_id, Annotation.id)


def _struct(table: pa.Table, missing: list[bool] | None) -> pa.Array:
    """A table's columns as one struct column, null where ``missing``."""
    mask = pa.array(missing, pa.bool_()) if missing is not None else None
    arrays = [column.combine_chunks() for column in table.columns]
    return pa.StructArray.from_arrays(arrays, fields=list(table.schema), mask=mask)
