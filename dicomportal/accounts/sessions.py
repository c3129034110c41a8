"""Login sessions kept on the server, so logging out really ends them."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from flask import current_app
from flask_login.config import COOKIE_DURATION
from sqlalchemy import CursorResult, bindparam, delete, select
from sqlalchemy.orm import joinedload

from dicomportal.extensions import db
from dicomportal.models import LoginSession, User

#
# A login is a row in ``login_sessions``; the session cookie (and the remember-me cookie) carry a
# random token naming it, and only the token's SHA-256 is stored. Logging out deletes the row, so
# a copy of either cookie taken before stops working. Sessions age in real time, not by the demo
# clock: moving billing time forward must not log the demo's visitor out.


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _lifetime(remember: bool) -> timedelta:
    """Remember-me: as long as its cookie (REMEMBER_COOKIE_DURATION); otherwise as long as a
    session cookie is accepted (PERMANENT_SESSION_LIFETIME, 31 days)."""
    if not remember:
        return current_app.permanent_session_lifetime
    duration: Any = current_app.config.get("REMEMBER_COOKIE_DURATION", COOKIE_DURATION)
    return duration if isinstance(duration, timedelta) else timedelta(seconds=int(duration))


def start_session(user: User, remember: bool = False) -> str:
    """Open a login session for ``user`` (not committed) and return its token; ``user.get_id()``
    answers it, which is what Flask-Login's ``login_user`` puts in the cookies."""
    token = secrets.token_urlsafe(32)
    now = _wall_clock()
    db.session.add(
        LoginSession(
            user_id=user.id,
            token_digest=_digest(token),
            remember=remember,
            created_at=now,
            expires_at=now + _lifetime(remember),
        )
    )
    user.session_token = token
    return token


_USER_FOR_SESSION = (
    select(User)
    .join(LoginSession, LoginSession.user_id == User.id)
    .where(LoginSession.token_digest == bindparam("digest"), LoginSession.expires_at > bindparam("now"))
    .options(joinedload(User.billing_profile))  # every billing page needs it
)


def user_for_session(token: str) -> User | None:
    """The account an open, unexpired login session belongs to (``None`` once it has ended)."""
    user = db.session.scalar(_USER_FOR_SESSION, {"digest": _digest(token), "now": _wall_clock()})
    if user is not None:
        user.session_token = token
    return user


def end_session(token: str | None) -> None:
    """Log one browser out on the server (not committed): its cookies no longer open the account."""
    if token:
        db.session.execute(delete(LoginSession).where(LoginSession.token_digest == _digest(token)))


def end_other_sessions(user: User, keep: str | None = None) -> None:
    """End every login session of ``user`` except ``keep`` (not committed)."""
    query = delete(LoginSession).where(LoginSession.user_id == user.id)
    if keep:
        query = query.where(LoginSession.token_digest != _digest(keep))
    db.session.execute(query)


def purge_expired_sessions() -> int:
    """Delete the login sessions that have expired (committed); a job for the worker. Expired
    rows open nothing already (see :func:`user_for_session`): this only keeps the table small."""
    result = db.session.execute(delete(LoginSession).where(LoginSession.expires_at <= _wall_clock()))
    db.session.commit()
    return int(cast(CursorResult[Any], result).rowcount)
