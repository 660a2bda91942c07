"""``quorum import`` and ``quorum export``: task files in, training-ready files out.

Both work on the database directly (``--db`` as for ``serve``). A bad argument or file exits with
status 2 and one line on stderr naming what and where; nothing is written then: an import is
one transaction, an export goes to a temporary file renamed into place when complete. Long work
shows a progress bar on stderr while stderr is a terminal.
"""

import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from quorum.domain.problems import counted
from quorum.io.modes import as_created

if TYPE_CHECKING:  # the commands import their modules when run, so `quorum --help` stays fast
    from sqlalchemy.orm import Session

    from quorum.db.models import Project
    from quorum.domain.tasks import Record
    from quorum.io.export_files import ExportFormat
    from quorum.io.task_files import Format

# NOTE: the same --db option as quorum.cli's; imported lazily there (cli imports this module).
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite:///path or postgresql://...); default: QUORUM_DATABASE_URL, "
        "else sqlite:///quorum-data/quorum.db",
        show_default=False,
    ),
]


def import_tasks(
    project: Annotated[int, typer.Argument(help="Project id", min=1)],
    file: Annotated[Path, typer.Argument(help="JSON array, NDJSON, CSV or Parquet file")],
    format: Annotated[
        str | None,
        typer.Option(
            help="json, ndjson (or jsonl), csv or parquet (default: from the file name); or "
            "label-studio: a Label Studio JSON export, annotations included"
        ),
    ] = None,
    on_conflict: Annotated[
        str, typer.Option(help="error, or skip: leave out tasks whose external_id exists")
    ] = "error",
    db: DbOption = None,
) -> None:
    """Import tasks from a file, all or nothing; prints how many were created. With
    ``--format label-studio``, a Label Studio JSON export with its annotations."""
    from quorum.cli import open_database, reported_errors, settings_for
    from quorum.domain import tasks
    from quorum.io.task_files import format_for

    if format == "label-studio":
        _import_label_studio(project, file, db)
        return
    with reported_errors(file):
        fmt = format_for(name=file.name, given=format)
        if on_conflict not in ("error", "skip"):
            raise ValueError(f"--on-conflict must be error or skip, not {on_conflict!r}")
        with open(file, "rb") as raw:
            database = open_database(settings_for(db))
            try:
                with database.session(write=True) as session, _bar("importing") as advance:
                    chosen = project_by_id(session, project)
                    records = _records(raw, fmt, chosen, advance)
                    result = tasks.import_tasks(
                        session,
                        chosen,
                        records,
                        on_conflict="skip" if on_conflict == "skip" else "error",
                    )
            finally:
                database.dispose()
    skipped = f" ({result.skipped:,} skipped: their external_id exists)" if result.skipped else ""
    typer.echo(f"imported {counted(result.created, 'task')} into project {project}{skipped}")


def _import_label_studio(project: int, file: Path, db: str | None) -> None:
    from quorum.cli import open_database, reported_errors, settings_for
    from quorum.domain import history
    from quorum.domain.projects import schema_of
    from quorum.io.label_studio import read_label_studio

    with reported_errors(file):
        with open(file, "rb") as raw:
            database = open_database(settings_for(db))
            try:
                with database.session(write=True) as session:
                    chosen = project_by_id(session, project)
                    records = read_label_studio(raw, schema_of(chosen))
                    result = history.import_history(session, chosen, records)
            finally:
                database.dispose()
    dropped = result.cancelled + result.empty + result.repeated
    typer.echo(
        f"imported {counted(result.tasks, 'task')} with "
        f"{counted(result.annotations, 'annotation')} by "
        f"{counted(result.annotators, 'new annotator')} into project {project}"
        + (
            f"; left out {result.cancelled:,} cancelled, {result.empty:,} empty and "
            f"{result.repeated:,} repeated annotations"
            if dropped
            else ""
        )
    )


def _records(
    raw: IO[bytes], fmt: "Format", project: "Project", advance: "Advance"
) -> Iterator["Record"]:
    """The file's tasks; progress in bytes read, or in rows for Parquet (read by seeking)."""
    from quorum.domain.projects import schema_of
    from quorum.io.task_files import read_tasks

    schema = schema_of(project)
    if fmt != "parquet":
        advance.total(os.fstat(raw.fileno()).st_size)
        counted = io.BufferedReader(_Counted(raw, advance), buffer_size=1 << 20)
        yield from read_tasks(counted, fmt, schema)
        return
    import pyarrow.parquet as pq

    advance.total(pq.ParquetFile(raw).metadata.num_rows)
    raw.seek(0)
    for number, record in enumerate(read_tasks(raw, fmt, schema), start=1):
        if number % 10_000 == 0:
            advance(10_000)
        yield record


def export_tasks(
    project: Annotated[int, typer.Argument(help="Project id", min=1)],
    out: Annotated[
        Path, typer.Option("--out", help="File to write; for hf, dpo and sft a new directory")
    ],
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="jsonl, csv or parquet (default: from --out); or a Hugging Face dataset: "
            "hf (every task), dpo (preference pairs), sft (accepted text answers)",
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="Aggregation of categorical answers: mv, wawa, zbs, ds, ods, glad, mace, auto"
        ),
    ] = "ds",
    complete_only: Annotated[bool, typer.Option(help="Only tasks with all their labels")] = False,
    min_confidence: Annotated[
        float | None, typer.Option(help="Only tasks whose every answer is at least this sure")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only tasks last labelled at or after this ISO time (UTC)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only tasks last labelled before this ISO time (UTC)")
    ] = None,
    prompt_field: Annotated[
        str | None, typer.Option(help="dpo, sft: the task data field holding the prompt")
    ] = None,
    db: DbOption = None,
) -> None:
    """Export a project: one row per task with its aggregated answers and every label, or a
    training-ready Hugging Face dataset with its card (hf, dpo, sft; docs/deliveries.md)."""
    from quorum.cli import open_database, reported_errors, settings_for
    from quorum.domain import deliveries, export
    from quorum.io.delivery_files import write_delivery
    from quorum.io.export_files import write_export

    with reported_errors():
        fmt = _export_format(out, format)
        filters = export.ExportFilter(
            complete_only=complete_only,
            min_confidence=min_confidence,
            since=_moment("--since", since),
            until=_moment("--until", until),
        )
        database = open_database(settings_for(db))
        try:
            with database.session() as session:
                prepared = export.prepare(
                    session, project_by_id(session, project), method=method, filters=filters
                )
                if fmt in deliveries.DELIVERY_KINDS:
                    delivery = deliveries.prepare(prepared, fmt, prompt_field=prompt_field)
                    with _bar("exporting") as advance:
                        written = write_delivery(delivery, out, advance)
                else:
                    with _replacing(out) as sink, _bar("exporting") as advance:
                        written = write_export(prepared, fmt, sink, advance)
        finally:
            database.dispose()
    what = counted(written, "row" if fmt in ("hf", "dpo", "sft") else "task")
    typer.echo(f"exported {what} of project {project} to {out}")


def project_by_id(session: "Session", project_id: int) -> "Project":
    """The project with this id, or NotFound (the commands report it as one line)."""
    from quorum.db.models import Project
    from quorum.domain.errors import NotFound

    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"no project {project_id}")
    return project


def _export_format(out: Path, given: str | None) -> "ExportFormat":
    from quorum.io.export_files import EXPORT_FORMATS

    name = given or {
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".csv": "csv",
        ".parquet": "parquet",
    }.get(out.suffix.lower(), "")
    if name not in EXPORT_FORMATS:
        what = f"--format {given!r}" if given else f"the extension of {out}"
        raise ValueError(
            f"cannot export to {what}: use jsonl, csv or parquet (or --format hf, dpo or sft)"
        )
    return name


def _moment(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} {text!r} is not an ISO time such as 2026-11-25T12:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextmanager
def _replacing(path: Path) -> Iterator[IO[bytes]]:
    """A file that replaces ``path`` only once it is completely written."""
    directory = path.resolve().parent
    if not directory.is_dir():
        raise ValueError(f"{path}: no such directory {directory}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory: give a file to write (or --format hf, dpo, sft)")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as sink:
            yield sink
        as_created(temporary)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


class Advance:
    """Progress so far: called with how much more is done; ``total`` sets what 100% is."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self.progress = progress
        self.task = task

    def __call__(self, amount: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, amount)

    def total(self, amount: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, total=amount)


@contextmanager
def _bar(what: str) -> Iterator[Advance]:
    """A progress bar on stderr while it is a terminal; elsewhere nothing is shown."""
    if not sys.stderr.isatty():
        yield Advance()
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as progress:
        yield Advance(progress, progress.add_task(what, total=None))


class _Counted(io.RawIOBase):
    """A file read through, telling ``advance`` how many bytes each read took."""

    def __init__(self, file: IO[bytes], advance: Callable[[int], None]) -> None:
        self.file = file
        self.advance = advance

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        chunk = self.file.read(len(target))
        target[: len(chunk)] = chunk
        self.advance(len(chunk))
        return len(chunk)
