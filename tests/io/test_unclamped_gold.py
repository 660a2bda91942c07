"""Gold not clamped (``use_gold=False``): the crowd's own answers, confidences calibrated on gold.

Every answer must be what aggregating without gold gives; only the confidences may change, and
only once 10 labelled tasks have gold for the question.
"""

import numpy as np
import orjson
import pyarrow as pa
import pytest
from tests.io.test_aggregation import (
    ROWS,
    SCHEMA,
    SENTIMENT,
    _calibration_error,
    _sentiment,
    labels,
)
from tests.io.test_yes_no_calibration import (
    EMOTION_LABELS,
    EMOTION_TRUTH,
    SPAN_LABELS,
    SPAN_TRUTH,
    SPANS,
    _emotions,
    _error,
    _gold,
    _place,
    _split,
)

from quorum.domain.aggregation import Aggregate, Gold, Labels, aggregate, answers_schema
from quorum.domain.aggregation import parse_json_lines as parse
from quorum.domain.questions import QuestionSchema


def _blind_and_unclamped(
    schema: QuestionSchema, found: Labels, gold: Gold, method: str = "ds"
) -> tuple[Aggregate, Aggregate]:
    """The aggregate without gold (what ``use_gold=False`` gave before), and with gold given
    but not clamped."""
    blind = aggregate(schema, found, method=method)
    return blind, aggregate(schema, found, method=method, gold=gold, clamp_gold=False)


def test_no_kind_clamps_and_one_gold_task_changes_nothing() -> None:
    # Task 10's gold differs from its labels in every question, with options, a rating and a
    # span no label gave: not one answer or confidence may move (one gold task calibrates none).
    gold = parse(
        [
            orjson.dumps(
                {
                    "c": "b",
                    "m": ["z"],
                    "r": 1,
                    "p": "right",
                    "k": [2, 1, 0],
                    "s": [{"start": 7, "end": 9, "label": "drug"}],
                }
            ).decode()
        ],
        answers_schema(SCHEMA),
    )
    blind, unclamped = _blind_and_unclamped(SCHEMA, labels(ROWS), Gold(np.array([10]), gold))
    for task in (10, 20):
        assert unclamped.for_task(task) == blind.for_task(task)


@pytest.mark.parametrize("method", ["ds", "auto"])
def test_choice_keeps_the_crowds_answers_and_calibrates_gold_tasks_too(method: str) -> None:
    found, gold, truth, held = _sentiment(27)
    blind, unclamped = _blind_and_unclamped(SENTIMENT, found, gold, method)
    assert unclamped.questions["label"].answer == blind.questions["label"].answer
    on_gold = gold.task_id.tolist()
    confidence = unclamped.questions["label"].confidence[unclamped.positions(on_gold)]
    assert confidence.max() < 0.9  # 20 labels a task: raw DS says 1.0 for 26 of the 27
    # Seen (auto without gold is DS): on the other 273 tasks (gold held out) from 0.156 to
    # 0.053, on the 27 gold tasks themselves from 0.185 to 0.034.
    for tasks in (held, on_gold):
        before, after = (_calibration_error(r, truth, tasks) for r in (blind, unclamped))
        assert after < before / 2


def _sentiment_gold(truth: dict[int, str], tasks: list[int]) -> Gold:
    texts = [orjson.dumps({"label": truth[task]}).decode() for task in tasks]
    return Gold(np.array(tasks, np.int64), parse(texts, answers_schema(SENTIMENT)))


@pytest.mark.parametrize("given", [9, 10])
def test_a_gold_value_no_label_gave_is_no_class_but_counts(given: int) -> None:
    # No label says "4": its gold must not become a class (DS's posteriors would move), and still
    # counts as a gold task, one where the crowd gave the truth a probability of 0.
    found, _, truth, _ = _sentiment(0)
    found = found.take(np.flatnonzero(np.array(found.answers.column("label").to_pylist()) != "4"))
    fours = [task for task, value in truth.items() if value == "4"]
    others = [task for task, value in truth.items() if value != "4"]
    gold = _sentiment_gold(truth, [fours[0], *others[: given - 1]])
    blind, unclamped = _blind_and_unclamped(SENTIMENT, found, gold)
    assert unclamped.questions["label"].answer == blind.questions["label"].answer
    confidence, raw = unclamped.questions["label"].confidence, blind.questions["label"].confidence
    if given == 9:
        np.testing.assert_array_equal(confidence, raw)
    else:
        assert (confidence < raw).all()


def test_too_little_gold_leaves_the_blind_posteriors() -> None:
    found, gold, _, _ = _sentiment(9)
    blind, unclamped = _blind_and_unclamped(SENTIMENT, found, gold)
    assert unclamped.questions["label"].answer == blind.questions["label"].answer
    np.testing.assert_array_equal(
        unclamped.questions["label"].confidence, blind.questions["label"].confidence
    )


@pytest.mark.parametrize("given", [9, 20])
def test_multi_choice_calibrates_on_the_options_of_gold_tasks(given: int) -> None:
    chosen, held = _split(100, given, seed=0)
    gold = _gold(_emotions(), EMOTION_TRUTH, chosen)
    blind, unclamped = _blind_and_unclamped(_emotions(), EMOTION_LABELS, gold)
    assert unclamped.questions["q"].answer == blind.questions["q"].answer
    confidence, raw = unclamped.questions["q"].confidence, blind.questions["q"].confidence
    if given == 9:
        np.testing.assert_array_equal(confidence, raw)
    else:
        assert (confidence[unclamped.positions(chosen)] < 1).all()
        # Seen: on the 80 other headlines from 0.435 to 0.221, on the 20 gold ones 0.593 to 0.250.
        for tasks in (held, chosen):
            before, after = (_error(r, EMOTION_TRUTH, tasks) for r in (blind, unclamped))
            assert after < before / 1.5


def _spans_of(result: Aggregate, tasks: list[int]) -> list[set[tuple[int, int, str]]]:
    answers = result.questions["q"].answer.take(pa.array(result.positions(tasks)))
    return [{_place(span) for span in spans} for spans in answers.to_pylist()]


def _marked(found: Labels, tasks: list[int]) -> list[set[tuple[int, int, str]]]:
    marks: dict[int, set[tuple[int, int, str]]] = {task: set() for task in tasks}
    rows = zip(found.task_id.tolist(), found.answers.column("q").to_pylist(), strict=True)
    for task, spans in rows:
        if task in marks:
            marks[task] |= {_place(span) for span in spans or []}
    return [marks[task] for task in tasks]


def test_spans_gold_adds_no_candidate_and_calibrates_the_marked_ones() -> None:
    chosen, held = _split(200, 20, seed=0)
    gold = _gold(SPANS, SPAN_TRUTH, chosen)
    blind, unclamped = _blind_and_unclamped(SPANS, SPAN_LABELS, gold)
    assert unclamped.questions["q"].answer == blind.questions["q"].answer
    golden = [{_place(span) for span in SPAN_TRUTH[task]} for task in chosen]
    marked = _marked(SPAN_LABELS, chosen)
    assert any(spans - mine for spans, mine in zip(golden, marked, strict=True))  # misses
    answers = _spans_of(unclamped, chosen)
    assert all(answer <= mine for answer, mine in zip(answers, marked, strict=True))
    # Seen: on the 180 other texts from 0.395 to 0.104, on the 20 gold ones 0.419 to 0.223.
    for tasks in (held, chosen):
        before, after = (_error(r, SPAN_TRUTH, tasks, key=_place) for r in (blind, unclamped))
        assert after < before / 1.5


@pytest.mark.parametrize("given", [9, 10])
def test_spans_count_gold_tasks_with_a_marked_candidate(given: int) -> None:
    # Tasks 16, 26 and 67 hold mentions no one marked: clamped, each would count (its gold
    # spans are candidates); not clamped, none does, and gold never adds a decision.
    marks = SPAN_LABELS.answers.column("q").to_pylist()
    marked = np.unique(SPAN_LABELS.task_id[[bool(spans) for spans in marks]])
    unmarked = [task for task, spans in SPAN_TRUTH.items() if spans and task not in marked]
    assert unmarked == [16, 26, 67]
    chosen = [*marked[:given].tolist(), *unmarked]
    blind, unclamped = _blind_and_unclamped(SPANS, SPAN_LABELS, _gold(SPANS, SPAN_TRUTH, chosen))
    assert unclamped.questions["q"].answer == blind.questions["q"].answer
    confidence, raw = unclamped.questions["q"].confidence, blind.questions["q"].confidence
    if given == 9:
        np.testing.assert_array_equal(confidence, raw)
    else:  # every task someone marked, gold or not; the others stay at 1
        changed = np.flatnonzero(confidence != raw)
        assert unclamped.task_id[changed].tolist() == marked.tolist()
        assert (confidence[unclamped.positions(unmarked)] == 1.0).all()
