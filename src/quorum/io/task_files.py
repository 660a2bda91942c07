"""Reading tasks from request bodies and files, streamed: NDJSON, JSON arrays, CSV and Parquet.

Every reader yields ``Record``s, one per task, holding the same ``{data, gold?, external_id?,
priority?}`` object whatever the format, so one validator serves them all. A reader never holds
the whole input: NDJSON goes line by line, JSON arrays element by element (ijson), CSV and
Parquet a block of rows at a time (PyArrow). ``line`` is the line of NDJSON, the element of a
JSON array (from 1), the record of a CSV file counting its header as 1, the row of a Parquet file.

Column rules for CSV and Parquet (docs/import-export.md):
- ``external_id`` and ``priority`` are the task's own; ``gold.<question>`` is that question's gold;
- ``data`` holds the whole data object (a Parquet struct, or JSON object text); ``data.<field>``
  and every other column is one field of ``data``;
- what Quorum's own export adds (``task_id``, ``n_labels``, ``annotations``, ``answer.*``,
  ``confidence.*``) is ignored, so an export re-imports as the same tasks;
- an empty cell or a null is an absent field.
CSV cells are text, never guessed: "007" stays "007". A data field that a question reads as a list
(``ranking``) and gold for a question whose answer is not text are JSON (a rating is a number).
Cells may span lines inside quotes; a quote that never closes is a bad record, not the rest of
the file.
"""

import csv
import io
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

import ijson
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from quorum.db.types import loads_json
from quorum.domain.questions import QuestionSchema
from quorum.domain.tasks import Record

Format = Literal["json", "ndjson", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("json", "ndjson", "csv", "parquet")
EXTENSIONS: dict[str, Format] = {
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".csv": "csv",
    ".parquet": "parquet",
}
CONTENT_TYPES: dict[str, Format] = {
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
}
# Columns of Quorum's own export that are not part of a task: ignored when there is a task_id.
EXPORT_ONLY = {"task_id", "n_labels", "annotations", "answers", "confidence"}
EXPORT_ONLY_PREFIXES = ("answer.", "confidence.")
TEXT_GOLD_KINDS = {"choice", "preference", "text"}
CSV_BLOCK_BYTES = 1 << 20
OPEN_QUOTE = "a quote opens this cell and never closes, so it would run to the end of the file"
PARQUET_BATCH_ROWS = 8192


def format_for(
    *, name: str | None = None, content_type: str | None = None, given: str | None = None
) -> Format:
    """The format named by ``given``, else by the content type, else by the file extension."""
    if given:
        names: dict[str, Format] = {"jsonl": "ndjson", **{f: f for f in FORMATS}}
        named = names.get(given)
        if named is None:
            raise ValueError(f"unknown format {given!r}: use one of {', '.join(FORMATS)}")
        return named
    bare = (content_type or "").split(";")[0].strip().lower()
    if bare in CONTENT_TYPES:
        return CONTENT_TYPES[bare]
    suffix = "." + name.rsplit(".", 1)[-1].lower() if name and "." in name else ""
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    what = f"file {name!r}" if name else f"content type {bare!r}"
    raise ValueError(
        f"cannot tell the format of {what}: use .json, .ndjson/.jsonl, .csv or .parquet"
    )


def read_tasks(file: IO[bytes], fmt: Format, schema: QuestionSchema) -> Iterator[Record]:
    """The tasks in ``file``; Parquet needs a seekable file, the others read it once, in order."""
    if fmt == "ndjson":
        return read_ndjson(file)
    if fmt == "json":
        return read_json_array(file)
    if fmt == "csv":
        return read_csv(file, schema)
    return read_parquet(file, schema)


def read_ndjson(lines: Iterator[bytes] | IO[bytes]) -> Iterator[Record]:
    """One JSON object per line; blank lines are ignored, bad ones reported with their number."""
    for number, line in enumerate(lines, start=1):
        try:
            yield Record(number, loads_json(line))
        except orjson.JSONDecodeError as error:
            if line.strip():  # checked only here: stripping every good line costs a copy
                yield Record(number, error=f"not valid JSON: {error.msg} at column {error.colno}")


def read_json_array(file: IO[bytes]) -> Iterator[Record]:
    """A JSON array of tasks, element by element; elements are numbered from 1 in place of lines.

    A syntax error ends the array: nothing after it can be read reliably.
    """
    buffered = buffer(file)
    if _first_byte(buffered) != b"[":
        yield Record(1, error="expected a JSON array of tasks")
        return
    index = 0
    try:
        for index, item in enumerate(ijson.items(buffered, "item", use_float=True), start=1):
            yield Record(index, item)
    except ijson.JSONError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "malformed"
        if "integer overflow" in reason:
            # NOTE: the streaming parser stops at integers beyond 64 bits; NDJSON keeps them.
            reason = "an integer beyond 64 bits, which a JSON array cannot carry here; send NDJSON"
        yield Record(index + 1, error=f"not valid JSON: {reason}")


def _first_byte(buffered: io.BufferedReader) -> bytes:
    while True:
        head = buffered.peek(1)
        if not head:
            return b""
        stripped = head.lstrip()
        if stripped:
            return stripped[:1]
        buffered.read(len(head))


def buffer(file: IO[bytes], *, always: bool = False) -> io.BufferedReader:
    """``file`` with ``peek``: readers look at the start before they hand the stream on.

    ``always`` wraps even a buffered file, so ``peek`` can see a whole block.
    """
    if isinstance(file, io.BufferedReader) and not always:
        return file
    return io.BufferedReader(_Raw(file), buffer_size=CSV_BLOCK_BYTES)


class _Raw(io.RawIOBase):
    """Any object with ``read`` as a raw stream, so ``io.BufferedReader`` can wrap it; ``tail``
    follows the end of ``file``."""

    def __init__(self, file: IO[bytes], tail: bytes = b"") -> None:
        self.file = file
        self.tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        # Fill the whole buffer unless the stream ends: a request body arrives in small chunks.
        filled = 0
        while filled < len(target):
            wanted = len(target) - filled
            chunk = self.file.read(wanted)
            if not chunk:
                chunk, self.tail = self.tail[:wanted], self.tail[wanted:]
            if not chunk:
                break
            target[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        return filled


@dataclass(frozen=True)
class Columns:
    """What each column of a table holds, and how to turn one row of it into a task object."""

    roles: list[tuple[int, str, str, Callable[[Any], Any]]]  # (index, role, key, decode)

    @classmethod
    def plan(cls, names: list[str], schema: QuestionSchema, *, text: bool) -> "Columns":
        """Roles of the columns ``names``; ``text`` (CSV) decodes cells by the rules above."""
        _refuse_duplicates(names)
        lists = {f for q in schema.questions for f, kind in q.task_fields().items() if kind is list}
        kinds: dict[str, str] = {q.name: q.kind for q in schema.questions}
        exported = "task_id" in names
        roles = []
        for index, name in enumerate(names):
            role, key = column_role(name, exported=exported)
            if role != "ignore":
                decode = _decoder(role, key, lists, kinds) if text else _keep
                roles.append((index, role, key, decode))
        return cls(roles)

    def task(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """One row as a task object; raises CellError naming a bad cell."""
        task: dict[str, Any] = {}
        data: dict[str, Any] = {}
        gold: dict[str, Any] = {}
        for index, role, key, decode in self.roles:
            raw = row[index]
            if raw is None or raw == "":
                continue
            value = decode(raw)
            if role == "data_object":
                data = {**_object("data", value), **data}
            elif role == "gold_object":
                gold = {**_object("gold", value), **gold}
            elif role == "data":
                data[key] = value
            elif role == "gold":
                gold[key] = value
            else:
                task[key] = value
        task["data"] = data
        if gold:
            task["gold"] = gold
        return task


class CellError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _refuse_duplicates(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise CellError(name, "the column appears twice")
        seen.add(name)


def column_role(name: str, *, exported: bool) -> tuple[str, str]:
    """``(role, key)`` of a column; ``exported`` when the table has Quorum's ``task_id`` column."""
    if exported and (name in EXPORT_ONLY or name.startswith(EXPORT_ONLY_PREFIXES)):
        return "ignore", name
    if name in ("external_id", "priority"):
        return "task", name
    if name in ("data", "gold"):
        return f"{name}_object", name
    if name.startswith("gold."):
        return "gold", name[len("gold.") :]
    return "data", name[len("data.") :] if name.startswith("data.") else name


def _decoder(role: str, key: str, lists: set[str], kinds: dict[str, str]) -> Callable[[Any], Any]:
    field = key if role in ("task", "data_object", "gold_object") else f"{role}.{key}"
    if role in ("data_object", "gold_object") or (role == "data" and key in lists):
        return _json_cell(field)
    if role == "gold" and kinds.get(key) == "rating" or role == "task" and key == "priority":
        return _integer_cell(field)
    if role == "gold" and key in kinds and kinds[key] not in TEXT_GOLD_KINDS:
        return _json_cell(field)
    return _keep


def _keep(value: Any) -> Any:
    return value


def _json_cell(field: str) -> Callable[[Any], Any]:
    def decode(cell: Any) -> Any:
        try:
            return loads_json(cell)
        except orjson.JSONDecodeError as error:
            raise CellError(field, f"not valid JSON: {error.msg}") from None

    return decode


def _integer_cell(field: str) -> Callable[[Any], Any]:
    def decode(cell: Any) -> Any:
        try:
            return int(cell.strip())
        except ValueError:
            raise CellError(field, f"{cell!r} is not a whole number") from None

    return decode


def _object(field: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = _json_cell(field)(value)
    if not isinstance(value, dict):
        raise CellError(field, "must be a JSON object")
    return {k: v for k, v in value.items() if v is not None}


def _rows(columns: Columns, batch: pa.RecordBatch, lines: Iterator[int]) -> Iterator[Record]:
    values = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
    # NOTE: rows first: zip takes from its first iterator before it finds the second empty, and
    # a line number taken that way would be lost to the next batch.
    for row, line in zip(zip(*values, strict=True), lines, strict=False):
        try:
            yield Record(line, columns.task(row))
        except CellError as error:
            yield Record(line, error=str(error), field=error.field)


def read_csv(file: IO[bytes], schema: QuestionSchema) -> Iterator[Record]:
    """A CSV file with a header row, a block of rows at a time."""
    buffered = buffer(file, always=True)
    try:
        names = _csv_header(buffered)
        columns = Columns.plan(names, schema, text=True)
    except CellError as error:
        yield Record(1, error=str(error), field=error.field)
        return
    except ValueError as error:
        yield Record(1, error=str(error))
        return
    if b"\n" not in buffered.peek(CSV_BLOCK_BYTES).rstrip(b"\r\n"):
        return  # a header and no rows
    end = _EndLine(names)
    skipped: dict[int, tuple[str, str]] = {}  # filled by PyArrow as it parses each block
    try:
        reader = _open_csv(buffered, names, end, skipped)
    except pa.ArrowInvalid as error:
        yield Record(2, error=_unreadable(error))
        return
    numbers = _LineCounter(skipped)
    reported: set[int] = set()
    while True:
        try:
            batch: pa.RecordBatch | None = reader.read_next_batch()
        except StopIteration:
            batch = None
        except pa.ArrowInvalid as error:
            yield from _skipped(skipped, reported)
            yield Record(numbers.upcoming(), error=_unreadable(error))
            return
        yield from _skipped(skipped, reported)
        if batch is None:
            break
        if end.swallowed_by(batch):
            yield from _rows(columns, batch.slice(0, batch.num_rows - 1), numbers)
            yield Record(next(numbers), error=OPEN_QUOTE, field=names[-1])
            return
        yield from _rows(columns, batch, numbers)
    if not end.reached:  # not expected: PyArrow skipped the end line, or stopped before it
        yield Record(numbers.upcoming(), error=OPEN_QUOTE)


def _csv_header(buffered: io.BufferedReader) -> list[str]:
    head = buffered.peek(CSV_BLOCK_BYTES)
    end = head.find(b"\n")
    if end < 0 and len(head) >= CSV_BLOCK_BYTES:
        raise ValueError(f"the header row is longer than {CSV_BLOCK_BYTES} bytes")
    line = head if end < 0 else head[:end]
    if not line.strip():
        raise ValueError("expected a header row naming the columns")
    try:
        reader = csv.reader([line.decode("utf-8-sig").rstrip("\r"), ""])
    except UnicodeDecodeError:
        raise ValueError("the header row is not UTF-8 text") from None
    names = next(reader)
    if reader.line_num > 1:  # a quote left open ran on into the empty line after the header
        raise ValueError("the header row opens a quote that never closes")
    if any(not name.strip() for name in names):
        raise ValueError("every column needs a name in the header row")
    return names


class _EndLine:
    """A line read after the end of the file, to tell that the file does not end inside quotes.

    NOTE: PyArrow ends a quoted cell at the end of the file without a word, so a quote left open
    would swallow every row after it. This line has one cell more than the header, the last a
    marker no file holds: after a well-formed file PyArrow reads it as a row of the wrong width
    and hands it to ``invalid_row`` (``reached``); after an open quote it lands at the end of the
    open cell, the last cell of the last row.
    """

    def __init__(self, names: list[str]) -> None:
        self.marker = f"quorum-end-of-file-{secrets.token_hex(8)}"
        self.text = "," * len(names) + self.marker
        self.reached = False

    def swallowed_by(self, batch: pa.RecordBatch) -> bool:
        """Whether the last cell of ``batch`` holds the marker: it came from an open quote."""
        last = batch.column(batch.num_columns - 1)
        return batch.num_rows > 0 and self.marker in last[batch.num_rows - 1].as_py()


def _open_csv(
    buffered: io.BufferedReader,
    names: list[str],
    end: _EndLine,
    skipped: dict[int, tuple[str, str]],
) -> pa_csv.CSVStreamingReader:
    def invalid_row(row: Any) -> str:
        # NOTE: parsing on one thread, PyArrow numbers records as we do (the header is 1).
        number = row.number if row.number is not None else 0
        if row.text == end.text:
            end.reached = True
        elif end.marker in row.text:  # the open cell is the row's last: it ran to the end
            end.reached = True
            field = names[row.actual_columns - 1] if row.actual_columns <= len(names) else "line"
            skipped[number] = (OPEN_QUOTE, field)
        else:
            cells = f"a row of {row.actual_columns} cells; the header has {row.expected_columns}"
            skipped[number] = (cells, "line")
        return "skip"

    ended = io.BufferedReader(_Raw(buffered, tail=f"\n{end.text}\n".encode()), CSV_BLOCK_BYTES)
    return pa_csv.open_csv(
        ended,
        read_options=pa_csv.ReadOptions(
            use_threads=False, block_size=CSV_BLOCK_BYTES, column_names=names, skip_rows=1
        ),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid_row),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in names}, strings_can_be_null=False
        ),
    )


def _unreadable(error: pa.ArrowInvalid) -> str:
    if "straddl" in str(error):  # a quoted cell spans more than a whole block
        return (
            f"a quoted cell runs on for more than {CSV_BLOCK_BYTES >> 20} MB: "
            "is its closing quote missing?"
        )
    return f"cannot read the CSV: {error}"


class _LineCounter:
    """Line numbers of the rows PyArrow hands back: every record but the ones it skipped."""

    def __init__(self, skipped: dict[int, tuple[str, str]]) -> None:
        self.skipped = skipped
        self.next = 2  # the header is line 1

    def __iter__(self) -> "_LineCounter":
        return self

    def __next__(self) -> int:
        line = self.upcoming()
        self.next += 1
        return line

    def upcoming(self) -> int:
        """The line of the next row, without taking it."""
        while self.next in self.skipped:
            self.next += 1
        return self.next


def _skipped(skipped: dict[int, tuple[str, str]], reported: set[int]) -> Iterator[Record]:
    for number in sorted(set(skipped) - reported):
        reported.add(number)
        message, field = skipped[number]
        yield Record(number, error=message, field=field)


def read_parquet(file: IO[bytes] | str, schema: QuestionSchema) -> Iterator[Record]:
    """A Parquet file, a batch of rows at a time; values keep their Parquet types."""
    try:
        parquet = pq.ParquetFile(file)
        names = parquet.schema_arrow.names
        columns = Columns.plan(names, schema, text=False)
        _refuse_non_json_types(parquet.schema_arrow, columns)
    except CellError as error:
        yield Record(1, error=str(error), field=error.field)
        return
    except (pa.ArrowException, OSError) as error:
        yield Record(1, error=f"not a readable Parquet file: {error}")
        return
    numbers = iter(range(1, parquet.metadata.num_rows + 1))
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        yield from _rows(columns, batch, numbers)


def _refuse_non_json_types(arrow_schema: pa.Schema, columns: Columns) -> None:
    for index, *_ in columns.roles:
        field = arrow_schema.field(index)
        if not _json_type(field.type):
            raise CellError(
                field.name, f"has type {field.type}, which JSON cannot hold: use text or numbers"
            )


def _json_type(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _json_type(kind.value_type)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _json_type(kind.value_type)
    if pa.types.is_struct(kind):
        return all(_json_type(kind.field(i).type) for i in range(kind.num_fields))
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_null(kind)
    )
