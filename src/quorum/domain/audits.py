"""Vendor audits: a vendor's delivered labels, and the sample of them experts check.

A lab sends the same kind of work to outside vendors and wants to know, with error bars, how
good each delivery is. The flow (docs/audits.md):

1. the tasks are in the project (imported as usual, each with an ``external_id``);
2. :func:`import_vendor_labels` stores each vendor's answers for them, keyed by ``external_id``,
   all or nothing, apart from the project's annotations (they never enter the aggregate they
   are measured against);
3. :func:`draw_sample` draws, per vendor, a random sample stratified by the class the vendor
   gave, as large as the wanted width of the 95% interval needs (``quorum.truth.sampling``),
   and moves the sampled tasks to the front of the project's queue, in a random order: the
   project's experts label them through ``next``/``submit`` like any other task, with nothing to
   tell them apart, and a report read mid-sample rests on a random part of the sample;
4. ``quorum.domain.audit_report`` compares each vendor with the experts' consensus.

Drawing again (a narrower width, or after a new delivery) tops the sample up with more random
draws from the labels not yet drawn, so the sample stays a stratified random sample.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from sqlalchemy import Text, cast, func, insert, literal, select, update
from sqlalchemy.orm import Session

from quorum.db.models import AuditSample, Project, Task, Vendor, VendorLabel
from quorum.db.types import canonical_json, utcnow
from quorum.domain.errors import Conflict, Invalid
from quorum.domain.lease_rules import reads_task_data
from quorum.domain.problems import Problems
from quorum.domain.projects import schema_of
from quorum.domain.questions import Question, QuestionSchema, check_answers
from quorum.domain.tasks import Record, lock_for_import
from quorum.domain.text import refuse_nul
from quorum.truth.sampling import allocate, sample_size

BATCH = 2000
AUDITABLE = ("choice", "rating", "preference")
# Sampled tasks go to the front of the queue, each with a random priority in the band at the
# top of what a task can have (imports accept priorities below 2**31): experts get them in a
# random order, so the tasks checked at any point are a random part of the sample.
AUDIT_PRIORITY = 2**31 - 1
AUDIT_BAND = 2**20
# Every class the vendor gave is checked at least this often, so its row of the confusion
# matrix is never empty.
MIN_PER_CLASS = 2
MAX_PRICE_CENTS = 10_000_000
ROW_KEYS = {"external_id", "answers"}


@dataclass(frozen=True)
class VendorImport:
    vendor: str
    created: int


@dataclass(frozen=True)
class VendorSample:
    """One vendor's sample after a draw: ``delivered`` labels answer the audited question,
    ``target`` is the size the width asks for, ``drawn`` were added now, ``total`` are in."""

    vendor: str
    question: str
    delivered: int
    target: int
    drawn: int
    total: int


def list_vendors(session: Session, project: Project) -> list[tuple[Vendor, int]]:
    """The project's vendors with how many labels each delivered."""
    delivered = (
        select(VendorLabel.vendor_id, func.count().label("n"))
        .group_by(VendorLabel.vendor_id)
        .subquery()
    )
    query = (
        select(Vendor, func.coalesce(delivered.c.n, 0))
        .outerjoin(delivered, delivered.c.vendor_id == Vendor.id)
        .where(Vendor.project_id == project.id)
        .order_by(Vendor.id)
    )
    return [(vendor, int(n)) for vendor, n in session.execute(query)]


# --- import ----------------------------------------------------------------------------------


def import_vendor_labels(
    session: Session,
    project: Project,
    vendor: str,
    records: Iterable[Record],
    *,
    price_cents_per_label: int | None = None,
    now: datetime | None = None,
) -> VendorImport:
    """Store a vendor's answers, all or nothing: one bad row rejects the delivery, with the first
    problems listed by line. Each row is ``{"external_id", "answers": {question: value}}`` (or
    the answers at the top level); a task may be delivered once per vendor."""
    name = _vendor_name(vendor)
    _check_price(price_cents_per_label)
    lock_for_import(session, project.id)
    row = _vendor(session, project.id, name, price_cents_per_label, now or utcnow())
    check = _Delivery(session, project, row.id)
    iterator = iter(records)
    while batch := list(islice(iterator, BATCH)):
        labels = check.batch(batch)
        if labels and not check.problems.count:
            session.execute(insert(VendorLabel), labels)
    if check.problems.count:
        session.rollback()
        check.problems.raise_any("labels")
    session.commit()
    return VendorImport(name, check.created)


def _vendor_name(vendor: str) -> str:
    name = vendor.strip()
    if not 1 <= len(name) <= 200:
        raise Invalid.one("vendor", "must have 1 to 200 characters")
    refuse_nul(name, "vendor")
    return name


def _check_price(price: int | None) -> None:
    if price is not None and not 0 <= price <= MAX_PRICE_CENTS:
        raise Invalid.one("price_cents_per_label", f"must be between 0 and {MAX_PRICE_CENTS}")


def _vendor(
    session: Session, project_id: int, name: str, price: int | None, now: datetime
) -> Vendor:
    """The project's vendor of that name, created on its first delivery; a price given now
    replaces the one given before."""
    query = select(Vendor).where(Vendor.project_id == project_id, Vendor.name == name)
    vendor = session.scalar(query)
    if vendor is None:
        vendor = Vendor(
            project_id=project_id, name=name, price_cents_per_label=price, created_at=now
        )
        session.add(vendor)
    elif price is not None:
        vendor.price_cents_per_label = price
    session.flush()
    return vendor


class _Delivery:
    """The state of one vendor import: problems, external_ids seen, labels created."""

    def __init__(self, session: Session, project: Project, vendor_id: int) -> None:
        self.session, self.project_id, self.vendor_id = session, project.id, vendor_id
        self.schema = schema_of(project)
        self.needs_data = reads_task_data(self.schema)
        self.problems = Problems()
        self.seen: dict[str, int] = {}
        self.created = 0
        self.now = utcnow()

    def batch(self, records: Iterable[Record]) -> list[dict[str, Any]]:
        parsed = list(self._parsed(records))
        tasks = self._tasks([external_id for _, external_id, _ in parsed])
        delivered = self._delivered([task[0] for task in tasks.values()])
        labels = []
        for line, external_id, answers in parsed:
            found = tasks.get(external_id)
            if found is None:
                self.problems.add(
                    line, "external_id", f"{external_id!r}: no such task in the project"
                )
            elif found[0] in delivered:
                self.problems.add(
                    line, "external_id", f"{external_id!r}: this vendor delivered it already"
                )
            else:
                clean = self._answers(line, found[1], answers)
                if clean is not None:
                    labels.append(
                        {
                            "vendor_id": self.vendor_id,
                            "task_id": found[0],
                            "answers": clean,
                            "delivered_at": self.now,
                        }
                    )
        self.created += len(labels)
        return labels

    def _parsed(self, records: Iterable[Record]) -> Iterator[tuple[int, str, Any]]:
        for record in records:
            if record.error is not None:
                self.problems.add(record.line, record.field, record.error)
                continue
            try:
                external_id, answers = vendor_row(record.value)
            except Invalid as error:
                self.problems.add_invalid(record.line, error)
                continue
            first = self.seen.setdefault(external_id, record.line)
            if first != record.line:
                self.problems.add(
                    record.line, "external_id", f"{external_id!r} repeats line {first}"
                )
                continue
            yield record.line, external_id, answers

    def _answers(self, line: int, data: Any, answers: Any) -> dict[str, Any] | None:
        try:
            clean = check_answers(self.schema, data or {}, answers, partial=True)
        except Invalid as error:
            self.problems.add_invalid(line, error)
            return None
        if not clean:
            self.problems.add(line, "answers", "answer at least one question")
            return None
        return clean

    def _tasks(self, external_ids: list[str]) -> dict[str, tuple[int, Any]]:
        """The project's tasks with these external_ids: id, and data if answers need it."""
        if not external_ids:
            return {}
        data = Task.data if self.needs_data else literal(None)
        query = select(Task.external_id, Task.id, data).where(
            Task.project_id == self.project_id, Task.external_id.in_(external_ids)
        )
        return {row[0]: (row[1], row[2]) for row in self.session.execute(query)}

    def _delivered(self, task_ids: list[int]) -> set[int]:
        if not task_ids:
            return set()
        query = select(VendorLabel.task_id).where(
            VendorLabel.vendor_id == self.vendor_id, VendorLabel.task_id.in_(task_ids)
        )
        return set(self.session.scalars(query))


def vendor_row(value: Any) -> tuple[str, Any]:
    """A delivered row's external_id and answers: ``{"external_id", "answers": {...}}``, or
    the answers at the top level next to ``external_id``."""
    if not isinstance(value, dict):
        raise Invalid.one("line", "must be an object with external_id and answers")
    raw = value.get("external_id")
    if type(raw) is not str and (isinstance(raw, bool) or not isinstance(raw, int)):
        raise Invalid.one("external_id", "required: the task's external_id, text or a number")
    external_id = str(raw)
    refuse_nul(external_id, "external_id")
    if "answers" not in value:
        return external_id, {k: v for k, v in value.items() if k != "external_id"}
    unknown = sorted(set(value) - ROW_KEYS)
    if unknown:
        raise Invalid.one(unknown[0], "unknown key; a delivered row has external_id and answers")
    refuse_nul(value["answers"], "answers")
    return external_id, value["answers"]


# --- the sample --------------------------------------------------------------------------------


def audit_question(schema: QuestionSchema, name: str | None = None) -> Question:
    """The question an audit measures: ``name``, else the first choice, rating or preference."""
    if name is None:
        for question in schema.questions:
            if question.kind in AUDITABLE:
                return question
        raise Invalid.one("question", "the project has no choice, rating or preference question")
    named = schema.by_name().get(name)
    if named is None:
        raise Invalid.one("question", f"no question {name!r} in the project")
    if named.kind not in AUDITABLE:
        raise Invalid.one(
            "question",
            f"{name!r} is a {named.kind} question; audits measure choice, rating and preference",
        )
    return named


@dataclass(frozen=True)
class Delivered:
    """One vendor's labels that answer the audited question: tasks and strata (the answer as
    canonical JSON), aligned."""

    vendor: Vendor
    task_id: npt.NDArray[np.int64]
    stratum: npt.NDArray[np.str_]


def delivered(session: Session, project_id: int, question: str) -> list[Delivered]:
    """Every vendor of the project with its labels that answer ``question``."""
    found: dict[int, tuple[list[int], list[str]]] = {}
    query = (
        select(VendorLabel.vendor_id, VendorLabel.task_id, cast(VendorLabel.answers, Text))
        .join(Vendor, Vendor.id == VendorLabel.vendor_id)
        .where(Vendor.project_id == project_id)
        .order_by(VendorLabel.vendor_id, VendorLabel.task_id)
    )
    for vendor_id, task_id, text in session.execute(query):
        answer = orjson.loads(text).get(question)
        if answer is not None:
            tasks, strata = found.setdefault(vendor_id, ([], []))
            tasks.append(task_id)
            strata.append(canonical_json(answer).decode())
    vendors = session.scalars(
        select(Vendor).where(Vendor.project_id == project_id).order_by(Vendor.id)
    )
    result = []
    for vendor in vendors:
        tasks, strata = found.get(vendor.id, ([], []))
        result.append(Delivered(vendor, np.array(tasks, np.int64), np.array(strata, np.str_)))
    return result


def draw_sample(
    session: Session,
    project: Project,
    *,
    width: float = 0.1,
    expected_accuracy: float = 0.5,
    question: str | None = None,
    confidence: float = 0.95,
    seed: int | None = None,
    now: datetime | None = None,
) -> list[VendorSample]:
    """Draw (or top up) each vendor's stratified sample so that its accuracy interval at
    ``confidence`` is at most ``width`` wide when the accuracy is ``expected_accuracy`` (0.5:
    the widest case), and put the sampled tasks at the front of the experts' queue."""
    if not 0.0 < width < 1.0:
        raise Invalid.one("width", "must be between 0 and 1 (exclusive)")
    if not 0.0 <= expected_accuracy <= 1.0:
        raise Invalid.one("expected_accuracy", "must be between 0 and 1")
    if not 0.5 <= confidence < 1.0:
        raise Invalid.one("confidence", "must be at least 0.5 and below 1")
    asked = audit_question(schema_of(project), question).name
    lock_for_import(session, project.id)  # one draw (or delivery) at a time per project
    rng = np.random.default_rng(seed)
    now = now or utcnow()
    results: list[VendorSample] = []
    new_tasks: list[int] = []
    for delivery in delivered(session, project.id, asked):
        target = sample_size(
            width,
            expected=expected_accuracy,
            confidence=confidence,
            population=delivery.task_id.size,
        )
        picked = _top_up(session, delivery, asked, target, rng)
        if picked:
            rows = [
                {
                    "vendor_id": delivery.vendor.id,
                    "task_id": task,
                    "question": asked,
                    "stratum": stratum,
                    "drawn_at": now,
                }
                for task, stratum in picked
            ]
            session.execute(insert(AuditSample), rows)
        new_tasks.extend(int(task) for task, _ in picked)
        total = _sample_count(session, delivery.vendor.id)
        results.append(
            VendorSample(
                delivery.vendor.name, asked, int(delivery.task_id.size), target, len(picked), total
            )
        )
    _to_the_front(session, sorted(set(new_tasks)), rng)
    session.commit()
    return results


def _top_up(
    session: Session, delivery: Delivered, question: str, target: int, rng: np.random.Generator
) -> list[tuple[int, str]]:
    """New random draws per stratum up to each stratum's share of ``target``."""
    drawn = dict(
        session.execute(
            select(AuditSample.task_id, AuditSample.question).where(
                AuditSample.vendor_id == delivery.vendor.id
            )
        ).all()
    )
    other = {q for q in drawn.values() if q != question}
    if other:
        raise Conflict(
            f"vendor {delivery.vendor.name!r} was sampled on question {sorted(other)[0]!r}; "
            "audit that question"
        )
    if not delivery.task_id.size:
        return []
    names, codes = np.unique(delivery.stratum, return_inverse=True)
    wanted = allocate(np.bincount(codes, minlength=names.size), target, minimum=MIN_PER_CLASS)
    in_sample = np.isin(delivery.task_id, np.fromiter(drawn, np.int64, len(drawn)))
    picked: list[tuple[int, str]] = []
    for h, name in enumerate(names):
        pool = delivery.task_id[(codes == h) & ~in_sample]
        need = int(wanted[h]) - int(((codes == h) & in_sample).sum())
        if need > 0 and pool.size:
            chosen = rng.choice(pool, size=min(need, pool.size), replace=False)
            picked.extend((int(task), str(name)) for task in np.sort(chosen))
    return picked


def _sample_count(session: Session, vendor_id: int) -> int:
    query = select(func.count()).select_from(AuditSample).where(AuditSample.vendor_id == vendor_id)
    return int(session.scalar(query) or 0)


def _to_the_front(session: Session, task_ids: list[int], rng: np.random.Generator) -> None:
    """Give sampled tasks random priorities in the top band, so experts get them before any
    other task and in a random order (the tasks of every draw alike, so a top-up mixes with
    what is left of the earlier draws).

    NOTE: the tasks are locked in id order first, as every writer that holds several tasks
    does (``quorum.domain.assignments``), so this cannot deadlock with leases or reclaims.
    """
    for start in range(0, len(task_ids), 1000):
        ids = task_ids[start : start + 1000]
        locked = (
            select(Task.id)
            .where(Task.id.in_(ids))
            .order_by(Task.id)
            .with_for_update(key_share=True)
        )
        session.execute(locked)
        ranks = rng.integers(AUDIT_PRIORITY - AUDIT_BAND, AUDIT_PRIORITY, len(ids), endpoint=True)
        rows = [{"id": t, "priority": int(p)} for t, p in zip(ids, ranks, strict=True)]
        session.execute(update(Task), rows)
