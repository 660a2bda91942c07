"""Bodies of the workforce and quality-loop routes (docs/quality.md), named by role."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from quorum.domain.trust import CREDIBLE, Trust
from quorum.domain.workforce import MAX_DOMAINS, MAX_PAY_RATE_CENTS, Profile

Level = Annotated[int, Field(ge=1, le=5)]
DomainName = Annotated[str, Field(min_length=1, max_length=64)]


class ProfileUpdate(BaseModel):
    """Only the fields given change; ``domains`` replaces the whole set; a null
    ``pay_rate_cents`` goes back to the project's rate."""

    model_config = ConfigDict(extra="forbid")

    tier: int | None = Field(default=None, ge=1, le=3)
    pay_rate_cents: int | None = Field(default=None, ge=0, le=MAX_PAY_RATE_CENTS)
    domains: dict[DomainName, Level] | None = Field(
        default=None, max_length=MAX_DOMAINS, examples=[{"medicine": 4, "law": 2}]
    )


class ProfilePublic(BaseModel):
    user_id: int
    email: str
    name: str
    pseudonym: str
    tier: int = Field(description="1 to 3; escalated tasks go to higher tiers")
    pay_rate_cents: int | None = Field(description="null: the project's pay_per_task_cents")
    domains: dict[str, int] = Field(description="domain -> level, 1 (some) to 5 (expert)")

    @classmethod
    def of(cls, profile: Profile) -> "ProfilePublic":
        user = profile.user
        return cls(
            user_id=user.id,
            email=user.email,
            name=user.name,
            pseudonym=user.pseudonym,
            tier=profile.tier,
            pay_rate_cents=profile.pay_rate_cents,
            domains=profile.domains,
        )


class TrustPublic(BaseModel):
    """Beta(1 + right, 1 + wrong) over graded labels: its mean and equal-tailed interval."""

    checks: int = Field(description="graded labels (gold, qualification, reviews)")
    checks_right: int
    mean: float
    low: float = Field(description="5% quantile")
    high: float = Field(description="95% quantile")
    credible: float = Field(description="the interval's mass, 0.9")

    @classmethod
    def of(cls, trust: Trust) -> "TrustPublic":
        low, high = trust.interval
        return cls(
            checks=trust.total,
            checks_right=trust.correct,
            mean=trust.mean,
            low=low,
            high=high,
            credible=CREDIBLE,
        )


class DomainTrustPublic(TrustPublic):
    domain: str


class AnnotatorQualityPublic(BaseModel):
    user_id: int
    annotator: str = Field(description="the annotator's pseudonym")
    tier: int
    labels: int
    trust: TrustPublic = Field(description="from the graded labels in this project")
    domains: list[DomainTrustPublic] = Field(
        description="trust in each of the project's domains, over every project"
    )
    p_below_floor: float = Field(description="P(accuracy < the project's accuracy_floor)")
    qualification: str = Field(description="not required, qualifying, passed or failed")
    paused: bool
    pause_reason: str = Field(description="why, with the figures behind it; empty if not paused")
    paused_at: datetime | None
    labels_excluded: bool = Field(
        description="their labels are kept but left out of aggregation and export (paused)"
    )


class ProjectQualityPublic(BaseModel):
    accuracy_floor: float
    pause_certainty: float = Field(description="auto-pause once P(below floor) exceeds this")
    domains: list[str] = Field(description="the project's domains ('general' if none)")
    gold_tasks: int
    qualification_tasks: int
    escalated_waiting: int = Field(description="open tasks whose next slot is for a higher tier")
    fitted_at: datetime | None = Field(description="the last whole-project re-aggregation")
    fitted_labels: int
    waiting_labels: int = Field(
        description="labels the quality loop has not processed yet (grading, flags, review "
        "sampling, adaptive overlap); a count that only grows means no loop is running: on "
        "PostgreSQL it runs in `quorum worker`"
    )
    waiting_since: datetime | None = Field(description="when the oldest of those came in")
    annotators: list[AnnotatorQualityPublic]


class PauseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class StandingPublic(BaseModel):
    """An annotator's standing in one project after an owner's decision."""

    project_id: int
    user_id: int
    qualification: str
    paused: bool
    pause_reason: str


class ProjectTrustPublic(TrustPublic):
    project_id: int
    project: str
    paused: bool
    qualification: str


class MyTrustPublic(BaseModel):
    """Your trust as of the start of today (UTC): a check does not show the moment it is
    graded, so the figure cannot tell which task was one."""

    as_of: datetime
    domains: list[DomainTrustPublic]
    projects: list[ProjectTrustPublic]


class FeedbackPublic(BaseModel):
    """Whether a graded check was right, in a project whose policy has ``gold_feedback``;
    never the expected answer."""

    id: int
    project_id: int
    assignment_id: int
    task_id: int = Field(description="the task as you saw it (your handle where gold is hidden)")
    correct: bool
    graded_at: datetime
