"""Errors the domain raises; the API maps each to one HTTP status, the CLI to exit code 2.

DomainError(code, message, details)
 ├── Unauthorized   401  no or bad credentials
 ├── Forbidden      403  signed in, but the role does not allow it
 ├── NotFound       404  no such thing, or not visible to this user
 ├── Conflict       409  the state changed under the request (lease taken, already submitted)
 ├── Invalid        422  the input breaks a rule; ``details`` lists each problem
 └── Contended      503  the request kept losing races with concurrent ones and changed nothing
"""

from collections.abc import Collection
from typing import Any

Problem = dict[str, Any]  # {"field": ..., "message": ..., "line"?: ...}


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, details: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[Problem] = details or []


class Unauthorized(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class Contended(DomainError):
    """Nothing is wrong with the request and nothing changed: it lost races with concurrent
    ones several times in a row. Sent again (with the same ``Idempotency-Key``), it may pass.

    NOTE: a 503, not a 409, so that clients retry it as they retry an overloaded server (the
    SDK and the labeling page do); a 409 tells them to give the task up.
    """

    code = "contended"


class Invalid(DomainError):
    code = "validation_error"

    @classmethod
    def one(cls, field: str, message: str, **where: Any) -> "Invalid":
        return cls(f"{field}: {message}", [{"field": field, "message": message, **where}])


def problems_from_pydantic(
    errors: list[Any], prefix: str = "", tags: Collection[str] = ()
) -> list[Problem]:
    """Pydantic's error list as our ``{field, message}`` problems, with dotted field paths.

    ``tags`` are union tags pydantic puts in the path after a list index ("questions[0].rating");
    they are dropped, since the user never wrote them.
    """
    problems = []
    for error in errors:
        loc = list(error["loc"])
        parts = [
            part
            for i, part in enumerate(loc)
            if not (part in tags and i > 0 and isinstance(loc[i - 1], int))
        ]
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)
        field = (prefix + path).lstrip(".") or prefix or "body"
        problems.append({"field": field, "message": error["msg"]})
    return problems
