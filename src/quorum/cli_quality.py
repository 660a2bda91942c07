"""The quality loop and the workforce on the command line (docs/quality.md).

    quorum simulate LABELS --gold GOLD [--policy fixed|adaptive] [--overlap N]
                    [--max-overlap M] [--target-confidence C] [--seed S] [--json]
    quorum worker [--db URL] [--concurrency N]
    quorum workforce set EMAIL [--tier N] [--pay-rate-cents N] [--domain NAME=LEVEL ...]
    quorum workforce list [--domain NAME] [--min-tier N] [--json]
    quorum quality report PROJECT [--json]
    quorum quality unpause PROJECT EMAIL --by EMAIL
    quorum quality reset-qualification PROJECT EMAIL --by EMAIL

A bad argument or file exits with status 2 and one line on stderr naming what and where, and
changes nothing. Heavy imports happen inside the commands, so ``quorum --help`` stays fast.
"""

import json as jsonlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from quorum.cli_data import DbOption

workforce_app = typer.Typer(no_args_is_help=True, help="Annotator profiles: domains, tiers, pay.")
quality_app = typer.Typer(no_args_is_help=True, help="A project's quality loop: trust, pauses.")

Policy = Annotated[str, typer.Option(help="fixed: every task gets --overlap labels; adaptive")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@contextmanager
def _progress(total_known: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr while stderr is a terminal; yields ``update(done, total)``."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("labels", total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def simulate(
    labels: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet with task,worker,label")],
    gold: Annotated[Path, typer.Option(help="File with task,label: the answers to score")],
    policy: Policy = "adaptive",
    overlap: Annotated[
        float,
        typer.Option(
            help="Labels every task gets first; with --policy fixed a fraction such as 4.6 "
            "gives 60% of the tasks (drawn with --seed) one label more",
            min=1,
            max=100,
        ),
    ] = 3,
    max_overlap: Annotated[
        int | None,
        typer.Option(
            help="Ceiling of adaptive labels; default: the data's most common labels per task",
            min=1,
            max=100,
        ),
    ] = None,
    target_confidence: Annotated[
        float | None,
        typer.Option(help="Stop once more labels would change the answer with at most 1 - C"),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed (the replay itself is deterministic)")] = 0,
    sweep_labels: Annotated[
        int,
        typer.Option(help="Labels between two runs of the quality loop's tick", min=1, max=10_000),
    ] = 1,
    json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print {policy,tasks,labels_used,labels_available,accuracy,accuracy_all_labels}",
        ),
    ] = False,
) -> None:
    """Replay a real label set through the platform's routing and quality loop: tasks are
    labelled by the workers of the data, through the same leases, submissions and loop as in
    production, in a temporary database; prints labels used and accuracy against GOLD."""
    from quorum.domain.simulation import LabelSet
    from quorum.domain.simulation import simulate as run
    from quorum.io.labels import InputError, encode, read_gold, read_labels

    if policy not in ("fixed", "adaptive"):
        raise _fail(f"--policy {policy}: use fixed or adaptive")
    if policy == "adaptive" and overlap != int(overlap):
        raise _fail(f"--overlap {overlap}: the adaptive policy takes a whole number")
    if target_confidence is not None and not 0 < target_confidence <= 1:
        raise _fail(f"--target-confidence {target_confidence}: must be in (0, 1]")
    if max_overlap is not None and max_overlap < overlap:
        raise _fail(f"--max-overlap {max_overlap}: must be at least --overlap {overlap}")
    for path, flag in ((labels, "LABELS"), (gold, "--gold")):
        if not path.is_file():
            raise _fail(f"{flag} {path}: no such file")
    try:
        encoded, gold_codes = encode(read_labels(labels), read_gold(gold))
    except InputError as error:
        raise _fail(str(error)) from None
    data = LabelSet(
        encoded.task, encoded.worker, encoded.label, gold_codes,
        [str(c) for c in encoded.classes], len(encoded.tasks), len(encoded.workers),
    )  # fmt: skip
    try:
        with _progress() as update:
            result = run(
                data, policy=policy, overlap=overlap, max_overlap=max_overlap,  # type: ignore[arg-type]
                target_confidence=target_confidence, seed=seed, sweep_labels=sweep_labels,
                progress=update,
            )  # fmt: skip
    except ValueError as error:
        raise _fail(f"LABELS {labels}: {error}") from None
    summary = {
        "policy": result.policy,
        "tasks": result.tasks,
        "labels_used": result.labels_used,
        "labels_available": result.labels_available,
        "accuracy": result.accuracy,
        "accuracy_all_labels": result.accuracy_all_labels,
    }
    if json:
        typer.echo(jsonlib.dumps(summary))
        return
    share = result.labels_used / result.labels_available if result.labels_available else 0
    typer.echo(
        f"{result.policy}: {result.labels_used} of {result.labels_available} labels "
        f"({share:.1%}) on {result.tasks} tasks; accuracy {_pct(result.accuracy)} "
        f"(all labels: {_pct(result.accuracy_all_labels)})"
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def worker(
    db: DbOption = None,
    concurrency: Annotated[int, typer.Option(help="Jobs run at once", min=1, max=64)] = 2,
) -> None:
    """Run the quality loop's jobs (PostgreSQL): grading, spam signals, review sampling,
    adaptive overlap, auto-pause and re-aggregation, for every project, until stopped. On SQLite
    the loop runs inside ``quorum serve`` instead."""
    import asyncio

    from quorum.cli import open_database, reported_errors, settings_for
    from quorum.domain.quality_jobs import run_worker

    with reported_errors():
        database = open_database(settings_for(db))
        if database.is_sqlite:
            database.dispose()
            raise ValueError(
                "quorum worker runs the PostgreSQL job queue; on SQLite the quality loop runs "
                "inside quorum serve"
            )
    where = database.engine.url.render_as_string(hide_password=True)
    typer.echo(f"quorum worker: running the quality loop's jobs on {where}; Ctrl+C stops", err=True)
    try:
        asyncio.run(run_worker(database, concurrency=concurrency))
    except KeyboardInterrupt:
        typer.echo("quorum worker: stopped", err=True)
    finally:
        database.dispose()


@workforce_app.command("set")
def workforce_set(
    email: str,
    tier: Annotated[int | None, typer.Option(help="1, 2 or 3", min=1, max=3)] = None,
    pay_rate_cents: Annotated[
        int | None, typer.Option(help="What one label of theirs pays, in cents", min=0)
    ] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option(help="NAME=LEVEL (1-5); repeat it; replaces their domains"),
    ] = None,
    clear_domains: Annotated[bool, typer.Option(help="Remove every domain")] = False,
    db: DbOption = None,
) -> None:
    """Change an annotator's profile; prints it."""
    from quorum.cli import command_session, reported_errors
    from quorum.domain import users, workforce

    with reported_errors():
        domains = _domains(domain or []) if domain or clear_domains else None
        with command_session(db, write=True) as session:
            person = users.get_by_email(session, email)
            found = workforce.set_profile(
                session, person, tier=tier, pay_rate_cents=pay_rate_cents, domains=domains
            )
            typer.echo(_describe(found))


def _domains(pairs: list[str]) -> dict[str, int]:
    found = {}
    for pair in pairs:
        name, sep, level = pair.partition("=")
        if not sep or not level.strip().isdigit():
            raise ValueError(f"--domain {pair}: write NAME=LEVEL, as medicine=3")
        found[name.strip()] = int(level)
    return found


def _describe(profile: Any) -> str:
    domains = ", ".join(f"{d}={level}" for d, level in profile.domains.items()) or "no domains"
    rate = "project rate" if profile.pay_rate_cents is None else f"{profile.pay_rate_cents} c"
    return f"{profile.user.email}: tier {profile.tier}, {rate}, {domains}"


@workforce_app.command("list")
def workforce_list(
    domain: Annotated[str | None, typer.Option(help="Only annotators with this domain")] = None,
    min_tier: Annotated[int | None, typer.Option(help="Only this tier or above", min=1)] = None,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    db: DbOption = None,
) -> None:
    """List annotator profiles."""
    from quorum.cli import command_session, reported_errors
    from quorum.domain import workforce

    with reported_errors():
        with command_session(db) as session:
            cursor: str | None = None
            while True:
                page = workforce.list_profiles(
                    session, cursor=cursor, limit=500, domain=domain, min_tier=min_tier
                )
                for p in page.items:
                    row = {
                        "email": p.user.email,
                        "tier": p.tier,
                        "pay_rate_cents": p.pay_rate_cents,
                        "domains": p.domains,
                    }
                    typer.echo(jsonlib.dumps(row) if json else _describe(p))
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor


@quality_app.command("report")
def quality_report(
    project: Annotated[int, typer.Argument(help="Project id", min=1)],
    json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
    db: DbOption = None,
) -> None:
    """Each annotator's trust (90% interval), checks, standing and pause reason."""
    from quorum.cli import command_session, reported_errors
    from quorum.cli_data import project_by_id
    from quorum.domain import quality_report as report

    with reported_errors():
        with command_session(db) as session:
            found = report.project_quality(session, project_by_id(session, project))
    if json:
        typer.echo(jsonlib.dumps(report.as_json(found)))
        return
    for a in found.annotators:
        low, high = a.trust.interval
        state = "paused: " + a.pause_reason if a.paused else a.qualification
        typer.echo(
            f"{a.annotator} ({a.email}): {a.labels} labels, {a.trust.correct}/{a.trust.total} "
            f"checks right, trust {a.trust.mean:.0%} [{low:.0%}, {high:.0%}], {state}"
        )


def _standing_change(
    project: int, email: str, by: str, db: str | None, change: Callable[..., Any], done: str
) -> None:
    from quorum.cli import command_session, reported_errors
    from quorum.cli_data import project_by_id
    from quorum.domain import users

    with reported_errors():
        with command_session(db, write=True) as session:
            chosen = project_by_id(session, project)
            who = users.get_by_email(session, email)
            change(session, chosen, who.id, by=users.get_by_email(session, by))
            session.commit()
    typer.echo(done)


@quality_app.command("unpause")
def quality_unpause(
    project: Annotated[int, typer.Argument(help="Project id", min=1)],
    email: Annotated[str, typer.Argument(help="The paused annotator")],
    by: Annotated[str, typer.Option(help="Email of the owner who decides")],
    db: DbOption = None,
) -> None:
    """Let a paused annotator label the project again."""
    from quorum.domain import pause

    def change(session: Any, chosen: Any, user_id: int, *, by: Any) -> None:
        pause.unpause(session, chosen.id, user_id, by=by)

    _standing_change(project, email, by, db, change, f"{email} may label project {project} again")


@quality_app.command("reset-qualification")
def quality_reset(
    project: Annotated[int, typer.Argument(help="Project id", min=1)],
    email: Annotated[str, typer.Argument(help="The annotator")],
    by: Annotated[str, typer.Option(help="Email of the owner who decides")],
    db: DbOption = None,
) -> None:
    """Let an annotator take the project's qualification again."""
    from quorum.domain import qualification

    _standing_change(
        project, email, by, db, qualification.reset, f"{email} may qualify for project {project}"
    )


def register(app: typer.Typer) -> None:
    """Add these commands to the ``quorum`` app."""
    app.command()(simulate)
    app.command()(worker)
    app.add_typer(workforce_app, name="workforce")
    app.add_typer(quality_app, name="quality")
