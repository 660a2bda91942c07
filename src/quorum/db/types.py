"""Column types that behave the same on SQLite and PostgreSQL."""

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# NOTE: SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# none_as_null: a missing gold is SQL NULL, not the JSON text "null", so IS NULL finds it.
Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in Python; SQLite stores it naive, PostgreSQL as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys: orjson, several times faster than the stdlib, which takes over
    for what orjson refuses (integers beyond 64 bits are valid JSON)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# orjson reads an integer beyond 64 bits as a float, losing digits without a word; such an
# integer has at least 19 digits, and a line without a run of 19 digits cannot hold one. The run
# is looked for by mapping digits to "0" and the rest to " ": three times faster than a regex.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19


def loads_json(raw: bytes | str) -> Any:
    """Parse JSON with orjson, and again with the stdlib where a long number could be an integer
    orjson would round: values come back exactly as written.

    >>> loads_json(b'{"id": 123456789012345678901234567890}')
    {'id': 123456789012345678901234567890}

    Raises ``orjson.JSONDecodeError`` (a ``ValueError``) on malformed input.
    """
    value = orjson.loads(raw)
    data = raw.encode() if isinstance(raw, str) else raw
    return json.loads(data) if _LONG_RUN in data.translate(_DIGITS_AS_ZEROS) else value


def dumps_json(value: Any) -> str:
    """The engines' JSON serializer."""
    return canonical_json(value).decode()
