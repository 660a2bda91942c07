"""Request and reply bodies, named by role: ``XCreate`` in, ``XPublic`` out."""

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from quorum.api.quality_schemas import TrustPublic
from quorum.db.models import Role, TaskStatus
from quorum.domain.policy import ProjectPolicy
from quorum.domain.questions import QuestionSchema

T = TypeVar("T")
MAX_ID = 2**63 - 1  # the largest id either database can store
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=1000, description="items per page")]
Cursor = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page"),
]
Email = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
ExternalId = Annotated[str, Field(min_length=1, max_length=200)] | int


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ListOf(BaseModel, Generic[T]):
    """A page; pass ``next_cursor`` as ``cursor`` to get the next one (null at the end)."""

    items: list[T]
    next_cursor: str | None


class UserCreate(_In):
    email: Email
    name: str = Field(default="", max_length=200)
    password: str | None = Field(default=None, min_length=8, max_length=1000)
    is_admin: bool = False
    tier: int = Field(default=1, ge=1, le=3)


class UserPublic(_Out):
    id: int
    email: str
    name: str
    is_admin: bool
    tier: int
    created_at: datetime


class TokenCreate(_In):
    name: str = Field(default="", max_length=200)


class TokenPublic(_Out):
    id: int
    name: str
    prefix: str = Field(description="the first characters of the token, to tell tokens apart")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="the token itself; shown this once and never again")


class ProjectCreate(_In):
    name: str = Field(min_length=1, max_length=200)
    instructions: str = Field(default="", max_length=200_000)
    questions: QuestionSchema = Field(alias="schema")  # a field named "schema" shadows BaseModel's
    policy: ProjectPolicy = Field(default_factory=ProjectPolicy)


class ProjectUpdate(_In):
    """Only the fields given change; all of them at once or none."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    instructions: str | None = Field(default=None, max_length=200_000)
    questions: QuestionSchema | None = Field(default=None, alias="schema")
    policy: ProjectPolicy | None = None


class ProjectPublic(_Out):
    id: int
    name: str
    instructions: str
    questions: dict[str, Any] = Field(alias="schema")
    policy: dict[str, Any]
    role: Role | None = Field(description="your role in the project; null for admins")
    created_at: datetime
    updated_at: datetime


class MemberCreate(_In):
    email: Email
    role: Role


class MemberPublic(_Out):
    user_id: int
    email: str
    name: str
    role: Role
    created_at: datetime


class TaskCreate(_In):
    data: dict[str, Any]
    gold: dict[str, Any] | None = None
    external_id: ExternalId | None = None
    priority: int = Field(default=0, ge=-(2**31), lt=2**31)


class ImportPublic(BaseModel):
    created: int
    skipped: int


class TaskPublic(_Out):
    """A task as its owners and reviewers see it, gold included."""

    id: int
    external_id: str | None
    data: dict[str, Any]
    gold: dict[str, Any] | None
    priority: int
    overlap: int
    n_submitted: int
    status: TaskStatus
    created_at: datetime


class TaskForAnnotator(_Out):
    """All an annotator sees of a task: gold tasks look exactly like the others."""

    id: int
    data: dict[str, Any]


class LeasePublic(BaseModel):
    assignment_id: int
    task: TaskForAnnotator
    expires_at: datetime


class SubmissionCreate(_In):
    answers: dict[str, Any]
    duration_ms: int | None = Field(default=None, ge=0, le=7 * 24 * 3600 * 1000)


class AnnotationPublic(_Out):
    id: int
    assignment_id: int
    task_id: int
    answers: dict[str, Any]
    duration_ms: int | None
    submitted_at: datetime


class AnnotationForReview(AnnotationPublic):
    annotator: str = Field(description="the annotator's stable pseudonymous id")


class AssignmentPublic(_Out):
    id: int
    task_id: int
    status: str
    leased_at: datetime
    expires_at: datetime
    finished_at: datetime | None


class AnnotatorFiguresPublic(_Out):
    annotator: str
    labels: int
    trust: TrustPublic = Field(description="in this project (GET .../quality has the rest)")
    paused: bool = Field(description="paused here: their labels are left out of aggregation")


class AgreementPublic(BaseModel):
    question: str
    kind: str
    metric: str = Field(description="Krippendorff's alpha (nominal, or interval for ratings)")
    value: float | None = Field(description="null while no task has two labels")
    low: float | None = Field(description="95% bootstrap interval over tasks")
    high: float | None
    percent: float | None = Field(description="pairwise percent agreement")
    tasks: int = Field(description="tasks with two or more labels")
    note: str


class StatsPublic(BaseModel):
    tasks: int
    complete: int
    open: int
    gold_tasks: int
    labels: int
    live_leases: int
    work_tasks: int = Field(
        description="tasks routed as real work: all but hidden gold checks and qualification tasks"
    )
    work_complete: int = Field(description="of those, the complete ones")
    progress: float = Field(description="share of the work complete (work_complete / work_tasks)")
    agreement: list[AgreementPublic] = Field(description="per question, rejected labels left out")
    annotators: list[AnnotatorFiguresPublic]
