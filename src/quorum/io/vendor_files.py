"""Reading a vendor's delivered labels: JSON arrays, NDJSON, CSV and Parquet, streamed.

Every reader yields ``Record``s whose value is ``{"external_id", "answers": {question: value}}``
(JSON rows may also put the answers at the top level; ``quorum.domain.audits`` accepts both).
CSV and Parquet have an ``external_id`` column and one column per question, named ``<question>``
or ``answer.<question>``; CSV cells follow the import rules for gold (docs/import-export.md):
text for choice, preference and text questions, a whole number for a rating, JSON otherwise.
"""

from collections.abc import Iterator
from typing import IO, Any

import orjson

from quorum.db.types import loads_json
from quorum.domain.questions import QuestionSchema
from quorum.domain.tasks import Record
from quorum.io.task_files import Format, read_csv, read_json_array, read_ndjson, read_parquet

TEXT_KINDS = {"choice", "preference", "text"}
ANSWER_PREFIX = "answer."


def read_vendor_labels(file: IO[bytes], fmt: Format, schema: QuestionSchema) -> Iterator[Record]:
    """The delivered rows in ``file``; Parquet needs a seekable file."""
    if fmt == "ndjson":
        return read_ndjson(file)
    if fmt == "json":
        return read_json_array(file)
    kinds: dict[str, str] = {q.name: q.kind for q in schema.questions}
    # NOTE: read as tasks of a schema without questions, so no column is taken for gold or a
    # task field; the columns then come back as ``data`` fields, renamed here to answers.
    rows = read_csv(file, _NO_QUESTIONS) if fmt == "csv" else read_parquet(file, _NO_QUESTIONS)
    return (_from_table(record, kinds, text=fmt == "csv") for record in rows)


_NO_QUESTIONS = QuestionSchema.model_construct(questions=[])


def _from_table(record: Record, kinds: dict[str, str], *, text: bool) -> Record:
    if record.error is not None:
        return record
    answers: dict[str, Any] = {}
    for column, cell in record.value.get("data", {}).items():
        name = column.removeprefix(ANSWER_PREFIX)
        try:
            answers[name] = _cell(cell, kinds.get(name)) if text else cell
        except ValueError as error:
            return Record(record.line, error=str(error), field=column)
    row: dict[str, Any] = {"answers": answers}
    if "external_id" in record.value:
        row["external_id"] = record.value["external_id"]
    return Record(record.line, row)


def _cell(cell: str, kind: str | None) -> Any:
    if kind is None or kind in TEXT_KINDS:
        return cell
    if kind == "rating":
        try:
            return int(cell.strip())
        except ValueError:
            raise ValueError(f"{cell!r} is not a whole number") from None
    try:
        return loads_json(cell)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"not valid JSON: {error.msg}") from None
