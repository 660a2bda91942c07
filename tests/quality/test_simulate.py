"""``quorum simulate``: a real label set replayed through the platform's own lease, submit and
quality loop (docs/simulation.md), on a small generated label set."""

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from quorum.cli import app
from quorum.domain import assignments, quality_loop
from quorum.domain.simulation import LabelSet, all_label_accuracy, simulate
from quorum.io.labels import encode, read_gold, read_labels

runner = CliRunner()
TASKS, WORKERS, PER_TASK = 24, 8, 6
SHORT = 5  # this task has only two labels in the data


def write_set(folder: Path, seed: int = 7) -> tuple[Path, Path]:
    """Binary labels: seven workers right 85% of the time and one who answers at random; each
    task labelled by six of them, task ``SHORT`` by two only."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, TASKS)
    skill = np.array([0.85] * (WORKERS - 1) + [0.5])
    lines = ["task,worker,label"]
    for task in range(TASKS):
        workers = rng.permutation(WORKERS)[: 2 if task == SHORT else PER_TASK]
        for worker in workers:
            right = rng.random() < skill[worker]
            label = truth[task] if right else 1 - truth[task]
            lines.append(f"t{task:02d},w{worker},{'yes' if label else 'no'}")
    labels, gold = folder / "labels.csv", folder / "gold.csv"
    labels.write_text("\n".join(lines) + "\n")
    rows = [f"t{task:02d},{'yes' if truth[task] else 'no'}" for task in range(TASKS)]
    gold.write_text("task,label\n" + "\n".join(rows) + "\n")
    return labels, gold


def label_set(labels: Path, gold: Path) -> LabelSet:
    encoded, codes = encode(read_labels(labels), read_gold(gold))
    return LabelSet(
        encoded.task, encoded.worker, encoded.label, codes, [str(c) for c in encoded.classes],
        len(encoded.tasks), len(encoded.workers),
    )  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_set(tmp_path_factory.mktemp("simulate"))


class Recorder:
    """Every submission the replay makes through ``quorum.domain.assignments``, and the loop's
    ticks and re-aggregations."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.submitted: list[tuple[int, int]] = []  # (user id, task id)
        self.calls: Counter[str] = Counter()
        submit, tick, refit = assignments.submit_view, quality_loop.tick, quality_loop.refit

        def submit_view(session: Any, user_id: int, *args: Any) -> Any:
            view = submit(session, user_id, *args)
            self.submitted.append((user_id, view.task_id))
            return view

        def counted(name: str, step: Any) -> Any:
            def run(*args: Any, **kwargs: Any) -> Any:
                self.calls[name] += 1
                return step(*args, **kwargs)

            return run

        monkeypatch.setattr(assignments, "submit_view", submit_view)
        monkeypatch.setattr(quality_loop, "tick", counted("tick", tick))
        monkeypatch.setattr(quality_loop, "refit", counted("refit", refit))

    def per_task(self) -> Counter[int]:
        return Counter(task for _, task in self.submitted)


def test_json_contract(files: tuple[Path, Path]) -> None:
    labels, gold = files
    result = runner.invoke(app, ["simulate", str(labels), "--gold", str(gold), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert list(summary) == [
        "policy", "tasks", "labels_used", "labels_available", "accuracy", "accuracy_all_labels",
    ]  # fmt: skip
    assert summary["policy"] == "adaptive"
    assert summary["tasks"] == TASKS
    assert summary["labels_available"] == (TASKS - 1) * PER_TASK + 2
    assert 3 * (TASKS - 1) + 2 <= summary["labels_used"] <= summary["labels_available"]
    assert 0 <= summary["accuracy"] <= 1 and 0 <= summary["accuracy_all_labels"] <= 1


def test_fixed_overlap_takes_each_task_in_lease_order(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(monkeypatch)
    result = simulate(label_set(*files), policy="fixed", overlap=4)
    # every task its four labels, where the data has them; the short task its two
    assert result.labels_used == 4 * (TASKS - 1) + 2
    assert sorted(recorder.per_task().values()) == [2] + [4] * (TASKS - 1)
    # nearest completion first, then import order: each task is filled before the next starts
    order = [task for _, task in recorder.submitted]
    assert order == sorted(order)
    assert len(set(recorder.submitted)) == len(recorder.submitted)  # nobody twice on a task
    assert recorder.calls["tick"] > 0 and recorder.calls["refit"] == 0


def test_the_loop_runs_every_sweep_labels(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = label_set(*files)
    every_label = Recorder(monkeypatch)
    first = simulate(data, policy="fixed", overlap=3, sweep_labels=1)
    assert every_label.calls["tick"] == first.labels_used  # a tick after each submission
    every_25 = Recorder(monkeypatch)
    second = simulate(data, policy="fixed", overlap=3, sweep_labels=25)
    assert every_25.calls["tick"] == -(-second.labels_used // 25)
    assert second == first  # fixed overlap does not wait for the loop


def test_fixed_overlap_with_a_fraction(files: tuple[Path, Path]) -> None:
    data = label_set(*files)
    half = simulate(data, policy="fixed", overlap=2.5, seed=3)
    extra = round(0.5 * TASKS)  # tasks drawn for a third label; the short one cannot take it
    assert half.labels_used in (2 * TASKS + extra, 2 * TASKS + extra - 1)
    assert simulate(data, policy="fixed", overlap=2.5, seed=3) == half


def test_adaptive_stays_within_the_policy(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(monkeypatch)
    data = label_set(*files)
    result = simulate(data, policy="adaptive", overlap=3, max_overlap=5)
    counts = recorder.per_task()
    assert result.labels_used == len(recorder.submitted) == sum(counts.values())
    assert len(counts) == TASKS
    assert all(3 <= n <= 5 for task, n in counts.items() if n != 2)  # the short task has 2
    assert list(counts.values()).count(2) == 1
    assert any(n > 3 for n in counts.values())  # the loop asked for more on some tasks
    assert len(set(recorder.submitted)) == len(recorder.submitted)
    assert recorder.calls["refit"] > 0
    assert simulate(data, policy="adaptive", overlap=3, max_overlap=5) == result  # seeded


def test_a_worker_repeated_on_a_task_is_asked_once(tmp_path: Path) -> None:
    labels, gold = write_set(tmp_path)
    rows = labels.read_text().splitlines()
    again = [row.replace(",yes", ",NO").replace(",no", ",yes").replace(",NO", ",no")
             for row in rows[1:] if row.startswith("t03,")]  # fmt: skip
    labels.write_text("\n".join([*rows, *again]) + "\n")  # each t03 worker answers twice
    data = label_set(labels, gold)
    assert data.task.size == (TASKS - 1) * PER_TASK + 2 + PER_TASK
    assert data.collectable().size == (TASKS - 1) * PER_TASK + 2  # first answers only
    result = simulate(data, policy="fixed", overlap=PER_TASK)
    assert result.labels_used == result.labels_available == data.collectable().size
    assert result.rows_in_file == data.task.size
    assert (result.accuracy_all_labels, result.accuracy_every_row) == all_label_accuracy(data)
    assert result.accuracy == result.accuracy_all_labels  # every label it can collect


@pytest.mark.parametrize(
    ("line", "expected"),
    [("t00,w1\n", "line 3"), ("t00,,yes\n", "line 3, field 'worker'")],
)
def test_malformed_labels_exit_2_with_file_and_line(
    tmp_path: Path, line: str, expected: str
) -> None:
    labels, gold = write_set(tmp_path)
    text = labels.read_text().splitlines(keepends=True)
    labels.write_text(text[0] + text[1] + line + "".join(text[2:]))
    result = runner.invoke(app, ["simulate", str(labels), "--gold", str(gold), "--json"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {labels.name}, {expected}")
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--overlap", "2.5"], "--overlap 2.5: the adaptive policy takes a whole number"),
        (["--policy", "random"], "--policy random"),
        (["--overlap", "4", "--max-overlap", "3"], "--max-overlap 3"),
    ],
)
def test_bad_options_exit_2(files: tuple[Path, Path], options: list[str], expected: str) -> None:
    labels, gold = files
    result = runner.invoke(app, ["simulate", str(labels), "--gold", str(gold), *options])
    assert result.exit_code == 2
    assert expected in result.stderr
