"""Fixtures for vendor audits: a project of tasks with a known truth, and vendors of known
accuracy who deliver labels for them."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest
from tests.conftest import Factory, Person

from quorum.db.models import Project, Role

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
