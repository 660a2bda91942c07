"""The ASGI application: the one place that mounts the API and the web pages."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from quorum import __version__, api, web
from quorum.api import errors
from quorum.api.limits import BodySizeLimit
from quorum.config import Settings
from quorum.db.engine import Database, make_engine

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
        try:
            yield
        finally:
            if owned:
                await app.state.database.aclose()  # its connection pools too

    return run


def create_app(settings: Settings, *, database: Database | None = None) -> FastAPI:
    """The app for ``settings``; tests pass a ``database`` bound to their own transaction."""
    settings.check_production_ready()
    app = FastAPI(
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


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory``: each worker process builds its app from QUORUM_*."""
    return create_app(Settings())
