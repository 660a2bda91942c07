"""A real Quorum server on a free port, with a fresh SQLite database, for SDK tests."""

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from quorum.app import create_app
from quorum.config import Settings
from quorum.db.engine import Database, make_engine
from quorum.db.migrate import upgrade
from quorum.domain import users


@dataclass(frozen=True)
class LiveServer:
    url: str
    database: Database

    def token_for(self, email: str, *, admin: bool = False) -> str:
        with self.database.session(write=True) as session:
            user = users.create_user(session, email, is_admin=admin)
            return users.create_token(session, user, "sdk test")[1]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("sdk") / "quorum.db"
    # The quality loop's thread stays off: tests run its sweeps themselves, deterministically.
    settings = Settings(database_url=f"sqlite:///{path}", environment="test", quality_loop=False)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield LiveServer(url, Database(engine))
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()
