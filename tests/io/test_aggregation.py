"""Aggregation per question kind: hand-checked tables, and a naive vote count to agree with."""

import csv
from collections import Counter
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quorum.domain import aggregation_rules as rules
from quorum.domain.aggregation import (
    Aggregate,
    Gold,
    Labels,
    aggregate,
    answers_schema,
    parse_json_lines,
)
from quorum.domain.aggregation_rules import _drop_overlaps
from quorum.domain.questions import QuestionSchema
from quorum.truth import DawidSkene, calibration_error

SCHEMA = QuestionSchema.model_validate(
    {
        "questions": [
            {"name": "c", "kind": "choice", "options": ["a", "b", "c"]},
            {"name": "m", "kind": "multi_choice", "options": ["x", "y", "z"], "min_selected": 1},
            {"name": "r", "kind": "rating", "min": 1, "max": 5},
            {"name": "p", "kind": "preference", "options": ["left", "right"], "ties": True},
            {"name": "k", "kind": "ranking", "field": "items"},
            {"name": "s", "kind": "spans", "field": "text", "labels": ["drug", "dose"]},
            {"name": "t", "kind": "text", "required": False},
        ]
    }
)
DRUG = {"start": 0, "end": 3, "label": "drug"}
DOSE = {"start": 4, "end": 6, "label": "dose"}


def labels(rows: list[tuple[int, int, dict[str, Any]]]) -> Labels:
    texts = [orjson.dumps(answers).decode() for _, _, answers in rows]
    n = len(rows)
    return Labels(
        np.arange(1, n + 1),
        np.array([task for task, _, _ in rows], np.int64),
        np.array([worker for _, worker, _ in rows], np.int64),
        np.zeros(n, "datetime64[us]"),
        np.full(n, np.nan),
        parse_json_lines(texts, answers_schema(SCHEMA)),
    )


ROWS = [
    (10, 1, {"c": "a", "m": ["x"], "r": 4, "p": "left", "k": [0, 1, 2], "s": [DRUG], "t": "hi"}),
    (10, 2, {"c": "a", "m": ["x", "y"], "r": 4, "p": "tie", "k": [1, 0, 2], "s": [DRUG, DOSE]}),
    (10, 3, {"c": "b", "m": ["x"], "r": 2, "p": "left", "k": [0, 1, 2], "s": []}),
    (20, 1, {"c": "c", "m": [], "r": 5, "p": "right", "k": [1, 0], "s": []}),
]


def test_majority_vote_per_kind() -> None:
    result = aggregate(SCHEMA, labels(ROWS), method="mv")
    assert result.task_id.tolist() == [10, 20]
    assert result.n_labels.tolist() == [3, 1]
    assert result.for_task(10) == {
        "c": ("a", pytest.approx(2 / 3)),
        "m": (["x"], pytest.approx(2 / 3)),  # x: 3 of 3; y: 1 of 3, so not chosen (p 2/3)
        "r": (4, pytest.approx(2 / 3)),
        "p": ("left", pytest.approx(2 / 3)),
        "k": ([0, 1, 2], pytest.approx(8 / 9)),  # Borda 5, 4, 0; pairs agreeing 3, 2, 3 of 3
        "s": ([DRUG], pytest.approx(4 / 9)),  # drug 2 of 3 kept, dose 1 of 3 dropped
        "t": (None, None),
    }
    # min_selected 1: the likeliest option is added even though no one chose any.
    assert result.for_task(20)["m"] == (["x"], 0.0)
    assert result.for_task(20)["s"] == ([], 1.0)
    assert result.for_task(99) == {}


def test_gold_is_clamped() -> None:
    gold_rows = parse_json_lines(
        ['{"c": "b", "k": [1, 0, 2], "s": [{"start": 4, "end": 6, "label": "dose"}]}'],
        answers_schema(SCHEMA),
    )
    result = aggregate(SCHEMA, labels(ROWS), method="mv", gold=Gold(np.array([10]), gold_rows))
    clamped = result.for_task(10)
    assert clamped["c"] == ("b", 1.0)
    assert clamped["k"] == ([1, 0, 2], 1.0)
    assert clamped["s"] == ([DOSE], 1.0)
    assert clamped["r"] == (4, pytest.approx(2 / 3))  # no gold for r


def test_ranking_gold_on_a_task_no_one_ranked_is_no_answer() -> None:
    """Task 30 has a gold ranking of four items and a label, but the label left the ranking out;
    the other tasks rank three items or fewer. Its ranking is null, not a crash."""
    rows = [*ROWS, (30, 1, {"c": "a"})]
    gold = Gold(np.array([30]), parse_json_lines(['{"k": [3, 2, 1, 0]}'], answers_schema(SCHEMA)))
    for method in ("mv", "ds"):
        result = aggregate(SCHEMA, labels(rows), method=method, gold=gold)
        assert result.for_task(30)["k"] == (None, None)
        assert result.for_task(10)["k"][0] == [0, 1, 2]


def test_a_question_no_one_answered_has_no_answer() -> None:
    rows = [(1, 1, {"c": "a"}), (1, 2, {"c": "b"}), (2, 1, {"c": "a"})]
    result = aggregate(SCHEMA, labels(rows), method="ds")
    assert result.for_task(1)["k"] == (None, None)
    assert np.isnan(result.questions["s"].confidence).all()


def test_overlapping_spans_with_one_label_keep_the_likelier() -> None:
    # A skill-weighted estimator can find two overlapping spans likely; majority vote cannot.
    keep = np.array([True, True, True, True])
    p = np.array([0.6, 0.9, 0.7, 0.8])
    task, label = np.array([1, 1, 1, 2]), np.array([0, 0, 1, 0])
    start, end = np.array([0, 2, 1, 0]), np.array([5, 4, 3, 5])
    kept = _drop_overlaps(keep, p, task, start, end, label)
    # 0 and 1 overlap with one label: 1 is likelier. 2 has another label, 3 another task.
    assert kept.tolist() == [False, True, True, True]
    assert keep.tolist() == [True, True, True, True]  # the input is left alone


def test_a_long_span_overlapping_two_that_do_not_overlap_each_other_is_caught() -> None:
    # Sorted by start, [0, 12) meets [5, 7) first; [9, 12) overlaps only the first. When
    # [0, 12) is the likeliest, both others go: the answer never overlaps within a label.
    keep = np.ones(3, bool)
    start, end = np.array([0, 5, 9]), np.array([12, 7, 12])
    one = np.zeros(3, np.int64)
    assert _drop_overlaps(keep, np.array([0.9, 0.6, 0.7]), one, start, end, one).tolist() == [
        True,
        False,
        False,
    ]
    assert _drop_overlaps(keep, np.array([0.6, 0.9, 0.7]), one, start, end, one).tolist() == [
        False,
        True,
        True,
    ]


def test_methods_reach_quorum_truth() -> None:
    # Worker 9 disagrees with everyone on the other tasks, so Dawid-Skene distrusts them.
    rows = [(t, w, {"c": "a"}) for t in range(1, 6) for w in (1, 2)]
    rows += [(t, 9, {"c": "b"}) for t in range(1, 6)]
    rows += [(6, 1, {"c": "a"}), (6, 9, {"c": "b"}), (6, 8, {"c": "b"})]
    majority = aggregate(SCHEMA, labels(rows), method="mv").for_task(6)["c"]
    skilled = aggregate(SCHEMA, labels(rows), method="ds").for_task(6)["c"]
    assert majority[0] == "b"
    assert skilled[0] == "a"
    with pytest.raises(ValueError, match="unknown method"):
        aggregate(SCHEMA, labels(rows), method="best")


def test_inputs_are_not_changed() -> None:
    given_labels = labels(ROWS)
    before = (given_labels.task_id.copy(), given_labels.answers.to_pylist())
    aggregate(SCHEMA, given_labels, method="ds")
    assert (given_labels.task_id == before[0]).all()
    assert given_labels.answers.to_pylist() == before[1]


votes = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 5), st.sampled_from(["a", "b", "c"])),
    min_size=1,
    max_size=60,
    unique_by=lambda v: (v[0], v[1]),
)


@given(votes)
@settings(max_examples=60, deadline=None)
def test_majority_vote_agrees_with_counting(rows: list[tuple[int, int, str]]) -> None:
    result = aggregate(SCHEMA, labels([(t, w, {"c": c}) for t, w, c in rows]), method="mv")
    for task in {t for t, _, _ in rows}:
        counts = Counter(c for t, _, c in rows if t == task)
        best = max(counts.values())
        answer, confidence = result.for_task(task)["c"]
        assert answer == min(c for c, n in counts.items() if n == best)  # ties: smallest
        assert confidence == pytest.approx(best / sum(counts.values()))


rankings = st.lists(
    st.tuples(st.integers(0, 4), st.permutations([0, 1, 2, 3])), min_size=1, max_size=30
)


@given(rankings)
@settings(max_examples=40, deadline=None)
def test_borda_agrees_with_counting(rows: list[tuple[int, list[int]]]) -> None:
    result = aggregate(
        SCHEMA, labels([(t, w, {"k": r}) for w, (t, r) in enumerate(rows)]), method="mv"
    )
    for task in {t for t, _ in rows}:
        ranked = [r for t, r in rows if t == task]
        score = Counter(dict.fromkeys(range(4), 0))
        for ranking in ranked:
            for place, item in enumerate(ranking):
                score[item] += 3 - place
        expected = sorted(range(4), key=lambda item: (-score[item], item))
        answer, confidence = result.for_task(task)["k"]
        assert answer == expected
        assert 0.0 <= confidence <= 1.0
        if len(ranked) == 1:
            assert confidence == 1.0


DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
SENTIMENT = QuestionSchema.model_validate(
    {"questions": [{"name": "label", "kind": "choice", "options": ["0", "1", "2", "3", "4"]}]}
)


def _sentiment(given: int) -> tuple[Labels, Gold, dict[int, str], list[int]]:
    """weather_sentiment_amt as labels, gold for ``given`` seeded gold tasks, every gold answer,
    and the gold tasks left to score."""
    folder = DATASETS / "weather_sentiment_amt"
    with (folder / "labels.csv").open() as file:
        rows = list(csv.DictReader(file))
    with (folder / "gold.csv").open() as file:
        truth = {int(row["task"]): row["label"] for row in csv.DictReader(file)}
    workers = {name: code for code, name in enumerate(sorted({r["worker"] for r in rows}))}
    texts = [orjson.dumps({"label": r["label"]}).decode() for r in rows]
    found = Labels(
        np.arange(1, len(rows) + 1),
        np.array([int(r["task"]) for r in rows], np.int64),
        np.array([workers[r["worker"]] for r in rows], np.int64),
        np.zeros(len(rows), "datetime64[us]"),
        np.full(len(rows), np.nan),
        parse_json_lines(texts, answers_schema(SENTIMENT)),
    )
    shuffled = np.random.default_rng(0).permutation(sorted(truth)).tolist()
    chosen, held = shuffled[:given], shuffled[given:]
    answers = [orjson.dumps({"label": truth[task]}).decode() for task in chosen]
    gold = Gold(np.array(chosen, np.int64), parse_json_lines(answers, answers_schema(SENTIMENT)))
    return found, gold, truth, held


def _calibration_error(result: Aggregate, truth: dict[int, str], tasks: list[int]) -> float:
    rows = result.positions(tasks)
    confidence = result.questions["label"].confidence[rows]
    answers = result.questions["label"].answer.take(pa.array(rows)).to_pylist()
    correct = [answer == truth[task] for answer, task in zip(answers, tasks, strict=True)]
    return calibration_error(confidence, correct)


@pytest.mark.parametrize(("method", "gain"), [("ds", 4.0), ("mv", 1.5)])
def test_confidence_is_calibrated_on_enough_gold(method: str, gain: float) -> None:
    found, gold, truth, held = _sentiment(27)  # 27 of the 300 gold tasks
    calibrated = aggregate(SENTIMENT, found, method=method, gold=gold)
    with patch.object(rules, "MIN_CALIBRATION_GOLD", 28):
        raw = aggregate(SENTIMENT, found, method=method, gold=gold)
    assert raw.questions["label"].answer == calibrated.questions["label"].answer
    # Seen: DS from 0.15 to 0.01 on the held-out gold, MV (vote shares) from 0.11 to 0.06.
    after, before = (_calibration_error(r, truth, held) for r in (calibrated, raw))
    assert after < before / gain
    on_gold = calibrated.positions(gold.task_id)
    assert calibrated.questions["label"].confidence[on_gold].tolist() == [1.0] * 27


def test_too_little_gold_leaves_the_posterior_as_it_is() -> None:
    found, gold, _, _ = _sentiment(9)
    result = aggregate(SENTIMENT, found, method="ds", gold=gold)
    tasks, task = np.unique(found.task_id, return_inverse=True)
    codes = np.array([int(v) for v in found.answers.column("label").to_pylist()])
    gold_codes = np.full(tasks.size, -1)
    gold_codes[np.searchsorted(tasks, gold.task_id)] = [
        int(v) for v in gold.answers.column("label").to_pylist()
    ]
    ds = DawidSkene().fit(task, found.worker_id, codes, gold=gold_codes, n_classes=5)
    expected = ds.probas_.max(axis=1)
    assert result.questions["label"].confidence == pytest.approx(expected)
