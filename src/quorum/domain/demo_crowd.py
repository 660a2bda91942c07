"""The demo's labelled project: simulated annotators label it through the platform's own rules.

A fresh demo with empty projects shows none of what Quorum measures until someone labels. So
the demo also seeds one project, blood-pressure readings to classify, that eight simulated
annotators have labelled through the same lease, submit and quality loop as production
(``assignments.lease_view`` / ``submit_view``, ``quality_loop.tick`` / ``refit``), on a clock
running over the two hours before the seed. Nothing is written around the rules: whatever the
dashboard shows (trust with its interval, agreement, the confusion against gold, a paused
annotator and why, labels flagged for review, extra labels where the crowd disagreed, the
spend, the vendor audit) is what the rules made of these labels.

The readings are drawn with a fixed seed and each one's category follows the ACC/AHA 2017
guideline (Whelton et al., Hypertension 71(6):e13-e115, 2018), applied to the mean of the two
readings: normal below 120/80; elevated 120-129 with diastolic below 80; stage 1 at 130-139 or
80-89; stage 2 at 140 or 90 and above; hypertensive crisis above 180 and/or above 120. A
reading whose systolic and diastolic fall in different categories takes the higher one. A
third of the tasks carry that answer as gold (hidden gold at ``gold_rate`` 0.3; docs/demo.md
says why so much); the others' answers are known only here, which is how a test can score the
aggregate. Two vendors' deliveries of the same tasks, and the audit's sample of them, come in
before the experts start (``VENDORS``).

The annotators, by habit: five careful clinicians who slip now and then (mostly to a
neighbouring category), one who classifies the first reading instead of the mean, one who
clicks at random within seconds (joining ten minutes in, once the project's usual pace is
known), and one who gives the same answer to everything. The last two are what the loop
exists to catch.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
from sqlalchemy.orm import Session

from quorum.db.models import Project, Role, User
from quorum.db.types import utcnow
from quorum.domain import assignments, audits, projects, quality_loop, users, workforce
from quorum.domain.lease_rules import Submission
from quorum.domain.tasks import Record, import_tasks

PROJECT_NAME = "Blood pressure category (labelled by simulated annotators)"
QUESTION = "category"
CATEGORIES = (
    "normal",
    "elevated",
    "stage 1 hypertension",
    "stage 2 hypertension",
    "hypertensive crisis",
)
TASKS = 80
GOLD_EVERY = 3  # a third of the tasks carry their answer as gold, every category alike
SEED = 20_261_207
HOURS = 2  # the simulated labelling ends at the seed's own time
INSTRUCTIONS = """\
**Classify each patient's blood pressure by the ACC/AHA 2017 guideline.**
Use the **mean of the two readings** (round to whole mmHg), not either reading alone.
- **normal**: systolic below 120 and diastolic below 80.
- **elevated**: systolic 120-129 and diastolic below 80.
- **stage 1 hypertension**: systolic 130-139 or diastolic 80-89.
- **stage 2 hypertension**: systolic 140 or more, or diastolic 90 or more.
- **hypertensive crisis**: systolic above 180 and/or diastolic above 120.

When systolic and diastolic fall in different categories, choose the higher one.
This project was labelled by simulated annotators when the demo was created (docs/demo.md)."""
POLICY = {
    "overlap": 3,
    "max_overlap": 5,
    "gold_rate": 0.3,
    "review_rate": 0.1,
    "accuracy_floor": 0.6,
    "required_domains": ["medicine"],
    "pay_per_task_cents": 40,
    "budget_cents": 25_000,
    "lease_seconds": 600,
}

Habit = Literal["careful", "first_reading", "random", "same"]


@dataclass(frozen=True)
class SimulatedAnnotator:
    email: str
    name: str
    tier: int
    habit: Habit
    slip: float  # chance of a slip (careful and first_reading; see FAR_SLIPS)
    seconds: tuple[int, int]  # how long a label takes, drawn uniformly in this range
    joins: int = 0  # minutes after the start of the simulated labelling


ANNOTATORS = (
    SimulatedAnnotator("sim.osei@example.com", "Amara Osei", 3, "careful", 0.03, (20, 50)),
    SimulatedAnnotator("sim.brandt@example.com", "Lukas Brandt", 3, "careful", 0.05, (25, 60)),
    SimulatedAnnotator("sim.nair@example.com", "Priya Nair", 2, "careful", 0.08, (15, 40)),
    SimulatedAnnotator("sim.okafor@example.com", "Chidi Okafor", 2, "careful", 0.1, (20, 45)),
    SimulatedAnnotator("sim.lind@example.com", "Elsa Lind", 2, "careful", 0.12, (15, 35)),
    SimulatedAnnotator("sim.hale@example.com", "Tom Hale", 1, "first_reading", 0.05, (15, 35)),
    SimulatedAnnotator("sim.quick@example.com", "Quinn Quick", 1, "random", 0, (3, 6), joins=10),
    SimulatedAnnotator("sim.same@example.com", "Sam Same", 1, "same", 0.0, (6, 14)),
)
SAME_ANSWER = "stage 1 hypertension"
# Two outside vendors delivered the same 80 tasks before the experts started: name, price per
# label in cents, chance of a slip. The audit's sample goes to the front of the experts' queue.
VENDORS = (("Acme Annotation", 12, 0.08), ("QuickCrowd", 5, 0.3))
AUDIT_WIDTH = 0.3  # of the 95% interval on each vendor's accuracy, at the widest case
# Most slips land on a neighbouring category; a few anywhere (a misclick, a misread digit).
# Without them no label would ever jump a category, and Dawid-Skene would rightly treat such a
# jump as impossible: three labels normal / elevated / stage 1 would then prove "elevated".
FAR_SLIPS = 0.2


def category(systolic: int, diastolic: int) -> str:
    """The ACC/AHA 2017 category of a blood pressure (module doc)."""
    if systolic > 180 or diastolic > 120:
        return "hypertensive crisis"
    if systolic >= 140 or diastolic >= 90:
        return "stage 2 hypertension"
    if systolic >= 130 or diastolic >= 80:
        return "stage 1 hypertension"
    if systolic >= 120:
        return "elevated"
    return "normal"


@dataclass(frozen=True)
class Reading:
    patient: str
    first: tuple[int, int]
    second: tuple[int, int]

    @property
    def mean(self) -> tuple[int, int]:
        # Readings are drawn as mean ± d, so the mean is whole.
        return (self.first[0] + self.second[0]) // 2, (self.first[1] + self.second[1]) // 2

    @property
    def answer(self) -> str:
        return category(*self.mean)

    def data(self) -> dict[str, str]:
        return {
            "patient": self.patient,
            "readings": f"Two seated readings, 5 minutes apart: {self.first[0]}/{self.first[1]} "
            f"and {self.second[0]}/{self.second[1]} mmHg",
        }


def readings(rng: np.random.Generator, n: int) -> list[Reading]:
    """``n`` patients, the same number of each category in turn, many of them near a boundary."""
    drawn = []
    for i in range(n):
        wanted = CATEGORIES[i % len(CATEGORIES)]
        while True:
            systolic = int(rng.integers(100, 200))
            diastolic = int(rng.integers(60, 130))
            if category(systolic, diastolic) == wanted and diastolic < systolic - 25:
                break
        d_sys, d_dia = int(rng.integers(-8, 9)), int(rng.integers(-5, 6))
        age, sex = int(rng.integers(28, 86)), ("man", "woman")[int(rng.integers(2))]
        drawn.append(
            Reading(
                f"{age}-year-old {sex}",
                (systolic + d_sys, diastolic + d_dia),
                (systolic - d_sys, diastolic - d_dia),
            )
        )
    return drawn


def answer_of(who: SimulatedAnnotator, reading: Reading, rng: np.random.Generator) -> str:
    """What this annotator answers for ``reading`` (module doc)."""
    if who.habit == "random":
        return CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    if who.habit == "same":
        return SAME_ANSWER
    seen = category(*reading.first) if who.habit == "first_reading" else reading.answer
    return slipped(seen, who.slip, rng)


def slipped(seen: str, slip: float, rng: np.random.Generator) -> str:
    """``seen``, or with chance ``slip`` another category (mostly a neighbouring one)."""
    if rng.random() >= slip:
        return seen
    at = CATEGORIES.index(seen)
    if rng.random() < FAR_SLIPS:
        return CATEGORIES[(at + int(rng.integers(1, len(CATEGORIES)))) % len(CATEGORIES)]
    step = -1 if at == len(CATEGORIES) - 1 or (at > 0 and rng.random() < 0.5) else 1
    return CATEGORIES[at + step]


def answers() -> dict[str, str]:
    """Every task's right answer by its external id, gold or not: what the simulation knows and
    the project does not (module doc)."""
    drawn = readings(np.random.default_rng(SEED), TASKS)
    return {_external_id(i): reading.answer for i, reading in enumerate(drawn)}


def _external_id(i: int) -> str:
    return f"bp-{i + 1:03d}"


def seed(session: Session, name: str, owner: User, reviewer: User) -> Project:
    """Create the labelled project and have the simulated annotators label it; commits."""
    rng = np.random.default_rng(SEED)
    project = projects.create(
        session,
        owner,
        name=name,
        instructions=INSTRUCTIONS,
        schema={"questions": [{"name": QUESTION, "kind": "choice", "options": list(CATEGORIES)}]},
        policy=POLICY,
    )
    projects.add_member(session, project, reviewer.email, Role.reviewer)
    people = [_annotator(session, project, who) for who in ANNOTATORS]
    drawn = readings(rng, TASKS)
    start = utcnow() - timedelta(hours=HOURS)
    _import(session, project, drawn)
    _deliveries(session, project, drawn, rng, start)
    _label(session, project, people, {r.data()["readings"]: r for r in drawn}, rng, start)
    return project


def _import(session: Session, project: Project, drawn: list[Reading]) -> None:
    records = []
    for i, reading in enumerate(drawn):
        task: dict[str, object] = {"external_id": _external_id(i), "data": reading.data()}
        if i % GOLD_EVERY == (i // GOLD_EVERY) % GOLD_EVERY:
            task["gold"] = {QUESTION: reading.answer}
        records.append(Record(i + 1, task))
    import_tasks(session, project, records)


def _deliveries(
    session: Session,
    project: Project,
    drawn: list[Reading],
    rng: np.random.Generator,
    start: datetime,
) -> None:
    """The vendors' labels of every task, and the audit's sample of them (``VENDORS``)."""
    for vendor, price, slip in VENDORS:
        rows = (
            Record(i + 1, {"external_id": _external_id(i), "answers": {QUESTION: answer}})
            for i, answer in enumerate(slipped(r.answer, slip, rng) for r in drawn)
        )
        audits.import_vendor_labels(
            session, project, vendor, rows, price_cents_per_label=price, now=start
        )
    audits.draw_sample(session, project, width=AUDIT_WIDTH, seed=SEED, now=start)
    session.commit()


def _annotator(session: Session, project: Project, who: SimulatedAnnotator) -> User:
    user = users.create_user(session, who.email, name=f"{who.name} (simulated)", tier=who.tier)
    workforce.set_profile(session, user, domains={"medicine": 4 if who.tier == 3 else 2})
    projects.add_member(session, project, who.email, Role.annotator)
    return user


def _label(
    session: Session,
    project: Project,
    people: list[User],
    by_text: dict[str, Reading],
    rng: np.random.Generator,
    start: datetime,
) -> None:
    """Each annotator asks again as soon as they are done, on a clock of their own; the one
    free earliest goes next, and the loop's sweep runs after every label, as it would."""
    free_at = {
        k: start + timedelta(minutes=who.joins, seconds=int(rng.integers(0, 300)))
        for k, who in enumerate(ANNOTATORS)
    }
    done: set[int] = set()
    while True:
        waiting = [k for k in free_at if k not in done]
        if not waiting:
            if not _sweep(session, project, max(free_at.values())):
                return
            done.clear()  # a re-aggregation may open slots: everyone asks again
            continue
        k = min(waiting, key=lambda w: (free_at[w], w))
        now = free_at[k]
        lease = assignments.lease_view(session, project.id, people[k].id, now)
        session.commit()
        if lease is None:
            done.add(k)
            continue
        who = ANNOTATORS[k]
        reading = by_text[lease.data["readings"]]
        seconds = int(rng.integers(who.seconds[0], who.seconds[1] + 1))
        submitted = now + timedelta(seconds=seconds)
        submission = Submission(
            lease.assignment_id, {QUESTION: answer_of(who, reading, rng)}, seconds * 1000
        )
        assignments.submit_view(session, people[k].id, submission, submitted)
        session.commit()
        if _sweep(session, project, submitted):
            done.clear()
        free_at[k] = submitted + timedelta(seconds=int(rng.integers(2, 20)))


def _sweep(session: Session, project: Project, now: datetime) -> bool:
    """The loop's sweep at ``now``: a tick, then a re-aggregation when due; whether one ran."""
    quality_loop.tick(session, project, now=now)
    if not quality_loop.refit_due(session, project.id):
        return False
    quality_loop.refit(session, project, now=now)
    return True
