"""Reading tasks from request bodies and files: JSON arrays and NDJSON, line by line."""

from collections.abc import Iterable, Iterator

import orjson

from quorum.domain.tasks import Record


def read_ndjson(lines: Iterable[bytes]) -> Iterator[Record]:
    """One JSON object per line; blank lines are ignored, bad ones reported with their number."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield Record(number, orjson.loads(line))
        except orjson.JSONDecodeError as error:
            yield Record(number, error=f"not valid JSON: {error.msg} at column {error.colno}")


def read_json_array(body: bytes) -> Iterator[Record]:
    """A JSON array of tasks; its elements are numbered from 1 in place of lines."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        yield Record(error.lineno, error=f"not valid JSON: {error.msg} at column {error.colno}")
        return
    if not isinstance(value, list):
        yield Record(1, error="expected a JSON array of tasks")
        return
    for index, item in enumerate(value, start=1):
        yield Record(index, item)
