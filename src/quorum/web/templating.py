"""The Jinja environment: templates and static files ship inside the package."""

import hashlib
import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, pass_context, select_autoescape
from starlette.templating import Jinja2Templates

STATIC = resources.files("quorum.web") / "static"


@cache
def _version(path: str) -> str:
    # Content hash in the URL: browsers may cache assets for ever and still see every change.
    return hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:10]


@pass_context
def url(context: Any, name: str, /, **params: Any) -> str:
    """A path (not an absolute URL), so pages work behind any proxy or host name."""
    request = context["request"]
    return str(request.app.url_path_for(name, **{k: str(v) for k, v in params.items()}))


def static(path: str) -> str:
    return f"/static/{path}?v={_version(path)}"


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def percent(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def sentence(text: str) -> str:
    """Domain messages are lower-case clauses ("no project 7"); pages show sentences."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text[-1] in ".!?" else ".")


def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("quorum.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals.update(url=url, static=static)
    env.filters.update(when=when, percent=percent, pretty_json=pretty_json, sentence=sentence)
    return env


TEMPLATES = Jinja2Templates(env=_environment())
