"""Importing a big file takes no more memory than a small one: the file streams through."""

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from quorum.cli import app as cli

QUORUM = Path(sys.executable).with_name("quorum")
SCHEMA = {"questions": [{"name": "label", "kind": "choice", "options": ["yes", "no"]}]}


def write_tasks(path: Path, n: int) -> int:
    with open(path, "wb") as out:
        for i in range(n):
            text = f"Patient {i} reports a mild headache after taking aspirin in the morning."
            out.write(orjson.dumps({"data": {"text": text, "source": "triage"}}) + b"\n")
    return path.stat().st_size


def peak_rss(command: list[str], log: Path) -> int:
    """Peak resident memory of a command, in bytes; the command must succeed.

    NOTE: not ``wait4``'s ``ru_maxrss``: Linux keeps in it the high-water mark of the forked
    parent's image from before ``exec``, so a child of a big process reports the parent's size.
    ``VmHWM`` is the child's own peak; polled, it can only miss growth in the last 10 ms.
    """
    peak = 0
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        while process.poll() is None:
            peak = max(peak, high_water_mark(process.pid))
            time.sleep(0.01)
    assert process.returncode == 0, log.read_text()
    return peak


def high_water_mark(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone already
        return 0
    kilobytes = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(kilobytes[0]) * 1024 if kilobytes else 0


@pytest.mark.slow
def test_import_memory_stays_flat_as_the_file_grows(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/memory.db"
    runner = CliRunner()
    runner.invoke(cli, ["user", "create", "lead@example.com", "--db", db])
    spec = tmp_path / "spec.json"
    spec.write_text(orjson.dumps({"name": "p", "schema": SCHEMA}).decode())
    runner.invoke(cli, ["project", "create", str(spec), "--owner", "lead@example.com", "--db", db])
    small_size = write_tasks(tmp_path / "small.ndjson", 20_000)
    large_size = write_tasks(tmp_path / "large.ndjson", 200_000)
    log = tmp_path / "import.log"
    small = peak_rss([str(QUORUM), "import", "1", str(tmp_path / "small.ndjson"), "--db", db], log)
    large = peak_rss([str(QUORUM), "import", "1", str(tmp_path / "large.ndjson"), "--db", db], log)
    # Reading the whole file would cost its size several times over in Python objects; a
    # stream costs what one batch does, whatever the file size. Generous: a quarter of it.
    assert large - small < (large_size - small_size) / 4, (small, large, large_size)
