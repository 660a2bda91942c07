"""The JSON API under /api/v1: thin handlers that parse, call the domain and serialize."""

from fastapi import APIRouter

from quorum.api import assignments, export, projects, tasks, users
from quorum.api.errors import ERROR_RESPONSES

router = APIRouter(responses=ERROR_RESPONSES)
for module in (users, projects, tasks, assignments, export):
    router.include_router(module.router)
