"""Project specs typed into the schema editor: JSON or YAML text to an object, with the line of
a syntax error; then the domain's own validation, exactly as the API and CLI run it."""

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from quorum.domain import projects
from quorum.domain.errors import Invalid, Problem
from quorum.domain.questions import QuestionSchema
from quorum.io import yaml_specs


@dataclass
class Checked:
    """One editor's text: the parsed value when it is valid, else the problems found."""

    value: Any = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_text(text: str, what: str) -> Checked:
    """JSON when it starts like JSON, else YAML (a superset for our purposes)."""
    stripped = text.strip()
    if not stripped:
        return Checked(value=None)
    if stripped[0] in "{[":
        try:
            return Checked(value=json.loads(stripped))
        except json.JSONDecodeError as error:
            return Checked(problems=[_at(what, error.lineno, f"not valid JSON: {error.msg}")])
    try:
        return Checked(value=yaml_specs.load(text))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(error, "problem", None) or "malformed"
        return Checked(problems=[_at(what, line, f"not valid YAML: {reason}")])


def _at(what: str, line: int, message: str) -> Problem:
    return {"field": what, "line": line, "message": message}


def check_schema(text: str) -> tuple[Checked, QuestionSchema | None]:
    checked = parse_text(text, "schema")
    if not checked.ok:
        return checked, None
    if checked.value is None:
        return Checked(
            problems=[{"field": "schema", "message": "write at least one question"}]
        ), None
    try:
        return checked, projects.parse_schema(checked.value)
    except Invalid as error:
        return Checked(problems=error.details), None


def check_policy(text: str) -> Checked:
    checked = parse_text(text, "policy")
    if not checked.ok:
        return checked
    try:
        projects.parse_policy(checked.value)
    except Invalid as error:
        return Checked(problems=error.details)
    return checked


SAMPLE_TEXT = "Metformin 500 mg twice daily was started for type 2 diabetes."


def sample_task(schema: QuestionSchema) -> dict[str, Any]:
    """Made-up task data with every field the questions read, to preview the labeling page."""
    data: dict[str, Any] = {}
    for question in schema.questions:
        for name, kind in question.task_fields().items():
            if kind is list:
                data[name] = ["First item to rank", "Second item", "Third item"]
            elif question.kind == "spans":
                data[name] = SAMPLE_TEXT
            else:
                data[name] = f"Sample text of the task's “{name}” field."
    return data or {"text": "The task's data is shown here."}
