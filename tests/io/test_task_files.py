"""Readers of task files: every format yields the same task objects, bad rows named by line."""

import io
from typing import Any

import pyarrow as pa
import pytest
from tests.io.conftest import MIXED_SCHEMA, ndjson, parquet_bytes

from quorum.domain.questions import QuestionSchema
from quorum.domain.tasks import Record
from quorum.io import task_files
from quorum.io.task_files import format_for, read_tasks
from quorum.io.vendor_files import read_vendor_labels

SCHEMA = QuestionSchema.model_validate(
    {
        "questions": [
            *MIXED_SCHEMA["questions"],
            {"name": "score", "kind": "rating", "min": 1, "max": 5, "required": False},
        ]
    }
)


def read(body: bytes, fmt: Any) -> list[Record]:
    return list(read_tasks(io.BytesIO(body), fmt, SCHEMA))


@pytest.mark.parametrize(
    ("name", "content_type", "given", "expected"),
    [
        ("tasks.jsonl", None, None, "ndjson"),
        ("tasks.NDJSON", None, None, "ndjson"),
        ("tasks.csv", "application/octet-stream", None, "csv"),
        ("tasks.bin", "text/csv; charset=utf-8", None, "csv"),
        ("tasks.json", None, "parquet", "parquet"),
        (None, "application/vnd.apache.parquet", None, "parquet"),
        (None, "application/json", "jsonl", "ndjson"),
    ],
)
def test_format_from_override_then_content_type_then_extension(
    name: str | None, content_type: str | None, given: str | None, expected: str
) -> None:
    assert format_for(name=name, content_type=content_type, given=given) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"name": "tasks.xml"}, "tasks.xml"), ({"given": "xlsx"}, "unknown format 'xlsx'")],
)
def test_unknown_formats_are_named(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        format_for(**kwargs)


def test_ndjson_numbers_lines_and_skips_blank_ones() -> None:
    body = b'{"data": {"a": 1}}\n\n  \n{"data": \n{"data": {"a": 2}}\r\n'
    records = read(body, "ndjson")
    assert [(r.line, r.value, r.error is not None) for r in records] == [
        (1, {"data": {"a": 1}}, False),
        (4, None, True),
        (5, {"data": {"a": 2}}, False),
    ]


def test_json_array_streams_elements_and_stops_at_a_syntax_error() -> None:
    assert [r.value for r in read(b' [{"data": {"a": 1.5}}, {"data": {}}] ', "json")] == [
        {"data": {"a": 1.5}},
        {"data": {}},
    ]
    broken = read(b'[{"data": {}}, {"data": ', "json")
    assert [(r.line, r.error is None) for r in broken] == [(1, True), (2, False)]
    assert "not valid JSON" in (broken[1].error or "")
    assert read(b'{"data": {}}', "json")[0].error == "expected a JSON array of tasks"
    assert read(b"", "json")[0].error == "expected a JSON array of tasks"


BIG = 123456789012345678901234567890  # beyond 64 bits: orjson alone would make it a float


def test_integers_beyond_64_bits_are_read_exactly() -> None:
    (record,) = read(b'{"data": {"n": %d, "x": 0.5, "s": "%d"}}\n' % (BIG, BIG), "ndjson")
    assert record.value == {"data": {"n": BIG, "x": 0.5, "s": str(BIG)}}
    (row,) = read(b'text,items\nbig,"[%d, -%d]"\n' % (BIG, BIG), "csv")
    assert row.value["data"]["items"] == [BIG, -BIG]
    (within,) = read(b'{"data": {"n": 18446744073709551615}}', "ndjson")
    assert within.value["data"]["n"] == 2**64 - 1


def test_a_json_array_names_an_integer_beyond_64_bits() -> None:
    records = read(b'[{"data": {}}, {"data": {"n": %d}}]' % BIG, "json")
    assert [(r.line, r.error is None) for r in records] == [(1, True), (2, False)]
    assert "beyond 64 bits" in (records[1].error or "")


def test_csv_cells_are_text_never_guessed() -> None:
    body = (
        b"external_id,text,items,zip,flag,data.source,gold.verdict,gold.score,gold.tags,empty\n"
        b't1,"aspirin, 100 mg","[""a"",""b""]",007,true,web,good,4,"[""x""]",\n'
    )
    (record,) = read(body, "csv")
    assert record.value == {
        "external_id": "t1",
        "data": {
            "text": "aspirin, 100 mg",
            "items": ["a", "b"],  # a field a ranking question reads is JSON
            "zip": "007",
            "flag": "true",
            "source": "web",
        },
        "gold": {"verdict": "good", "score": 4, "tags": ["x"]},
    }


def test_csv_values_may_span_lines_and_keep_unicode() -> None:
    body = 'text,items\n"line one\nline two — ✓",[0]\nnext,[0]\n'.encode()
    records = read(body, "csv")
    assert records[0].value["data"]["text"] == "line one\nline two — ✓"
    assert [r.line for r in records] == [2, 3]


def test_csv_bad_cells_and_rows_are_named_by_line() -> None:
    body = (
        b"text,items,gold.score\n"
        b"ok,[0],3\n"  # line 2
        b'ok,"[0",3\n'  # line 3: not JSON
        b"ok,[0],3,extra\n"  # line 4: too many cells
        b"ok,[0],high\n"  # line 5: not a number
        b"ok,[0],5\n"  # line 6
    )
    records = read(body, "csv")
    good = [r.line for r in records if r.error is None]
    bad = sorted((r.line, r.field) for r in records if r.error is not None)
    assert good == [2, 6]
    assert bad == [(3, "data.items"), (4, "line"), (5, "gold.score")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "header row"),
        (b"text,text\nx,y\n", "appears twice"),
        (b"text,,x\n1,2,3\n", "needs a name"),
        (b'text,"items\nx,[0]\n', "opens a quote that never closes"),
    ],
)
def test_csv_headers_are_checked(body: bytes, message: str) -> None:
    (record,) = read(body, "csv")
    assert record.line == 1
    assert message in (record.error or "")


OPEN = "a quote opens this cell and never closes, so it would run to the end of the file"


@pytest.mark.parametrize(
    ("body", "line", "field"),
    [
        (b'external_id,text\nu0,fine\nu1,"unterminated\nu2,ok\n', 3, "text"),
        (b'external_id,text,source\nu1,"unterminated,web\nu2,ok,web\n', 2, "text"),
        (b'external_id,text\nu1,ok\n"u2,ok\nu3,ok', 3, "external_id"),
        (b'external_id,text\nu1,ok,"extra\nu2,ok\n', 2, "line"),  # a cell the header lacks
        (b'external_id,text\nu1,"two\nlines"\nu2,"say ""hi""\nu3,ok\n', 3, "text"),
        (b'external_id,text\nu1,ok\nu2,"ends ""inside""', 3, "text"),
    ],
    ids=["last cell", "narrower row", "first cell", "wider row", "after two lines", "at the end"],
)
def test_csv_a_quote_left_open_is_refused_not_read_to_the_end(
    body: bytes, line: int, field: str
) -> None:
    records = read(body, "csv")
    assert [(r.line, r.field, r.error) for r in records if r.error] == [(line, field, OPEN)]
    assert all(r.line < line for r in records if r.error is None)


def test_csv_a_quote_left_open_far_from_the_end_names_its_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(task_files, "CSV_BLOCK_BYTES", 256)  # the open cell spans many blocks
    rows = [f"u{i},note {i}" for i in range(2000)]
    rows[1000] = 'u1000,"note 1000'  # line 1002
    records = read(("external_id,text\n" + "\n".join(rows) + "\n").encode(), "csv")
    (problem,) = [r for r in records if r.error]
    assert problem.line == 1002
    assert "closing quote missing" in (problem.error or "")
    assert max(r.line for r in records if r.error is None) == 1001


def test_csv_quoted_cells_may_span_lines_to_the_last_byte() -> None:
    body = b'external_id,text\r\nu1,"one\r\ntwo"\r\nu2,"say ""hi""\nthere"'
    records = read(body, "csv")
    assert [(r.line, r.value["data"]["text"]) for r in records] == [
        (2, "one\r\ntwo"),
        (3, 'say "hi"\nthere'),
    ]


def test_lines_stay_right_across_blocks_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_files, "CSV_BLOCK_BYTES", 256)
    monkeypatch.setattr(task_files, "PARQUET_BATCH_ROWS", 10)
    scores = [str(i % 5 + 1) for i in range(500)]
    scores[400] = "high"  # line 402 of the CSV
    csv = read(("text,gold.score\n" + "".join(f"t,{s}\n" for s in scores)).encode(), "csv")
    assert [(r.line, r.field) for r in csv if r.error] == [(402, "gold.score")]
    data = ['{"text": "t"}'] * 50
    data[37] = '"t"'  # row 38 of the Parquet file
    parquet = read(parquet_bytes(pa.table({"data": data})), "parquet")
    assert [(r.line, r.field) for r in parquet if r.error] == [(38, "data")]


def test_a_vendor_csv_with_a_quote_left_open_is_refused() -> None:
    body = b'external_id,verdict,answer.note\nt1,good,fine\nt2,bad,"oops\nt3,good,ok\n'
    rows = list(read_vendor_labels(io.BytesIO(body), "csv", SCHEMA))
    assert [(r.line, r.field, r.error) for r in rows] == [
        (2, "line", None),
        (3, "answer.note", OPEN),
    ]


def test_csv_with_only_a_header_has_no_tasks() -> None:
    assert read(b"text,items", "csv") == []
    assert read(b"\xef\xbb\xbftext,items\r\n", "csv") == []


def test_exported_columns_are_ignored_only_in_an_export() -> None:
    exported = read(b"task_id,text,answer.verdict,n_labels\n9,hi,good,3\n", "csv")
    assert exported[0].value == {"data": {"text": "hi"}}
    by_hand = read(b"text,n_labels\nhi,3\n", "csv")
    assert by_hand[0].value == {"data": {"text": "hi", "n_labels": "3"}}


def test_parquet_keeps_types_and_reads_nested_data() -> None:
    table = pa.table(
        {
            "external_id": ["p1", None],
            "data": [{"text": "a", "n": 7, "items": ["x", "y"]}, {"text": "b", "n": None}],
            "gold.score": pa.array([5, None], pa.int64()),
            "extra": [1.5, 2.5],
        }
    )
    records = read(parquet_bytes(table), "parquet")
    assert [r.value for r in records] == [
        {
            "external_id": "p1",
            "data": {"text": "a", "n": 7, "items": ["x", "y"], "extra": 1.5},
            "gold": {"score": 5},
        },
        {"data": {"text": "b", "extra": 2.5}},
    ]
    assert [r.line for r in records] == [1, 2]


def test_parquet_data_may_be_json_text_as_exported() -> None:
    table = pa.table({"task_id": [1], "data": ['{"text": "a"}'], "n_labels": [2]})
    assert read(parquet_bytes(table), "parquet")[0].value == {"data": {"text": "a"}}


def test_parquet_refuses_types_json_cannot_hold() -> None:
    table = pa.table({"text": ["a"], "when": pa.array([0], pa.timestamp("s"))})
    (record,) = read(parquet_bytes(table), "parquet")
    assert (record.line, record.field) == (1, "when")
    assert "timestamp" in (record.error or "")
    (garbage,) = read(b"not parquet at all", "parquet")
    assert "not a readable Parquet file" in (garbage.error or "")


def test_ndjson_reader_reads_a_file_object() -> None:
    body = ndjson([{"data": {"i": i}} for i in range(3)])
    assert [r.value["data"]["i"] for r in read(body, "ndjson")] == [0, 1, 2]
