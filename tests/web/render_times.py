"""Server-side render time of every page on the demo data (not a test: run it by hand).

    .venv/bin/python tests/web/render_times.py [--runs 50]

Seeds the demo into a fresh SQLite file, adds 24 labels and two reviews to the triage project,
then requests each page ``runs`` times and prints the median and 95th percentile of the app's
own ``Server-Timing`` (routing, database, rendering; not the network).
"""

import argparse
import random
import re
import statistics
import sys
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from quorum.app import create_app
from quorum.config import Settings
from quorum.db.engine import Database, make_engine
from quorum.db.migrate import upgrade
from quorum.db.models import Annotation, Project, ReviewSource
from quorum.domain import assignments, demo, reviews, users

TIMING = re.compile(r"app;dur=([0-9.]+)")


def seed(url: str) -> dict[str, str]:
    engine = make_engine(url)
    upgrade(engine)
    database = Database(engine)
    rng = random.Random(7)
    with database.session(write=True) as session:
        result = demo.seed(session)
        project = session.get(Project, 1)
        assert project is not None
        for i in (1, 2, 3):
            person = users.get_by_email(session, f"annotator{i}@example.com")
            for _ in range(8):
                lease = assignments.lease(session, project, person)
                assert lease is not None
                answer = {"urgency": rng.choice(["emergency", "urgent", "routine"])}
                assignments.submit(session, lease.assignment.id, person, answer, duration_ms=9000)
        for note in session.scalars(select(Annotation).order_by(Annotation.id).limit(2)):
            reviews.send_to_review(session, note, source=ReviewSource.sampled)
    database.dispose()
    return {s.email: s.password for s in result.sign_ins}


def signed_in(client: TestClient, email: str, password: str) -> None:
    page = client.get("/sign-in").text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token
    reply = client.post(
        "/sign-in", data={"csrf_token": token.group(1), "email": email, "password": password}
    )
    assert reply.status_code == 303, reply.text


def measure(client: TestClient, method: str, path: str, runs: int) -> list[float]:
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/projects").text)
    headers = {"Accept": "application/json", "X-CSRF-Token": csrf.group(1) if csrf else ""}
    times = []
    for i in range(runs + 5):
        reply = client.request(method, path, headers=headers if method == "POST" else {})
        assert reply.status_code == 200, (path, reply.status_code)
        if i >= 5:  # warm: templates compiled, caches filled
            times.append(float(TIMING.search(reply.headers["server-timing"]).group(1)))  # type: ignore[union-attr]
    return times


def report(label: str, times: list[float]) -> None:
    p95 = sorted(times)[int(0.95 * len(times))]
    print(f"{label:<42} {statistics.median(times):>10.1f} {p95:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    folder = Path(tempfile.mkdtemp())
    url = f"sqlite:///{folder}/quorum.db"
    passwords = seed(url)
    app = create_app(Settings(database_url=url, environment="test"))
    pages = {
        "annotator1@example.com": [
            ("GET", "/projects"),
            ("GET", "/projects/2/label"),
            ("POST", "/projects/2/label/next"),
            ("POST", "/projects/6/label/next"),
        ],
        "requester@example.com": [
            ("GET", "/projects"),
            ("GET", "/projects/1/dashboard"),
            ("GET", "/projects/1/annotations"),
            ("GET", "/projects/1/tasks/1"),
            ("GET", "/projects/1/import"),
            ("GET", "/projects/1/members"),
            ("GET", "/projects/new"),
            ("GET", "/admin/users"),
            ("GET", "/account"),
        ],
        "reviewer@example.com": [("GET", "/projects/1/review")],
    }
    print(f"{'page':<42} {'median ms':>10} {'p95 ms':>8}")
    with TestClient(app, follow_redirects=False) as anonymous:
        report("GET /sign-in", measure(anonymous, "GET", "/sign-in", runs))
    for email, wanted in pages.items():
        with TestClient(app, follow_redirects=False) as client:
            signed_in(client, email, passwords[email])
            for method, path in wanted:
                label = f"{method} {path} ({email.split('@')[0]})"
                report(label, measure(client, method, path, runs))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parents[2]))
    main()
