"""Training-ready deliveries: a project's labels as rows a trainer reads (docs/deliveries.md).

- ``hf``: every task as in the export (``quorum.domain.export``), with each label's annotator
  tier and the aggregation method added;
- ``dpo``: one ``{prompt, chosen, rejected}`` pair per task and preference question, from the
  aggregated preference; ties and tasks without an answer are left out (and counted);
- ``sft``: one ``{prompt, completion}`` pair per accepted text answer: every text answer not
  rejected in review, or the reviewer's correction where there is one.

Every row carries its confidence and provenance: pseudonymous annotators, their tiers, when they
answered, and the method. :class:`Delivery` streams Arrow record batches of a fixed schema and
gathers, as they pass, the facts its dataset card reports (:class:`CardFacts`);
``quorum.io.delivery_files`` writes them as a Hugging Face dataset with its ``README.md``.
"""

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, Project, ReviewStatus, Task, TaskStatus, User
from quorum.db.types import utcnow
from quorum.domain import dashboard_figures as figures
from quorum.domain import pause, reviews, workforce
from quorum.domain.errors import Invalid
from quorum.domain.export import TIME, Export, ExportFilter, row_schema
from quorum.domain.questions import (
    NAME_PATTERN,
    PreferenceQuestion,
    Question,
    QuestionSchema,
    TextQuestion,
)

DeliveryKind = Literal["hf", "dpo", "sft"]
DELIVERY_KINDS: tuple[DeliveryKind, ...] = ("hf", "dpo", "sft")
CATEGORICAL = ("choice", "rating", "preference")
SFT_BATCH = 5000
DEFAULT_PROMPT_FIELD = "prompt"
NO_DOMAIN = "(none listed)"

ANNOTATION = pa.struct(
    [
        ("annotator", pa.string()),
        ("tier", pa.int64()),
        ("answer", pa.string()),
        ("submitted_at", TIME),
    ]
)
DPO_SCHEMA = pa.schema(
    [
        ("prompt", pa.string()),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("question", pa.string()),
        ("confidence", pa.float64()),
        ("method", pa.string()),
        ("task_id", pa.int64()),
        ("external_id", pa.string()),
        ("annotations", pa.list_(ANNOTATION)),
    ]
)
SFT_SCHEMA = pa.schema(
    [
        ("prompt", pa.string()),
        ("completion", pa.string()),
        ("question", pa.string()),
        ("confidence", pa.float64()),
        ("source", pa.string()),
        ("review_status", pa.string()),
        ("annotator", pa.string()),
        ("tier", pa.int64()),
        ("submitted_at", TIME),
        ("task_id", pa.int64()),
        ("external_id", pa.string()),
    ]
)


@dataclass
class CardFacts:
    """What the dataset card says; the row counts and distributions fill in as rows stream."""

    project: str
    project_id: int
    kind: DeliveryKind
    method: str
    created_at: datetime
    labels: int
    annotators: int
    agreement: list[figures.QuestionAgreement]
    annotators_by_domain: dict[str, int]
    rows: int = 0
    distributions: dict[str, Counter[str]] = field(default_factory=dict)
    left_out: Counter[str] = field(default_factory=Counter)

    def count(self, question: str, value: Any) -> None:
        if value is not None:
            shown = value if isinstance(value, str) else orjson.dumps(value).decode()
            self.distributions.setdefault(question, Counter())[shown] += 1


@dataclass
class Delivery:
    kind: DeliveryKind
    schema: pa.Schema
    facts: CardFacts
    _batches: Callable[["Delivery"], Iterator[pa.RecordBatch]]

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows, a batch at a time; ``facts`` are complete once this is exhausted."""
        for batch in self._batches(self):
            self.facts.rows += batch.num_rows
            if batch.num_rows:
                yield batch


def possible(schema: QuestionSchema) -> list[DeliveryKind]:
    """The deliveries a project of ``schema`` can make: dpo needs a preference question, sft a
    text question (pages offer only these)."""
    kinds = {
        "hf": True,
        "dpo": any(isinstance(q, PreferenceQuestion) for q in schema.questions),
        "sft": any(isinstance(q, TextQuestion) for q in schema.questions),
    }
    return [kind for kind in DELIVERY_KINDS if kinds[kind]]


def prepare(export: Export, kind: str, *, prompt_field: str | None = None) -> Delivery:
    """A delivery of ``kind`` from a prepared export (its aggregate, filters and method); a
    delivery the project cannot make (dpo without a preference question) fails here."""
    if kind not in DELIVERY_KINDS:
        raise Invalid.one("format", f"unknown delivery {kind!r}: use {', '.join(DELIVERY_KINDS)}")
    project = export.session.get(Project, export.project_id)
    assert project is not None, "an export is prepared from its project"
    facts = _facts(export, project, kind)
    if kind == "hf":
        schema = _hf_schema(export)
        return Delivery("hf", schema, facts, lambda d: _hf_batches(export, d))
    if kind == "dpo":
        questions = [q for q in export.schema.questions if isinstance(q, PreferenceQuestion)]
        if not questions:
            raise Invalid.one("format", "dpo needs a preference question in the project")
        return Delivery(
            "dpo", DPO_SCHEMA, facts, lambda d: _dpo_batches(export, questions, prompt_field, d)
        )
    texts = [q for q in export.schema.questions if isinstance(q, TextQuestion)]
    if not texts:
        raise Invalid.one("format", "sft needs a text question in the project")
    if export.filters.min_confidence is not None:
        raise Invalid.one(
            "min_confidence", "does not apply to sft: text answers are not aggregated"
        )
    prompt = prompt_field or DEFAULT_PROMPT_FIELD
    if not re.fullmatch(NAME_PATTERN, prompt):
        raise Invalid.one("prompt_field", "must name a field of the task data")
    return Delivery("sft", SFT_SCHEMA, facts, lambda d: _sft_batches(export, texts, prompt, d))


# --- the card's facts --------------------------------------------------------------------------


def _facts(export: Export, project: Project, kind: DeliveryKind) -> CardFacts:
    labels = export.labels
    user_ids, names = export.pseudonyms
    annotators = np.searchsorted(user_ids, labels.worker_id)
    agreement = []
    for question in export.schema.questions:
        if question.kind == "text":
            continue
        column = labels.answers.column(question.name).to_pylist()
        answered = [
            figures.Label(int(task), names[int(who)].as_py(), value)
            for task, who, value in zip(labels.task_id, annotators, column, strict=True)
            if value is not None
        ]
        agreement.append(figures.agreement(question, answered))
    return CardFacts(
        project=project.name,
        project_id=project.id,
        kind=kind,
        method=export.aggregate.method,
        created_at=utcnow(),
        labels=int(labels.task_id.size),
        annotators=int(user_ids.size),
        agreement=agreement,
        annotators_by_domain=_annotators_by_domain(export.session, user_ids),
    )


def _annotators_by_domain(session: Session, user_ids: np.ndarray[Any, Any]) -> dict[str, int]:
    """The delivery's distinct annotators per workforce domain of their profiles (an annotator
    counts once in each of their domains), those without any under ``NO_DOMAIN``."""
    found: Counter[str] = Counter()
    for domains in workforce.domains_of(session, [int(u) for u in user_ids]).values():
        found.update(list(domains) or [NO_DOMAIN])  # the names: a mapping would add its levels
    return dict(sorted(found.items()))


def _tiers(session: Session, user_ids: np.ndarray[Any, Any]) -> dict[str, int]:
    """Each annotator's tier, by pseudonym."""
    if not user_ids.size:
        return {}
    query = select(User.pseudonym, User.tier).where(User.id.in_(user_ids.tolist()))
    return {pseudonym: int(tier) for pseudonym, tier in session.execute(query)}


# --- hf: the export's rows, with tiers and the method ------------------------------------------


def _hf_schema(export: Export) -> pa.Schema:
    base = row_schema(export.schema)
    annotation = base.field("annotations").type.value_type
    fields = [annotation.field(i) for i in range(annotation.num_fields)]
    with_tier = pa.list_(pa.struct([*fields[:1], pa.field("tier", pa.int64()), *fields[1:]]))
    schema = base.set(base.get_field_index("annotations"), pa.field("annotations", with_tier))
    return schema.append(pa.field("method", pa.string()))


def _hf_batches(export: Export, delivery: Delivery) -> Iterator[pa.RecordBatch]:
    tiers = _tiers(export.session, export.pseudonyms[0])
    known = pa.array(list(tiers), pa.string())
    levels = pa.array(list(tiers.values()), pa.int64())
    for batch in export.batches():
        listed = batch.column("annotations")
        labels = listed.flatten()
        who = labels.field("annotator")
        tier = levels.take(pc.index_in(who, value_set=known))
        parts = [labels.field(i) for i in range(labels.type.num_fields)]
        names = [labels.type.field(i).name for i in range(labels.type.num_fields)]
        rebuilt = pa.StructArray.from_arrays(
            [parts[0], tier, *parts[1:]], names=[names[0], "tier", *names[1:]]
        )
        annotations = pa.ListArray.from_arrays(listed.offsets, rebuilt)
        for question in export.schema.questions:
            if question.kind in CATEGORICAL:
                for value in pc.struct_field(batch.column("answers"), question.name).to_pylist():
                    delivery.facts.count(question.name, value)
        columns = [
            annotations if name == "annotations" else batch.column(name)
            for name in batch.schema.names
        ]
        method = pa.array([export.aggregate.method] * batch.num_rows, pa.string())
        yield pa.RecordBatch.from_arrays([*columns, method], schema=delivery.schema)


# --- dpo: preference pairs --------------------------------------------------------------------


def _dpo_batches(
    export: Export,
    questions: list[PreferenceQuestion],
    prompt_field: str | None,
    delivery: Delivery,
) -> Iterator[pa.RecordBatch]:
    tiers = _tiers(export.session, export.pseudonyms[0])
    for batch in export.batches():
        rows = []
        for task in batch.to_pylist():
            data = orjson.loads(task["data"])
            for question in questions:
                row = _pair(task, data, question, prompt_field, tiers, delivery)
                if row is not None:
                    rows.append({**row, "method": export.aggregate.method})
        yield pa.RecordBatch.from_pylist(rows, schema=DPO_SCHEMA)


def _pair(
    task: dict[str, Any],
    data: dict[str, Any],
    question: PreferenceQuestion,
    prompt_field: str | None,
    tiers: dict[str, int],
    delivery: Delivery,
) -> dict[str, Any] | None:
    answer = task["answers"][question.name]
    prompt = data.get(prompt_field or question.prompt_field or DEFAULT_PROMPT_FIELD)
    why = None
    if answer is None:
        why = "no answer"
    elif answer not in question.options:
        why = "tie"
    elif not isinstance(prompt, str):
        why = "no prompt"
    if why is not None:
        delivery.facts.left_out[why] += 1
        return None
    delivery.facts.count(question.name, answer)
    other = question.options[1] if answer == question.options[0] else question.options[0]
    return {
        "prompt": prompt,
        "chosen": data[answer],
        "rejected": data[other],
        "question": question.name,
        "confidence": task["confidence"][question.name],
        "task_id": task["task_id"],
        "external_id": task["external_id"],
        "annotations": [
            {
                "annotator": label["annotator"],
                "tier": tiers.get(label["annotator"]),
                "answer": label["answers"][question.name],
                "submitted_at": label["submitted_at"],
            }
            for label in task["annotations"]
            if label["answers"].get(question.name) is not None
        ],
    }


# --- sft: accepted text answers ---------------------------------------------------------------


def _sft_batches(
    export: Export, questions: list[TextQuestion], prompt_field: str, delivery: Delivery
) -> Iterator[pa.RecordBatch]:
    after = 0
    while rows := _text_answers(export, after, prompt_field):
        after = rows[-1][0]
        corrections = reviews.latest_reviews(export.session, [row[0] for row in rows])
        out = []
        for annotation_id, task_id, external_id, prompt, answers, status, who, tier, when in rows:
            review = corrections.get(annotation_id)
            for question in questions:
                row = _completion(question, answers, review, status)
                if row is None:
                    continue
                if not isinstance(prompt, str):
                    delivery.facts.left_out["no prompt"] += 1
                    continue
                where = {"task_id": task_id, "external_id": external_id, "question": question.name}
                by = {"annotator": who, "tier": tier, "submitted_at": when}
                out.append({**row, **where, **by, "prompt": prompt, "review_status": status.value})
        delivery.facts.distributions.setdefault("source", Counter()).update(
            r["source"] for r in out
        )
        yield pa.RecordBatch.from_pylist(out, schema=SFT_SCHEMA)


def _completion(
    question: Question, answers: dict[str, Any], review: Any, status: ReviewStatus
) -> dict[str, Any] | None:
    """The completion a text answer gives: the reviewer's correction, else the answer itself.
    Confidence is 1 where a reviewer accepted or corrected it, unknown (null) otherwise."""
    corrected = (
        review.corrected_answers if review is not None and review.decision is not None else None
    )
    if status is ReviewStatus.corrected and corrected and corrected.get(question.name):
        return {
            "completion": corrected[question.name],
            "source": "reviewer correction",
            "confidence": 1.0,
        }
    text = answers.get(question.name)
    if not text:
        return None
    reviewed = status is ReviewStatus.accepted
    return {"completion": text, "source": "annotator", "confidence": 1.0 if reviewed else None}


def _text_answers(export: Export, after: int, prompt_field: str) -> list[Any]:
    """The next annotations after id ``after`` that the export's aggregate counts (a reviewer
    did not reject them, their annotator is not paused, they were there when it was prepared),
    with their task's prompt, the annotator's pseudonym and tier (filters as the export's)."""
    query = (
        select(
            Annotation.id,
            Annotation.task_id,
            Task.external_id,
            Task.data[prompt_field].as_string(),
            Annotation.answers,
            Annotation.review_status,
            User.pseudonym,
            User.tier,
            Annotation.submitted_at,
        )
        .join(Task, Task.id == Annotation.task_id)
        .join(User, User.id == Annotation.user_id)
        .where(
            Annotation.project_id == export.project_id,
            Annotation.id > after,
            Annotation.id <= export.last_label,
            Annotation.review_status != ReviewStatus.rejected,
            pause.usable_label(),
            Task.id <= export.last_task,
        )
        .order_by(Annotation.id)
        .limit(SFT_BATCH)
    )
    query = _filtered(query, export.filters)
    return list(export.session.execute(query).all())


def _filtered(query: Any, filters: ExportFilter) -> Any:
    if filters.complete_only:
        query = query.where(Task.status == TaskStatus.complete)
    if filters.since is not None:
        query = query.where(Annotation.submitted_at >= filters.since)
    if filters.until is not None:
        query = query.where(Annotation.submitted_at < filters.until)
    return query
