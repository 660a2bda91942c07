"""Browser tests: one real ``quorum serve --demo`` process and one Chromium per test session.

Chromium is Debian's ``chromium`` package, driven by Playwright through ``executable_path``;
Playwright never downloads a browser. Screenshots go to ``test-output/screenshots/``.
"""

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from sqlalchemy.orm import Session

from quorum.db.engine import Database, make_engine

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parents[3] / "test-output" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    url: str
    passwords: dict[str, str]
    token: str
    database_url: str

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        reply = httpx.request(
            method, f"{self.url}/api/v1{path}", headers=headers, timeout=30, **kwargs
        )
        assert reply.is_success, reply.text
        return reply.json() if reply.content else None

    def project(self, schema: dict[str, Any], tasks: list[dict[str, Any]], **policy: Any) -> int:
        """A fresh project of the requester with these tasks; annotator1 labels it."""
        created = self.api(
            "POST",
            "/projects",
            json={
                "name": f"browser test {time.monotonic_ns()}",
                "instructions": "Label carefully.",
                "schema": schema,
                "policy": {"overlap": 1, **policy},
            },
        )
        for email, role in (
            ("annotator1@example.com", "annotator"),
            ("reviewer@example.com", "reviewer"),
        ):
            self.api(
                "POST", f"/projects/{created['id']}/members", json={"email": email, "role": role}
            )
        self.api("POST", f"/projects/{created['id']}/tasks", json=tasks)
        return int(created["id"])

    def annotations(self, project_id: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api("GET", f"/projects/{project_id}/annotations")[
            "items"
        ]
        return items

    @contextmanager
    def session(self) -> Iterator[Session]:
        """The server's own database file, opened next to it (SQLite in WAL mode allows this)."""
        database = Database(make_engine(self.database_url))
        try:
            with database.session(write=True) as session:
                yield session
        finally:
            database.dispose()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    # NOTE: generous: the demo seed takes 6-10 s alone, but minutes on a machine loaded by
    # other work, and a test server that never starts is no finding.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"quorum serve exited with {process.returncode}:\n{log.read_text()}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"quorum serve did not start:\n{log.read_text()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    database_url = f"sqlite:///{folder}/quorum.db"
    port, log = free_port(), folder / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUORUM_")}
    command = [
        sys.executable,
        "-m",
        "quorum",
        "serve",
        "--demo",
        "--port",
        str(port),
        "--db",
        database_url,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log)
        output = log.read_text()
        passwords = dict(re.findall(r"(\S+@example\.com)\s+password (\S+)", output))
        token = re.search(r"API token of requester@example.com: (qrm_\S+)", output)
        assert token and len(passwords) == 5, output
        yield Server(url, passwords, token.group(1), database_url)
    finally:
        process.terminate()
        process.wait(timeout=20)


# NOTE: module scope, not session: Playwright's sync API keeps an event loop running in the
# thread while it is started, and asyncio.run() in any later test of the same xdist worker
# (tests/doors.py, the job tests) would then fail; pytest stops it when the module is done.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"browser tests need Debian's chromium at {CHROMIUM}: run `sudo apt-get install -y "
            "chromium` (make test does this for you)",
            pytrace=False,
        )
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


SignIn = Callable[..., Page]


@pytest.fixture
def sign_in(browser: Browser, server: Server) -> Iterator[SignIn]:
    """``sign_in(email, viewport=DESKTOP)``: a fresh browser context signed in as ``email``.

    Script errors and console errors fail the test: a page that throws is broken.
    """
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    def open_as(email: str, viewport: dict[str, int] = DESKTOP) -> Page:
        context = browser.new_context(viewport=viewport, base_url=server.url, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"{email}: {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(f"{email}: {message.text}")
                # a failed request is logged too; the tests that cause one check its handling
                if message.type == "error"
                and not message.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.goto("/sign-in")
        page.fill("#email", email)
        page.fill("#password", server.passwords[email])
        page.press("#password", "Enter")
        page.wait_for_url("**/projects")
        return page

    yield open_as
    for context in contexts:
        context.close()
    assert problems == [], problems


def shoot(page: Page, name: str) -> None:
    """A full-page screenshot for people to look at (test-output/screenshots/NAME.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
