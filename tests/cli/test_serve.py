"""`quorum serve --demo` as a user runs it: a real server process on a free port."""

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[str], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUORUM_")}
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "quorum",
                "serve",
                "--demo",
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, process)
            yield url, log.read_text(), tmp_path
        finally:
            process.terminate()
            process.wait(timeout=20)


@pytest.mark.slow
def test_demo_server_serves_the_demo(demo_server: tuple[str, str, Path]) -> None:
    url, output, folder = demo_server
    assert (folder / "quorum-data" / "quorum.db").exists()  # the default database
    token = re.search(r"API token of requester@example.com: (qrm_\S+)", output)
    assert token, output
    assert re.search(r"annotator1@example.com\s+password \S+", output)
    headers = {"Authorization": f"Bearer {token.group(1)}"}
    projects = httpx.get(f"{url}/api/v1/projects", headers=headers).json()["items"]
    kinds = {p["schema"]["questions"][0]["kind"] for p in projects}
    assert kinds == {"choice", "multi_choice", "rating", "preference", "ranking", "spans", "text"}
    stats = httpx.get(f"{url}/api/v1/projects/{projects[0]['id']}/stats", headers=headers).json()
    assert stats["tasks"] > 0
    assert httpx.get(f"{url}/openapi.json").status_code == 200
