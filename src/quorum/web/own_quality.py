"""What annotators are told of their own standing and trust.

- On the labeling page, why no task comes (paused, failed the qualification, below the
  project's tier, missing a domain) or that they are taking the qualification: read from their
  standing in the project, never from the task on screen, so it is the same beside a hidden gold
  task and a real one. An automatic pause is explained without its figures, and an owner's
  reason is not shown: both stay on the owner's dashboard.
- In a project whose policy has ``gold_feedback``, whether their latest graded checks were
  right (never the expected answer), once the quality loop has graded them.

Their trust (the account page) comes from ``quality_report.own_view``: as of the start of the
UTC day, so the figures cannot move right after a submission and tell which task was a check.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from quorum.db.models import (
    Annotation,
    Project,
    ProjectWorker,
    QualificationAttempt,
    QualityOutcome,
    User,
)
from quorum.domain import gold, pause, workforce
from quorum.domain.pause import FAILED, PASSED
from quorum.domain.policy import ProjectPolicy
from quorum.domain.projects import policy_of
from quorum.web.quality import AUTO
from quorum.web.templating import percent, when

CHECKS_SHOWN = 5


@dataclass(frozen=True)
class Note:
    kind: str  # paused, failed, tier, domains, qualifying
    title: str
    text: str


def standing_note(session: Session, project: Project, user: User) -> Note | None:
    """Why the annotator gets no task here, or that they are qualifying; None when neither."""
    policy = policy_of(project)
    worker = pause.standing_of(session, project.id, user.id)
    if worker is not None and worker.paused_at is not None:
        return _paused(worker, policy)
    if worker is not None and worker.qualification == FAILED:
        return _failed(session, project, user, policy)
    if user.tier < policy.min_tier:
        return Note(
            "tier",
            "This project needs a higher tier",
            f"It is open to tier {policy.min_tier} annotators and above; you are tier "
            f"{user.tier}. Admins and project owners set tiers.",
        )
    missing = _missing_domains(session, user, policy)
    if missing:
        return Note(
            "domains",
            "This project needs expertise your profile does not list",
            f"It asks for {missing}. Admins and project owners set the domains in your profile "
            "(see your account page).",
        )
    qualified = worker is not None and worker.qualification == PASSED
    if policy.qualification is not None and not qualified:
        wanted = policy.qualification
        return Note(
            "qualifying",
            "Qualification",
            f"This project starts with {wanted.tasks} qualification "
            f"task{'s' if wanted.tasks != 1 else ''}; {percent(wanted.pass_rate)} of your "
            "answers to them must be right before you get its real work.",
        )
    return None


def _paused(worker: ProjectWorker, policy: ProjectPolicy) -> Note:
    since = when(worker.paused_at)
    if worker.pause_reason.startswith(AUTO):
        text = (
            f"Since {since}, the checks on your work here put your accuracy below the "
            f"{percent(policy.accuracy_floor)} this project asks for. You get no tasks in it, and "
            "your labels are set aside, until a project owner looks at your work and lets you "
            "label again."
        )
    else:
        text = (
            f"A project owner paused you on {since}. You get no tasks in this project until "
            "they let you label again; ask them why."
        )
    return Note("paused", "You are paused in this project", text)


def _failed(session: Session, project: Project, user: User, policy: ProjectPolicy) -> Note:
    attempt = session.scalar(
        select(QualificationAttempt)
        .where(
            QualificationAttempt.project_id == project.id,
            QualificationAttempt.user_id == user.id,
        )
        .order_by(QualificationAttempt.id.desc())
        .limit(1)
    )
    score = f"{attempt.correct} of your {attempt.total} answers were right" if attempt else ""
    needed = f"{percent(policy.qualification.pass_rate)} are needed" if policy.qualification else ""
    figures = "; ".join(part for part in (score, needed) if part)
    return Note(
        "failed",
        "You did not pass this project's qualification",
        (f"{figures}. " if figures else "")
        + "A project owner can let you take it again; until then this project has no tasks "
        "for you.",
    )


def _missing_domains(session: Session, user: User, policy: ProjectPolicy) -> str:
    """The required domains the user lacks, as a phrase ("medicine (level 3 or more)")."""
    wanted = policy.domain_levels
    if not wanted:
        return ""
    have = workforce.profile(session, user).domains
    missing = [
        name if level == 1 else f"{name} (level {level} or more)"
        for name, level in wanted.items()
        if have.get(name, 0) < level
    ]
    return ", ".join(missing)


@dataclass(frozen=True)
class Check:
    """One of the annotator's graded checks in the project, when its policy gives feedback."""

    labelled_at: datetime
    correct: bool


def recent_checks(session: Session, project: Project, user: User) -> list[Check] | None:
    """The annotator's latest graded checks here, newest first; None unless the project's
    policy has ``gold_feedback``. Read once the quality loop has graded them, so the task on
    screen is never one of them."""
    if not policy_of(project).gold_feedback:
        return None
    query = (
        select(Annotation.submitted_at, QualityOutcome.correct)
        .join(Annotation, Annotation.id == QualityOutcome.annotation_id)
        .where(
            QualityOutcome.project_id == project.id,
            QualityOutcome.user_id == user.id,
            QualityOutcome.source.in_(gold.CHECKS),
        )
        .order_by(QualityOutcome.id.desc())
        .limit(CHECKS_SHOWN)
    )
    return [Check(at, bool(correct)) for at, correct in session.execute(query)]
