"""Writing an export as JSONL, CSV or Parquet, a batch of tasks at a time.

The rows come from ``quorum.domain.export`` as Arrow record batches; each batch is written and
handed on before the next is read, so a file or an HTTP response grows while memory does not.

- Parquet keeps the nested schema (``answers`` and ``gold`` structs typed per question,
  ``annotations`` a list of structs), one row group per batch, zstd-compressed.
- JSONL is one JSON object per task, with ``data`` and ``gold`` as objects, times as the API
  writes them (``2026-11-25T12:00:00.123456Z``).
- CSV is flat: ``data.<field>``, ``gold.<question>``, ``answer.<question>`` and
  ``confidence.<question>`` columns, ``annotations`` as JSON text; a cell holds text as is and
  anything else as JSON, the same rules the CSV import reads back.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from quorum.db.engine import Database
from quorum.db.models import User
from quorum.db.types import canonical_json, loads_json
from quorum.domain import deliveries, export, policies, projects
from quorum.domain.export import Export, ExportFilter
from quorum.domain.questions import QuestionSchema
from quorum.io.delivery_files import stream_delivery_zip

# Files of rows, and deliveries (Hugging Face datasets with a card; docs/deliveries.md).
ExportFormat = Literal["jsonl", "csv", "parquet", "hf", "dpo", "sft"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("jsonl", "csv", "parquet", "hf", "dpo", "sft")
FILE_FORMATS: tuple[ExportFormat, ...] = ("jsonl", "csv", "parquet")
MEDIA_TYPES: dict[ExportFormat, str] = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "hf": "application/zip",
    "dpo": "application/zip",
    "sft": "application/zip",
}
# What a downloaded export is called after the project: a delivery is a zipped directory.
EXTENSIONS: dict[ExportFormat, str] = {
    "jsonl": "jsonl",
    "csv": "csv",
    "parquet": "parquet",
    "hf": "hf.zip",
    "dpo": "dpo.zip",
    "sft": "sft.zip",
}
TEXT_KINDS = {"choice", "preference", "text"}
Progress = Callable[[int], None]


def write_export(
    export: Export, fmt: ExportFormat, sink: IO[bytes], progress: Progress | None = None
) -> int:
    """Write every row to ``sink``; returns how many tasks were written. For files of rows:
    deliveries are directories (``quorum.io.delivery_files.write_delivery``)."""
    if fmt not in FILE_FORMATS:
        raise ValueError(f"{fmt} is a delivery, written as a directory, not a file")
    written = 0
    for chunk, rows in _chunks(export, fmt):
        sink.write(chunk)
        written += rows
        if progress is not None and rows:
            progress(rows)
    return written


def stream_export(
    export: Export, fmt: ExportFormat, *, prompt_field: str | None = None
) -> Iterator[bytes]:
    """The export as byte chunks, one per batch of tasks (for a streamed HTTP response); a
    delivery comes as a zip of its directory. A delivery the project cannot make is refused
    here, before any byte is sent."""
    if fmt in deliveries.DELIVERY_KINDS:
        return stream_delivery_zip(deliveries.prepare(export, fmt, prompt_field=prompt_field))
    return _stream(export, fmt)


@dataclass(frozen=True)
class Download:
    """A project's export as an HTTP download: its bytes, as they are made, and its headers."""

    chunks: Iterator[bytes]
    media_type: str
    filename: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Disposition": f'attachment; filename="{self.filename}"'}


def download(
    database: Database,
    user: User,
    project_id: int,
    fmt: ExportFormat,
    *,
    method: str,
    filters: ExportFilter,
    denied: str,
    prompt_field: str | None = None,
) -> Download:
    """``project_id``'s export for ``user`` (an owner or an admin, else Forbidden(``denied``)),
    for the API's and the dashboard's downloads.

    Access, the labels' aggregation and whether the delivery can be made are settled here,
    before the first byte. The rows are read while the response is sent, after the handler
    has returned, so they come from a session of their own that the stream closes.
    """
    session = database.session()
    try:
        seen = projects.access(session, user, project_id)
        policies.authorize(user, policies.can_export(seen.role), denied)
        prepared = export.prepare(session, seen.project, method=method, filters=filters)
        chunks = stream_export(prepared, fmt, prompt_field=prompt_field)
    except BaseException:
        session.close()
        raise
    return Download(
        _closing(chunks, session), MEDIA_TYPES[fmt], f"project-{project_id}.{EXTENSIONS[fmt]}"
    )


def _closing(chunks: Iterator[bytes], session: Session) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        session.close()


def _stream(export: Export, fmt: ExportFormat) -> Iterator[bytes]:
    for chunk, _ in _chunks(export, fmt):
        if chunk:
            yield chunk


def _chunks(export: Export, fmt: ExportFormat) -> Iterator[tuple[bytes, int]]:
    if fmt == "parquet":
        yield from _parquet(export)
    elif fmt == "jsonl":
        for batch in export.batches():
            yield jsonl_lines(batch), batch.num_rows
    else:
        yield from _csv(export)


class _Buffer:
    """A write-only file whose bytes are taken out after each row group."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _parquet(export: Export) -> Iterator[tuple[bytes, int]]:
    buffer = _Buffer()
    with pq.ParquetWriter(buffer, export.row_schema, compression="zstd") as writer:
        for batch in export.batches():
            writer.write_batch(batch)
            yield buffer.take(), batch.num_rows
    yield buffer.take(), 0  # the footer


def jsonl_lines(batch: pa.RecordBatch) -> bytes:
    """One JSON line per row; answers left out of a label or gold are left out here too."""
    lines = []
    for row in batch.to_pylist():
        row["data"] = orjson.Fragment(row["data"])
        if row["gold"] is not None:
            row["gold"] = _present(row["gold"])
        for annotation in row["annotations"]:
            annotation["answers"] = _present(annotation["answers"])
        lines.append(orjson.dumps(row, option=orjson.OPT_UTC_Z))
    return b"".join(line + b"\n" for line in lines)


def _present(answers: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in answers.items() if value is not None}


def _csv(export: Export) -> Iterator[tuple[bytes, int]]:
    fields = export.data_fields()
    columns = _csv_columns(export.schema, fields)
    header = True
    for batch in export.batches():
        table = pa.table({name: cells(batch) for name, cells in columns.items()})
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=header))
        header = False
        yield sink.getvalue().to_pybytes(), batch.num_rows
    if header:  # no rows: still a header
        empty = pa.table({name: pa.array([], pa.string()) for name in columns})
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(empty, sink)
        yield sink.getvalue().to_pybytes(), 0


Column = Callable[[pa.RecordBatch], pa.Array]


def _csv_columns(schema: QuestionSchema, fields: list[str]) -> dict[str, Column]:
    """Each CSV column and how to compute it from a batch."""
    columns: dict[str, Column] = {
        "task_id": lambda b: b.column("task_id"),
        "external_id": lambda b: b.column("external_id"),
    }
    for field in fields:
        columns[f"data.{field}"] = _data_cells(field)
    kinds = {q.name: q.kind in TEXT_KINDS for q in schema.questions}
    for prefix, source in (("gold", "gold"), ("answer", "answers")):
        for name, text in kinds.items():
            columns[f"{prefix}.{name}"] = _answer_cells(source, name, text)
    for name in kinds:
        columns[f"confidence.{name}"] = _confidence_cells(name)
    columns["n_labels"] = lambda b: b.column("n_labels")
    columns["annotations"] = _annotation_cells
    return columns


def _cell(value: Any, text: bool) -> str | None:
    if value is None:
        return None
    if text and isinstance(value, str):
        return value
    return canonical_json(value).decode()  # orjson refuses integers beyond 64 bits


def _data_cells(field: str) -> Column:
    def cells(batch: pa.RecordBatch) -> pa.Array:
        # NOTE: loads_json, not orjson.loads, which would round integers beyond 64 bits.
        datas = (loads_json(d) for d in batch.column("data").to_pylist())
        return pa.array([_cell(d.get(field), True) for d in datas], pa.string())

    return cells


def _answer_cells(source: str, name: str, text: bool) -> Column:
    def cells(batch: pa.RecordBatch) -> pa.Array:
        values = pc.struct_field(batch.column(source), name).to_pylist()
        return pa.array([_cell(v, text) for v in values], pa.string())

    return cells


def _confidence_cells(name: str) -> Column:
    def cells(batch: pa.RecordBatch) -> pa.Array:
        column: pa.Array = pc.struct_field(batch.column("confidence"), name)
        return column

    return cells


def _annotation_cells(batch: pa.RecordBatch) -> pa.Array:
    lists = batch.column("annotations").to_pylist()
    for annotations in lists:
        for annotation in annotations:
            annotation["answers"] = _present(annotation["answers"])
    return pa.array([orjson.dumps(a, option=orjson.OPT_UTC_Z).decode() for a in lists], pa.string())
