"""A project's quality and routing policy (DESIGN §3), with its defaults."""

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_LEASE_SECONDS = 600
DEFAULT_ACCURACY_FLOOR = 0.6
# A required domain: a name, optionally with the least level wanted ("medicine:3").
DOMAIN = re.compile(r"^([a-z0-9][a-z0-9_.-]{0,63})(?::([1-5]))?$")


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
    accuracy_floor: float = Field(
        default=DEFAULT_ACCURACY_FLOOR,
        ge=0.0,
        le=1.0,
        description="pause an annotator once P(their accuracy < this) > 0.95 (docs/quality.md)",
    )
    gold_feedback: bool = Field(
        default=False, description="tell annotators whether they got each gold task right"
    )

    @field_validator("required_domains")
    @classmethod
    def _domains(cls, domains: list[str]) -> list[str]:
        clean = [domain.strip().lower() for domain in domains]
        for domain in clean:
            if not DOMAIN.match(domain):
                raise ValueError(
                    f"{domain!r} is not a domain: a lower-case name, optionally with the "
                    "least level wanted, as 'medicine' or 'medicine:3'"
                )
        names = [DOMAIN.match(domain).group(1) for domain in clean]  # type: ignore[union-attr]
        if len(set(names)) != len(names):
            raise ValueError("each domain may be required once")
        return clean

    @property
    def domain_levels(self) -> dict[str, int]:
        """The required domains and the least level each wants (1 when not said)."""
        found = (DOMAIN.match(domain) for domain in self.required_domains)
        return {m.group(1): int(m.group(2) or 1) for m in found if m is not None}

    @property
    def adaptive(self) -> bool:
        """Whether the quality loop may ask for labels beyond ``overlap``."""
        return self.ceiling > self.overlap

    @model_validator(mode="after")
    def _ceiling_above_overlap(self) -> "ProjectPolicy":
        if self.max_overlap is not None and self.max_overlap < self.overlap:
            raise ValueError("max_overlap must be at least overlap")
        return self

    @property
    def ceiling(self) -> int:
        """The most labels a task may ever get."""
        return self.max_overlap if self.max_overlap is not None else self.overlap
