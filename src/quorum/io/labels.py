"""Reading crowd label files: LABELS (``task,worker,label``) and GOLD (``task,label``).

CSV, JSONL (also ``.ndjson``) and Parquet, chosen by extension; other columns are ignored. The
file is read a block at a time (PyArrow for CSV and Parquet, orjson a chunk of lines at a time
for JSONL) and each block is checked as it arrives, so a bad row is reported with its place:
``InputError`` says ``labels.csv, line 7, field 'worker': empty value``. Lines count from 1 with
the CSV header as line 1; a Parquet "line" is its row number from 1. CSV values may span lines
inside quotes; a quote that never closes is an error on the line where it opens.

Types: in CSV, ``task`` and ``worker`` stay text ("007" stays "007"); ``label`` becomes integers
if every value is one, else floats if every value is a number, else text, so that labels sort
as numbers (ties in majority vote go to the smallest label). JSONL and Parquet values keep their
own types: int or str (or bool or float for labels), never null, lists or objects.

:func:`encode` turns the columns into the dense codes ``quorum.truth`` works on, through Arrow
dictionary encoding (a sort of Python strings would take seconds on millions of labels).
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from quorum.db.types import loads_json
from quorum.truth.encoding import EncodedLabels

LABEL_FIELDS = ("task", "worker", "label")
GOLD_FIELDS = ("task", "label")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
BATCH_ROWS = 1 << 16
SCALAR_TYPES = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_boolean,
)
CSV_BLOCK_BYTES = 1 << 22
OPEN_QUOTE = "a quote opens this value and never closes, so it would run to the end of the file"
# The rest of a quoted CSV value, through its closing quote ("" inside it is a quote).
QUOTED_REST = re.compile(r'[^"]*(?:""[^"]*)*"(?!")')


class InputError(ValueError):
    """A problem with an input file, and where it is."""

    def __init__(
        self, path: Path, message: str, *, line: int | None = None, field: str | None = None
    ) -> None:
        where = [
            path.name,
            *([f"line {line}"] if line else []),
            *([f"field {field!r}"] if field else []),
        ]
        super().__init__(f"{', '.join(where)}: {message}")
        self.path, self.line, self.field = path, line, field


@dataclass(frozen=True)
class Table:
    """Columns of one file (Arrow arrays, one value per row) and where they came from."""

    path: Path
    columns: dict[str, pa.ChunkedArray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def column(self, name: str) -> Any:
        """A column as a NumPy array (int64, float64, bool, or object for text)."""
        return self.columns[name].to_numpy()


def file_format(path: Path) -> str:
    """The format named by the extension; raises ``InputError`` for others."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(FORMATS)
        raise InputError(path, f"unknown format {suffix or '(no extension)'!r}: use {known}")
    if not path.is_file():
        raise InputError(path, "no such file")
    return FORMATS[suffix]


def read_labels(path: Path | str) -> Table:
    """Every ``task, worker, label`` row of a LABELS file.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "labels.csv"
    ...     _ = path.write_text("task,worker,label\\nt1,w1,2\\nt1,w2,10\\n")
    ...     table = read_labels(path)
    >>> table.column("task").tolist(), table.column("label").tolist()
    (['t1', 't1'], [2, 10])
    """
    table = read_table(Path(path), LABEL_FIELDS)
    if not len(table):
        raise InputError(table.path, "no labels")
    return table


def read_gold(path: Path | str) -> Table:
    """The ``task, label`` rows of a GOLD file; a task given two different labels raises."""
    table = read_table(Path(path), GOLD_FIELDS)
    tasks = table.columns["task"].combine_chunks()
    labels = table.columns["label"].combine_chunks()
    order = pc.sort_indices(pa.table({"task": tasks}), sort_keys=[("task", "ascending")])
    sorted_tasks = tasks.take(order).to_numpy(zero_copy_only=False)
    sorted_labels = labels.take(order).to_numpy(zero_copy_only=False)
    same_task = sorted_tasks[1:] == sorted_tasks[:-1]
    clash = np.flatnonzero(same_task & (sorted_labels[1:] != sorted_labels[:-1]))
    if clash.size:
        rows = order.to_numpy()[[clash[0], clash[0] + 1]]
        message = f"task {sorted_tasks[clash[0]]!r} has a different gold label on line " + str(
            _line(table.path, int(rows.min()))
        )
        raise InputError(
            table.path, message, line=_line(table.path, int(rows.max())), field="label"
        )
    return table


def read_table(path: Path, fields: tuple[str, ...]) -> Table:
    """The named columns of a file, checked block by block, with ``label`` types settled."""
    kind = file_format(path)
    blocks = {"csv": _csv_blocks, "jsonl": _jsonl_blocks, "parquet": _parquet_blocks}[kind]
    chunks: dict[str, list[pa.Array]] = {name: [] for name in fields}
    for first_row, block in blocks(path, fields):
        for name in fields:
            _check_present(path, name, block[name], first_row)
            _check_type(path, name, block[name], chunks[name], first_row)
            chunks[name].append(block[name])
    columns = {
        name: pa.chunked_array(arrays, type=arrays[0].type if arrays else pa.string())
        for name, arrays in chunks.items()
    }
    if kind == "csv" and "label" in columns:
        columns["label"] = _settle_text_type(columns["label"])
    return Table(path, columns)


def _check_type(
    path: Path, name: str, array: pa.Array, earlier: list[pa.Array], first_row: int
) -> None:
    if earlier and array.type != earlier[0].type:
        raise InputError(
            path,
            f"{array.type} values where earlier rows hold {earlier[0].type}",
            line=_line(path, first_row),
            field=name,
        )


def _check_present(path: Path, name: str, array: pa.Array, first_row: int) -> None:
    """Raise for the first null or empty-text value of a block."""
    missing = array.is_null()
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        missing = pc.or_kleene(missing, pc.equal(pc.utf8_trim_whitespace(array), ""))
    if pc.any(missing).as_py():
        row = first_row + int(pc.index(missing, True).as_py())
        raise InputError(path, "empty value", line=_line(path, row), field=name)


def _settle_text_type(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """CSV label text as int64 if every value is an integer, else float64 if a number, else text."""
    trimmed = pc.utf8_trim_whitespace(column)
    for target in (pa.int64(), pa.float64()):
        try:
            return pc.cast(trimmed, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return column


# --- CSV ------------------------------------------------------------------------------------


def _csv_blocks(path: Path, fields: tuple[str, ...]) -> Iterator[tuple[int, dict[str, pa.Array]]]:
    header = _csv_header(path)
    missing = [name for name in fields if name not in header]
    if missing:
        raise InputError(
            path, f"missing column {missing[0]!r} (columns: {', '.join(header) or 'none'})"
        )
    options = pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in fields},
        include_columns=list(fields),
        strings_can_be_null=False,
    )
    read_options = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    end = _EndLine(len(header))
    parse_options = pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=end.skip)
    row, held = 0, None
    try:
        with (
            path.open("rb") as raw,
            pa_csv.open_csv(
                end.after(raw),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=options,
            ) as reader,
        ):
            # The last block is held back until the end line shows the file ends outside quotes.
            for batch in reader:
                if held is not None:
                    yield row, {name: held.column(name) for name in fields}
                    row += held.num_rows
                held = batch
    except pa.ArrowInvalid as error:
        raise _csv_parse_error(path, header, str(error)) from None
    if not end.reached:
        raise _open_quote_error(path, header) or InputError(path, OPEN_QUOTE)
    if held is not None:
        yield row, {name: held.column(name) for name in fields}


class _EndLine:
    """A line read after the end of the file, to tell that the file does not end inside quotes.

    NOTE: PyArrow ends a quoted value at the end of the file without a word, so a quote left
    open would swallow every row after it. This line has one cell more than the header, the last
    a marker no file holds: after a well-formed file PyArrow reads it as a row of the wrong
    width, which ``skip`` recognises (``reached``); after an open quote it ends up inside the
    open value instead.
    """

    def __init__(self, width: int) -> None:
        self.text = "," * width + f"quorum-end-of-file-{secrets.token_hex(8)}"
        self.reached = False

    def after(self, file: io.BufferedReader) -> _Then:
        """``file`` followed by the end line."""
        return _Then(file, f"\n{self.text}\n".encode())

    def skip(self, row: Any) -> str:
        """PyArrow's ``invalid_row_handler``: skip the end line; any other bad row is an error."""
        if row.text != self.text:
            return "error"
        self.reached = True
        return "skip"


class _Then(io.RawIOBase):
    """A binary file and then ``tail``, as one raw stream."""

    def __init__(self, file: io.BufferedReader, tail: bytes) -> None:
        self.file, self.tail = file, tail

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        filled = self.file.readinto(target)
        if not filled:
            piece, self.tail = self.tail[: len(target)], self.tail[len(target) :]
            filled = len(piece)
            target[:filled] = piece
        return filled

    def read(self, size: int = -1) -> Any:
        """``size`` bytes (PyArrow always says how many) in a buffer of PyArrow's memory pool.

        NOTE: PyArrow holds what ``read`` returns until it has parsed it. As Python bytes, such
        blocks, freed one after another, stay in glibc's heap: reading 5M labels peaked 70 MB
        higher than reading the file natively; in PyArrow's pool it peaks the same.
        """
        block = pa.allocate_buffer(size, resizable=True)
        block.resize(self.readinto(memoryview(block).cast("B")))
        return block


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            names = next(reader, [])
            spans_lines = reader.line_num > 1
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text", line=1) from None
    except csv.Error:  # a name past the csv module's size limit: it ran on past its line
        names, spans_lines = [], True
    opened = _open_quote(path) if spans_lines else None
    if opened is not None and opened[0] == 1:
        raise InputError(path, "the header row opens a quote that never closes", line=1)
    return [name.strip() for name in names]


def _csv_records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line where the record ends, fields) of each non-blank CSV record after the header."""
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for fields in reader:
            if fields:
                yield reader.line_num, fields


def _jsonl_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, text) of each non-blank line of a JSONL file."""
    with path.open("rb") as handle:
        for number, text in enumerate(handle, start=1):
            if text.strip():
                yield number, text


def _line(path: Path, row: int) -> int:
    """The line of data row ``row`` (from 0): blank lines, which the readers skip, are counted
    here, and the CSV header is line 1. Used on the error path only."""
    kind = FORMATS.get(path.suffix.lower())
    records: Iterator[tuple[int, Any]]
    if kind == "csv":
        records = _csv_records(path)
    elif kind == "jsonl":
        records = _jsonl_lines(path)
    else:
        return row + 1
    found = next(islice(records, row, None), None)
    return found[0] if found else row + 1


def _csv_parse_error(path: Path, header: list[str], message: str) -> InputError:
    opened = _open_quote_error(path, header)
    if opened is not None:
        return opened
    try:
        for line, fields in _csv_records(path):
            if len(fields) != len(header):
                return InputError(
                    path, f"expected {len(header)} columns, got {len(fields)}", line=line
                )
    except csv.Error:  # a value beyond the csv module's field size limit
        pass
    if "straddl" in message:  # a quoted value spans more than a whole block
        return InputError(path, f"a quoted value runs on for more than {CSV_BLOCK_BYTES >> 20} MB")
    return InputError(path, message.removeprefix("CSV parse error: "))


def _open_quote_error(path: Path, header: list[str]) -> InputError | None:
    opened = _open_quote(path)
    if opened is None:
        return None
    line, column = opened
    return InputError(
        path, OPEN_QUOTE, line=line, field=header[column] if column < len(header) else None
    )


def _open_quote(path: Path) -> tuple[int, int] | None:
    """(line, column from 0) where a quoted value opens that the file never closes, or None.

    Read as PyArrow reads CSV: a quote opens a value only at its start, and a value ends at a
    comma or a line break outside quotes. On the error path only: a line at a time, in Python.
    """
    opened, column = None, 0
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            at, starts_value = 0, True
            if opened is not None:
                closed = QUOTED_REST.match(text)
                if closed is None:
                    continue
                opened, at, starts_value = None, closed.end(), False
            elif '"' not in text:
                continue
            while True:
                if starts_value and text.startswith('"', at):
                    closed = QUOTED_REST.match(text, at + 1)
                    if closed is None:
                        opened = (number, column)
                        break
                    at = closed.end()
                comma = text.find(",", at)
                if comma < 0:
                    column = 0
                    break
                column, at, starts_value = column + 1, comma + 1, True
    return opened


# --- JSONL ----------------------------------------------------------------------------------


def _jsonl_blocks(path: Path, fields: tuple[str, ...]) -> Iterator[tuple[int, dict[str, pa.Array]]]:
    lines, row = _jsonl_lines(path), 0
    while block := list(islice(lines, BATCH_ROWS)):
        rows = [_jsonl_row(path, text, number, fields) for number, text in block]
        yield row, _jsonl_columns(path, rows, [number for number, _ in block], fields)
        row += len(block)


def _jsonl_row(path: Path, text: bytes, line: int, fields: tuple[str, ...]) -> list[Any]:
    try:
        row = loads_json(text)
    except orjson.JSONDecodeError as error:
        raise InputError(path, f"invalid JSON ({error})", line=line) from None
    if not isinstance(row, dict):
        raise InputError(path, "not a JSON object", line=line)
    values = []
    for name in fields:
        if name not in row:
            raise InputError(path, "missing", line=line, field=name)
        value = row[name]
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InputError(path, "empty value", line=line, field=name)
        if not isinstance(value, str | int | float):
            kind = type(value).__name__
            raise InputError(path, f"must be text or a number, not {kind}", line=line, field=name)
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            message = "an integer beyond 64 bits: write it as text to use it as an id or label"
            raise InputError(path, message, line=line, field=name)
        values.append(value)
    return values


def _jsonl_columns(
    path: Path, rows: list[list[Any]], numbers: list[int], fields: tuple[str, ...]
) -> dict[str, pa.Array]:
    columns = {}
    for index, name in enumerate(fields):
        values = [row[index] for row in rows]
        kinds = [_kind(value) for value in values]
        odd = next((i for i, kind in enumerate(kinds) if kind != kinds[0]), None)
        if odd is not None:
            message = f"{kinds[odd]} where earlier rows have {kinds[0]}"
            raise InputError(path, message, line=numbers[odd], field=name)
        columns[name] = pa.array(values)
    return columns


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    return "a number" if isinstance(value, float) else "text"


# --- Parquet --------------------------------------------------------------------------------


def _parquet_blocks(
    path: Path, fields: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, pa.Array]]]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(path, f"not a Parquet file ({error})") from None
    names = parquet.schema_arrow.names
    missing = [name for name in fields if name not in names]
    if missing:
        raise InputError(
            path, f"missing column {missing[0]!r} (columns: {', '.join(names) or 'none'})"
        )
    row = 0
    for name in fields:
        kind = parquet.schema_arrow.field(name).type
        if not any(check(kind) for check in SCALAR_TYPES):
            raise InputError(path, f"must hold text or numbers, not {kind}", field=name)
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=list(fields)):
        yield row, {name: batch.column(name) for name in fields}
        row += batch.num_rows


# --- Encoding -------------------------------------------------------------------------------


def _harmonize(*columns: pa.ChunkedArray) -> list[pa.ChunkedArray]:
    """Give columns that will be compared one type: numbers stay numbers, else all text."""
    types = {column.type for column in columns}
    if len(types) == 1:
        return list(columns)
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
        return [pc.cast(column, pa.float64()) for column in columns]
    return [pc.cast(column, pa.string()) for column in columns]


def _dictionary(column: pa.ChunkedArray, extra: pa.ChunkedArray | None = None) -> tuple[Any, Any]:
    """(codes into the sorted unique values, those values) of a column, via Arrow."""
    chunks = column.chunks if extra is None else column.chunks + extra.chunks
    combined = pa.chunked_array(chunks, type=column.type)
    encoded = combined.combine_chunks().dictionary_encode()
    order = pc.sort_indices(encoded.dictionary)
    rank = np.empty(len(order), dtype=np.intp)
    rank[order.to_numpy()] = np.arange(len(order))
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    codes = rank[indices[: len(column)]] if len(order) else np.zeros(0, dtype=np.intp)
    return codes, encoded.dictionary.take(order).to_numpy(zero_copy_only=False)


def encode(labels: Table, gold: Table | None = None) -> tuple[EncodedLabels, Any]:
    """(integer-coded labels, gold codes per task or -1) ready for ``quorum.truth``.

    Gold labels no worker gave still become classes; gold for tasks without labels is dropped.
    """
    task, worker, label = (labels.columns[name] for name in LABEL_FIELDS)
    if gold is None:
        task_codes, tasks = _dictionary(task)
        label_codes, classes = _dictionary(label)
        worker_codes, workers = _dictionary(worker)
        data = EncodedLabels(task_codes, worker_codes, label_codes, tasks, workers, classes)
        return data, np.full(len(tasks), -1, dtype=np.intp)
    task, gold_task = _harmonize(task, gold.columns["task"])
    label, gold_label = _harmonize(label, gold.columns["label"])
    task_codes, tasks = _dictionary(task)
    label_codes, classes = _dictionary(label, gold_label)
    worker_codes, workers = _dictionary(worker)
    data = EncodedLabels(task_codes, worker_codes, label_codes, tasks, workers, classes)
    return data, data.encode_gold(gold_task.to_numpy(), gold_label.to_numpy())
