"""The lifecycle every resource shares: statuses, allowed transitions, storage and description.

A resource module declares a `Kind` and uses these functions; none of them
knows about one resource type in particular.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openpersonalize import arns
from openpersonalize.context import Context
from openpersonalize.errors import (
    InvalidNextTokenException,
    LimitExceededException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from openpersonalize.store.database import ResourceRow

CREATE_PENDING = "CREATE PENDING"
CREATE_IN_PROGRESS = "CREATE IN_PROGRESS"
ACTIVE = "ACTIVE"
CREATE_FAILED = "CREATE FAILED"
CREATE_STOPPING = "CREATE STOPPING"
CREATE_STOPPED = "CREATE STOPPED"
DELETE_PENDING = "DELETE PENDING"
DELETE_IN_PROGRESS = "DELETE IN_PROGRESS"
# A recommender can be stopped (no serving, no retraining) and started again.
STOP_PENDING, STOP_IN_PROGRESS, INACTIVE = "STOP PENDING", "STOP IN_PROGRESS", "INACTIVE"
START_PENDING, START_IN_PROGRESS = "START PENDING", "START IN_PROGRESS"
# Data deletion jobs spell their statuses differently (no CREATE, no ACTIVE).
PENDING, IN_PROGRESS, COMPLETED, FAILED = "PENDING", "IN_PROGRESS", "COMPLETED", "FAILED"

# Which status may follow which; anything else is a bug in the caller, not user error.
TRANSITIONS: dict[str | None, set[str]] = {
    None: {CREATE_PENDING, ACTIVE, PENDING},
    PENDING: {IN_PROGRESS, FAILED},
    IN_PROGRESS: {COMPLETED, FAILED},
    CREATE_PENDING: {CREATE_IN_PROGRESS, CREATE_FAILED, CREATE_STOPPED, DELETE_PENDING},
    CREATE_IN_PROGRESS: {ACTIVE, CREATE_FAILED, CREATE_STOPPING, CREATE_PENDING},
    CREATE_STOPPING: {CREATE_STOPPED, CREATE_FAILED},
    ACTIVE: {DELETE_PENDING, STOP_PENDING},
    STOP_PENDING: {STOP_IN_PROGRESS},
    STOP_IN_PROGRESS: {INACTIVE},
    INACTIVE: {START_PENDING, DELETE_PENDING},
    START_PENDING: {START_IN_PROGRESS},
    START_IN_PROGRESS: {ACTIVE},
    CREATE_FAILED: {DELETE_PENDING},
    CREATE_STOPPED: {DELETE_PENDING},
    DELETE_PENDING: {DELETE_IN_PROGRESS, ACTIVE, CREATE_FAILED},
    DELETE_IN_PROGRESS: {ACTIVE, CREATE_FAILED},
}
IN_FLIGHT = (CREATE_PENDING, CREATE_IN_PROGRESS, CREATE_STOPPING)
DELETING = (DELETE_PENDING, DELETE_IN_PROGRESS)
# A metadata-only resource (dataset group, dataset, solution, filter, event tracker) has no work
# to do before it is ACTIVE, so the service lets user code use it at once: real code creates a
# solution and asks for a version in the next line, without waiting.
USABLE = (ACTIVE, CREATE_PENDING, CREATE_IN_PROGRESS)


@dataclass(frozen=True)
class Kind:
    """How one resource type is named on the wire."""

    resource_type: str  # stored type; also the ARN type unless arn_type says otherwise
    arn_key: str  # e.g. "datasetGroupArn"
    label: str  # for messages, e.g. "dataset group"
    name_key: str = "name"  # import jobs call it "jobName"
    name_scoped_to_parent: bool = False  # dataset names are unique within their group only
    arn_type: str = ""  # the ARN's type when it differs (a solution version's ARN says "solution")

    @property
    def arn_resource_type(self) -> str:
        return self.arn_type or self.resource_type


def insert(
    session: Session,
    kind: Kind,
    *,
    arn: str,
    name: str,
    now: float,
    status: str | None,
    parent_arn: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> ResourceRow:
    """Record a new resource; a second resource with the same name or ARN is refused.

    The unique constraint decides races between two creates, so exactly one wins.
    """
    scope = (parent_arn or "") if kind.name_scoped_to_parent else ""
    if _exists(session, kind, name, scope, arn):
        raise ResourceAlreadyExistsException(f"A {kind.label} named {name} already exists: {arn}")
    row = ResourceRow(
        arn=arn,
        resource_type=kind.resource_type,
        name=name,
        scope=scope,
        parent_arn=parent_arn,
        status=status,
        created_at=now,
        updated_at=now,
        attributes=attributes or {},
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as error:
        raise ResourceAlreadyExistsException(
            f"A {kind.label} named {name} already exists: {arn}"
        ) from error
    return row


def create_pending(
    session: Session,
    kind: Kind,
    *,
    arn: str,
    name: str,
    now: float,
    job: str,
    tags: list[dict[str, str]] | None = None,
    parent_arn: str | None = None,
    attributes: dict[str, Any] | None = None,
    status: str = CREATE_PENDING,
) -> ResourceRow:
    """Record a new resource in CREATE PENDING (or the kind's own first `status`), its tags,
    and the job that completes it, all in the caller's transaction: the resource exists
    exactly when its job does."""
    from openpersonalize.jobs import runner
    from openpersonalize.resources.tags import put_tags

    row = insert(
        session,
        kind,
        arn=arn,
        name=name,
        now=now,
        status=status,
        parent_arn=parent_arn,
        attributes=attributes,
    )
    put_tags(session, arn, tags)
    runner.enqueue(session, job, arn, now)
    return row


def _exists(session: Session, kind: Kind, name: str, scope: str, arn: str) -> bool:
    same_name = (
        (ResourceRow.resource_type == kind.resource_type)
        & (ResourceRow.scope == scope)
        & (ResourceRow.name == name)
    )
    query = (
        select(func.count()).select_from(ResourceRow).where((ResourceRow.arn == arn) | same_name)
    )
    return bool(session.scalar(query))


def get(session: Session, kind: Kind, arn: str, *, lock: bool = False) -> ResourceRow:
    """The resource with this ARN; ResourceNotFoundException names the ARN when there is none."""
    arns.parse(arn, kind.arn_resource_type)
    query = select(ResourceRow).where(
        ResourceRow.arn == arn, ResourceRow.resource_type == kind.resource_type
    )
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise ResourceNotFoundException(f"Could not find {kind.label} {arn}")
    return row


def find(session: Session, arn: str) -> ResourceRow | None:
    return session.get(ResourceRow, arn)


def set_status(
    row: ResourceRow, status: str, now: float, failure_reason: str | None = None
) -> None:
    if status != row.status and status not in TRANSITIONS.get(row.status, set()):
        raise RuntimeError(f"{row.arn}: status {row.status!r} cannot become {status!r}")
    row.status = status
    row.failure_reason = failure_reason
    row.updated_at = now


def update_attributes(row: ResourceRow, now: float, **changes: Any) -> None:
    # A new dict, so SQLAlchemy sees the JSON column changed.
    row.attributes = {**row.attributes, **changes}
    row.updated_at = now


def remove(session: Session, row: ResourceRow) -> None:
    session.execute(delete(ResourceRow).where(ResourceRow.arn == row.arn))


def require_status(row: ResourceRow, kind: Kind, *allowed: str) -> None:
    """Refuse to use a resource that is not in one of the allowed states."""
    if row.status not in allowed:
        raise ResourceInUseException(
            f"The {kind.label} {row.arn} is {row.status}; it must be {' or '.join(allowed)}."
        )


def require_usable(row: ResourceRow, kind: Kind) -> None:
    """Refuse a metadata-only resource only when it failed or is being deleted (see USABLE)."""
    if row.status not in USABLE:
        raise ResourceInUseException(
            f"The {kind.label} {row.arn} is {row.status}; it must be ACTIVE."
        )


class NotActive(Exception):
    """A job's resource never became ACTIVE; the message is the failureReason to record."""


def await_active(context: Context, kind: Kind, arn: str, timeout: float = 60.0) -> None:
    """Wait (in a job) for a metadata-only resource created moments ago to become ACTIVE.

    Its activation job was queued before the job that waits, so this is a matter of moments;
    a resource that failed, went away or is being deleted ends the wait with NotActive.
    """
    deadline = time.monotonic() + timeout
    while True:
        with context.database.transaction() as session:
            row = find(session, arn)
            status = row.status if row is not None else "deleted"
            reason = (row.failure_reason if row is not None else None) or ""
        if status == ACTIVE:
            return
        if status not in (CREATE_PENDING, CREATE_IN_PROGRESS) or time.monotonic() > deadline:
            raise NotActive(
                f"The {kind.label} {arn} is {status}; it must be ACTIVE."
                + (f" It failed: {reason}" if reason else "")
            )
        time.sleep(0.05)


def begin_job(context: Context, kind: Kind, arn: str) -> ResourceRow:
    """A job's resource goes CREATE IN_PROGRESS (again, on a retry); returns its record."""
    with context.database.transaction() as session:
        row = get(session, kind, arn)
        set_status(row, CREATE_IN_PROGRESS, context.now())
        return row


def finish_job(context: Context, kind: Kind, arn: str) -> None:
    """A job's resource goes ACTIVE: its work is done."""
    with context.database.transaction() as session:
        set_status(get(session, kind, arn), ACTIVE, context.now())


def describe(row: ResourceRow, kind: Kind) -> dict[str, Any]:
    """The resource as Describe/List return it (the wire layer drops members the shape lacks)."""
    return {
        **row.attributes,
        kind.name_key: row.name,
        kind.arn_key: row.arn,
        "status": row.status,
        "failureReason": row.failure_reason,
        "creationDateTime": row.created_at,
        "lastUpdatedDateTime": row.updated_at,
    }


def require_room_in_flight(session: Session, kind: Kind, limit: int) -> None:
    """Refuse a new one when `limit` resources of the kind are already pending or in
    progress in the account (the service's quotas on jobs and versions)."""
    in_flight = session.scalar(
        select(func.count())
        .select_from(ResourceRow)
        .where(ResourceRow.resource_type == kind.resource_type, ResourceRow.status.in_(IN_FLIGHT))
    )
    if in_flight >= limit:
        raise LimitExceededException(
            f"{in_flight} {kind.label}s are already pending or in progress; the limit is {limit}."
        )


def child_in_flight(session: Session, parent_arn: str) -> str | None:
    """The ARN of a child still being created (an import job of a dataset, a version of a
    solution), if there is one."""
    return session.scalars(
        select(ResourceRow.arn)
        .where(ResourceRow.parent_arn == parent_arn, ResourceRow.status.in_(IN_FLIGHT))
        .limit(1)
    ).first()


def describe_handler(kind: Kind, envelope: str) -> Callable[[Context, dict[str, Any]], dict]:
    """DescribeX: `{envelope: description}` of the resource named by `kind.arn_key`."""

    def handler(context: Context, request: dict[str, Any]) -> dict[str, Any]:
        with context.database.transaction() as session:
            return {envelope: describe(get(session, kind, request[kind.arn_key]), kind)}

    return handler


def list_handler(
    kind: Kind, list_key: str, parent: Kind | None = None
) -> Callable[[Context, dict[str, Any]], dict]:
    """ListX: a page of descriptions, optionally of the children of the parent the request names."""

    def handler(context: Context, request: dict[str, Any]) -> dict[str, Any]:
        with context.database.transaction() as session:
            parent_arn = request.get(parent.arn_key) if parent else None
            if parent_arn:
                get(session, parent, parent_arn)  # an unknown parent is an error, not an empty list
            rows, token = list_page(session, kind, request, parent_arn=parent_arn)
            return {list_key: [describe(row, kind) for row in rows], "nextToken": token}

    return handler


def delete_handler(
    kind: Kind, check: Callable[[Session, ResourceRow], None] | None = None
) -> Callable[[Context, dict[str, Any]], dict]:
    """DeleteX: DELETE PENDING now, gone once the delete job ran; `check` refuses a delete the
    service refuses (raising ResourceInUseException)."""

    def handler(context: Context, request: dict[str, Any]) -> dict[str, Any]:
        from openpersonalize.jobs import runner

        with context.database.transaction() as session:
            row = get(session, kind, request[kind.arn_key])
            if row.status in DELETING:
                raise ResourceInUseException(
                    f"The {kind.label} {row.arn} is already being deleted."
                )
            if check is not None:
                check(session, row)
            set_status(row, DELETE_PENDING, context.now())
            runner.enqueue(session, "delete", row.arn, context.now())
        return {}

    return handler


def list_page(
    session: Session,
    kind: Kind,
    request: dict[str, Any],
    *,
    parent_arn: str | None = None,
) -> tuple[list[ResourceRow], str | None]:
    """One page of resources of a kind (newest first), with the token for the next page."""
    max_results = int(request.get("maxResults") or 100)
    scope = f"{kind.resource_type}|{parent_arn or ''}"
    offset = _decode_token(request.get("nextToken"), scope)
    query = select(ResourceRow).where(ResourceRow.resource_type == kind.resource_type)
    if parent_arn is not None:
        query = query.where(ResourceRow.parent_arn == parent_arn)
    query = query.order_by(ResourceRow.created_at.desc(), ResourceRow.arn)
    rows = list(session.scalars(query.offset(offset).limit(max_results + 1)))
    token = None
    if len(rows) > max_results:
        rows = rows[:max_results]
        token = _encode_token(offset + max_results, scope)
    return rows, token


def paginate(items: list[Any], request: dict[str, Any], scope: str) -> tuple[list[Any], str | None]:
    """One page of an in-memory list, with the same tokens as database lists."""
    max_results = int(request.get("maxResults") or 100)
    offset = _decode_token(request.get("nextToken"), scope)
    page = items[offset : offset + max_results]
    more = offset + max_results < len(items)
    return page, (_encode_token(offset + max_results, scope) if more else None)


def _encode_token(offset: int, scope: str) -> str:
    raw = json.dumps({"offset": offset, "scope": scope}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str | None, scope: str) -> int:
    if not token:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = decoded["offset"]
        token_scope = decoded["scope"]
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as error:
        raise InvalidNextTokenException(f"The nextToken {token[:40]!r} is not valid.") from error
    # Only offsets we could have written: a whole number (not 1e999) the database can skip to.
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 2**31:
        raise InvalidNextTokenException(f"The nextToken {token[:40]!r} is not valid.")
    if token_scope != scope:
        raise InvalidNextTokenException(
            "The nextToken belongs to a different list request; "
            "repeat the request that returned it."
        )
    return offset
