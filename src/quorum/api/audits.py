"""Vendor audits: deliveries in, samples drawn, reports out (owners and admins; docs/audits.md)."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from quorum.api.deps import CurrentUser, SessionDep
from quorum.api.export import Method
from quorum.api.schemas import Id
from quorum.api.tasks import IMPORT_BODY, ImportFormat, seekable, upload_body
from quorum.domain import audit_report, audits, policies, projects
from quorum.domain.projects import ProjectAccess
from quorum.io.vendor_files import read_vendor_labels

router = APIRouter(tags=["audits"])


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class DeliveryPublic(_Out):
    vendor: str
    created: int


class VendorPublic(BaseModel):
    name: str
    price_cents_per_label: int | None
    delivered: int


class SampleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: float = Field(default=0.1, gt=0, lt=1, description="widest 95% interval to aim for")
    expected_accuracy: float = Field(
        default=0.5, ge=0, le=1, description="the accuracy you expect; 0.5 is the worst case"
    )
    question: str | None = Field(default=None, max_length=64)
    confidence: float = Field(default=0.95, ge=0.5, lt=1)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)


class VendorSamplePublic(_Out):
    vendor: str
    question: str
    delivered: int
    target: int
    drawn: int
    total: int


class IntervalPublic(_Out):
    low: float
    high: float


class ClassFiguresPublic(_Out):
    label: str
    delivered: int
    checked: int
    correct: int
    precision: float | None


class ConfusionPublic(_Out):
    labels: list[str]
    counts: list[list[int]] = Field(
        description="checked tasks: experts' class by row, vendor's by column"
    )


class VendorReportPublic(_Out):
    vendor: str
    price_cents_per_label: int | None
    delivered: int
    sampled: int
    checked: int
    covered: int = Field(
        description="labels of the classes with a checked task, which accuracy rests on; below "
        "delivered mid-sample, when the intervals also allow for the other classes"
    )
    accuracy: float | None
    wilson: IntervalPublic | None
    bootstrap: IntervalPublic | None
    kappa: float | None
    kappa_interval: IntervalPublic | None
    classes: list[ClassFiguresPublic]
    confusion: ConfusionPublic
    cost_per_correct_label_cents: float | None
    cost_interval: IntervalPublic | None
    estimated_wrong_labels: float | None
    wrong_labels_interval: IntervalPublic | None


class AuditReportPublic(_Out):
    project_id: int
    question: str
    method: str
    confidence: float
    vendors: list[VendorReportPublic] = Field(description="best first")


def _audited(session: SessionDep, user: CurrentUser, project_id: int) -> ProjectAccess:
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_audit(seen.role), "only the project's owners audit")
    return seen


@router.post(
    "/projects/{project_id}/audit/deliveries",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=IMPORT_BODY,
)
async def import_delivery(
    project_id: Id,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    vendor: Annotated[str, Query(min_length=1, max_length=200, description="the vendor's name")],
    price_cents_per_label: Annotated[
        int | None, Query(ge=0, le=audits.MAX_PRICE_CENTS, description="the vendor's price")
    ] = None,
    format: Annotated[ImportFormat | None, Query(description="the body's format")] = None,
) -> DeliveryPublic:
    """A vendor's labels, `{external_id, answers}` per row (JSON array, NDJSON, CSV or Parquet,
    or a multipart upload), all or nothing; every problem is listed with its line."""
    seen = _audited(session, user, project_id)
    schema = projects.schema_of(seen.project)
    async with upload_body(request, format) as (fmt, body):

        def run() -> audits.VendorImport:
            with seekable(body) as file:
                rows = read_vendor_labels(file, fmt, schema)
                return audits.import_vendor_labels(
                    session, seen.project, vendor, rows, price_cents_per_label=price_cents_per_label
                )

        result = await run_in_threadpool(run)
    return DeliveryPublic.model_validate(result)


@router.get("/projects/{project_id}/audit/vendors")
def list_vendors(project_id: Id, session: SessionDep, user: CurrentUser) -> list[VendorPublic]:
    """The project's vendors and how many labels each delivered."""
    seen = _audited(session, user, project_id)
    return [
        VendorPublic(name=v.name, price_cents_per_label=v.price_cents_per_label, delivered=n)
        for v, n in audits.list_vendors(session, seen.project)
    ]


@router.post("/projects/{project_id}/audit/sample")
def draw_sample(
    project_id: Id, body: SampleCreate, session: SessionDep, user: CurrentUser
) -> list[VendorSamplePublic]:
    """Draw or top up each vendor's stratified sample, sized for the wanted interval width;
    the sampled tasks go to the front of the experts' queue."""
    seen = _audited(session, user, project_id)
    drawn = audits.draw_sample(session, seen.project, **body.model_dump())
    return [VendorSamplePublic.model_validate(v) for v in drawn]


@router.get("/projects/{project_id}/audit")
def read_report(
    project_id: Id,
    session: SessionDep,
    user: CurrentUser,
    method: Annotated[Method, Query(description="aggregation of the experts' labels")] = "ds",
    question: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditReportPublic:
    """Each vendor against the experts' consensus, best first (docs/audits.md)."""
    seen = _audited(session, user, project_id)
    result = audit_report.report(session, seen.project, question=question, method=method)
    return AuditReportPublic.model_validate(result)
