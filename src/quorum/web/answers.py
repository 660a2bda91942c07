"""Submitted answers as reviewers read them: options by name, rankings as ordered text, spans
highlighted in their text (Python slices by code point, exactly as the offsets are stored)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quorum.domain.questions import (
    PreferenceQuestion,
    Question,
    QuestionSchema,
    RankingQuestion,
    SpansQuestion,
)


@dataclass(frozen=True)
class Segment:
    text: str
    labels: list[str]
    colors: list[int]


@dataclass(frozen=True)
class AnswerView:
    kind: str
    title: str
    answered: bool
    text: str = ""  # one line for choice, rating, preference, multi_choice, text
    items: list[str] = field(default_factory=list)  # ranking, best first
    segments: list[Segment] = field(default_factory=list)  # spans


def _segments(text: str, spans: list[Mapping[str, Any]], labels: list[str]) -> list[Segment]:
    cuts = sorted({0, len(text), *(s["start"] for s in spans), *(s["end"] for s in spans)})
    segments = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        covering = [s["label"] for s in spans if s["start"] <= start and s["end"] >= end]
        colors = [labels.index(label) % 9 if label in labels else 8 for label in covering]
        segments.append(Segment(text[start:end], covering, colors))
    return segments


def answer_view(question: Question, data: Mapping[str, Any], value: Any) -> AnswerView:
    title = question.title or question.name
    if value is None:
        return AnswerView(question.kind, title, answered=False, text="(no answer)")
    if isinstance(question, RankingQuestion):
        items = data.get(question.field) or []
        ranked = [str(items[i]) if 0 <= i < len(items) else f"#{i}" for i in value]
        return AnswerView(question.kind, title, True, items=ranked)
    if isinstance(question, SpansQuestion):
        text = data.get(question.field)
        segments = _segments(text if isinstance(text, str) else "", value, list(question.labels))
        return AnswerView(question.kind, title, True, text=f"{len(value)} spans", segments=segments)
    if isinstance(question, PreferenceQuestion) and value in question.options:
        side = "A" if value == question.options[0] else "B"
        return AnswerView(question.kind, title, True, text=f"{side} ({value})")
    if isinstance(value, list):
        return AnswerView(question.kind, title, True, text=", ".join(map(str, value)) or "(none)")
    return AnswerView(question.kind, title, True, text=str(value))


def answer_views(
    schema: QuestionSchema, data: Mapping[str, Any], answers: Mapping[str, Any] | None
) -> list[AnswerView]:
    answers = answers or {}
    return [answer_view(q, data, answers.get(q.name)) for q in schema.questions]
