"""The JSON API under /api/v1: thin handlers that parse, call the domain and serialize."""

from fastapi import APIRouter

from quorum.api import (
    assignments,
    audits,
    export,
    history,
    payments,
    projects,
    quality,
    tasks,
    users,
    workforce,
)
from quorum.api.errors import ERROR_RESPONSES

router = APIRouter(responses=ERROR_RESPONSES)
# The annotation loop first: requests are matched against routes in order, and it is the hot path.
for module in (
    assignments, users, projects, tasks, history, export, audits, payments, workforce, quality,
):  # fmt: skip
    router.include_router(module.router)
