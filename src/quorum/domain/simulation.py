"""``quorum simulate``: replay a real label set through the platform's own rules.

Nothing here re-implements a rule. A temporary SQLite database gets one project (one choice
question whose options are the data's classes), one user per worker of the data, every task
imported, and the policy asked for. Then, as annotators would, the workers ask for tasks and
answer them through ``quorum.domain.assignments`` (the same lease and submit as the API), and
the quality loop runs as its periodic sweep runs it in production (``quality_jobs.find_work``):
every ``sweep_labels`` submissions (``SWEEP_LABELS``, 1 by default) and whenever the queue runs
dry, a ``quality_loop.tick`` for the new labels, then ``quality_loop.refit`` when
``quality_loop.refit_due`` says so. When
the data is used up, one last re-aggregation decides every task again (the job would run once
the project's labels stop growing too), which may open more slots.

Hidden gold: a share of the gold tasks (``GOLD_SHARE``, drawn with the seed) is imported with
its gold, as an owner would import known answers; those tasks are labelled like any other (the
project does not hide them: ``gold_rate`` 0), their labels grade the workers (trust, and
auto-pause as in production), and aggregation clamps them. Accuracy is scored on the other gold
tasks only.

What the simulator decides is only what the data decides in real life:

- **Who asks next** (routing). The task to fill is the one the lease order hands out first;
  among the workers who labelled it in the data and were not asked yet, the next one asked is
  the one whose label is worth most under the current worker model
  (``truth.adaptive.label_value``; file order before the first model, and always with the fixed
  policy). The lease then hands that worker this task, and the worker answers what they
  answered in the data. The data has no tiers: every worker is tier 3, so an escalated task is
  never left without anyone allowed to take it, and routing by value already sends it to the
  most reliable worker left.
- **When a task runs dry**. When no worker of the data is left for a task (or none of the tier
  it is reserved for), the task is closed with the labels it has (its overlap set to them).
  A later decision may reopen it; it is closed again.
- **A fractional overlap** (fixed policy, for comparisons at a given label budget): the whole
  part is the project's overlap, and a seeded share of the tasks gets one more, as an owner
  raising those tasks' overlap.

Accuracy is that of Dawid-Skene on the labels collected that the platform aggregates (not
those of annotators paused in the project), hidden gold clamped, against the rest of the gold;
next to it the same on every label the platform could collect (the same estimator and
encoding): each worker's first answer to a task, since the platform never asks an annotator for
a task twice (``LabelSet.collectable``; some sets repeat a worker on a task, ``duchenne`` in
4 rows of 10). The same fit on every row of the file is kept too (``accuracy_every_row``).
Labels used counts every label collected, paused annotators' included: they were paid for.
"""

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import event, select, update

from quorum.db.engine import Database, make_engine
from quorum.db.migrate import upgrade
from quorum.db.models import Annotation, Project, QualityState, Role, Task, TaskStatus
from quorum.db.types import utcnow
from quorum.domain import adaptive_loop, assignments, projects, quality_loop, users
from quorum.domain.lease_rules import LEASE_ORDER, Submission
from quorum.domain.pause import usable_label
from quorum.domain.task_status import status_after
from quorum.domain.tasks import Record, import_tasks
from quorum.truth import DawidSkene
from quorum.truth.adaptive import TARGET, TEMPERATURE, label_value, task_posterior

IntArray = npt.NDArray[np.intp]
Policy = Literal["fixed", "adaptive"]
QUESTION = "label"
GOLD_SHARE = 0.10  # of the gold tasks, imported with their gold (hidden gold)
TIER = 3
# NOTE: labels between two sweeps of the loop. 1: the loop keeps up with every submission (DESIGN
# section 6). A team of dozens at a label every 10-20 s, with a sweep every 2-5 s
# (quality_jobs), submits a few to a few dozen between sweeps; docs/simulation.md shows both.
SWEEP_LABELS = 1
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class LabelSet:
    """Integer-coded labels (``quorum.io.labels.encode``), and each task's gold code or -1."""

    task: IntArray
    worker: IntArray
    label: IntArray
    gold: IntArray
    classes: list[str]
    n_tasks: int
    n_workers: int

    def by_task(self) -> "LabelSet":
        """The same labels grouped by task, each task's in file order."""
        order = np.argsort(self.task, kind="stable")
        return LabelSet(
            self.task[order], self.worker[order], self.label[order], self.gold, self.classes,
            self.n_tasks, self.n_workers,
        )  # fmt: skip

    def split_gold(self, share: float, seed: int) -> tuple[IntArray, IntArray]:
        """(hidden, scored): ``share`` of the gold tasks (seeded) as gold the platform knows,
        the rest to score; -1 where a task is in neither."""
        known = np.flatnonzero(self.gold >= 0)
        chosen = np.random.default_rng(seed).permutation(known)[: round(share * known.size)]
        hidden, scored = np.full_like(self.gold, -1), self.gold.copy()
        hidden[chosen], scored[chosen] = self.gold[chosen], -1
        return hidden, scored

    def collectable(self) -> IntArray:
        """Rows the platform can collect: each worker's first answer to a task. The platform
        never asks an annotator for a task twice, so a repeated answer is never replayed."""
        pair = self.task * max(self.n_workers, 1) + self.worker
        first: IntArray = np.sort(np.unique(pair, return_index=True)[1])
        return first


@dataclass(frozen=True)
class Result:
    policy: str
    tasks: int
    labels_used: int
    labels_available: int  # the labels the platform can collect (``LabelSet.collectable``)
    accuracy: float | None
    accuracy_all_labels: float | None  # on ``labels_available``: what collecting all gives
    rows_in_file: int  # every row, repeated answers of a worker to a task included
    accuracy_every_row: float | None  # the same fit on every row of the file


def simulate(
    data: LabelSet,
    *,
    policy: Policy = "adaptive",
    overlap: float = 3,
    max_overlap: int | None = None,
    target_confidence: float | None = None,
    seed: int = 0,
    sweep_labels: int = SWEEP_LABELS,
    progress: Progress | None = None,
) -> Result:
    """Replay ``data`` (module doc); ``max_overlap`` defaults to the most common number of
    labels per task the platform can collect from the data (``LabelSet.collectable``). A
    fractional ``overlap`` (fixed policy only) gives its fractional part of the tasks, drawn
    with the seed, one label more than its whole part."""
    data = data.by_task()
    if len(data.classes) < 2:
        raise ValueError("the labels have fewer than two classes: nothing to decide")
    whole = int(overlap)
    if policy == "adaptive" and whole != overlap:
        raise ValueError(f"overlap {overlap}: the adaptive policy takes a whole number")
    available = np.bincount(data.task[data.collectable()], minlength=data.n_tasks)
    ceiling = max_overlap or int(np.bincount(available).argmax())
    ceiling = max(ceiling, whole) if policy == "adaptive" else whole
    hidden, scored = data.split_gold(GOLD_SHARE, seed)
    rng = np.random.default_rng([seed, 1])
    plus_one = rng.permutation(data.n_tasks)[: round((overlap - whole) * data.n_tasks)]
    with tempfile.TemporaryDirectory(prefix="quorum-simulate-") as folder:
        world = _World.build(Path(folder), data, hidden, whole, ceiling, target_confidence)
        try:
            world.raise_overlap(plus_one)
            used = world.run(policy, sweep_labels, progress)
            collected, usable = world.collected()
            assert used == collected.size, "every label counted was read back"
        finally:
            world.database.dispose()
    all_labels, every_row = all_label_accuracy(data, seed)
    return Result(
        policy=policy,
        tasks=data.n_tasks,
        labels_used=int(collected.size),
        labels_available=int(data.collectable().size),
        accuracy=_accuracy(data, usable, hidden, scored),
        accuracy_all_labels=all_labels,
        rows_in_file=int(data.task.size),
        accuracy_every_row=every_row,
    )


def all_label_accuracy(data: LabelSet, seed: int = 0) -> tuple[float | None, float | None]:
    """The accuracy of collecting every label, with the hidden gold of ``seed`` (module doc):
    on the labels the platform can collect, and on every row of the file."""
    data = data.by_task()
    hidden, scored = data.split_gold(GOLD_SHARE, seed)
    every_row = np.arange(data.task.size)
    return (
        _accuracy(data, data.collectable(), hidden, scored),
        _accuracy(data, every_row, hidden, scored),
    )


def _accuracy(data: LabelSet, rows: IntArray, hidden: IntArray, scored: IntArray) -> float | None:
    known = scored >= 0
    if not known.any():
        return None
    fitted = DawidSkene().fit(
        data.task[rows], data.worker[rows], data.label[rows], gold=hidden,
        n_tasks=data.n_tasks, n_workers=data.n_workers, n_classes=len(data.classes),
    )  # fmt: skip
    return float((fitted.labels_[known] == scored[known]).mean())


@dataclass
class _World:
    database: Database
    project: Project
    data: LabelSet
    starts: IntArray  # first row of each task in ``data``
    user_of: list[int]  # worker code -> user id
    worker_of: dict[int, int]  # user id -> worker code
    tier_of: IntArray  # worker code -> tier
    task_of: dict[int, int]  # task id -> task code
    asked: list[set[int]]  # per task code, the workers asked already
    answered: list[list[int]]  # per task code, the rows of the data answered so far
    labels: int = 0
    since_fit: int = 0
    since_sweep: int = 0
    models: adaptive_loop.Models | None = None  # the stored model, read once per fit

    @classmethod
    def build(
        cls, folder: Path, data: LabelSet, hidden: IntArray, overlap: int, ceiling: int,
        target: float | None,
    ) -> "_World":  # fmt: skip
        engine = make_engine(f"sqlite:///{folder}/simulate.db")

        @event.listens_for(engine, "connect")
        def _scratch(dbapi_connection: object, _: object) -> None:
            # NOTE: a scratch database thrown away afterwards: no need to wait for the disk.
            dbapi_connection.execute("PRAGMA synchronous=OFF")  # type: ignore[attr-defined]

        upgrade(engine)
        database = Database(engine)
        with database.session(write=True) as session:
            owner = users.create_user(session, "owner@simulate.invalid")
            schema = {"questions": [{"name": QUESTION, "kind": "choice", "options": data.classes}]}
            policy = {
                "overlap": overlap,
                "max_overlap": ceiling,
                "target_confidence": target if target is not None else TARGET,
                "lease_seconds": 7 * 24 * 3600,
            }
            project = projects.create(
                session, owner, name="simulation", schema=schema, policy=policy
            )
            tiers = np.full(data.n_workers, TIER, np.intp)
            user_of = []
            for code in range(data.n_workers):
                user = users.create_user(session, f"w{code}@simulate.invalid", tier=TIER)
                projects.add_member(session, project, user.email, Role.annotator)
                user_of.append(user.id)
            records = [
                Record(code + 1, _task(code, hidden[code], data.classes))
                for code in range(data.n_tasks)
            ]
            import_tasks(session, project, records)
            ids = session.execute(
                select(Task.id, Task.external_id).where(Task.project_id == project.id)
            ).all()
            task_of = {task_id: int(external) for task_id, external in ids if external}
        counts = np.bincount(data.task, minlength=data.n_tasks)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
        return cls(
            database, project, data, starts, user_of,
            {user_id: code for code, user_id in enumerate(user_of)}, tiers, task_of,
            [set() for _ in range(data.n_tasks)], [[] for _ in range(data.n_tasks)],
        )  # fmt: skip

    # --- the replay ----------------------------------------------------------------------------

    def run(self, policy: Policy, sweep_labels: int, progress: Progress | None) -> int:
        adaptive = policy == "adaptive"
        while True:
            task = self._first_due()
            if task is None:
                self._sweep(adaptive)
                if adaptive and self.since_fit:
                    self._refit()  # the data is used up: one last re-aggregation re-decides all
                if self._first_due() is None:
                    return self.labels
                continue
            self._fill(task, adaptive)
            if progress is not None:
                progress(self.labels, int(self.data.task.size))
            if self.since_sweep >= sweep_labels:
                self._sweep(adaptive)

    def _sweep(self, adaptive: bool) -> None:
        """What the loop's periodic sweep does (``quality_jobs.find_work``): a tick for the new
        labels, else a re-aggregation when it is due."""
        if not self.since_sweep:
            return
        with self.database.session(write=True) as session:
            project = session.get(Project, self.project.id)
            assert project is not None
            quality_loop.tick(session, project)
            due = adaptive and quality_loop.refit_due(session, self.project.id)
        self.since_sweep = 0
        if due:
            self._refit()

    def _first_due(self) -> tuple[int, int, int] | None:
        """The task the lease order hands out first: (id, labels, reserved tier)."""
        with self.database.session() as session:
            row = session.execute(
                select(Task.id, Task.n_submitted, Task.min_tier)
                .where(
                    Task.project_id == self.project.id,
                    Task.status == TaskStatus.open.value,
                    Task.n_submitted + Task.n_leased < Task.overlap,
                )
                .order_by(*LEASE_ORDER)
                .limit(1)
            ).first()
        return None if row is None else (row[0], row[1], row[2])

    def _fill(self, task: tuple[int, int, int], adaptive: bool) -> None:
        task_id, _, min_tier = task
        code = self.task_of[task_id]
        row = self._next_worker(code, min_tier, adaptive)
        if row is None:
            self._close(task_id)
            return
        worker = int(self.data.worker[row])
        self.asked[code].add(worker)
        now = utcnow()
        with self.database.session(write=True) as session:
            lease = assignments.lease_view(session, self.project.id, self.user_of[worker], now)
            session.commit()
            if lease is None:  # paused, or blocked: this worker asks for nothing more here
                return
            leased = self.task_of[lease.task_id]
            self.asked[leased].add(worker)
            answer_row = row if leased == code else self._row_of(lease.task_id, worker)
            if answer_row is None:  # handed another task this worker never labelled
                assignments.skip_view(session, lease.assignment_id, self.user_of[worker], now)
                session.commit()
                return
            answer = {QUESTION: self.data.classes[int(self.data.label[answer_row])]}
            submission = Submission(lease.assignment_id, answer)
            assignments.submit_view(session, self.user_of[worker], submission, now)
            session.commit()
        self.answered[leased].append(answer_row)
        self.labels += 1
        self.since_fit += 1
        self.since_sweep += 1

    def _row_of(self, task_id: int, worker: int) -> int | None:
        code = self.task_of[task_id]
        rows = range(self.starts[code], self.starts[code] + self._available(code))
        return next((r for r in rows if self.data.worker[r] == worker), None)

    def _available(self, code: int) -> int:
        end = self.starts[code + 1] if code + 1 < self.data.n_tasks else self.data.task.size
        return int(end - self.starts[code])

    def _next_worker(self, code: int, min_tier: int, adaptive: bool) -> int | None:
        """The row of the data to ask for next (module doc), or None when none is left."""
        first = self.starts[code]
        rows = [
            r
            for r in range(first, first + self._available(code))
            if int(self.data.worker[r]) not in self.asked[code]
            and self.tier_of[self.data.worker[r]] >= min_tier
        ]
        if not rows:
            return None
        if not adaptive or len(rows) == 1:
            return rows[0]
        values = self._label_values(code, [int(self.data.worker[r]) for r in rows])
        if values is None:
            return rows[0]
        best = int(np.argmax(values))  # the first of equals: file order
        return rows[best]

    def _label_values(self, code: int, workers: list[int]) -> npt.NDArray[np.float64] | None:
        if self.models is None:
            with self.database.session() as session:
                state = session.get(QualityState, self.project.id)
                self.models = adaptive_loop.load(state.model if state else None)
        model = self.models.get(QUESTION)
        if model is None:
            return None
        mine = self.answered[code]
        users = np.array([self.user_of[int(self.data.worker[r])] for r in mine], np.int64)
        answers = [self.data.classes[int(self.data.label[r])] for r in mine]
        codes = model.codes(answers)
        keep = codes >= 0
        probas = task_posterior(
            np.zeros(int(keep.sum()), np.intp), model.rows(users[keep]), codes[keep],
            model.model.confusions, model.model.priors, pooled=model.model.pooled,
            temperature=TEMPERATURE, n_tasks=1,
        )  # fmt: skip
        table = np.concatenate([model.model.confusions, model.model.pooled[None]])
        rows = model.rows(np.array([self.user_of[w] for w in workers], np.int64))
        values: npt.NDArray[np.float64] = label_value(probas[0], table[rows])
        return values

    def _close(self, task_id: int) -> None:
        """The data has no more labels for this task: it keeps the ones it has."""
        with self.database.session(write=True) as session:
            session.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(
                    overlap=Task.n_submitted + Task.n_leased,
                    status=status_after(Task.n_submitted, Task.n_submitted + Task.n_leased),
                )
            )
            session.commit()

    def _refit(self) -> None:
        with self.database.session(write=True) as session:
            project = session.get(Project, self.project.id)
            assert project is not None
            quality_loop.refit(session, project)
        self.since_fit, self.models = 0, None

    def raise_overlap(self, codes: IntArray) -> None:
        """One label more for these tasks, as an owner raises the overlap of some tasks."""
        chosen = set(codes.tolist())
        ids = sorted(task_id for task_id, code in self.task_of.items() if code in chosen)
        with self.database.session(write=True) as session:
            for chunk in range(0, len(ids), 500):
                overlap = Task.overlap + 1
                session.execute(
                    update(Task)
                    .where(Task.id.in_(ids[chunk : chunk + 500]))
                    .values(overlap=overlap, status=status_after(Task.n_submitted, overlap))
                )
            session.commit()

    def collected(self) -> tuple[IntArray, IntArray]:
        """Rows of the data the platform collected, and of those the ones its aggregation uses
        (not of an annotator paused in the project), read back from its annotations."""
        with self.database.session() as session:
            rows = session.execute(
                select(Annotation.task_id, Annotation.user_id, usable_label())
                .where(Annotation.project_id == self.project.id)
                .order_by(Annotation.id)
            ).all()
        found, usable = [], []
        for task_id, user_id, used in rows:
            row = self._row_of(task_id, self.worker_of[user_id])
            assert row is not None, "only real answers were submitted"
            found.append(row)
            if used:
                usable.append(row)
        return np.array(sorted(found), np.intp), np.array(sorted(usable), np.intp)


def _task(code: int, gold: int, classes: list[str]) -> dict[str, object]:
    task: dict[str, object] = {"data": {"item": code}, "external_id": str(code)}
    if gold >= 0:
        task["gold"] = {QUESTION: classes[gold]}
    return task
