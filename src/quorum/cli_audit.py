"""``quorum audit``: vendor deliveries in, their measured accuracy out (docs/audits.md).

    quorum audit import PROJECT --vendor NAME FILE [--price-cents-per-label N]
    quorum audit sample PROJECT [--width 0.1] [--expected-accuracy P] [--question Q] [--seed S]
    quorum audit report PROJECT [--json] [--method ds]

Like ``quorum import``, these work on the database directly (``--db``); a bad argument or file
exits with status 2 and one line naming what and where, and changes nothing.
"""

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from quorum.cli_data import DbOption
from quorum.domain.problems import counted

if TYPE_CHECKING:
    from quorum.domain.audit_report import AuditReport, Interval, VendorReport

audit_app = typer.Typer(no_args_is_help=True, help="Audit vendor deliveries against your experts.")

ProjectArgument = Annotated[int, typer.Argument(help="Project id", min=1)]


@audit_app.command("import")
def import_delivery(
    project: ProjectArgument,
    file: Annotated[Path, typer.Argument(help="JSON array, NDJSON, CSV or Parquet file")],
    vendor: Annotated[str, typer.Option(help="The vendor's name (one per project)")],
    price_cents_per_label: Annotated[
        int | None, typer.Option(help="What the vendor charges per label, in cents", min=0)
    ] = None,
    format: Annotated[
        str | None, typer.Option(help="json, ndjson (or jsonl), csv or parquet; default: from FILE")
    ] = None,
    db: DbOption = None,
) -> None:
    """Import a vendor's labels for the project's tasks (rows keyed by external_id), all or
    nothing."""
    from quorum.cli import open_database, reported_errors, settings_for
    from quorum.cli_data import project_by_id
    from quorum.domain import audits
    from quorum.domain.projects import schema_of
    from quorum.io.task_files import format_for
    from quorum.io.vendor_files import read_vendor_labels

    with reported_errors(file):
        fmt = format_for(name=file.name, given=format)
        with open(file, "rb") as raw:
            database = open_database(settings_for(db))
            try:
                with database.session(write=True) as session:
                    chosen = project_by_id(session, project)
                    rows = read_vendor_labels(raw, fmt, schema_of(chosen))
                    result = audits.import_vendor_labels(
                        session, chosen, vendor, rows, price_cents_per_label=price_cents_per_label
                    )
            finally:
                database.dispose()
    typer.echo(
        f"imported {counted(result.created, 'label')} of vendor {result.vendor!r} "
        f"into project {project}"
    )


@audit_app.command("sample")
def sample(
    project: ProjectArgument,
    width: Annotated[
        float, typer.Option(help="Widest 95% interval of a vendor's accuracy to aim for")
    ] = 0.1,
    expected_accuracy: Annotated[
        float, typer.Option(help="The accuracy you expect; 0.5 plans for the worst case")
    ] = 0.5,
    question: Annotated[
        str | None,
        typer.Option(help="Question to audit; default: the first choice/rating/preference"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the random draw")] = None,
    db: DbOption = None,
) -> None:
    """Draw (or top up) each vendor's stratified audit sample and queue it for the experts."""
    from quorum.cli import open_database, reported_errors, settings_for
    from quorum.cli_data import project_by_id
    from quorum.domain import audits

    with reported_errors():
        database = open_database(settings_for(db))
        try:
            with database.session(write=True) as session:
                drawn = audits.draw_sample(
                    session,
                    project_by_id(session, project),
                    width=width,
                    expected_accuracy=expected_accuracy,
                    question=question,
                    seed=seed,
                )
        finally:
            database.dispose()
    for vendor in drawn:
        typer.echo(
            f"{vendor.vendor}: {vendor.total} of {vendor.delivered} labels in the sample "
            f"({vendor.drawn} drawn now, {vendor.target} wanted) on question {vendor.question!r}"
        )


@audit_app.command("report")
def report(
    project: ProjectArgument,
    json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object")
    ] = False,
    method: Annotated[str, typer.Option(help="Aggregation of the experts' labels")] = "ds",
    question: Annotated[str | None, typer.Option(help="Question to report on")] = None,
    db: DbOption = None,
) -> None:
    """Each vendor against the experts' consensus: accuracy with 95% intervals, kappa, cost per
    correct label and estimated wrong labels, best first."""
    import orjson

    from quorum.cli import command_session, reported_errors
    from quorum.cli_data import project_by_id
    from quorum.domain import audit_report

    with reported_errors():
        with command_session(db) as session:
            result = audit_report.report(
                session, project_by_id(session, project), question=question, method=method
            )
    if json:
        sys.stdout.write(orjson.dumps(dataclasses.asdict(result)).decode() + "\n")
        return
    _print_table(result)


def _print_table(result: "AuditReport") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Audit of project {result.project_id}, question {result.question!r}")
    for heading in ("vendor", "checked", "accuracy", "95% Wilson", "95% bootstrap", "kappa"):
        table.add_column(heading, justify="left" if heading == "vendor" else "right")
    table.add_column("cost / correct", justify="right")
    table.add_column("wrong labels (est.)", justify="right")
    for vendor in result.vendors:
        table.add_row(*_row(vendor))
    # Piped into a file or another program, rich would fold the table to 80 columns.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _row(v: "VendorReport") -> list[str]:
    def share(x: float | None) -> str:
        return "—" if x is None else f"{x:.1%}"

    def interval(i: "Interval | None", fmt: str = "{:.1%}") -> str:
        return "—" if i is None else f"[{fmt.format(i.low)}, {fmt.format(i.high)}]"

    cost = (
        "—" if v.cost_per_correct_label_cents is None else f"{v.cost_per_correct_label_cents:.2f}¢"
    )
    wrong = "—"
    if v.estimated_wrong_labels is not None and v.wrong_labels_interval is not None:
        low, high = v.wrong_labels_interval.low, v.wrong_labels_interval.high
        wrong = f"{v.estimated_wrong_labels:.0f} of {v.delivered} [{low:.0f}, {high:.0f}]"
    kappa = "—" if v.kappa is None else f"{v.kappa:.2f} {interval(v.kappa_interval, '{:.2f}')}"
    return [
        v.vendor,
        f"{v.checked} / {v.sampled}",
        share(v.accuracy),
        interval(v.wilson),
        interval(v.bootstrap),
        kappa,
        cost,
        wrong,
    ]
