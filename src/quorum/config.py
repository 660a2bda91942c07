"""Settings, read from the environment (prefix ``QUORUM_``) or passed in explicitly."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///quorum-data/quorum.db"
# Refused when QUORUM_ENVIRONMENT=production (see check_production_ready).
DEVELOPMENT_SECRET = "quorum-development-secret-change-me"


class Settings(BaseSettings):
    """Everything a Quorum process can be configured with; read when asked, never at import."""

    model_config = SettingsConfigDict(env_prefix="QUORUM_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str = DEVELOPMENT_SECRET
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    lease_seconds: int = Field(default=600, ge=1, description="default lease for new projects")
    max_body_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    environment: str = Field(default="development", pattern="^(development|production|test)$")
    sqlite_busy_timeout_ms: int = 30_000
    pool_size: int = Field(default=10, ge=1)
    # Web sign-in: the session cookie is signed with secret_key; set secure_cookies behind HTTPS.
    secure_cookies: bool = False
    session_max_age_seconds: int = Field(default=14 * 24 * 3600, ge=60)
    # The quality loop (docs/quality.md). On SQLite each server process runs it in a thread;
    # on PostgreSQL `quorum worker` runs it. None: on for a server on its own SQLite database,
    # off for an app given a database (tests), which may ask for it with True.
    quality_loop: bool | None = None
    quality_loop_seconds: float = Field(default=2.0, gt=0, le=3600)

    def sqlite_path(self) -> Path | None:
        """The file of a SQLite database URL, or None for other databases and ``:memory:``."""
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        path = self.database_url[len(prefix) :].split("?", 1)[0]
        return None if path in ("", ":memory:") else Path(path)

    def check_production_ready(self) -> None:
        if self.environment == "production" and self.secret_key == DEVELOPMENT_SECRET:
            raise ValueError("QUORUM_SECRET_KEY must be set when QUORUM_ENVIRONMENT=production")
