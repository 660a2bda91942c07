"""The README's Python examples run, as written, against a live server."""

import contextlib
import io
import re
from pathlib import Path

import pytest
from tests.sdk.conftest import LiveServer

from quorum.client import Client

README = Path(__file__).parents[2] / "README.md"
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_the_readme_python_blocks_run(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocks = PYTHON_BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3  # the tour, the audit, the payments: none may silently vanish
    monkeypatch.setenv("QUORUM_URL", live_server.url)
    monkeypatch.setenv("QUORUM_TOKEN", live_server.token_for("readme@example.com", admin=True))
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    namespace: dict[str, object] = {}
    try:
        with contextlib.redirect_stdout(printed):
            for block in blocks:
                exec(compile(block, str(README), "exec"), namespace)  # our own README
    finally:
        client = namespace.get("client")
        if isinstance(client, Client):
            client.close()
    lines = printed.getvalue().splitlines()
    # What the comments in the README say is printed.
    assert lines[0] == "[{'line': 2, 'field': 'data', 'message': 'must be a JSON object'}]"
    assert lines[1] == "1"
    assert (tmp_path / "labels.parquet").exists()
    assert any(line.startswith("Acme ") for line in lines)
    assert lines[-1] == "{'pending': 0, 'payable': 0, 'paid': 0}"
