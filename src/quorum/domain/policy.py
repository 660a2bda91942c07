"""A project's quality and routing policy (DESIGN §3), with its defaults."""

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_LEASE_SECONDS = 600


class Qualification(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: int = Field(ge=1, le=1000, description="qualification gold tasks to answer")
    pass_rate: float = Field(ge=0.0, le=1.0, description="share answered right to pass")


class ProjectPolicy(BaseModel):
    """Every field has a default, so ``{}`` is a valid policy: one label per task, no gold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    overlap: int = Field(default=1, ge=1, le=100, description="labels per task")
    max_overlap: int | None = Field(
        default=None, ge=1, le=100, description="ceiling for adaptive extra labels"
    )
    target_confidence: float | None = Field(default=None, gt=0.0, le=1.0)
    lease_seconds: int = Field(default=DEFAULT_LEASE_SECONDS, ge=10, le=7 * 24 * 3600)
    gold_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    qualification: Qualification | None = None
    required_domains: list[str] = Field(default_factory=list, max_length=20)
    min_tier: int = Field(default=1, ge=1, le=3)
    pay_per_task_cents: int = Field(default=0, ge=0, le=10_000_000)
    budget_cents: int | None = Field(default=None, ge=0)
    review_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ceiling_above_overlap(self) -> "ProjectPolicy":
        if self.max_overlap is not None and self.max_overlap < self.overlap:
            raise ValueError("max_overlap must be at least overlap")
        return self

    @property
    def ceiling(self) -> int:
        """The most labels a task may ever get."""
        return self.max_overlap if self.max_overlap is not None else self.overlap
