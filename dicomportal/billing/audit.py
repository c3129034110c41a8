"""The audit log: every money-moving action and every change of a subscription's state."""

from __future__ import annotations

from typing import Any

from dicomportal.extensions import db
from dicomportal.models import AuditLog


def record(
    action: str,
    subject_user_id: int | None,
    obj: Any = None,
    actor_id: int | None = None,
    **details: Any,
) -> None:
    """Add an audit entry to the session (committed with the change it describes)."""
    db.session.add(
        AuditLog(
            action=action,
            subject_user_id=subject_user_id,
            actor_id=actor_id,
            object_type=type(obj).__name__.lower() if obj is not None else None,
            object_id=getattr(obj, "id", None),
            details={k: v for k, v in details.items() if v is not None},
        )
    )
