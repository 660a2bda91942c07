"""Problems found in an imported file, reported by line: the first 50, and how many in all.

Vendor deliveries and Label Studio exports use it; task imports keep their own (a hot path
tuned for a million rows).
"""

import heapq

from quorum.domain.errors import Invalid, Problem

MAX_PROBLEMS = 50


class Problems:
    """The first ``MAX_PROBLEMS`` problems by line, in whatever order they are found."""

    def __init__(self) -> None:
        self.count = 0
        self._heap: list[tuple[int, int, Problem]] = []  # a max-heap on (line, arrival)

    def add(self, line: int, field: str, message: str) -> None:
        self.count += 1
        item = (-line, -self.count, {"line": line, "field": field, "message": message})
        if len(self._heap) < MAX_PROBLEMS:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    def add_invalid(self, line: int, error: Invalid) -> None:
        """Every detail of a domain error, at ``line``."""
        for detail in error.details or [{"field": "line", "message": error.message}]:
            self.add(line, str(detail.get("field", "line")), str(detail["message"]))

    def first(self) -> list[Problem]:
        return [problem for _, _, problem in sorted(self._heap, reverse=True)]

    def raise_any(self, what: str) -> None:
        """Raise Invalid naming the first problem, if there is any; ``what`` was not imported."""
        if not self.count:
            return
        first = self.first()
        head = first[0]
        raise Invalid(
            f"{count_of(self.count)}; no {what} were imported; first at line "
            f"{head['line']}: {head['field']}: {head['message']}",
            first,
        )


def count_of(n: int) -> str:
    """'1 problem', '2 problems'."""
    return counted(n, "problem")


def counted(n: int, noun: str) -> str:
    """'1 task', '1,200 tasks': a count for a message (``noun`` takes an s in the plural)."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
