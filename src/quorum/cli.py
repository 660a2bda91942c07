"""The `quorum` command line: serve, migrate, and manage users, tokens, projects and tasks.

Every command that touches the database takes ``--db URL`` (else ``QUORUM_DATABASE_URL``, else
the SQLite file ``./quorum-data/quorum.db``) and brings its schema up to date first. A bad
argument or file exits with status 2 and one line on stderr naming what and where.
"""

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from quorum.cli_audit import audit_app
from quorum.cli_data import export_tasks, import_tasks
from quorum.cli_quality import register as register_quality
from quorum.cli_truth import aggregate, agreement
from quorum.config import Settings
from quorum.db.engine import Database, make_engine
from quorum.db.migrate import upgrade
from quorum.domain import demo, projects, users
from quorum.domain.errors import DomainError
from quorum.io import yaml_specs

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Quorum: expert-labeled AI training data whose quality is measured, not promised.",
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
user_app = typer.Typer(no_args_is_help=True, help="Manage users.")
token_app = typer.Typer(no_args_is_help=True, help="Manage API tokens.")
project_app = typer.Typer(no_args_is_help=True, help="Manage projects.")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(project_app, name="project")
app.add_typer(audit_app, name="audit")
app.command()(aggregate)
app.command()(agreement)
app.command("import")(import_tasks)
app.command("export")(export_tasks)
register_quality(app)  # simulate, worker, workforce, quality (docs/quality.md)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite:///path or postgresql://...); default: QUORUM_DATABASE_URL, "
        "else sqlite:///quorum-data/quorum.db",
        show_default=False,
    ),
]


def fail(message: str) -> typer.Exit:
    """Print one clear line on stderr; the caller raises the returned exit (status 2)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@contextmanager
def reported_errors(source: Path | None = None) -> Iterator[None]:
    """Turn the errors users can cause into one line and exit status 2; the domain's errors
    about a line of a file (``source``) start with its name."""
    try:
        yield
    except DomainError as error:
        details = error.details[0] if error.details else None
        where = ""
        if details and "line" in details and str(details["line"]) not in error.message:
            where = f" (line {details['line']})"
        named = f"{source}: " if source is not None and details and "line" in details else ""
        raise fail(named + error.message + where) from None
    except OSError as error:
        # "nonexist.csv: No such file or directory", not "[Errno 2] No such file ...: '...'"
        if error.filename and error.strerror:
            raise fail(f"{error.filename}: {error.strerror}") from None
        raise fail(str(error)) from None
    except ValueError as error:
        raise fail(str(error)) from None


def settings_for(db: str | None) -> Settings:
    return Settings(database_url=db) if db else Settings()


def open_database(settings: Settings) -> Database:
    """The database, migrated to the latest schema."""
    return _migrated(settings)[0]


def _migrated(settings: Settings) -> tuple[Database, str | None, str | None]:
    """The database migrated to the latest schema, and its revisions before and after. One that
    cannot be reached is a ValueError in one line (``reported_errors`` prints it), not the
    driver's traceback."""
    engine = make_engine(
        settings.database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        pool_size=settings.pool_size,
    )
    try:
        before, after = upgrade(engine)
    except OperationalError as error:
        engine.dispose()
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        reason = str(error.orig or error).strip().splitlines()[0]
        raise ValueError(f"cannot open the database {where}: {reason}") from None
    except CommandError as error:  # a schema revision these migrations do not know
        engine.dispose()
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        raise ValueError(
            f"the database {where} has a schema this version of Quorum does not know ({error});"
            " was it made by a newer one?"
        ) from None
    return Database(engine), before, after


@contextmanager
def command_session(db: str | None, *, write: bool = False) -> Iterator[Session]:
    """One session on the command's database (``--db``, else the settings), migrated first;
    the database is closed afterwards."""
    database = open_database(settings_for(db))
    try:
        with database.session(write=write) as session:
            yield session
    finally:
        database.dispose()


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000]", min=1, max=65535)] = None,
    workers: Annotated[int, typer.Option(help="Server processes", min=1, max=64)] = 1,
    db: DbOption = None,
    demo_data: Annotated[
        bool, typer.Option("--demo", help="Seed demo projects and users; print their sign-in")
    ] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request")] = False,
) -> None:
    """Run the web app and the API; the database is created and migrated on start."""
    from quorum.serving import ServeOptions, serve

    settings = settings_for(db)
    host = host or settings.host
    port = port or settings.port
    with reported_errors():
        settings.check_production_ready()
        database = open_database(settings)
        if demo_data:
            typer.echo(
                "Preparing the demo (on a new database, simulated annotators first label one "
                "project: a few seconds)"
            )
            with database.session(write=True) as session:
                _print_demo(demo.seed(session), f"http://{host}:{port}")
        database.dispose()
    # Worker processes build their app from the environment (see quorum.app).
    os.environ["QUORUM_DATABASE_URL"] = settings.database_url
    serve(ServeOptions(host=host, port=port, workers=workers, access_log=access_log))


def _print_demo(result: demo.DemoResult, url: str) -> None:
    lines = [
        "",
        "Demo " + ("created" if result.created else "already present; passwords were reset"),
        f"  open {url}/ and sign in as one of:",
        *(f"    {s.role:<10} {s.email:<26} password {s.password}" for s in result.sign_ins),
        f"  API token of requester@example.com: {result.requester_token}",
        "  projects: " + ", ".join(f"{pid} {name}" for pid, name in result.projects),
        "",
    ]
    typer.echo("\n".join(lines))


@app.command()
def migrate(db: DbOption = None) -> None:
    """Upgrade the database to the latest schema."""
    with reported_errors():
        database, before, after = _migrated(settings_for(db))
        database.dispose()
    if before == after:
        typer.echo(f"database is up to date (schema {after})")
    elif before is None:
        typer.echo(f"database created (schema {after})")
    else:
        typer.echo(f"database migrated from schema {before} to {after}")


@user_app.command("create")
def user_create(
    email: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read a password from the first line of stdin")
    ] = False,
    name: Annotated[str, typer.Option(help="Display name")] = "",
    tier: Annotated[int, typer.Option(help="Workforce tier, 1-3", min=1, max=3)] = 1,
    db: DbOption = None,
) -> None:
    """Create a user; without a password they sign in with API tokens only."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    with reported_errors():
        with command_session(db, write=True) as session:
            user = users.create_user(
                session, email, name=name, password=password, is_admin=admin, tier=tier
            )
            typer.echo(f"created user {user.id} {user.email}" + (" (admin)" if admin else ""))


@token_app.command("create")
def token_create(
    email: str,
    name: Annotated[str, typer.Option(help="A name to tell the token apart")] = "",
    db: DbOption = None,
) -> None:
    """Create an API token for a user and print it; it is shown this once only."""
    with reported_errors():
        with command_session(db, write=True) as session:
            _, token = users.create_token(session, users.get_by_email(session, email), name)
    typer.echo(token)


def read_spec(path: Path) -> Any:
    """A JSON or YAML file, chosen by extension."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return yaml_specs.load(text)
        if path.suffix.lower() == ".json":
            return json.loads(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        reason = getattr(error, "problem", None) or "malformed"
        raise ValueError(f"{path}: not valid YAML{where}: {reason}") from None
    except ValueError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None
    raise ValueError(f"{path}: expected a .json, .yaml or .yml file")


@project_app.command("create")
def project_create(
    spec: Annotated[
        Path, typer.Argument(help="JSON or YAML with name, instructions, schema, policy")
    ],
    owner: Annotated[
        str | None, typer.Option(help="Email of the owning user [required]", show_default=False)
    ] = None,
    db: DbOption = None,
) -> None:
    """Create a project from a spec file and print its id."""
    with reported_errors():
        if owner is None:
            raise ValueError("--owner is required: the email of the project's first owner")
        raw = read_spec(spec)
        if not isinstance(raw, dict):
            raise ValueError(f"{spec}: expected an object with name, instructions, schema, policy")
        unknown = sorted(set(raw) - {"name", "instructions", "schema", "policy"})
        if unknown:
            raise ValueError(f"{spec}: unknown key {unknown[0]!r}")
        if "schema" not in raw:
            raise ValueError(f"{spec}: no schema: a project needs one, {{questions: [...]}}")
        with command_session(db, write=True) as session:
            project = projects.create(
                session,
                users.get_by_email(session, owner),
                name=str(raw.get("name", "")),
                instructions=str(raw.get("instructions") or ""),
                schema=raw.get("schema"),
                policy=raw.get("policy"),
            )
    typer.echo(project.id)


def main() -> None:
    app()
