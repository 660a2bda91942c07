"""The question schema of a project, and the validation of answers and gold against it.

Seven kinds of question (DESIGN §3). Each knows which task fields it reads and which answer
values it accepts; offsets into text are Unicode code points, as Python counts them.
"""

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from quorum.domain.errors import Invalid, Problem

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"
TIE = "tie"


class AnswerError(ValueError):
    """One answer value breaks its question's rule; the message says how."""


class _Question(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    title: str | None = Field(default=None, max_length=500)
    required: bool = True

    def task_fields(self) -> dict[str, type]:
        """The task ``data`` fields this question reads, with the JSON type each must have."""
        return {}

    def check(self, value: Any, data: Mapping[str, Any]) -> Any:
        """Return the value if it is a valid answer for this task, else raise AnswerError."""
        raise NotImplementedError


def _unique(values: list[str], what: str) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must be unique")
    return values


class ChoiceQuestion(_Question):
    kind: Literal["choice"]
    options: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=2, max_length=100, json_schema_extra={"uniqueItems": True}
    )

    @model_validator(mode="after")
    def _distinct(self) -> "ChoiceQuestion":
        _unique(self.options, "options")
        return self

    def check(self, value: Any, data: Mapping[str, Any]) -> Any:
        if not isinstance(value, str) or value not in self.options:
            raise AnswerError(f"must be one of {self.options}")
        return value


class MultiChoiceQuestion(_Question):
    kind: Literal["multi_choice"]
    options: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=100, json_schema_extra={"uniqueItems": True}
    )
    min_selected: int = Field(default=0, ge=0)
    max_selected: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> "MultiChoiceQuestion":
        _unique(self.options, "options")
        if self.max_selected is not None and self.max_selected < self.min_selected:
            raise ValueError("max_selected must be at least min_selected")
        return self

    def check(self, value: Any, data: Mapping[str, Any]) -> Any:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise AnswerError("must be a list of options")
        unknown = [v for v in value if v not in self.options]
        if unknown:
            raise AnswerError(f"unknown options {unknown}; allowed: {self.options}")
        if len(set(value)) != len(value):
            raise AnswerError("lists an option twice")
        if len(value) < self.min_selected:
            raise AnswerError(f"select at least {self.min_selected}")
        if self.max_selected is not None and len(value) > self.max_selected:
            raise AnswerError(f"select at most {self.max_selected}")
        return value


class RatingQuestion(_Question):
    kind: Literal["rating"]
    min: StrictInt = Field(ge=-1000, le=1000)
    max: StrictInt = Field(ge=-1000, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> "RatingQuestion":
        if self.max <= self.min:
            raise ValueError("max must be greater than min")
        return self

    def check(self, value: Any, data: Mapping[str, Any]) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise AnswerError("must be a whole number")
        if not self.min <= value <= self.max:
            raise AnswerError(f"must be between {self.min} and {self.max}")
        return value


class PreferenceQuestion(_Question):
    """Which of two task fields (say two model responses) is better; optionally a tie."""

    kind: Literal["preference"]
    options: tuple[
        Annotated[str, Field(pattern=NAME_PATTERN)], Annotated[str, Field(pattern=NAME_PATTERN)]
    ]
    ties: bool = False
    prompt_field: str | None = Field(default=None, pattern=NAME_PATTERN)

    @model_validator(mode="after")
    def _two_fields(self) -> "PreferenceQuestion":
        if self.options[0] == self.options[1]:
            raise ValueError("options must name two different task fields")
        if TIE in self.options:
            raise ValueError(f"{TIE!r} is reserved for the tie answer")
        return self

    def task_fields(self) -> dict[str, type]:
        fields: dict[str, type] = {self.options[0]: str, self.options[1]: str}
        if self.prompt_field:
            fields[self.prompt_field] = str
        return fields

    def check(self, value: Any, data: Mapping[str, Any]) -> Any:
        allowed = [*self.options, TIE] if self.ties else list(self.options)
        if value not in allowed:
            raise AnswerError(f"must be one of {allowed}")
        return value


class RankingQuestion(_Question):
    """Order the items of a list field; the answer lists item indices, best first."""

    kind: Literal["ranking"]
    field: str = Field(pattern=NAME_PATTERN)

    def task_fields(self) -> dict[str, type]:
        return {self.field: list}

    def check(self, value: Any, data: Mapping[str, Any]) -> Any:
        items = data.get(self.field)
        n = len(items) if isinstance(items, list) else 0
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise AnswerError("must be a list of item indices, best first")
        if sorted(value) != list(range(n)):
            raise AnswerError(f"must order every item of {self.field!r} once: indices 0..{n - 1}")
        return value


class Span(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: StrictInt = Field(ge=0)
    end: StrictInt = Field(ge=0)
    label: StrictStr


class SpansQuestion(_Question):
    """Labelled character ranges ``[start, end)`` of a text field, in code points."""

    kind: Literal["spans"]
    field: str = Field(pattern=NAME_PATTERN)
    labels: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=50, json_schema_extra={"uniqueItems": True}
    )

    @model_validator(mode="after")
    def _distinct(self) -> "SpansQuestion":
        _unique(self.labels, "labels")
        return self

    def task_fields(self) -> dict[str, type]:
        return {self.field: str}

    def check(self, value: Any, data: Mapping[str, Any]) -> Any:
        if not isinstance(value, list):
            raise AnswerError("must be a list of {start, end, label}")
        text = data.get(self.field)
        length = len(text) if isinstance(text, str) else 0
        spans = []
        for i, raw in enumerate(value):
            try:
                span = Span.model_validate(raw)
            except ValueError:
                raise AnswerError(
                    f"span {i} must be {{start, end, label}}, start and end whole numbers from 0"
                ) from None
            if span.end <= span.start:
                raise AnswerError(f"span {i} [{span.start}, {span.end}) must end after it starts")
            if span.end > length:
                raise AnswerError(f"span {i} [{span.start}, {span.end}) is outside 0..{length}")
            if span.label not in self.labels:
                raise AnswerError(f"span {i} has unknown label {span.label!r}")
            spans.append(span)
        _no_overlap_within_label(spans)
        ordered = sorted(spans, key=lambda s: (s.start, s.end, s.label))
        return [s.model_dump() for s in ordered]


def _no_overlap_within_label(spans: list[Span]) -> None:
    ordered = sorted(spans, key=lambda s: (s.label, s.start, s.end))
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before.label == after.label and after.start < before.end:
            raise AnswerError(
                f"spans [{before.start}, {before.end}) and [{after.start}, {after.end}) "
                f"overlap with the same label {before.label!r}"
            )


class TextQuestion(_Question):
    kind: Literal["text"]
    min_chars: int = Field(default=0, ge=0, le=100_000)
    max_chars: int | None = Field(default=None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _bounds(self) -> "TextQuestion":
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError("max_chars must be at least min_chars")
        return self

    def check(self, value: Any, data: Mapping[str, Any]) -> Any:
        if not isinstance(value, str):
            raise AnswerError("must be text")
        length = len(value.strip())
        if length < self.min_chars:
            raise AnswerError(f"needs at least {self.min_chars} characters, has {length}")
        if self.max_chars is not None and len(value) > self.max_chars:
            raise AnswerError(f"allows at most {self.max_chars} characters")
        return value


Question = Annotated[
    ChoiceQuestion
    | MultiChoiceQuestion
    | RatingQuestion
    | PreferenceQuestion
    | RankingQuestion
    | SpansQuestion
    | TextQuestion,
    Field(discriminator="kind"),
]
KINDS = ("choice", "multi_choice", "rating", "preference", "ranking", "spans", "text")


class QuestionSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    questions: list[Question] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _distinct_names(self) -> "QuestionSchema":
        _unique([q.name for q in self.questions], "question names")
        return self

    def by_name(self) -> dict[str, Question]:
        return {q.name: q for q in self.questions}


def check_new_schema(schema: QuestionSchema) -> list[Problem]:
    """Problems that would leave a new schema unanswerable (a multi_choice needing more options
    than it has), meaningless (a preference whose prompt is one of its responses) or its tasks
    unimportable (two questions reading one data field as a list and as text). Checked when a
    schema is given, not when a stored one is read: a project made before a rule keeps
    loading, so its owner can see it and change it."""
    problems: list[Problem] = []
    read_by: dict[str, tuple[type, str]] = {}
    for i, question in enumerate(schema.questions):
        where = f"schema.questions[{i}]"
        if isinstance(question, MultiChoiceQuestion):
            if question.min_selected > len(question.options):
                message = f"is more than the {len(question.options)} options"
                problems.append({"field": f"{where}.min_selected", "message": message})
        if isinstance(question, PreferenceQuestion) and question.prompt_field in question.options:
            message = "names one of the two responses; the prompt is the field both answer"
            problems.append({"field": f"{where}.prompt_field", "message": message})
        for field, kind in question.task_fields().items():
            first_kind, first = read_by.setdefault(field, (kind, question.name))
            if first_kind is not kind:
                message = (
                    f"reads data field {field!r} as {_FIELD_TYPES[kind]}, "
                    f"but question {first!r} reads it as {_FIELD_TYPES[first_kind]}"
                )
                problems.append({"field": where, "message": message})
    return problems


_FIELD_TYPES: dict[type, str] = {str: "text", list: "a list"}


def check_task_data(schema: QuestionSchema, data: Any) -> list[Problem]:
    """Problems that make ``data`` unusable as a task of this schema (missing or wrong fields)."""
    if not isinstance(data, dict):
        return [{"field": "data", "message": "must be a JSON object"}]
    problems: list[Problem] = []
    for question in schema.questions:
        for field, kind in question.task_fields().items():
            value = data.get(field)
            if value is None:
                message = f"missing; question {question.name!r} reads it"
                problems.append({"field": f"data.{field}", "message": message})
            elif not isinstance(value, kind) or (isinstance(value, list) and len(value) < 2):
                expected = "a list of at least two items" if kind is list else "text"
                message = f"must be {expected} for question {question.name!r}"
                problems.append({"field": f"data.{field}", "message": message})
    return problems


def check_answers(
    schema: QuestionSchema,
    data: Mapping[str, Any],
    answers: Any,
    *,
    field: str = "answers",
    partial: bool = False,
) -> dict[str, Any]:
    """Validated answers (spans sorted), or Invalid listing every problem.

    ``partial`` is for gold: any subset of the questions may be given.
    """
    if not isinstance(answers, dict):
        raise Invalid.one(field, "must be an object of {question: value}")
    questions = schema.by_name()
    problems: list[Problem] = []
    clean: dict[str, Any] = {}
    for name, value in answers.items():
        question = questions.get(name)
        if question is None:
            problems.append({"field": f"{field}.{name}", "message": "no such question"})
            continue
        if value is None and not question.required:
            continue
        try:
            clean[name] = question.check(value, data)
        except AnswerError as error:
            problems.append({"field": f"{field}.{name}", "message": str(error)})
    if not partial:
        for question in schema.questions:
            if question.required and question.name not in answers:
                problems.append({"field": f"{field}.{question.name}", "message": "required"})
    if problems:
        raise Invalid(f"{len(problems)} invalid {field}: {problems[0]['message']}", problems)
    return clean
