"""Fixtures for vendor audits: a project of tasks with a known truth, and vendors of known
accuracy who deliver labels for them."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from tests.conftest import Factory, Person
from tests.web.conftest import Visitor

from quorum.db.models import Project, Role
from quorum.domain import users


@pytest.fixture(autouse=True)
def quick_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """The factory gives everyone a password; Argon2 at its defaults takes 0.3 s a hash."""
    monkeypatch.setattr(
        users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def signed_in(app: FastAPI, client: object) -> Iterator[Callable[[Person], Visitor]]:
    """``signed_in(person)``: a browser's cookies, signed in as ``person``."""
    opened: list[Visitor] = []

    def open_as(person: Person) -> Visitor:
        visitor = Visitor(app)
        opened.append(visitor)
        assert visitor.sign_in(person.user.email).status_code == 303
        return visitor

    yield open_as
    for visitor in opened:
        visitor.client.close()


CLASSES = ["cat", "dog", "bird"]
SCHEMA = {
    "questions": [
        {"name": "animal", "kind": "choice", "options": CLASSES},
        {"name": "note", "kind": "text", "required": False},
    ]
}


def ndjson(rows: list[Any]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


@dataclass
class Delivery:
    """What a vendor delivered, and how many of its labels are in fact right."""

    rows: list[dict[str, Any]]
    right: int

    @property
    def accuracy(self) -> float:
        return self.right / len(self.rows)


@dataclass
class World:
    project: Project
    owner: Person
    experts: list[Person]
    truth: dict[str, str]  # external_id -> the right class

    def deliver(self, accuracy: float, seed: int) -> Delivery:
        """A vendor right with probability ``accuracy``, else a uniformly wrong class."""
        rng = np.random.default_rng(seed)
        rows, right = [], 0
        for external_id, true in self.truth.items():
            if rng.random() < accuracy:
                answer, right = true, right + 1
            else:
                answer = str(rng.choice([c for c in CLASSES if c != true]))
            rows.append({"external_id": external_id, "answers": {"animal": answer}})
        return Delivery(rows, right)


def make_world(make: Factory, n_tasks: int, *, n_experts: int = 1, seed: int = 0) -> World:
    owner = make.person("owner")
    experts = [make.person("expert") for _ in range(n_experts)]
    project = make.project(owner, SCHEMA, {"overlap": 1}, members={Role.annotator: experts})
    rng = np.random.default_rng(seed)
    truth = {f"t{i}": str(rng.choice(CLASSES, p=[0.5, 0.3, 0.2])) for i in range(n_tasks)}
    make.tasks(project, [{"external_id": e, "data": {"text": f"photo {e}"}} for e in truth])
    return World(project, owner, experts, truth)


@pytest.fixture
def world(make: Factory) -> World:
    return make_world(make, 120)
