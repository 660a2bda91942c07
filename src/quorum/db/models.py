"""SQLAlchemy 2 models. The schema itself changes only through Alembic migrations."""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from quorum.db.types import BigId, Json, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class Role(enum.StrEnum):
    owner = "owner"
    reviewer = "reviewer"
    annotator = "annotator"


class TaskStatus(enum.StrEnum):
    open = "open"
    complete = "complete"


class AssignmentStatus(enum.StrEnum):
    leased = "leased"
    submitted = "submitted"
    skipped = "skipped"
    expired = "expired"


class ReviewStatus(enum.StrEnum):
    """Where an annotation stands in review; the quality loop drops ``rejected`` labels."""

    none = "none"
    pending = "pending"
    accepted = "accepted"
    rejected = "rejected"
    corrected = "corrected"


class ReviewSource(enum.StrEnum):
    """Why an annotation went to review: a person asked, ``review_rate`` sampled it, or a
    spam signal flagged it."""

    manual = "manual"
    sampled = "sampled"
    flagged = "flagged"


class ReviewDecision(enum.StrEnum):
    accepted = "accepted"
    rejected = "rejected"
    corrected = "corrected"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A stable random id shown instead of the person in exports and to other annotators.
    pseudonym: Mapped[str] = mapped_column(String(32), unique=True)
    tier: Mapped[int] = mapped_column(SmallInteger, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What one label of theirs is worth, when it differs from the project's pay_per_task_cents.
    pay_rate_cents: Mapped[int | None] = mapped_column(Integer)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # SHA-256 of the token: tokens carry 256 random bits, so a slow hash buys nothing.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text, default="")
    schema: Mapped[dict[str, Any]] = mapped_column(Json)
    policy: Mapped[dict[str, Any]] = mapped_column(Json)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Membership(Base):
    __tablename__ = "memberships"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        # The lease query walks this index in the order tasks are handed out.
        Index(
            "ix_tasks_due",
            "project_id",
            text("priority DESC"),
            text("n_submitted DESC"),
            "id",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        # Exports and task lists walk a project's tasks in id order.
        Index("ix_tasks_project_id_id", "project_id", "id"),
        # Hidden gold is picked from the due gold tasks without walking the real ones.
        Index(
            "ix_tasks_gold_due",
            "project_id",
            "priority",
            "n_submitted",
            "id",
            postgresql_where=text("status = 'open' AND gold IS NOT NULL"),
            sqlite_where=text("status = 'open' AND gold IS NOT NULL"),
        ),
        # A project's gold tasks in import order: the first ones are its qualification.
        Index(
            "ix_tasks_gold",
            "project_id",
            "id",
            postgresql_where=text("gold IS NOT NULL"),
            sqlite_where=text("gold IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(Json)
    gold: Mapped[dict[str, Any] | None] = mapped_column(Json)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    overlap: Mapped[int] = mapped_column(SmallInteger)
    n_submitted: Mapped[int] = mapped_column(Integer, default=0)
    n_leased: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[TaskStatus] = mapped_column(
        _enum(TaskStatus, "task_status"), default=TaskStatus.open
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Escalation: only annotators of this tier or above may take the task's next slot.
    min_tier: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")


class Assignment(Base):
    """A lease of one task to one annotator; the row outlives it, so no one gets a task twice."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("task_id", "user_id"),
        Index(
            "ix_assignments_live",
            "project_id",
            "expires_at",
            postgresql_where=text("status = 'leased'"),
            sqlite_where=text("status = 'leased'"),
        ),
        # One leased assignment per annotator and project (migration 0003).
        Index(
            "uq_assignments_leased_holder",
            "project_id",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'leased'"),
            sqlite_where=text("status = 'leased'"),
        ),
        # An id is never handed out again, also after deletes (migration 0009).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # NOTE: the task's project, copied for the indexes above; no foreign key of its own (the
    # task's is enough, and every lease checking the project's row under concurrency cost a
    # tenth of the database's time; migration 0007). assignment_audit checks it matches.
    project_id: Mapped[int] = mapped_column(BigId)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[AssignmentStatus] = mapped_column(
        _enum(AssignmentStatus, "assignment_status"), default=AssignmentStatus.leased
    )
    leased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__ = (
        Index("ix_annotations_project_id_id", "project_id", "id"),
        # The quality loop's queue: labels no tick has processed yet.
        Index(
            "ix_annotations_waiting",
            "project_id",
            "id",
            postgresql_where=text("loop_tick IS NULL"),
            sqlite_where=text("loop_tick IS NULL"),
        ),
        # Labels processed since a given tick (is a re-aggregation due?).
        Index(
            "ix_annotations_project_id_loop_tick",
            "project_id",
            "loop_tick",
            postgresql_where=text("loop_tick IS NOT NULL"),
            sqlite_where=text("loop_tick IS NOT NULL"),
        ),
        {"sqlite_autoincrement": True},  # as assignments (migration 0009)
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), unique=True
    )
    # NOTE: copies of the assignment's project, task and annotator, for the indexes; the
    # assignment's foreign keys hold for them (migration 0007), assignment_audit checks that
    # they match it.
    project_id: Mapped[int] = mapped_column(BigId)
    task_id: Mapped[int] = mapped_column(BigId, index=True)
    user_id: Mapped[int] = mapped_column(BigId, index=True)
    answers: Mapped[dict[str, Any]] = mapped_column(Json)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Written only by domain.reviews; bulk inserts that omit it get the server default.
    review_status: Mapped[ReviewStatus] = mapped_column(
        _enum(ReviewStatus, "review_status"), default=ReviewStatus.none, server_default="none"
    )
    # NOTE: the quality loop's tick that processed this label (``QualityState.ticks``); NULL
    # until then. Not an id watermark: ids are taken in one order and committed in another, so
    # a label with a lower id can become visible after the loop passed higher ones.
    loop_tick: Mapped[int | None] = mapped_column(BigInteger)


class IdempotencyRecord(Base):
    """The first reply to a request made with an ``Idempotency-Key``, replayed on retries."""

    __tablename__ = "idempotency_records"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(SmallInteger)
    response: Mapped[Any] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Review(Base):
    """One request to review an annotation, and its decision once a reviewer made it.

    The annotation's ``review_status`` mirrors the latest review; these rows are the history.
    """

    __tablename__ = "reviews"
    __table_args__ = (
        # The queue: a project's undecided reviews, oldest first.
        Index(
            "ix_reviews_pending",
            "project_id",
            "id",
            postgresql_where=text("decision IS NULL"),
            sqlite_where=text("decision IS NULL"),
        ),
        # At most one open review per annotation, however many times it is sent.
        Index(
            "uq_reviews_pending_annotation",
            "annotation_id",
            unique=True,
            postgresql_where=text("decision IS NULL"),
            sqlite_where=text("decision IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[ReviewSource] = mapped_column(_enum(ReviewSource, "review_source"))
    reason: Mapped[str] = mapped_column(String(500), default="")
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decision: Mapped[ReviewDecision | None] = mapped_column(
        _enum(ReviewDecision, "review_decision")
    )
    comment: Mapped[str] = mapped_column(Text, default="")
    # A correction is a reviewer's full answer: usable as gold for trust and aggregation.
    corrected_answers: Mapped[dict[str, Any] | None] = mapped_column(Json)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignInFailure(Base):
    """A failed password sign-in; kept in the database so every server process sees the count."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (
        Index("ix_sign_in_failures_email_hash_created_at", "email_hash", "created_at"),
        Index("ix_sign_in_failures_ip_created_at", "ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # SHA-256 of the normalised email: the emails strangers try are not worth keeping.
    email_hash: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Vendor(Base):
    """An outside labelling vendor whose delivery for a project is audited (docs/audits.md)."""

    __tablename__ = "vendors"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    price_cents_per_label: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VendorLabel(Base):
    """A vendor's answers for one task; kept apart from annotations, so they never enter the
    aggregate they are measured against."""

    __tablename__ = "vendor_labels"
    __table_args__ = (UniqueConstraint("vendor_id", "task_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    answers: Mapped[dict[str, Any]] = mapped_column(Json)
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditSample(Base):
    """A vendor label drawn for experts to check, in the stratum of the class the vendor gave."""

    __tablename__ = "audit_samples"
    __table_args__ = (UniqueConstraint("vendor_id", "task_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    question: Mapped[str] = mapped_column(String(64))
    # The vendor's answer to ``question`` as canonical JSON: the stratum the label was drawn in.
    stratum: Mapped[str] = mapped_column(String(500))
    drawn_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerKind(enum.StrEnum):
    earning = "earning"  # a label's pay, from the project's budget
    hold = "hold"  # the label went to review: its pay waits
    release = "release"  # review accepted (or corrected) it: its pay is due
    reversal = "reversal"  # review rejected it: its pay goes back to the budget
    reinstatement = "reinstatement"  # a later review accepted a label rejected before
    bonus = "bonus"
    adjustment = "adjustment"
    payout = "payout"


class Account(enum.StrEnum):
    """Where money sits: the project's ``budget`` (spent money leaves it), and per annotator
    ``pending`` (waiting for review), ``payable`` (due at the next payout) and ``paid``."""

    budget = "budget"
    pending = "pending"
    payable = "payable"
    paid = "paid"


class LedgerEntry(Base):
    """One movement of ``amount_cents`` from one account to another; rows are never changed
    or deleted (database triggers refuse it), so the ledger is its own audit trail."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="positive_amount"),
        CheckConstraint("source <> target", name="moves_money"),
        # A label earns once; a concurrent second posting of the same earning fails here.
        Index(
            "uq_ledger_entries_earning",
            "annotation_id",
            unique=True,
            postgresql_where=text("kind = 'earning'"),
            sqlite_where=text("kind = 'earning'"),
        ),
        Index("ix_ledger_entries_project_id_kind", "project_id", "kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[LedgerKind] = mapped_column(_enum(LedgerKind, "ledger_kind"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id"), index=True)
    source: Mapped[Account] = mapped_column(_enum(Account, "ledger_account_source"))
    target: Mapped[Account] = mapped_column(_enum(Account, "ledger_account_target"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500), default="")
    period: Mapped[str | None] = mapped_column(String(32), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- the quality loop and the workforce (docs/quality.md) -------------------------------------


class AnnotatorDomain(Base):
    """A domain an annotator knows (medicine, law, ...) and how well: level 1 to 5."""

    __tablename__ = "annotator_domains"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    domain: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger)


class ProjectDomain(Base):
    """A domain the project's policy requires (``required_domains``), kept as rows so the lease
    can check an annotator's domains with one join; written whenever the policy is."""

    __tablename__ = "project_domains"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    domain: Mapped[str] = mapped_column(String(64), primary_key=True)
    min_level: Mapped[int] = mapped_column(SmallInteger)


class ProjectWorker(Base):
    """An annotator's standing in one project: qualification and pause. No row: not decided,
    not paused."""

    __tablename__ = "project_workers"
    __table_args__ = (Index("ix_project_workers_user_id", "user_id"),)

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    qualification: Mapped[str | None] = mapped_column(String(16))  # passed | failed
    qualified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pause_reason: Mapped[str] = mapped_column(String(500), default="")
    paused_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    unpaused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unpaused_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Auto-pause weighs only outcomes from this moment on (set when an owner un-pauses).
    evidence_since: Mapped[datetime | None] = mapped_column(UTCDateTime)


class QualificationAttempt(Base):
    """One graded qualification: how many of the qualification tasks were right."""

    __tablename__ = "qualification_attempts"
    __table_args__ = (
        Index("ix_qualification_attempts_project_id_user_id", "project_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    correct: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reset_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reset_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class OutcomeSource(enum.StrEnum):
    gold = "gold"  # a hidden gold task
    qualification = "qualification"
    review = "review"  # a reviewer's decision, or a correction used as gold


class QualityOutcome(Base):
    """One graded label: right or wrong against gold or a reviewer. Trust is built from these."""

    __tablename__ = "quality_outcomes"
    __table_args__ = (
        UniqueConstraint("annotation_id", "source"),
        Index("ix_quality_outcomes_project_id_user_id", "project_id", "user_id"),
        Index("ix_quality_outcomes_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))
    correct: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QualityState(Base):
    """Where the quality loop of a project stands: how many ticks processed labels (each label
    keeps the number of its tick, ``Annotation.loop_tick``), the last tick whose labels its last
    re-aggregation saw, and that re-aggregation's worker model (NumPy arrays, ``np.savez``)."""

    __tablename__ = "quality_state"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    ticks: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    fitted_tick: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    fitted_labels: Mapped[int] = mapped_column(Integer, default=0)
    fitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    model: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TextFingerprint(Base):
    """One MinHash band of a free-text answer: answers sharing a band are near-duplicate
    candidates (spam signals)."""

    __tablename__ = "text_fingerprints"
    __table_args__ = (
        Index("ix_text_fingerprints_project_id_band", "project_id", "band"),
        Index("ix_text_fingerprints_annotation_id", "annotation_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"))
    band: Mapped[int] = mapped_column(BigInteger)
