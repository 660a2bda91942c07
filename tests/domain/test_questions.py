"""Answers and gold are checked against the question schema; offsets are code points."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quorum.domain.errors import Invalid
from quorum.domain.projects import parse_schema
from quorum.domain.questions import QuestionSchema, check_answers, check_task_data

SCHEMA = QuestionSchema.model_validate(
    {
        "questions": [
            {"name": "topic", "kind": "choice", "options": ["med", "law"]},
            {"name": "tags", "kind": "multi_choice", "options": ["a", "b", "c"], "max_selected": 2},
            {"name": "score", "kind": "rating", "min": 1, "max": 5},
            {"name": "better", "kind": "preference", "options": ["left", "right"], "ties": False},
            {"name": "order", "kind": "ranking", "field": "candidates"},
            {"name": "ents", "kind": "spans", "field": "text", "labels": ["drug", "dose"]},
            {"name": "note", "kind": "text", "min_chars": 5, "required": False},
        ]
    }
)
DATA = {"text": "aspirin 100 mg", "left": "A", "right": "B", "candidates": ["x", "y", "z"]}
GOOD: dict[str, Any] = {
    "topic": "med",
    "tags": ["a", "c"],
    "score": 4,
    "better": "left",
    "order": [2, 0, 1],
    "ents": [{"start": 8, "end": 14, "label": "dose"}, {"start": 0, "end": 7, "label": "drug"}],
    "note": "looks right",
}


def test_valid_answers_pass_and_spans_come_back_sorted() -> None:
    clean = check_answers(SCHEMA, DATA, GOOD)
    assert [s["label"] for s in clean["ents"]] == ["drug", "dose"]
    assert DATA["text"][clean["ents"][0]["start"] : clean["ents"][0]["end"]] == "aspirin"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("topic", "art", "must be one of"),
        ("topic", 1, "must be one of"),
        ("tags", ["a", "a"], "twice"),
        ("tags", ["a", "b", "c"], "at most 2"),
        ("tags", ["d"], "unknown options"),
        ("score", 6, "between 1 and 5"),
        ("score", 2.5, "whole number"),
        ("score", True, "whole number"),
        ("better", "tie", "must be one of"),
        ("order", [0, 1], "every item"),
        ("order", [0, 0, 1], "every item"),
        ("order", [0, 1, 3], "every item"),
        ("ents", [{"start": 3, "end": 2, "label": "drug"}], "span 0 [3, 2) must end after"),
        ("ents", [{"start": 3, "end": 3, "label": "drug"}], "span 0 [3, 3) must end after"),
        ("ents", [{"start": -1, "end": 2, "label": "drug"}], "whole numbers from 0"),
        ("ents", [{"start": 0, "end": 15, "label": "drug"}], "outside"),
        ("ents", [{"start": 0, "end": 3, "label": "dosage"}], "unknown label"),
        (
            "ents",
            [{"start": 0, "end": 5, "label": "drug"}, {"start": 4, "end": 7, "label": "drug"}],
            "overlap",
        ),
        ("ents", [{"start": "0", "end": 3, "label": "drug"}], "whole numbers from 0"),
        ("note", "hi", "at least 5"),
    ],
)
def test_invalid_answer_names_question_and_rule(name: str, value: Any, message: str) -> None:
    with pytest.raises(Invalid) as raised:
        check_answers(SCHEMA, DATA, GOOD | {name: value})
    assert raised.value.details[0]["field"] == f"answers.{name}"
    assert message in raised.value.details[0]["message"]


def test_overlapping_spans_with_different_labels_are_fine() -> None:
    spans = [{"start": 0, "end": 7, "label": "drug"}, {"start": 0, "end": 14, "label": "dose"}]
    assert len(check_answers(SCHEMA, DATA, GOOD | {"ents": spans})["ents"]) == 2


def test_required_and_unknown_questions() -> None:
    with pytest.raises(Invalid) as raised:
        check_answers(SCHEMA, DATA, {"topic": "med", "extra": 1})
    fields = {d["field"] for d in raised.value.details}
    assert {"answers.extra", "answers.score", "answers.ents"} <= fields
    assert "answers.note" not in fields  # optional
    assert check_answers(SCHEMA, DATA, {"topic": "law"}, field="gold", partial=True) == {
        "topic": "law"
    }


def test_a_multi_choice_that_needs_more_options_than_it_has_is_refused() -> None:
    """With min_selected above the number of options no answer could ever pass. A stored
    schema is read as it is, so a project made before the rule still loads."""
    question = {"name": "tags", "kind": "multi_choice", "options": ["a", "b"], "min_selected": 3}
    with pytest.raises(Invalid) as raised:
        parse_schema({"questions": [{"name": "ok", "kind": "text"}, question]})
    assert raised.value.details == [
        {"field": "schema.questions[1].min_selected", "message": "is more than the 2 options"}
    ]
    assert parse_schema({"questions": [question | {"min_selected": 2}]})
    assert QuestionSchema.model_validate({"questions": [question]})


def test_a_preference_whose_prompt_is_one_of_its_responses_is_refused() -> None:
    question = {"name": "better", "kind": "preference", "options": ["a", "b"], "prompt_field": "a"}
    with pytest.raises(Invalid) as raised:
        parse_schema({"questions": [question]})
    assert raised.value.details[0]["field"] == "schema.questions[0].prompt_field"
    assert parse_schema({"questions": [question | {"prompt_field": "prompt"}]})


def test_two_questions_reading_one_field_as_a_list_and_as_text_are_refused() -> None:
    """No task could be imported: each question would refuse what the other needs."""
    ranking = {"name": "order", "kind": "ranking", "field": "items"}
    spans = {"name": "ents", "kind": "spans", "field": "items", "labels": ["drug"]}
    with pytest.raises(Invalid) as raised:
        parse_schema({"questions": [ranking, spans]})
    assert raised.value.details == [
        {
            "field": "schema.questions[1]",
            "message": "reads data field 'items' as text, but question 'order' reads it as a list",
        }
    ]
    both_text = {"name": "better", "kind": "preference", "options": ["items", "other"]}
    assert parse_schema({"questions": [spans, both_text]})  # text for both: fine


def test_task_data_must_carry_the_fields_questions_read() -> None:
    problems = check_task_data(SCHEMA, {"text": 3, "left": "A", "candidates": ["only one"]})
    assert {p["field"] for p in problems} == {"data.text", "data.right", "data.candidates"}
    assert check_task_data(SCHEMA, DATA) == []


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("تناول المريض باراسيتامول 500 ملغ", "باراسيتامول"),
        ("💊 took 2 tablets of ibuprofen 400 mg", "ibuprofen"),
        ("👩🏽‍⚕️ prescribed amoxicillin", "amoxicillin"),
    ],
)
def test_span_offsets_are_code_points_in_any_script(text: str, word: str) -> None:
    start = text.index(word)
    span = {"start": start, "end": start + len(word), "label": "drug"}
    clean = check_answers(SCHEMA, DATA | {"text": text}, GOOD | {"ents": [span]})
    got = clean["ents"][0]
    assert text[got["start"] : got["end"]] == word


@st.composite
def span_sets(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    text = draw(st.text(min_size=1, max_size=40))
    spans = []
    for _ in range(draw(st.integers(0, 6))):
        start = draw(st.integers(0, len(text) - 1))
        end = draw(st.integers(start + 1, len(text)))
        spans.append({"start": start, "end": end, "label": draw(st.sampled_from(["drug", "dose"]))})
    return text, spans


@given(span_sets())
def test_spans_accepted_exactly_when_no_same_label_overlap(
    case: tuple[str, list[dict[str, Any]]],
) -> None:
    text, spans = case
    clash = any(
        a["label"] == b["label"] and a["start"] < b["end"] and b["start"] < a["end"]
        for i, a in enumerate(spans)
        for b in spans[i + 1 :]
    )
    try:
        clean = check_answers(SCHEMA, DATA | {"text": text}, GOOD | {"ents": spans})
    except Invalid:
        assert clash
    else:
        assert not clash
        assert sorted(map(str, clean["ents"])) == sorted(map(str, spans))
