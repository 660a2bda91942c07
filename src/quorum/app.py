"""The ASGI application: the one place that mounts the API and the web pages."""

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from quorum import __version__, api, web
from quorum.api import errors
from quorum.api.annotation_lane import AnnotationLane
from quorum.api.limits import BodySizeLimit
from quorum.config import Settings
from quorum.db.engine import Database, make_engine
from quorum.domain.quality_jobs import InProcessLoop

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def lifespan(settings: Settings, database: Database | None) -> Lifespan:
    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        app.state.database = database or Database(
            make_engine(
                settings.database_url,
                busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                pool_size=settings.pool_size,
            )
        )
        loop = None
        wanted = owned if settings.quality_loop is None else settings.quality_loop
        if wanted and app.state.database.is_sqlite:
            # NOTE: SQLite has no job queue: the loop's sweeps run in a thread of each server
            # process, serialised with requests by SQLite's one writer (docs/quality.md).
            loop = InProcessLoop(app.state.database, settings.quality_loop_seconds).start()
        # NOTE: what exists now (routes, models, metadata, compiled statements) lives as long
        # as the process; frozen, the collector stops walking it on every full collection
        # (about a tenth of a busy server's CPU was the collector, measured with perf).
        gc.freeze()
        try:
            yield
        finally:
            if loop is not None:
                await asyncio.to_thread(loop.stop)  # waits for a sweep under way
            if owned:
                await app.state.database.aclose()  # its connection pools too

    return run


class QuorumApp(FastAPI):
    """FastAPI with the annotation lane in front of everything, framework layers included
    (``quorum.api.annotation_lane``): the three calls every label makes skip them all."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.lane: AnnotationLane | None = AnnotationLane(super().__call__, self.state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.lane is None:
            await super().__call__(scope, receive, send)
        else:
            await self.lane(scope, receive, send)


def create_app(settings: Settings, *, database: Database | None = None) -> QuorumApp:
    """The app for ``settings``; tests pass a ``database`` bound to their own transaction."""
    settings.check_production_ready()
    app = QuorumApp(
        title="Quorum",
        version=__version__,
        summary="Expert-labeled AI training data whose quality is measured, not promised.",
        lifespan=lifespan(settings, database),
        docs_url=None,  # Swagger UI loads from a CDN; Quorum ships no remote assets
        redoc_url=None,
    )
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(api.router, prefix="/api/v1")
    web.install(app, settings)  # pages, static files, session cookie, CSRF

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def app_from_environment() -> QuorumApp:
    """Factory for ``uvicorn --factory``: each worker process builds its app from QUORUM_*."""
    return create_app(Settings())
