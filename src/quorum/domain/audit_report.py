"""The audit report: each vendor's sampled labels against the experts' consensus.

A sampled task counts as checked once it is complete (all its expert labels are in); its
consensus is the project's aggregate (``quorum.domain.aggregation``, gold clamped, rejected
labels dropped). Per vendor, ranked by accuracy:

- accuracy over the whole delivery, estimated from the stratified sample, with a 95% Wilson
  interval (Kish effective size) and a bootstrap interval over tasks (``quorum.truth.sampling``);
  read mid-sample, the estimate covers only the classes with a checked task (``covered`` of the
  ``delivered`` labels) and both intervals make room for the other classes being all wrong or
  all right;
- Cohen's kappa between vendor and experts on the checked tasks, with a bootstrap interval;
- the confusion of the checked tasks (experts' class by row, vendor's by column) and each
  vendor class's precision;
- the cost per correct label (price / accuracy) and the estimated number of wrong labels in the
  whole delivery, each with the interval that follows from accuracy's Wilson interval.
"""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from quorum.db.models import AuditSample, Project, Task, TaskStatus
from quorum.db.types import canonical_json
from quorum.domain import aggregation
from quorum.domain.audits import Delivered, audit_question, delivered
from quorum.domain.errors import Invalid
from quorum.domain.projects import schema_of
from quorum.domain.questions import TIE, ChoiceQuestion, PreferenceQuestion, Question
from quorum.truth import cohen_kappa
from quorum.truth.sampling import stratified_accuracy, stratified_bootstrap

CONFIDENCE = 0.95
N_BOOT = 2000
ClassOrder = Callable[[str], tuple[int, float, str]]


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class ClassFigures:
    """One class the vendor gave: in the delivery, in the checked sample, and how often right."""

    label: str
    delivered: int
    checked: int
    correct: int
    precision: float | None


@dataclass(frozen=True)
class Confusion:
    """Checked tasks by the experts' class (rows) and the vendor's (columns)."""

    labels: list[str]
    counts: list[list[int]]


@dataclass(frozen=True)
class VendorReport:
    vendor: str
    price_cents_per_label: int | None
    delivered: int
    sampled: int
    checked: int
    covered: int = 0  # labels of the classes with a checked task: what `accuracy` rests on
    accuracy: float | None = None
    wilson: Interval | None = None
    bootstrap: Interval | None = None
    kappa: float | None = None
    kappa_interval: Interval | None = None
    classes: list[ClassFigures] = field(default_factory=list)
    confusion: Confusion = field(default_factory=lambda: Confusion([], []))
    cost_per_correct_label_cents: float | None = None
    cost_interval: Interval | None = None
    estimated_wrong_labels: float | None = None
    wrong_labels_interval: Interval | None = None


@dataclass(frozen=True)
class AuditReport:
    project_id: int
    question: str
    method: str
    confidence: float
    vendors: list[VendorReport]


def report(
    session: Session,
    project: Project,
    *,
    question: str | None = None,
    method: str = aggregation.DEFAULT_METHOD,
    seed: int = 0,
) -> AuditReport:
    """Every vendor of the project measured against the experts, best first."""
    try:
        aggregation.check_method(method)
    except ValueError as error:
        raise Invalid.one("method", str(error)) from None
    asked = _sampled_question(session, project, question)
    consensus = _Consensus(session, project, asked, method)
    order = _class_order(audit_question(schema_of(project), asked))
    vendors = [
        _vendor_report(session, delivery, consensus, order, seed)
        for delivery in delivered(session, project.id, asked)
    ]
    vendors.sort(key=lambda v: (v.accuracy is None, -(v.accuracy or 0.0), v.vendor))
    return AuditReport(project.id, asked, method, CONFIDENCE, vendors)


def _sampled_question(session: Session, project: Project, given: str | None) -> str:
    """The question given, else the one the sample was drawn on, else the default."""
    if given is None:
        query = (
            select(AuditSample.question)
            .join(Task, Task.id == AuditSample.task_id)
            .where(Task.project_id == project.id)
            .limit(1)
        )
        given = session.scalar(query)
    return audit_question(schema_of(project), given).name


class _Consensus:
    """The experts' answer to the audited question on each complete task, as canonical JSON."""

    def __init__(self, session: Session, project: Project, question: str, method: str) -> None:
        self.session, self.project_id, self.question = session, project.id, question
        self.aggregate = aggregation.aggregate_project(session, project, method=method)

    def answers(self, task_ids: list[int]) -> dict[int, str]:
        complete = set(
            self.session.scalars(
                select(Task.id).where(Task.id.in_(task_ids), Task.status == TaskStatus.complete)
            )
        )
        ids = np.array(sorted(complete), np.int64)
        position = self.aggregate.positions(ids)
        found = {}
        column = self.aggregate.questions[self.question].answer
        for task_id, at in zip(ids.tolist(), position.tolist(), strict=True):
            value = column[at].as_py() if at >= 0 else None
            if value is not None:
                found[task_id] = canonical_json(value).decode()
        return found


def _class_order(question: Question) -> ClassOrder:
    """A sort key for a question's classes (canonical JSON) as people read them: a choice's or
    a preference's options in the schema's order, ratings by value; anything else after."""
    listed: list[Any] = []
    if isinstance(question, ChoiceQuestion):
        listed = list(question.options)
    elif isinstance(question, PreferenceQuestion):
        listed = [*question.options, TIE]
    rank = {canonical_json(value).decode(): at for at, value in enumerate(listed)}

    def key(name: str) -> tuple[int, float, str]:
        value = orjson.loads(name)
        number = float(value) if isinstance(value, int | float) else 0.0
        return rank.get(name, len(rank)), number, name

    return key


def _vendor_report(
    session: Session, delivery: Delivered, consensus: _Consensus, order: ClassOrder, seed: int
) -> VendorReport:
    vendor = delivery.vendor
    query = select(AuditSample.task_id, AuditSample.stratum).where(
        AuditSample.vendor_id == vendor.id
    )
    sample = dict(session.execute(query).all())
    experts = consensus.answers(sorted(sample)) if sample else {}
    base = VendorReport(
        vendor.name, vendor.price_cents_per_label, int(delivery.task_id.size), len(sample), 0
    )
    names, codes = np.unique(delivery.stratum, return_inverse=True)
    if not names.size:
        return base
    population = np.bincount(codes, minlength=names.size)
    checked = sorted(experts)
    given = np.array([sample[t] for t in checked], np.str_)
    truth = np.array([experts[t] for t in checked], np.str_)
    stratum = np.searchsorted(names, given)
    right = given == truth
    return _figures(base, names, population, stratum, right, given, truth, order, seed)


def _figures(
    base: VendorReport,
    names: npt.NDArray[np.str_],
    population: npt.NDArray[np.intp],
    stratum: npt.NDArray[np.intp],
    right: npt.NDArray[np.bool_],
    given: npt.NDArray[np.str_],
    truth: npt.NDArray[np.str_],
    order: ClassOrder,
    seed: int,
) -> VendorReport:
    n = np.bincount(stratum, minlength=names.size)
    x = np.bincount(stratum, weights=right, minlength=names.size).astype(np.intp)
    counted = sorted(zip(names.tolist(), population, n, x, strict=True), key=lambda c: order(c[0]))
    classes = [
        ClassFigures(_label(name), int(big), int(k), int(c), c / k if k else None)
        for name, big, k, c in counted
    ]
    figures: dict[str, Any] = {
        "checked": int(right.size),
        "classes": classes,
        "confusion": _confusion(given, truth, order),
    }
    if right.size:
        estimate = stratified_accuracy(population, n, x, CONFIDENCE)
        low, high = stratified_bootstrap(
            stratum, right, population, n_boot=N_BOOT, confidence=CONFIDENCE, random_state=seed
        )
        figures |= {
            "covered": estimate.covered,
            "accuracy": estimate.value,
            "wilson": Interval(estimate.low, estimate.high),
            "bootstrap": Interval(low, high),
            **_kappa(given, truth, seed),
            **_money(base, estimate.value, estimate.low, estimate.high),
        }
    return replace(base, **figures)


def _kappa(given: npt.NDArray[np.str_], truth: npt.NDArray[np.str_], seed: int) -> dict[str, Any]:
    """Cohen's kappa of vendor and experts over the checked tasks; none when undefined (one
    class only, or fewer than two tasks)."""
    if given.size < 2:
        return {}
    _, codes = np.unique(np.concatenate([given, truth]), return_inverse=True)
    task = np.tile(np.arange(given.size), 2)
    rater = np.repeat([0, 1], given.size)
    result = cohen_kappa(
        task, rater, codes, n_boot=N_BOOT, confidence=CONFIDENCE, random_state=seed
    )
    if not np.isfinite(result.value):
        return {}
    interval = Interval(result.low, result.high) if np.isfinite(result.low) else None
    return {"kappa": result.value, "kappa_interval": interval}


def _money(base: VendorReport, value: float, low: float, high: float) -> dict[str, Any]:
    delivered = base.delivered
    figures: dict[str, Any] = {
        "estimated_wrong_labels": delivered * (1.0 - value),
        "wrong_labels_interval": Interval(delivered * (1.0 - high), delivered * (1.0 - low)),
    }
    price = base.price_cents_per_label
    if price is not None and value > 0:
        figures["cost_per_correct_label_cents"] = price / value
        if low > 0:  # else no finite bound: the vendor may be right on nothing
            figures["cost_interval"] = Interval(price / high, price / low)
    return figures


def _confusion(
    given: npt.NDArray[np.str_], truth: npt.NDArray[np.str_], order: ClassOrder
) -> Confusion:
    names = sorted(set(truth.tolist()) | set(given.tolist()), key=order)
    code = {name: at for at, name in enumerate(names)}
    k = len(names)
    expert = np.array([code[t] for t in truth.tolist()], np.intp)
    vendor = np.array([code[g] for g in given.tolist()], np.intp)
    counts = np.bincount(expert * k + vendor, minlength=k * k).reshape(k, k)
    return Confusion([_label(name) for name in names], counts.tolist())


def _label(stratum: str) -> str:
    """A class as people read it: text as is, anything else (a rating) as JSON."""
    value = orjson.loads(stratum)
    return value if isinstance(value, str) else stratum
