"""Who may do what: every access rule of Quorum, named, in one place.

A project is invisible (404) to anyone who is neither a member nor an admin; inside it the
role decides (403). Annotators never see gold, other annotators' answers or other projects.
"""

from collections.abc import Callable

from quorum.db.models import Assignment, Role, User
from quorum.domain.errors import Forbidden, NotFound

Check = Callable[[User], bool]


def can_see_project(role: Role | None) -> Check:
    return lambda user: user.is_admin or role is not None


def can_manage_project(role: Role | None) -> Check:
    """Edit the project, its members and tasks; export; read everything in it."""
    return lambda user: user.is_admin or role is Role.owner


def can_review(role: Role | None) -> Check:
    """Read tasks with gold and every annotation; review annotations."""
    return lambda user: user.is_admin or role in {Role.owner, Role.reviewer}


can_see_gold = can_review


def can_annotate(role: Role | None) -> Check:
    """Lease tasks; admins label only in projects they are members of."""
    return lambda user: role is not None


def can_submit(assignment: Assignment) -> Check:
    return lambda user: assignment.user_id == user.id


def is_admin() -> Check:
    return lambda user: user.is_admin


def authorize(user: User, check: Check, message: str = "not allowed in this project") -> None:
    if not check(user):
        raise Forbidden(message)


def reveal(user: User, check: Check, what: str) -> None:
    """Like authorize, but a failure says the thing does not exist rather than that it is hidden."""
    if not check(user):
        raise NotFound(f"no {what}")


# Pages and reviews (the web app); each names the rule it applies, so handlers read as prose.


def can_view_dashboard(role: Role | None) -> Check:
    """Progress, agreement and every annotation of the project: owners, reviewers, admins."""
    return can_review(role)


def can_export(role: Role | None) -> Check:
    return can_manage_project(role)


def can_send_to_review(role: Role | None) -> Check:
    return can_review(role)


def can_decide_review(role: Role | None, annotator_id: int) -> Check:
    """Reviewers decide on other people's annotations, never on their own."""
    return lambda user: can_review(role)(user) and user.id != annotator_id


def can_manage_users() -> Check:
    return is_admin()


def can_manage_tokens_of(owner: User) -> Check:
    return lambda user: user.is_admin or user.id == owner.id


# Vendor audits and money (docs/audits.md, docs/payments.md).


def can_audit(role: Role | None) -> Check:
    """Import vendor deliveries, draw audit samples, read audit reports: owners, admins."""
    return can_manage_project(role)


def can_see_spend(role: Role | None) -> Check:
    """A project's spend, budget and the ledger entries charged to it: owners, admins."""
    return can_manage_project(role)


def can_grant(role: Role | None) -> Check:
    """Bonuses and adjustments paid from a project's budget: its owners, admins."""
    return can_manage_project(role)


def can_pay_out() -> Check:
    """Payouts pay everyone, across projects: admins only."""
    return is_admin()


def can_see_statement_of(annotator: User) -> Check:
    """Annotators see their own statement; admins see anyone's."""
    return lambda user: user.is_admin or user.id == annotator.id


# The workforce and the quality loop (docs/quality.md).


def can_see_profile_of(member: User, owns_their_project: bool) -> Check:
    """A profile: its own user, admins, and owners of a project the member belongs to."""
    return lambda user: user.is_admin or user.id == member.id or owns_their_project


def can_manage_profile_of(owns_their_project: bool) -> Check:
    """Tier and domains: admins, and owners of a project the member belongs to."""
    return lambda user: user.is_admin or owns_their_project


def can_set_pay_rate() -> Check:
    """A pay rate holds across every project and payout: admins only."""
    return is_admin()


def can_list_workforce() -> Check:
    return is_admin()


def can_see_quality(role: Role | None) -> Check:
    """Each annotator's trust, checks, qualification and pause: owners, reviewers, admins."""
    return can_review(role)


def can_manage_standing(role: Role | None) -> Check:
    """Pause, un-pause, reset a qualification: owners, admins."""
    return can_manage_project(role)


# Workforce and the quality loop's pages (the web app; docs/web.md).


def can_see_pause_reason(role: Role | None) -> Check:
    """Why, when and by whom an annotator was paused: the owners who can un-pause them, admins;
    reviewers see that someone is paused, never why."""
    return can_manage_standing(role)
