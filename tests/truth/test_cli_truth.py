"""``quorum aggregate`` and ``quorum agreement`` end to end, in process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from quorum.cli import app

runner = CliRunner()


@pytest.fixture
def crowd(tmp_path: Path) -> tuple[Path, Path]:
    """60 tasks, 5 workers (one a spammer), and gold for every task."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 60)
    rows, gold = ["task,worker,label"], ["task,label"]
    for task, value in enumerate(truth):
        gold.append(f"t{task},{'abc'[value]}")
        for worker in range(5):
            label = value if worker < 4 and rng.random() < 0.85 else rng.integers(0, 3)
            rows.append(f"t{task},w{worker},{'abc'[label]}")
    labels_path, gold_path = tmp_path / "labels.csv", tmp_path / "gold.csv"
    labels_path.write_text("\n".join(rows) + "\n")
    gold_path.write_text("\n".join(gold) + "\n")
    return labels_path, gold_path


def test_aggregate_json_and_output_file(crowd: tuple[Path, Path], tmp_path: Path) -> None:
    labels, gold = crowd
    out = tmp_path / "out.csv"
    result = runner.invoke(
        app,
        [
            "aggregate",
            str(labels),
            "--method",
            "ds",
            "--gold",
            str(gold),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report) == ["method", "tasks", "workers", "labels", "accuracy", "seconds"]
    assert report["method"] == "ds" and report["tasks"] == 60 and report["workers"] == 5
    assert report["labels"] == 300 and report["accuracy"] > 0.9 and report["seconds"] >= 0
    lines = out.read_text().splitlines()
    assert lines[0] == '"task","label","confidence"' and len(lines) == 61


@pytest.mark.parametrize("method", ["mv", "wawa", "zbs", "ods", "glad", "mace", "auto"])
def test_every_method_runs(method: str, crowd: tuple[Path, Path], tmp_path: Path) -> None:
    labels, gold = crowd
    out = tmp_path / "out.parquet"
    result = runner.invoke(
        app,
        [
            "aggregate",
            str(labels),
            "--method",
            method,
            "--gold",
            str(gold),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column_names == ["task", "label", "confidence"] and table.num_rows == 60
    confidence = table.column("confidence").to_numpy()
    assert np.all((confidence > 0.3) & (confidence <= 1.0))
    assert json.loads(result.stdout)["accuracy"] > 0.85


def test_aggregate_without_out_writes_csv_to_stdout(crowd: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["aggregate", str(crowd[0]), "--method", "mv"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == '"task","label","confidence"'
    assert "mv: 60 tasks, 5 workers, 300 labels" in result.stderr


def test_aggregate_jsonl_output(crowd: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["aggregate", str(crowd[0]), "--method", "ds", "--out", str(out)])
    assert result.exit_code == 0
    first = json.loads(out.read_text().splitlines()[0])
    assert set(first) == {"task", "label", "confidence"}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--method", "best"], "--method best: unknown"),
        ([], "--method is required"),
        (["--method", "ds", "--gold", "missing.csv"], "--gold missing.csv: no such file"),
        (["--method", "ds", "--out", "out.xlsx"], "--out out.xlsx: unknown format"),
        (["--method", "ds", "--out", "no/such/dir/out.csv"], "does not exist"),
        (["--method", "auto"], "--method auto needs --gold"),
    ],
)
def test_aggregate_bad_arguments_exit_2_with_one_line(
    arguments: list[str], message: str, crowd: tuple[Path, Path], tmp_path: Path
) -> None:
    result = runner.invoke(app, ["aggregate", str(crowd[0]), *arguments])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.xlsx").exists()


def test_a_bad_row_exits_2_naming_line_and_field_and_writes_nothing(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("task,worker,label\na,w1,x\nb,,y\n")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["aggregate", str(labels), "--method", "ds", "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: labels.csv, line 3, field 'worker': empty value"
    assert list(tmp_path.iterdir()) == [labels]


def test_agreement_json(crowd: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["agreement", str(crowd[0]), "--json", "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metric"] == "alpha" and report["level"] == "nominal"
    assert report["ci_low"] < report["value"] < report["ci_high"] and report["units"] == 60
    for metric in ("fleiss", "percent"):
        assert runner.invoke(app, ["agreement", str(crowd[0]), "--metric", metric]).exit_code == 0


def test_agreement_levels_and_cohen(tmp_path: Path) -> None:
    labels = tmp_path / "ratings.jsonl"
    rows = [
        {"task": t, "worker": w, "label": (t + w * (t % 2)) % 5}
        for t in range(30)
        for w in range(2)
    ]
    labels.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    for level in ("nominal", "ordinal", "interval"):
        for metric in ("alpha", "cohen"):
            result = runner.invoke(
                app, ["agreement", str(labels), "--metric", metric, "--level", level, "--json"]
            )
            assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--metric", "icc"], "--metric icc: unknown"),
        (["--level", "ratio"], "--level ratio: unknown"),
        (["--metric", "fleiss", "--level", "ordinal"], "fleiss is nominal only"),
        (["--level", "interval"], "--level interval needs numeric labels"),
        (["--metric", "cohen"], "Cohen's kappa needs exactly two workers, got 5"),
    ],
)
def test_agreement_bad_arguments_exit_2(
    arguments: list[str], message: str, crowd: tuple[Path, Path]
) -> None:
    result = runner.invoke(app, ["agreement", str(crowd[0]), *arguments])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
