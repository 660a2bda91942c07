"""Projects: their schema and policy, members and roles."""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import ValidationError
from sqlalchemy import case, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, Membership, Project, Role, Task, User
from quorum.db.types import canonical_json, utcnow
from quorum.domain import policies, users, workforce
from quorum.domain.errors import Conflict, Invalid, NotFound, problems_from_pydantic
from quorum.domain.pages import Page, paginate
from quorum.domain.policy import ProjectPolicy
from quorum.domain.questions import KINDS, QuestionSchema, check_new_schema
from quorum.domain.task_status import (
    free_leases,
    lock_live_leases,
    recompute_task_status,
    release_leases_beyond_overlap,
)
from quorum.domain.text import refuse_nul


@dataclass(frozen=True)
class ProjectAccess:
    """A project as one user sees it: the project and that user's role in it (None for admins)."""

    project: Project
    role: Role | None


def parse_schema(raw: Any) -> QuestionSchema:
    """A schema given for a project (new or changed), with the rules for new schemas."""
    try:
        schema = QuestionSchema.model_validate(raw)
    except ValidationError as error:
        problems = problems_from_pydantic(error.errors(), "schema", tags=KINDS)
    else:
        problems = check_new_schema(schema)
        if not problems:
            return schema
    first = f"{problems[0]['field']}: {problems[0]['message']}"
    raise Invalid(f"invalid schema: {first}", problems) from None


def parse_policy(raw: Any) -> ProjectPolicy:
    try:
        return ProjectPolicy.model_validate(raw if raw is not None else {})
    except ValidationError as error:
        problems = problems_from_pydantic(error.errors(), "policy")
        first = f"{problems[0]['field']}: {problems[0]['message']}"
        raise Invalid(f"invalid policy: {first}", problems) from None


@lru_cache(maxsize=256)
def _schema_from_json(text: bytes) -> QuestionSchema:
    return QuestionSchema.model_validate_json(text)


@lru_cache(maxsize=256)
def _policy_from_json(text: bytes) -> ProjectPolicy:
    return ProjectPolicy.model_validate_json(text)


def schema_of(project: Project) -> QuestionSchema:
    """The project's validated schema (cached: the submit path needs it on every label)."""
    return _schema_from_json(canonical_json(project.schema))


def policy_of(project: Project) -> ProjectPolicy:
    return _policy_from_json(canonical_json(project.policy))


def create(
    session: Session,
    owner: User,
    *,
    name: str,
    instructions: str = "",
    schema: Any,
    policy: Any = None,
) -> Project:
    """A new project with ``owner`` as its first owner."""
    refuse_nul({"name": name, "instructions": instructions, "schema": schema, "policy": policy}, "")
    clean_schema = parse_schema(schema)
    clean_policy = parse_policy(policy)
    now = utcnow()
    project = Project(
        name=_clean_name(name),
        instructions=instructions,
        schema=clean_schema.model_dump(mode="json", exclude_none=True),
        policy=clean_policy.model_dump(mode="json"),
        created_by=owner.id,
        created_at=now,
        updated_at=now,
    )
    session.add(project)
    session.flush()
    workforce.sync_project_domains(session, project.id, clean_policy.domain_levels)
    session.add(
        Membership(project_id=project.id, user_id=owner.id, role=Role.owner, created_at=now)
    )
    session.commit()
    return project


def _clean_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise Invalid.one("name", "must have 1 to 200 characters")
    return name


def role_of(session: Session, project_id: int, user_id: int) -> Role | None:
    query = select(Membership.role).where(
        Membership.project_id == project_id, Membership.user_id == user_id
    )
    return session.scalar(query)


def access(session: Session, user: User, project_id: int) -> ProjectAccess:
    """The project as ``user`` may see it; NotFound when it does not exist or is not theirs."""
    project = session.get(Project, project_id)
    role = role_of(session, project_id, user.id) if project is not None else None
    if project is None or not policies.can_see_project(role)(user):
        raise NotFound(f"no project {project_id}")
    return ProjectAccess(project, role)


def list_for(session: Session, user: User, *, cursor: str | None, limit: int) -> Page[Project]:
    query = select(Project)
    if not user.is_admin:
        member = exists().where(Membership.project_id == Project.id, Membership.user_id == user.id)
        query = query.where(member)
    return paginate(session, query, Project.id, cursor, limit)


def has_annotations(session: Session, project_id: int) -> bool:
    query = select(Annotation.id).where(Annotation.project_id == project_id).limit(1)
    return session.scalar(query) is not None


def update_project(session: Session, project: Project, changes: dict[str, Any]) -> Project:
    """Apply a partial update, all or nothing; a new overlap recomputes every task's status.
    The policy's keys not given keep their values (:func:`merged_policy`)."""
    refuse_nul(changes, "")
    if "name" in changes:
        project.name = _clean_name(changes["name"])
    if "instructions" in changes:
        project.instructions = changes["instructions"]
    if "schema" in changes:
        schema = parse_schema(changes["schema"])
        if has_annotations(session, project.id):
            raise Conflict("the schema cannot change once the project has annotations")
        project.schema = schema.model_dump(mode="json", exclude_none=True)
    if "policy" in changes:
        _change_policy(session, project, parse_policy(merged_policy(project, changes["policy"])))
    project.updated_at = utcnow()
    session.commit()
    return project


def merged_policy(project: Project, changes: Any) -> Any:
    """The policy after a partial change, as a JSON merge patch (RFC 7386) one level deep: the
    keys given replace the stored ones, a null clears an optional key (``max_overlap``,
    ``budget_cents``, ...), the keys not given stay; ``qualification`` is given whole."""
    if not isinstance(changes, dict):
        return changes  # not an object: parse_policy names the problem
    merged = {**policy_of(project).model_dump(mode="json"), **changes}
    return {key: value for key, value in merged.items() if value is not None}


def _change_policy(session: Session, project: Project, new: ProjectPolicy) -> None:
    old = policy_of(project)
    project.policy = new.model_dump(mode="json")
    workforce.sync_project_domains(session, project.id, new.domain_levels)
    if new.overlap == old.overlap and new.ceiling == old.ceiling:
        return
    # Keep the extra labels the quality loop asked for on top of the old overlap. It asks
    # for none under a fixed overlap, and never for gold: there, a task above the old overlap
    # only kept the labels it had when the overlap was lowered (below), which are no extra.
    on_sqlite = session.get_bind().dialect.name == "sqlite"
    raised, ceiling = (func.max, func.min) if on_sqlite else (func.greatest, func.least)
    loop_extra = raised(Task.overlap - old.overlap, 0) if old.adaptive else literal(0)
    extra = case((Task.gold.is_(None), loop_extra), else_=0)
    lock_live_leases(session, project.id)
    # Qualification tasks keep theirs: it counts their qualifiers (quorum.domain.qualification).
    qualification = _qualification_last(session, project.id, old)
    # A lower overlap takes no label back: a task keeps at least the labels it already has.
    overlap = raised(ceiling(new.overlap + extra, new.ceiling), Task.n_submitted)
    session.execute(
        update(Task)
        .where(Task.project_id == project.id, or_(Task.gold.is_(None), Task.id > qualification))
        .values(overlap=overlap)
        .execution_options(synchronize_session=False)
    )
    release_leases_beyond_overlap(session, project.id)
    recompute_task_status(session, project_id=project.id)


def _qualification_last(session: Session, project_id: int, policy: ProjectPolicy) -> int:
    """The id of the project's last qualification task (its first gold tasks); 0 if none."""
    if policy.qualification is None:
        return 0
    query = (
        select(Task.id)
        .where(Task.project_id == project_id, Task.gold.is_not(None))
        .order_by(Task.id)
        .limit(policy.qualification.tasks)
    )
    return max(session.scalars(query), default=0)


def add_member(
    session: Session, project: Project, email: str, role: Role
) -> tuple[Membership, bool]:
    """Add a member or change their role; True when the membership is new."""
    user = users.get_by_email(session, email)
    membership = session.get(Membership, (project.id, user.id))
    created = membership is None
    if membership is None:
        membership = Membership(
            project_id=project.id, user_id=user.id, role=role, created_at=utcnow()
        )
        session.add(membership)
    elif membership.role is Role.owner and role is not Role.owner:
        _keep_an_owner(session, project.id, user.id)
        membership.role = role
    else:
        membership.role = role
    session.commit()
    return membership, created


def remove_member(session: Session, project: Project, user_id: int) -> None:
    """Remove a member; their live leases in the project are freed at once, so a label sent
    on one afterwards is refused (it would be paid from a project they are no longer in)."""
    membership = session.get(Membership, (project.id, user_id))
    if membership is None:
        raise NotFound(f"user {user_id} is not a member of project {project.id}")
    if membership.role is Role.owner:
        _keep_an_owner(session, project.id, user_id)
    session.delete(membership)
    free_leases(session, project.id, user_id, utcnow())
    session.commit()


def _keep_an_owner(session: Session, project_id: int, leaving_user_id: int) -> None:
    others = select(func.count()).where(
        Membership.project_id == project_id,
        Membership.role == Role.owner,
        Membership.user_id != leaving_user_id,
    )
    if not session.scalar(others):
        raise Conflict("a project must keep at least one owner")


def list_members(
    session: Session, project: Project, *, cursor: str | None, limit: int
) -> Page[Membership]:
    query = select(Membership).where(Membership.project_id == project.id)
    return paginate(session, query, Membership.user_id, cursor, limit)
