"""What the labeling widgets need of each question: options with their keys, texts, prefills.

Keys are fixed here so the page shows exactly the keys the script listens for: digits 1-9 for
options, labels and positions; A and B (T for a tie) for preferences.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from quorum.domain.errors import Invalid, Problem
from quorum.domain.questions import (
    TIE,
    ChoiceQuestion,
    MultiChoiceQuestion,
    PreferenceQuestion,
    Question,
    QuestionSchema,
    RankingQuestion,
    RatingQuestion,
    SpansQuestion,
    TextQuestion,
)

DIGITS = "123456789"


@dataclass(frozen=True)
class Option:
    key: str | None
    value: Any
    label: str


@dataclass(frozen=True)
class Side:
    key: str
    field: str
    text: str


@dataclass(frozen=True)
class QuestionView:
    kind: str
    name: str
    title: str
    required: bool
    options: list[Option] = field(default_factory=list)
    sides: list[Side] = field(default_factory=list)
    prompt: str | None = None
    items: list[str] = field(default_factory=list)
    text: str = ""
    min_chars: int = 0
    max_chars: int | None = None
    min_selected: int = 0
    max_selected: int | None = None
    value: Any = None

    @property
    def value_json(self) -> str:
        return json.dumps(self.value, ensure_ascii=False)

    def is_chosen(self, value: Any) -> bool:
        if isinstance(self.value, list):
            return value in self.value
        return bool(self.value == value and self.value is not None)


def _keyed(values: list[Any]) -> list[Option]:
    return [
        Option(DIGITS[i] if i < len(DIGITS) else None, value, str(value))
        for i, value in enumerate(values)
    ]


def _rating_options(question: RatingQuestion) -> list[Option]:
    values = list(range(question.min, question.max + 1))
    if question.min >= 0 and question.max <= 9:  # the digit is the rating itself
        return [Option(str(v), v, str(v)) for v in values]
    if question.min >= 1 and question.max == 10:  # 1-10: and 0 for ten, as on a keyboard row
        return [Option(str(v % 10), v, str(v)) for v in values]
    return _keyed(values)  # other scales: the n-th value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def view(question: Question, data: Mapping[str, Any], value: Any = None) -> QuestionView:
    base = {
        "kind": question.kind,
        "name": question.name,
        "title": question.title or question.name.replace("_", " ").capitalize(),
        "required": question.required,
        "value": value,
    }
    if isinstance(question, ChoiceQuestion):
        return QuestionView(**base, options=_keyed(list(question.options)))
    if isinstance(question, MultiChoiceQuestion):
        return QuestionView(
            **base,
            options=_keyed(list(question.options)),
            min_selected=question.min_selected,
            max_selected=question.max_selected,
        )
    if isinstance(question, RatingQuestion):
        return QuestionView(**base, options=_rating_options(question))
    if isinstance(question, PreferenceQuestion):
        sides = [
            Side(key, name, _text(data.get(name, "")))
            for key, name in zip("AB", question.options, strict=True)
        ]
        ties = [Option("T", TIE, "Tie")] if question.ties else []
        prompt = _text(data.get(question.prompt_field)) if question.prompt_field else None
        options = [Option(s.key, s.field, f"{s.key} is better") for s in sides] + ties
        return QuestionView(**base, sides=sides, prompt=prompt, options=options)
    if isinstance(question, RankingQuestion):
        items = data.get(question.field)
        return QuestionView(**base, items=[_text(i) for i in items or []])
    if isinstance(question, SpansQuestion):
        return QuestionView(
            **base, text=_text(data.get(question.field, "")), options=_keyed(list(question.labels))
        )
    assert isinstance(question, TextQuestion)
    return QuestionView(**base, min_chars=question.min_chars, max_chars=question.max_chars)


def views(
    schema: QuestionSchema, data: Mapping[str, Any], answers: Mapping[str, Any] | None = None
) -> list[QuestionView]:
    answers = answers or {}
    return [view(q, data, answers.get(q.name)) for q in schema.questions]


def context_fields(schema: QuestionSchema, data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The task's fields that no widget shows itself, in the task's order, titled."""
    shown = {name for q in schema.questions for name in q.task_fields()}
    return [
        (name.replace("_", " ").capitalize(), value)
        for name, value in data.items()
        if name not in shown
    ]


def answers_from_form(schema: QuestionSchema, form: FormData) -> dict[str, Any]:
    """Answers posted by the plain HTML form (no JavaScript), before domain validation."""
    answers: dict[str, Any] = {}
    problems: list[Problem] = []
    for question in schema.questions:
        try:
            value = _from_form(question, form)
        except ValueError as error:
            problems.append({"field": f"answers.{question.name}", "message": str(error)})
            continue
        if value is not None:
            answers[question.name] = value
    if problems:
        raise Invalid(f"{len(problems)} invalid answers: {problems[0]['message']}", problems)
    return answers


def _from_form(question: Question, form: FormData) -> Any:
    name = question.name
    if isinstance(question, MultiChoiceQuestion):
        return [str(v) for v in form.getlist(name)]
    raw = form.get(name)
    if isinstance(question, RankingQuestion):
        return _ranking_from_form(name, form)
    if raw is None or not isinstance(raw, str) or (raw == "" and question.required is False):
        return None
    if isinstance(question, RatingQuestion):
        return int(raw) if raw.lstrip("-").isdigit() else raw
    if isinstance(question, SpansQuestion):
        try:
            return json.loads(raw or "[]")
        except json.JSONDecodeError as error:
            raise ValueError(f"spans must be JSON: {error.msg}") from None
    return raw


def _ranking_from_form(name: str, form: FormData) -> list[int] | None:
    """Without JavaScript each item has a position box; the answer lists items best first."""
    prefix = f"{name}.rank."
    ranks: list[tuple[int, int]] = []
    for key, value in form.multi_items():
        if key.startswith(prefix) and isinstance(value, str):
            if not value.strip().isdigit() or not key[len(prefix) :].isdigit():
                raise ValueError("give every item a position number")
            ranks.append((int(value), int(key[len(prefix) :])))
    if not ranks:
        return None
    if len({rank for rank, _ in ranks}) != len(ranks):
        raise ValueError("give each item a different position")
    return [item for _, item in sorted(ranks)]
