"""Reading a Label Studio JSON export: tasks with their annotations, as Quorum history.

Label Studio's "JSON" export is an array of tasks ``{id, data, annotations: [{id, completed_by,
result: [{from_name, to_name, type, value}], was_cancelled, ground_truth, created_at,
lead_time}], predictions}``. Each result answers the control tag named ``from_name``, which
must be a question of the Quorum project with the same name. The mapping:

=================  ==============================  ===========================================
Label Studio type  Quorum question kind            answer
=================  ==============================  ===========================================
``choices``        ``choice`` / ``multi_choice``   ``value.choices[0]`` / ``value.choices``
``rating``         ``rating``                      ``value.rating``
``labels``         ``spans``                       one span per region and label:
                                                   ``{start, end, label}`` (offsets converted
                                                   from UTF-16 units to code points)
``textarea``       ``text``                        ``value.text`` lines joined by newlines
=================  ==============================  ===========================================

Cancelled (skipped) annotations and predictions are left out; an annotation marked
``ground_truth`` also becomes the task's gold. ``completed_by`` (a user id, or an object with
``id`` and ``email``) names the annotator, who becomes a pseudonymous Quorum user. The task's
``external_id`` is ``ls-<id>``. Every problem is reported as a ``Record`` error: ``line`` is
the task's position in the array (from 1) and ``field`` where in it, e.g.
``annotations[0].result[1].value.choices``.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

from quorum.domain.history import Annotator, HistoryAnnotation, HistoryTask
from quorum.domain.questions import (
    ChoiceQuestion,
    MultiChoiceQuestion,
    Question,
    QuestionSchema,
    RatingQuestion,
    SpansQuestion,
    TextQuestion,
)
from quorum.domain.tasks import Record
from quorum.io.task_files import read_json_array

KINDS_BY_TYPE: dict[str, tuple[type[Question], ...]] = {
    "choices": (ChoiceQuestion, MultiChoiceQuestion),
    "rating": (RatingQuestion,),
    "labels": (SpansQuestion,),
    "textarea": (TextQuestion,),
}
EXTERNAL_ID_PREFIX = "ls-"


class Unreadable(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def read_label_studio(file: IO[bytes], schema: QuestionSchema) -> Iterator[Record]:
    """The export's tasks as ``Record``s holding a ``HistoryTask``, or the problem found."""
    questions = schema.by_name()
    for record in read_json_array(file):
        if record.error is not None:
            yield record
            continue
        try:
            yield Record(record.line, history_task(record.value, questions))
        except Unreadable as error:
            yield Record(record.line, error=str(error), field=error.field)


def history_task(raw: Any, questions: dict[str, Question]) -> HistoryTask:
    """One Label Studio task as a Quorum task with its annotations."""
    if not isinstance(raw, dict):
        raise Unreadable("task", "must be an object with id, data and annotations")
    task_id, data = raw.get("id"), raw.get("data")
    if isinstance(task_id, bool) or not isinstance(task_id, int | str):
        raise Unreadable("id", "missing: Label Studio's task id")
    if not isinstance(data, dict):
        raise Unreadable("data", "must be an object")
    annotations, gold, cancelled = [], None, 0
    listed = raw.get("annotations") or []
    if not isinstance(listed, list):
        raise Unreadable("annotations", "must be a list")
    for i, annotation in enumerate(listed):
        where = f"annotations[{i}]"
        if not isinstance(annotation, dict):
            raise Unreadable(where, "must be an object")
        if annotation.get("was_cancelled"):
            cancelled += 1
            continue
        answers = _answers(annotation.get("result"), questions, data, where)
        annotations.append(
            HistoryAnnotation(
                annotator=_annotator(annotation.get("completed_by"), f"{where}.completed_by"),
                answers=answers,
                submitted_at=_time(annotation.get("created_at"), f"{where}.created_at"),
                duration_ms=_duration(annotation.get("lead_time"), f"{where}.lead_time"),
                line_field=where,
            )
        )
        if annotation.get("ground_truth") and answers:
            gold = answers
    return HistoryTask(f"{EXTERNAL_ID_PREFIX}{task_id}", data, gold, annotations, cancelled)


def _answers(
    results: Any, questions: dict[str, Question], data: dict[str, Any], where: str
) -> dict[str, Any]:
    if not isinstance(results, list):
        raise Unreadable(f"{where}.result", "must be a list")
    answers: dict[str, Any] = {}
    for j, result in enumerate(results):
        at = f"{where}.result[{j}]"
        if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
            raise Unreadable(at, "must be an object with from_name, type and value")
        kind, name = result.get("type"), result.get("from_name")
        question = questions.get(name) if isinstance(name, str) else None
        if question is None:
            raise Unreadable(f"{at}.from_name", f"{name!r} is not a question of the project")
        if kind not in KINDS_BY_TYPE:
            raise Unreadable(f"{at}.type", f"Label Studio type {kind!r} is not supported")
        if not isinstance(question, KINDS_BY_TYPE[kind]):
            raise Unreadable(
                f"{at}.type", f"a {kind} result cannot answer the {question.kind} question {name!r}"
            )
        _merge(answers, question, result["value"], data, f"{at}.value")
    return answers


def _merge(
    answers: dict[str, Any],
    question: Question,
    value: dict[str, Any],
    data: dict[str, Any],
    at: str,
) -> None:
    """Add one result's value to the answers (span regions of one question accumulate)."""
    if isinstance(question, ChoiceQuestion | MultiChoiceQuestion):
        choices = value.get("choices")
        if not isinstance(choices, list) or not choices:
            raise Unreadable(f"{at}.choices", "must be a non-empty list")
        if isinstance(question, ChoiceQuestion):
            if len(choices) != 1:
                raise Unreadable(
                    f"{at}.choices", f"{question.name!r} takes one choice, got {len(choices)}"
                )
            answers[question.name] = choices[0]
        else:
            answers[question.name] = choices
    elif isinstance(question, RatingQuestion):
        answers[question.name] = value.get("rating")
    elif isinstance(question, TextQuestion):
        lines = value.get("text")
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise Unreadable(f"{at}.text", "must be a list of strings")
        answers[question.name] = "\n".join(lines)
    elif isinstance(question, SpansQuestion):
        answers.setdefault(question.name, []).extend(_spans(value, data.get(question.field), at))


def _spans(value: dict[str, Any], text: Any, at: str) -> list[dict[str, Any]]:
    start, end, labels = value.get("start"), value.get("end"), value.get("labels")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)):
        raise Unreadable(at, "a labels region needs integer start and end")
    if not isinstance(labels, list) or not labels:
        raise Unreadable(f"{at}.labels", "must be a non-empty list")
    assert isinstance(start, int) and isinstance(end, int)
    if isinstance(text, str):
        start, end = _code_points(text, start), _code_points(text, end)
    return [{"start": start, "end": end, "label": label} for label in labels]


def _code_points(text: str, utf16_offset: int) -> int:
    """Label Studio counts offsets in UTF-16 code units (JavaScript strings); Quorum in code
    points, as Python does. They differ after every character outside the BMP (emoji)."""
    if text.isascii():
        return utf16_offset
    units = 0
    for index, character in enumerate(text):
        if units >= utf16_offset:
            return index
        units += 2 if ord(character) > 0xFFFF else 1
    return len(text) if units >= utf16_offset else len(text) + (utf16_offset - units)


def _annotator(completed_by: Any, field: str) -> Annotator:
    if isinstance(completed_by, dict):
        ident, email = completed_by.get("id"), completed_by.get("email")
        name = " ".join(
            str(completed_by.get(part) or "") for part in ("first_name", "last_name")
        ).strip()
    else:
        ident, email, name = completed_by, None, ""
    if isinstance(ident, bool) or not isinstance(ident, int | str):
        raise Unreadable(field, "must be the annotator's user id (or an object with an id)")
    return Annotator(f"label-studio:{ident}", email if isinstance(email, str) else None, name)


def _time(raw: Any, field: str) -> datetime | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise Unreadable(field, f"{raw!r} is not an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _duration(raw: Any, field: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise Unreadable(field, "must be a number of seconds")
    return round(raw * 1000)
