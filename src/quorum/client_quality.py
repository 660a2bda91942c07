"""The SDK's workforce and quality-loop calls (docs/quality.md), mixed into ``quorum.Client``.

>>> client.update_profile(7, tier=2, domains={"medicine": 4})  # doctest: +SKIP
>>> [a["trust"]["mean"] for a in client.quality(1)["annotators"]]  # doctest: +SKIP
"""

from collections.abc import Iterator
from typing import Any

JSON = dict[str, Any]


class QualityCalls:
    """Profiles, trust and annotators' standing; ``Client`` supplies the plumbing."""

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError  # Client's

    def _pages(self, path: str, **params: Any) -> Iterator[JSON]:
        raise NotImplementedError  # Client's

    def profile(self, user_id: int | None = None) -> JSON:
        """Your profile, or (admins, owners of their projects) someone else's."""
        path = "/me/profile" if user_id is None else f"/users/{user_id}/profile"
        result: JSON = self._json("GET", path)
        return result

    def update_profile(self, user_id: int, **changes: Any) -> JSON:
        """Change ``tier``, ``domains`` (the whole set: ``{name: level}``) or
        ``pay_rate_cents`` (admins; None: the project's rate); the rest is kept."""
        result: JSON = self._json("PATCH", f"/users/{user_id}/profile", json=changes)
        return result

    def workforce(
        self, *, domain: str | None = None, min_tier: int | None = None
    ) -> Iterator[JSON]:
        """Every profile (admins), optionally with ``domain`` or of ``min_tier`` or above."""
        filters = {"domain": domain, "min_tier": min_tier}
        return self._pages("/workforce", **{k: v for k, v in filters.items() if v is not None})

    def quality(self, project_id: int) -> JSON:
        """Each annotator's trust with its 90% interval, qualification and pause (owners,
        reviewers)."""
        result: JSON = self._json("GET", f"/projects/{project_id}/quality")
        return result

    def pause(self, project_id: int, user_id: int, reason: str) -> JSON:
        return self._standing(project_id, user_id, "pause", {"reason": reason})

    def unpause(self, project_id: int, user_id: int) -> JSON:
        return self._standing(project_id, user_id, "unpause")

    def reset_qualification(self, project_id: int, user_id: int) -> JSON:
        return self._standing(project_id, user_id, "reset-qualification")

    def _standing(self, project_id: int, user_id: int, action: str, body: Any = None) -> JSON:
        path = f"/projects/{project_id}/annotators/{user_id}/{action}"
        result: JSON = self._json("POST", path, json=body)
        return result

    def my_trust(self) -> JSON:
        """Your trust per domain and project, as of the start of today (UTC)."""
        result: JSON = self._json("GET", "/me/trust")
        return result

    def feedback(self) -> Iterator[JSON]:
        """Whether your graded checks were right, where projects give gold feedback."""
        return self._pages("/me/feedback")
