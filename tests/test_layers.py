"""Imports point one way (DESIGN §2): cli, api, web → domain → db; domain → truth."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "quorum"
FORBIDDEN = {
    "truth": {"db", "domain", "io", "api", "web", "cli", "app", "client", "config"},
    "domain": {"api", "web", "cli", "app", "client"},
    "db": {"domain", "api", "web", "cli", "app", "client", "truth"},
}


def quorum_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("quorum.")}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_point_one_way(layer: str) -> None:
    for path in (SRC / layer).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        assert not {m.split(".")[1] for m in quorum_imports(path)} & FORBIDDEN[layer], path


def test_truth_imports_no_database_or_web_library() -> None:
    heavy = {"sqlalchemy", "fastapi", "starlette", "pandas", "httpx"}
    for path in (SRC / "truth").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & heavy, path
            elif isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in heavy, path
