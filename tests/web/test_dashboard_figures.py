"""The dashboard's figures from plain labels: agreement, confusion, per-task agreement, buckets."""

from datetime import UTC, datetime, timedelta

import pytest

from quorum.domain import dashboard_figures as figures
from quorum.domain.dashboard_figures import Label
from quorum.domain.questions import QuestionSchema, TextQuestion
from quorum.truth import krippendorff_alpha

SCHEMA = QuestionSchema.model_validate(
    {
        "questions": [
            {"name": "c", "kind": "choice", "options": ["yes", "no", "maybe"]},
            {"name": "r", "kind": "rating", "min": 1, "max": 5},
            {"name": "m", "kind": "multi_choice", "options": ["x", "y"]},
            {"name": "k", "kind": "ranking", "field": "items"},
            {"name": "t", "kind": "text"},
        ]
    }
)
C, R, M, K, T = SCHEMA.questions


def labels(rows: list[tuple[int, str, object]]) -> list[Label]:
    return [Label(task, who, value) for task, who, value in rows]


def test_nominal_agreement_is_krippendorffs_alpha_from_truth() -> None:
    rows = [
        (1, "a", "yes"),
        (1, "b", "yes"),
        (2, "a", "no"),
        (2, "b", "yes"),
        (3, "a", "no"),
        (3, "b", "no"),
    ]
    result = figures.agreement(C, labels(rows))
    expected = krippendorff_alpha([0, 0, 1, 1, 2, 2], [1, 1, 0, 1, 0, 0], level="nominal", n_boot=0)
    assert result.value == pytest.approx(expected.value)
    assert result.percent == pytest.approx(2 / 3)
    assert result.tasks == 3 and result.low is not None and result.high is not None


def test_ratings_use_the_interval_level() -> None:
    close = figures.agreement(R, labels([(1, "a", 4), (1, "b", 5), (2, "a", 1), (2, "b", 1)]))
    far = figures.agreement(R, labels([(1, "a", 1), (1, "b", 5), (2, "a", 1), (2, "b", 1)]))
    assert close.value is not None and far.value is not None and close.value > far.value
    assert close.metric == "Krippendorff's α (interval)"


def test_perfect_and_undefined_agreement() -> None:
    perfect = figures.agreement(
        C, labels([(1, "a", "yes"), (1, "b", "yes"), (2, "a", "no"), (2, "b", "no")])
    )
    assert perfect.value == pytest.approx(1.0)
    same = figures.agreement(C, labels([(1, "a", "yes"), (1, "b", "yes")]))
    assert same.value is None and same.percent == 1.0 and "undefined" in same.note
    alone = figures.agreement(C, labels([(1, "a", "yes"), (2, "b", "no")]))
    assert alone.value is None and alone.tasks == 0 and "two labels" in alone.note


def test_multi_choice_compares_each_option_and_ranking_the_first_item() -> None:
    multi = figures.agreement(
        M, labels([(1, "a", ["x"]), (1, "b", ["x", "y"]), (2, "a", []), (2, "b", [])])
    )
    assert multi.value is not None and multi.tasks == 2
    ranking = figures.agreement(
        K, labels([(1, "a", [0, 1]), (1, "b", [0, 1]), (2, "a", [1, 0]), (2, "b", [1, 0])])
    )
    assert ranking.value == pytest.approx(1.0)


def test_text_is_not_measured() -> None:
    assert isinstance(T, TextQuestion)
    result = figures.agreement(T, labels([(1, "a", "x"), (1, "b", "y")]))
    assert result.value is None and "not measured" in result.note


def test_confusion_counts_pairs_and_gold() -> None:
    rows = labels([(1, "a", "yes"), (1, "b", "no"), (1, "c", "no"), (2, "a", "maybe")])
    result = figures.confusion(C, rows, {1: "no", 2: "maybe", 3: "yes"})  # type: ignore[arg-type]
    assert result.labels == ["yes", "no", "maybe"]
    assert result.pairs == [[0, 2, 0], [2, 2, 0], [0, 0, 0]]
    assert result.gold == [[0, 0, 0], [1, 2, 0], [0, 0, 1]]
    assert figures.confusion(C, rows, {}).gold is None  # type: ignore[arg-type]
    assert not result.empty


def test_a_confusion_with_nothing_counted_is_empty() -> None:
    gold_only = figures.confusion(C, [], {1: "no"})  # type: ignore[arg-type]
    assert gold_only.gold is None and gold_only.empty
    pairs = labels([(2, "a", "yes"), (2, "b", "no")])  # no label on the gold task 1
    off_gold = figures.confusion(C, pairs, {1: "no"})  # type: ignore[arg-type]
    assert off_gold.gold is None and off_gold.pairs[0][1] == 1 and not off_gold.empty
    one_label = figures.confusion(C, labels([(1, "a", "yes")]), {})  # type: ignore[arg-type]
    assert one_label.empty  # one label per task: no pair of annotators yet


def test_per_task_agreement_and_the_lowest() -> None:
    by_question = {
        "c": labels(
            [
                (1, "a", "yes"),
                (1, "b", "yes"),
                (2, "a", "yes"),
                (2, "b", "no"),
                (2, "c", "no"),
                (3, "a", "no"),
            ]
        ),
    }
    tasks = {t.task_id: t for t in figures.task_agreement(SCHEMA.questions, by_question)}
    assert set(tasks) == {1, 2}  # task 3 has one label
    assert tasks[1].agreement == 1.0 and tasks[2].agreement == pytest.approx(1 / 3)
    assert [t.task_id for t in figures.lowest(list(tasks.values()))] == [2, 1]


def test_throughput_buckets_by_hour_day_or_week() -> None:
    start = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    unit, buckets = figures.throughput(
        [start, start + timedelta(minutes=10), start + timedelta(hours=2)]
    )
    assert unit == "hour" and [n for _, n in buckets] == [2, 0, 1]
    assert buckets[0][0] == datetime(2026, 1, 5, 9, tzinfo=UTC)
    unit, buckets = figures.throughput([start, start + timedelta(days=3)])
    assert unit == "day" and [n for _, n in buckets] == [1, 0, 0, 1]
    unit, buckets = figures.throughput([start, start + timedelta(days=400)])
    assert unit == "week" and buckets[0][0].weekday() == 0 and sum(n for _, n in buckets) == 2
    assert figures.throughput([]) == ("day", [])


def test_count_axes_tick_whole_numbers_when_counts_are_small() -> None:
    from quorum.web.dashboard import _throughput

    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    few = _throughput([(start, 1)], "hour")["layout"]
    assert few["yaxis"]["dtick"] == 1 and few["yaxis2"]["dtick"] == 1
    many = _throughput([(start, 40), (start + timedelta(hours=1), 9)], "hour")["layout"]
    assert "dtick" not in many["yaxis"] and "dtick" not in many["yaxis2"]
