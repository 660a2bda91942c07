"""Checks on user text that every database must be able to store."""

from typing import Any

from quorum.domain.errors import Invalid


def nul_path(value: Any, path: str) -> str | None:
    """Where ``value`` holds a NUL character, which PostgreSQL text and JSONB cannot store."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = nul_path(key, path) or nul_path(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def refuse_nul(value: Any, path: str) -> None:
    found = nul_path(value, path)
    if found:
        raise Invalid.one(found, "must not contain the NUL character (\\u0000)")
