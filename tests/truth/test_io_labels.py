"""Reading LABELS and GOLD files: types, streaming, and errors that say where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import quorum.io.labels as labels_io
from quorum.io.labels import InputError, encode, read_gold, read_labels


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def test_csv_ids_stay_text_and_labels_become_numbers(tmp_path: Path) -> None:
    table = read_labels(write(tmp_path / "l.csv", "task,worker,label,x\n007,1,10,z\n8,2,9,z\n"))
    assert table.column("task").tolist() == ["007", "8"]
    assert table.column("worker").tolist() == ["1", "2"]
    assert table.column("label").tolist() == [10, 9]
    floats = read_labels(write(tmp_path / "f.csv", "task,worker,label\na,b,1\na,c,2.5\n"))
    assert floats.column("label").tolist() == [1.0, 2.5]
    text = read_labels(write(tmp_path / "t.csv", "task,worker,label\na,b,1\na,c,yes\n"))
    assert text.column("label").tolist() == ["1", "yes"]


def test_the_three_formats_read_alike(tmp_path: Path) -> None:
    rows = [{"task": "a", "worker": "w1", "label": 1}, {"task": "b", "worker": "w2", "label": 0}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "l.parquet")
    jsonl(tmp_path / "l.jsonl", rows)
    write(tmp_path / "l.csv", "task,worker,label\na,w1,1\nb,w2,0\n")
    for name in ("l.parquet", "l.jsonl", "l.csv"):
        table = read_labels(tmp_path / name)
        assert table.column("task").tolist() == ["a", "b"]
        assert table.column("label").tolist() == [1, 0]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "a.csv",
            "task,worker,label\na,b,c\n\nd,,f\n",
            "a.csv, line 4, field 'worker': empty value",
        ),
        ("a.csv", "task,worker,label\na,b,c\nd,e\n", "a.csv, line 3: expected 3 columns, got 2"),
        ("a.csv", "task,label\na,b\n", "a.csv: missing column 'worker' (columns: task, label)"),
        ("a.csv", "task,worker,label\n", "a.csv: no labels"),
        (
            "a.jsonl",
            '{"task":1,"worker":2,"label":3}\n\n{"task":1,\n',
            "a.jsonl, line 3: invalid JSON",
        ),
        ("a.jsonl", "[1, 2]\n", "a.jsonl, line 1: not a JSON object"),
        ("a.jsonl", '{"task":1,"worker":2}\n', "a.jsonl, line 1, field 'label': missing"),
        ("a.jsonl", '{"task":1,"worker":2,"label":null}\n', "line 1, field 'label': empty value"),
        ("a.jsonl", '{"task":1,"worker":2,"label":[3]}\n', "field 'label': must be text or a num"),
        (
            "a.jsonl",
            '{"task":1,"worker":2,"label":"a"}\n{"task":123456789012345678901,"worker":2,"label":"b"}\n',
            "a.jsonl, line 2, field 'task': an integer beyond 64 bits",
        ),
        (
            "a.jsonl",
            '{"task":1,"worker":2,"label":3}\n{"task":"x","worker":2,"label":3}\n',
            "a.jsonl, line 2, field 'task': text where earlier rows have an integer",
        ),
        ("a.txt", "task,worker,label\n", "a.txt: unknown format '.txt'"),
    ],
)
def test_errors_name_the_file_line_and_field(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    with pytest.raises(InputError) as error:
        read_labels(write(tmp_path / name, text))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_files_and_parquet_problems(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.csv: no such file"):
        read_labels(tmp_path / "nope.csv")
    table = pa.table({"task": ["a", None], "worker": ["w", "v"], "label": [1, 2]})
    pq.write_table(table, tmp_path / "null.parquet")
    with pytest.raises(InputError, match="null.parquet, line 2, field 'task': empty value"):
        read_labels(tmp_path / "null.parquet")
    nested = pa.table({"task": ["a"], "worker": ["w"], "label": [[1]]})
    pq.write_table(nested, tmp_path / "nested.parquet")
    with pytest.raises(InputError, match="field 'label': must hold text or numbers"):
        read_labels(tmp_path / "nested.parquet")
    write(tmp_path / "broken.parquet", "not parquet")
    with pytest.raises(InputError, match="broken.parquet: not a Parquet file"):
        read_labels(tmp_path / "broken.parquet")


def test_errors_deep_in_a_streamed_file_keep_their_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(labels_io, "BATCH_ROWS", 3)
    monkeypatch.setattr(labels_io, "CSV_BLOCK_BYTES", 64)
    rows = [{"task": i, "worker": i % 3, "label": i % 2} for i in range(20)]
    rows[14] = {"task": 14, "worker": 2, "label": "x"}
    with pytest.raises(InputError, match="line 15, field 'label': text where earlier"):
        read_labels(jsonl(tmp_path / "l.jsonl", rows))
    lines = [f"t{i},w{i % 3},{i % 2}" for i in range(40)]
    lines[30] = "t30,,1"
    path = write(tmp_path / "l.csv", "task,worker,label\n" + "\n".join(lines) + "\n")
    with pytest.raises(InputError, match="l.csv, line 32, field 'worker': empty value"):
        read_labels(path)
    lines[30] = "t30,w0,1"
    table = read_labels(write(tmp_path / "ok.csv", "task,worker,label\n" + "\n".join(lines)))
    assert len(table) == 40 and table.column("label").dtype.kind == "i"


def test_gold_with_two_labels_for_a_task_is_refused(tmp_path: Path) -> None:
    same = read_gold(write(tmp_path / "g.csv", "task,label\na,1\nb,2\na,1\n"))
    assert len(same) == 3
    with pytest.raises(InputError, match="g2.csv, line 4, field 'label': task 'a' has a differ"):
        read_gold(write(tmp_path / "g2.csv", "task,label\na,1\nb,2\na,3\n"))


def test_encode_adds_gold_only_classes_and_drops_unknown_tasks(tmp_path: Path) -> None:
    labels = read_labels(write(tmp_path / "l.csv", "task,worker,label\nt1,w,1\nt2,w,2\n"))
    gold = read_gold(write(tmp_path / "g.csv", "task,label\nt1,3\nt9,1\nt2,2.0\n"))
    data, codes = encode(labels, gold)
    assert data.classes.tolist() == [1.0, 2.0, 3.0]
    assert codes.tolist() == [2, 1]
    assert np.array_equal(data.label, [0, 1])
