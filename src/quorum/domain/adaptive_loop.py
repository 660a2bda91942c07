"""Adaptive overlap and escalation: more labels where the answer is unsure, from higher tiers
when disagreement persists (DESIGN §6; the numbers: ``quorum.truth.adaptive``).

Two steps, both off the request path (``quorum.domain.quality_jobs``):

- **Re-aggregation** (:func:`refit`), a job: the project's usable labels (not rejected, not of
  paused annotators) of each categorical question (choice, preference, rating) are aggregated
  with Dawid-Skene, gold clamped, and ``truth.adaptive.worker_model`` turns the posteriors into
  shrunk per-annotator confusion matrices. The model is stored with the project
  (``quality_state.model``) and every task is decided again with it.
- **After each submission** (:func:`decide`, run by the loop's tick for the tasks that got
  labels): the task's posterior is recomputed from its labels with the stored worker parameters
  (no refit) and ``truth.adaptive.needs_more_labels`` says whether one more label could still
  change the answer (flip probability above ``1 - target_confidence``). A task whose slots are
  all filled, that is under ``max_overlap`` and needs more, gets one more slot (its overlap goes
  up by one). Without a fitted model nothing is decided on confidence: the first labels only
  ever get the base ``overlap``.

Both count *usable* labels: a label left out of aggregation (its annotator paused, or rejected
in review) was paid for but is no evidence, so the task gets a slot to replace it, with or
without a model. ``overlap`` and ``max_overlap`` bound the usable labels, so a task's overlap
may exceed ``max_overlap`` by the labels it lost.

Escalation: once a task has had two labels beyond ``overlap`` and still needs more
(``truth.adaptive.reserve_higher_tier``), its next slot is reserved for a tier above every
annotator who labelled it (``tasks.min_tier``, at most 3), which the lease honours.

Gold tasks (hidden or qualification) never get extra labels: a gold task is never shown to
more annotators than a real task's overlap. Questions of other kinds (multi_choice, spans,
ranking, text) do not drive the loop.

The confidence the loop acts on is the *tempered* posterior of ``truth.adaptive`` under shrunk
confusions (:func:`honest_confidence`), not the raw EM posterior: with two disagreeing labels
EM readily reports 100%, which would stop the loop exactly where it should go on.
"""

import io
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, Project, QualityState, ReviewStatus, Task, User
from quorum.db.types import canonical_json, utcnow
from quorum.domain import aggregation
from quorum.domain.pause import usable_label
from quorum.domain.policy import ProjectPolicy
from quorum.domain.projects import policy_of, schema_of
from quorum.domain.questions import (
    ChoiceQuestion,
    PreferenceQuestion,
    Question,
    QuestionSchema,
    RatingQuestion,
)
from quorum.domain.task_status import status_after
from quorum.truth import make_estimator
from quorum.truth.adaptive import (
    ESCALATE_AFTER,
    STRENGTH,
    TARGET,
    TEMPERATURE,
    WorkerModel,
    needs_more_labels,
    reserve_higher_tier,
    task_posterior,
    worker_model,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
METHOD = "ds"
TOP_TIER = 3


def categorical(schema: QuestionSchema) -> list[Question]:
    return [
        q
        for q in schema.questions
        if isinstance(q, ChoiceQuestion | PreferenceQuestion | RatingQuestion)
    ]


def _classes(question: Question, seen: Sequence[Any]) -> list[Any]:
    """The classes of a question: its options, the preference's two (and tie), or the ratings
    seen (a rating scale may be wide; unseen values carry no evidence)."""
    if isinstance(question, ChoiceQuestion):
        return list(question.options)
    if isinstance(question, PreferenceQuestion):
        return [*question.options, *(["tie"] if question.ties else [])]
    return sorted({value for value in seen if value is not None})


def _key(value: Any) -> str:
    return canonical_json(value).decode()


def answer_key(value: Any) -> str | None:
    """An answer as the models' classes are keyed (canonical JSON); None for no answer."""
    return None if value is None else _key(value)


@dataclass(frozen=True)
class QuestionModel:
    """One question's worker model: which user each row of ``confusions`` is, and its classes."""

    users: IntArray
    classes: list[str]  # canonical JSON of each class value
    model: WorkerModel

    def codes(self, values: Sequence[Any]) -> IntArray:
        """Class codes of answer values; -1 for values the model does not know."""
        index = {key: code for code, key in enumerate(self.classes)}
        return np.array([index.get(_key(v), -1) if v is not None else -1 for v in values], np.int64)

    def rows(self, user_ids: npt.ArrayLike) -> IntArray:
        """The model row of each user; users the model has not seen get the pooled row."""
        users = np.asarray(user_ids, np.int64)
        found = np.searchsorted(self.users, users).clip(max=max(self.users.size - 1, 0))
        known = self.users[found] == users if self.users.size else np.zeros(users.size, bool)
        rows: IntArray = np.where(known, found, self.users.size)
        return rows


Models = dict[str, QuestionModel]


def dump(models: Models) -> bytes:
    arrays: dict[str, Any] = {}
    for name, m in models.items():
        arrays |= {
            f"{name}/users": m.users,
            f"{name}/classes": np.array(m.classes, dtype=object),
            f"{name}/confusions": m.model.confusions,
            f"{name}/priors": m.model.priors,
            f"{name}/pooled": m.model.pooled,
        }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def load(blob: bytes | None) -> Models:
    """The stored models (none without a model)."""
    if not blob:
        return {}
    stored = np.load(io.BytesIO(blob), allow_pickle=True)
    names = sorted({key.split("/")[0] for key in stored.files if "/" in key})
    models = {
        name: QuestionModel(
            stored[f"{name}/users"].astype(np.int64),
            [str(c) for c in stored[f"{name}/classes"]],
            WorkerModel(
                stored[f"{name}/confusions"], stored[f"{name}/priors"], stored[f"{name}/pooled"]
            ),
        )
        for name in names
    }
    return models


# --- re-aggregation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    models: Models
    consensus: dict[str, dict[int, str]]  # question -> task id -> class key of its answer
    labels: int


def fit(session: Session, project: Project) -> Fit:
    """Aggregate every categorical question of the project and fit its worker model."""
    schema = schema_of(project)
    labels = aggregation.load_labels(session, project.id, schema)
    gold = aggregation.load_gold(session, project.id, schema)
    models: Models = {}
    consensus: dict[str, dict[int, str]] = {}
    for question in categorical(schema):
        found = _fit_question(question, labels, gold)
        if found is not None:
            models[question.name], consensus[question.name] = found
    return Fit(models, consensus, int(labels.annotation_id.size))


def _fit_question(
    question: Question, labels: aggregation.Labels, gold: aggregation.Gold
) -> tuple[QuestionModel, dict[int, str]] | None:
    values = labels.answers.column(question.name).to_pylist()
    answered = np.array([v is not None for v in values], bool)
    if not answered.any():
        return None
    classes = [_key(c) for c in _classes(question, values)]
    index = {key: code for code, key in enumerate(classes)}
    tasks, task = np.unique(labels.task_id[answered], return_inverse=True)
    users, worker = np.unique(labels.worker_id[answered], return_inverse=True)
    label = np.array([index[_key(v)] for v in values if v is not None], np.int64)
    clamp = np.full(tasks.size, -1, np.int64)
    golden = gold.answers.column(question.name).to_pylist() if gold.answers.num_rows else []
    for task_id, value in zip(gold.task_id.tolist(), golden, strict=True):
        spot = int(np.searchsorted(tasks, task_id))
        if (
            value is not None
            and spot < tasks.size
            and tasks[spot] == task_id
            and _key(value) in index
        ):
            clamp[spot] = index[_key(value)]
    fitted = make_estimator(METHOD).fit(
        task, worker, label, gold=clamp, n_tasks=tasks.size, n_workers=users.size,
        n_classes=len(classes),
    )  # fmt: skip
    model = worker_model(
        task, worker, label, fitted.probas_, n_workers=users.size, strength=STRENGTH
    )
    answers = fitted.probas_.argmax(axis=1)
    agreed = {
        int(t): classes[int(a)] for t, a in zip(tasks.tolist(), answers.tolist(), strict=True)
    }
    return QuestionModel(users.astype(np.int64), classes, model), agreed


# --- deciding ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskLabels:
    """The usable labels of some tasks: one row per label."""

    task_id: IntArray
    user_id: IntArray
    answers: list[dict[str, Any]]

    @classmethod
    def load(cls, session: Session, project_id: int, task_ids: Collection[int]) -> "TaskLabels":
        query = (
            select(Annotation.task_id, Annotation.user_id, Annotation.answers)
            .where(
                Annotation.project_id == project_id,
                Annotation.task_id.in_(list(task_ids)),
                Annotation.review_status != ReviewStatus.rejected,
                usable_label(),
            )
            .order_by(Annotation.task_id, Annotation.id)
        )
        rows = session.execute(query).all()
        return cls(
            np.array([r[0] for r in rows], np.int64),
            np.array([r[1] for r in rows], np.int64),
            [r[2] for r in rows],
        )


def target_of(policy: ProjectPolicy) -> float:
    return policy.target_confidence if policy.target_confidence is not None else TARGET


def unsure(
    models: Models, labels: TaskLabels, tasks: IntArray, policy: ProjectPolicy
) -> npt.NDArray[np.bool_]:
    """Per task (ids ``tasks``, sorted): does any question still need a label (module doc)?"""
    needs = np.zeros(tasks.size, bool)
    for model, position, rows, codes in _coded(models, labels, tasks):
        more = needs_more_labels(
            position, rows, codes, model.model.confusions, model.model.priors,
            pooled=model.model.pooled, overlap=0, max_overlap=policy.ceiling,
            target=target_of(policy), temperature=TEMPERATURE, n_tasks=tasks.size,
        )  # fmt: skip
        needs |= more & (np.bincount(position, minlength=tasks.size) > 0)
    return needs


def _coded(
    models: Models, labels: TaskLabels, tasks: IntArray
) -> Iterator[tuple[QuestionModel, IntArray, IntArray, IntArray]]:
    """Per question with answers its model knows: the model, and those labels' task positions
    in ``tasks`` (sorted), worker rows and class codes."""
    position = np.searchsorted(tasks, labels.task_id)
    for name, model in models.items():
        codes = model.codes([answers.get(name) for answers in labels.answers])
        keep = codes >= 0
        if keep.any():
            yield model, position[keep], model.rows(labels.user_id[keep]), codes[keep]


@dataclass(frozen=True)
class Decision:
    raised: list[int]  # tasks given one more slot
    escalated: list[int]  # of those, tasks whose next slot is kept for a higher tier


def decide(
    session: Session, project: Project, task_ids: Collection[int] | None, models: Models
) -> Decision:
    """One more slot for each of these tasks (None: all of the project's) that needs it
    (module doc); the caller commits."""
    policy = policy_of(project)
    if not policy.adaptive or task_ids is not None and not task_ids:
        return Decision([], [])
    query = select(Task.id, Task.overlap, Task.n_submitted)
    if task_ids is not None:
        query = query.where(Task.id.in_(list(task_ids)))
    rows = session.execute(
        query.where(
            Task.project_id == project.id,
            Task.gold.is_(None),
            Task.n_submitted >= Task.overlap,
        ).order_by(Task.id)
    ).all()
    if not rows:
        return Decision([], [])
    tasks = np.array([r[0] for r in rows], np.int64)
    labels = TaskLabels.load(session, project.id, tasks.tolist())
    usable = np.bincount(np.searchsorted(tasks, labels.task_id), minlength=tasks.size)
    # NOTE: the ceiling counts usable labels: a label left out (its annotator paused, or
    # rejected in review) was paid for but is no evidence, so it gets a replacement slot.
    left_out = np.array([r[2] for r in rows], np.int64) - usable
    room = np.array([r[1] for r in rows], np.int64) < policy.ceiling + left_out
    needs = room & ((usable < policy.overlap) | unsure(models, labels, tasks, policy))
    escalate = reserve_higher_tier(usable, needs, overlap=policy.overlap, after=ESCALATE_AFTER)
    tiers = _reserved_tiers(session, tasks[escalate].tolist(), policy.min_tier)
    raised, escalated = [], []
    for task_id, overlap in ((int(t), int(o)) for t, o, _ in rows):  # id order: the lock order
        if not needs[np.searchsorted(tasks, task_id)]:
            continue
        if _raise(session, task_id, overlap, tiers.get(task_id)):
            raised.append(task_id)
            escalated += [task_id] if task_id in tiers else []
    return Decision(raised, escalated)


def _reserved_tiers(session: Session, task_ids: list[int], floor: int) -> dict[int, int]:
    """For each task, the tier above everyone who labelled it (at most the top tier)."""
    if not task_ids:
        return {}
    query = (
        select(Annotation.task_id, User.tier)
        .join(User, User.id == Annotation.user_id)
        .where(Annotation.task_id.in_(task_ids))
    )
    highest: dict[int, int] = dict.fromkeys(task_ids, floor)
    for task_id, tier in session.execute(query):
        highest[task_id] = max(highest[task_id], tier)
    return {task_id: min(TOP_TIER, tier + 1) for task_id, tier in highest.items()}


def _raise(session: Session, task_id: int, seen_overlap: int, tier: int | None) -> bool:
    """Add one slot to the task, if its overlap is still what the decision saw."""
    overlap = Task.overlap + 1
    values: dict[str, Any] = {"overlap": overlap, "status": status_after(Task.n_submitted, overlap)}
    if tier is not None:
        values["min_tier"] = tier
    done = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.overlap == seen_overlap)
        .values(**values)
        .returning(Task.id)
        .execution_options(synchronize_session=False)
    ).first()
    return done is not None


# --- the confidence shown ---------------------------------------------------------------------


def honest_confidence(
    session: Session, project: Project, task_ids: Collection[int]
) -> dict[int, float | None]:
    """The confidence of each task's answer that the loop acts on: the least sure categorical
    question's top tempered posterior under the stored worker model (module doc). None for a
    task without labels or without a fitted model."""
    state = session.get(QualityState, project.id)
    models = load(state.model if state else None)
    found: dict[int, float | None] = dict.fromkeys(task_ids)
    if not models or not task_ids:
        return found
    tasks = np.array(sorted(set(task_ids)), np.int64)
    labels = TaskLabels.load(session, project.id, tasks.tolist())
    lowest = np.full(tasks.size, np.nan)
    for model, position, rows, codes in _coded(models, labels, tasks):
        probas = task_posterior(
            position, rows, codes, model.model.confusions, model.model.priors,
            pooled=model.model.pooled, temperature=TEMPERATURE, n_tasks=tasks.size,
        )  # fmt: skip
        answered = np.bincount(position, minlength=tasks.size) > 0
        top = np.where(answered, probas.max(axis=1), np.nan)
        lowest = np.fmin(lowest, top)
    for task_id, value in zip(tasks.tolist(), lowest.tolist(), strict=True):
        found[task_id] = None if np.isnan(value) else float(value)
    return found


def store(session: Session, project_id: int, fitted: Fit, *, now: datetime | None = None) -> None:
    """Keep the fitted model with the project's loop state (the caller commits)."""
    state = session.get(QualityState, project_id, with_for_update=True)
    if state is None:
        state = QualityState(project_id=project_id)
        session.add(state)
    state.model = dump(fitted.models)
    state.fitted_labels = fitted.labels
    state.fitted_at = state.updated_at = now or utcnow()
    session.flush()
