"""Fixtures for import and export: task files, and projects labelled through the real lease path."""

import io
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person

from quorum.db.models import Project, Role
from quorum.domain import assignments, users

# One question of each kind that reads task data, plus a choice and a free text.
MIXED_SCHEMA = {
    "questions": [
        {"name": "verdict", "kind": "choice", "options": ["good", "bad"]},
        {"name": "tags", "kind": "multi_choice", "options": ["x", "y", "z"]},
        {"name": "order", "kind": "ranking", "field": "items"},
        {"name": "ents", "kind": "spans", "field": "text", "labels": ["drug"], "required": False},
        {"name": "note", "kind": "text", "required": False},
    ]
}


def ndjson(rows: list[Any]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def mixed_task(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "external_id": f"t{i}",
        "data": {"text": f"aspirin {i} mg", "items": ["a", "b", "c"], "source": "triage"},
        **extra,
    }


def answers(verdict: str, tags: list[str], order: list[int], **extra: Any) -> dict[str, Any]:
    return {"verdict": verdict, "tags": tags, "order": order, **extra}


@dataclass
class Labelled:
    """A project with three annotators; ``label`` submits one answer through a real lease."""

    session: Session
    project: Project
    owner: Person
    annotators: list[Person]

    def label(self, who: int, values: dict[str, Any], duration_ms: int = 1500) -> int:
        person = self.annotators[who]
        lease = assignments.lease(self.session, self.project, person.user)
        assert lease is not None, "nothing left to label"
        assignments.submit(
            self.session, lease.assignment.id, person.user, values, duration_ms=duration_ms
        )
        return lease.task.id


def token_user(session: Session, name: str, *, admin: bool = False) -> Person:
    """A user who signs in with an API token only: no password to hash, so tests stay fast."""
    user = users.create_user(session, f"{name}@example.com", is_admin=admin)
    _, token = users.create_token(session, user, "test")
    return Person(user, token)


@pytest.fixture
def labelled(make: Factory, session: Session) -> Labelled:
    owner = token_user(session, "owner")
    annotators = [token_user(session, f"annotator{i}") for i in range(3)]
    project = make.project(
        owner, MIXED_SCHEMA, {"overlap": 3}, members={Role.annotator: annotators}
    )
    return Labelled(session, project, owner, annotators)
