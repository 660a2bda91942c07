"""``quorum aggregate`` and ``quorum agreement``: truth inference and agreement on label files.

Both read LABELS (CSV, JSONL or Parquet with columns ``task,worker,label``, see
``quorum.io.labels``) and never touch the database. A bad argument or file exits with status 2
and one line on stderr naming what and where; nothing is written then. Heavy imports (NumPy,
PyArrow) happen inside the commands so that ``quorum --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import orjson
import typer

from quorum.io.modes import as_created

if TYPE_CHECKING:
    from quorum.io.labels import Table
    from quorum.truth import Agreement, EncodedLabels
    from quorum.truth.agreement import Level

METHOD_NAMES = ("mv", "wawa", "zbs", "ds", "ods", "glad", "mace", "auto")
METRICS = ("alpha", "fleiss", "cohen", "percent")
LEVELS = ("nominal", "ordinal", "interval")
OUTPUT_FORMATS = (".csv", ".jsonl", ".ndjson", ".parquet")


class UsageError(Exception):
    """A bad argument or input: reported as one line on stderr, exit status 2."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@contextmanager
def _reported() -> Iterator[None]:
    from quorum.io.labels import InputError

    try:
        yield
    except (UsageError, InputError) as error:
        raise _fail(str(error)) from None


@contextmanager
def _progress(description: str) -> Iterator[Callable[[str], None]]:
    """A progress display on stderr while stdout is a terminal; yields ``step(description)``."""
    if not sys.stdout.isatty():
        yield lambda _: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=None)
        yield lambda text: progress.update(task, description=text)


def _check_input(path: Path, flag: str) -> None:
    if not path.is_file():
        raise UsageError(f"{flag} {path}: no such file")


def _check_output(out: Path | None) -> None:
    if out is None:
        return
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"--out {out}: unknown format, use {', '.join(OUTPUT_FORMATS)}")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise UsageError(f"--out {out}: is a folder")


def aggregate(
    labels: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet with task,worker,label.")],
    method: Annotated[
        str | None,
        typer.Option(
            help="Required: mv, wawa, zbs, ds, ods, glad, mace, or auto (auto needs --gold).",
            show_default=False,
        ),
    ] = None,
    gold: Annotated[
        Path | None,
        typer.Option(help="File with task,label: reported accuracy and calibrated confidence."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write task,label,confidence here (.csv, .jsonl, .parquet); else stdout."
        ),
    ] = None,
    json: Annotated[
        bool, typer.Option("--json", help="Print {method,tasks,workers,labels,accuracy,seconds}.")
    ] = False,
) -> None:
    """Infer each task's label from crowd labels and write task,label,confidence.

    With --gold, a named method is fitted without the gold and scored on it (accuracy over the
    gold tasks), and confidences are temperature-calibrated on it; 'auto' uses the gold to pick
    a method by cross-validation, clamps it, and reports the cross-validated accuracy.
    """
    with _reported():
        if method is None:
            raise UsageError(f"--method is required: one of {', '.join(METHOD_NAMES)}")
        if method not in METHOD_NAMES:
            raise UsageError(f"--method {method}: unknown, use one of {', '.join(METHOD_NAMES)}")
        _check_input(labels, "LABELS")
        if gold is not None:
            _check_input(gold, "--gold")
        _check_output(out)
        with _progress("reading labels") as step:
            result = _aggregate(labels, method, gold, step)
            step("writing results")
            _write_results(result, out, to_stdout=out is None and not json)
    summary = {key: result[key] for key in ("method", "tasks", "workers", "labels", "accuracy")}
    summary["seconds"] = result["seconds"]
    if json:
        typer.echo(orjson.dumps(summary).decode())
    else:
        accuracy = "" if result["accuracy"] is None else f", accuracy {result['accuracy']:.4f}"
        typer.echo(
            f"{result['chosen']}: {result['tasks']} tasks, {result['workers']} workers, "
            f"{result['labels']} labels in {result['seconds']:.3f} s{accuracy}",
            err=True,
        )


def _aggregate(
    labels_path: Path, method: str, gold_path: Path | None, step: Callable[[str], None]
) -> dict[str, Any]:
    import numpy as np

    from quorum.io.labels import encode, read_gold, read_labels
    from quorum.truth import Auto, apply_temperature, fit_temperature, make_estimator

    table = read_labels(labels_path)
    gold_table = None
    if gold_path is not None:
        step("reading gold")
        gold_table = read_gold(gold_path)
    data, gold = encode(table, gold_table)
    has_gold = gold >= 0
    if method == "auto" and not has_gold.any():
        raise UsageError("--method auto needs --gold with tasks that have labels")
    step(f"fitting {method}")
    started = time.perf_counter()
    estimator = make_estimator(method)
    fit_gold = gold if method == "auto" else None
    estimator.fit(data.task, data.worker, data.label, gold=fit_gold, n_classes=data.n_classes)
    seconds = time.perf_counter() - started
    probas, accuracy, chosen = estimator.probas_, None, method
    if isinstance(estimator, Auto):
        chosen = f"auto (chose {estimator.method_})"
        probas = apply_temperature(probas, estimator.temperature_)
        probas[has_gold] = estimator.probas_[has_gold]  # clamped to the gold
        accuracy = estimator.cv_accuracy_ if np.isfinite(estimator.cv_accuracy_) else None
    elif has_gold.any():
        truth = gold[has_gold]
        accuracy = float(np.mean(estimator.labels_[has_gold] == truth))
        probas = apply_temperature(probas, fit_temperature(probas[has_gold], truth))
    return {
        "method": method,
        "chosen": chosen,
        "tasks": data.n_tasks,
        "workers": data.n_workers,
        "labels": len(table),
        "accuracy": accuracy,
        "seconds": round(seconds, 6),
        "data": data,
        "labels_": estimator.labels_,
        "confidence": probas.max(axis=1),
    }


def _write_results(result: dict[str, Any], out: Path | None, *, to_stdout: bool) -> None:
    import pyarrow as pa

    data: EncodedLabels = result["data"]
    table = pa.table(
        {
            "task": data.tasks,
            "label": data.decode_labels(result["labels_"]),
            "confidence": result["confidence"],
        }
    )
    if out is not None:
        _write_atomically(table, out)
    elif to_stdout:
        sys.stdout.buffer.write(_csv_bytes(table))


def _csv_bytes(table: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, write_options=pa_csv.WriteOptions(quoting_style="needed"))
    return bytes(sink.getvalue().to_pybytes())


def _write_atomically(table: Any, out: Path) -> None:
    """Write to a temporary file next to ``out``, then rename: a failure leaves nothing."""
    import pyarrow.parquet as pq

    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(handle)
    try:
        suffix = out.suffix.lower()
        if suffix == ".parquet":
            pq.write_table(table, temporary)
        elif suffix == ".csv":
            Path(temporary).write_bytes(_csv_bytes(table))
        else:
            rows = table.to_pylist()
            Path(temporary).write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
        as_created(temporary)
        os.replace(temporary, out)
    finally:
        Path(temporary).unlink(missing_ok=True)


def agreement(
    labels: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet with task,worker,label.")],
    metric: Annotated[
        str, typer.Option(help="alpha (Krippendorff), fleiss, cohen (two workers), percent.")
    ] = "alpha",
    level: Annotated[
        str,
        typer.Option(
            help="nominal, ordinal or interval (alpha; cohen: unweighted/linear/quadratic)."
        ),
    ] = "nominal",
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples of tasks for the 95% interval.", min=0)
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    json: Annotated[
        bool,
        typer.Option("--json", help="Print {metric,level,value,ci_low,ci_high,units,...}."),
    ] = False,
) -> None:
    """Measure inter-annotator agreement, with a seeded bootstrap 95% confidence interval."""
    with _reported():
        if metric not in METRICS:
            raise UsageError(f"--metric {metric}: unknown, use one of {', '.join(METRICS)}")
        if level not in LEVELS:
            raise UsageError(f"--level {level}: unknown, use one of {', '.join(LEVELS)}")
        if metric in {"fleiss", "percent"} and level != "nominal":
            raise UsageError(f"--level {level}: --metric {metric} is nominal only")
        _check_input(labels, "LABELS")
        with _progress("reading labels") as step:
            from quorum.io.labels import read_labels

            table = read_labels(labels)
            step(f"measuring {metric}")
            started = time.perf_counter()
            result, data = _agreement(table, metric, level, bootstrap, seed)
            seconds = time.perf_counter() - started
    report = {
        "metric": metric,
        "level": level,
        "value": result.value,
        "ci_low": result.low,
        "ci_high": result.high,
        "confidence": result.confidence,
        "units": result.n_units,
        "tasks": data.n_tasks,
        "workers": data.n_workers,
        "labels": len(table),
        "seconds": round(seconds, 6),
    }
    if json:
        typer.echo(orjson.dumps(report).decode())
    else:
        typer.echo(
            f"{metric} ({level}) = {result.value:.4f}, 95% CI [{result.low:.4f}, "
            f"{result.high:.4f}] over {result.n_units} tasks with enough labels"
        )


def _agreement(
    table: Table, metric: str, level: str, bootstrap: int, seed: int
) -> tuple[Agreement, EncodedLabels]:
    import numpy as np

    from quorum.io.labels import encode
    from quorum.truth import cohen_kappa, fleiss_kappa, krippendorff_alpha, percent_agreement

    data = encode(table)[0]
    options: dict[str, Any] = {
        "n_classes": data.n_classes,
        "n_boot": bootstrap,
        "random_state": seed,
    }
    numeric = data.classes.dtype.kind in "iuf"
    try:
        if metric == "alpha":
            if level == "interval" and not numeric:
                raise UsageError(f"--level interval needs numeric labels, got {data.classes[0]!r}")
            values = data.classes.astype(np.float64) if numeric else None
            return krippendorff_alpha(
                data.task,
                data.label,
                level=cast("Level", level),
                values=values,
                **options,
            ), data
        if metric == "cohen":
            weights = {"nominal": None, "ordinal": "linear", "interval": "quadratic"}[level]
            return cohen_kappa(data.task, data.worker, data.label, weights=weights, **options), data
        statistic = fleiss_kappa if metric == "fleiss" else percent_agreement
        return statistic(data.task, data.label, **options), data
    except ValueError as error:
        raise UsageError(f"{table.path.name}: {error}") from None
