"""The `quorum` command line."""

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def _root() -> None:
    """Quorum: expert-labeled AI training data whose quality is measured."""


def main() -> None:
    app()
