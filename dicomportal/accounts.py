"""Account services: create users, log in, change and reset passwords, login sessions. No
flask.request here.

Services add to the session and never commit: the caller commits the change together with the
email that reports it (see :mod:`dicomportal.mail`), then calls ``deliver_pending()``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_login.config import COOKIE_DURATION
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from dicomportal.billing import clock
from dicomportal.extensions import db
from dicomportal.mail import absolute_url, queue_email
from dicomportal.models import LoginSession, Role, User

MIN_PASSWORD_LENGTH = 10
RESET_SALT = "password-reset"


class AccountError(Exception):
    """A request about an account that cannot be carried out; the message is for the customer.

    ``field`` names the form field the message belongs to (``None``: the form as a whole).
    """

    field: str | None = None

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field


class EmailTaken(AccountError):
    field = "email"


class WrongCredentials(AccountError):
    """Login failed; one message for a wrong email and a wrong password alike."""

    def __init__(self) -> None:
        super().__init__("Wrong email or password")


class WrongPassword(AccountError):
    """The current password given to confirm a change is not the account's password."""

    field = "current_password"

    def __init__(self) -> None:
        super().__init__("That is not your current password.")


class InvalidResetToken(AccountError):
    """The reset link is tampered with, expired, or was already used."""

    def __init__(self) -> None:
        super().__init__("This reset link has expired or was already used. Ask for a new one.")


def normalise_email(raw: str) -> str:
    """Validate the syntax and return the address in canonical form (domain lowercased, local part
    lowercased too: we treat addresses case-insensitively so nobody gets two accounts).

    :raises AccountError: when the address is not a valid email address.
    """
    try:
        info = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise AccountError(f"That email address is not valid: {exc}", field="email") from exc
    return info.normalized.lower()


def check_password_strength(password: str) -> None:
    """:raises AccountError: when the password is too short."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.", field="password"
        )


def find_user_by_email(email: str) -> User | None:
    """The account with this address (compared case-insensitively), if any."""
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def create_user(email: str, password: str, name: str, role: Role = Role.CUSTOMER) -> User:
    """Create an account (not committed: the caller owns the transaction).

    :raises AccountError: invalid email or weak password.
    :raises EmailTaken: an account with that email exists.
    """
    address = normalise_email(email)
    check_password_strength(password)
    if not name.strip():
        raise AccountError("Please tell us your name.", field="name")
    taken = EmailTaken("An account with that email already exists. Log in or reset your password.")
    if find_user_by_email(address) is not None:
        raise taken
    user = User(email=address, name=name.strip(), role=role)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError as exc:  # the same address signed up a moment ago in another request
        db.session.rollback()
        raise taken from exc
    return user


@functools.cache
def _dummy_password_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16), method="scrypt")


def authenticate(email: str, password: str) -> User:
    """The account these credentials open.

    :raises WrongCredentials: unknown or invalid address, or wrong password (one message for all).
    """
    try:
        user = find_user_by_email(normalise_email(email))
    except AccountError:
        user = None
    if user is None:
        # Hash anyway so a wrong address takes as long as a wrong password: response times
        # must not reveal who has an account.
        check_password_hash(_dummy_password_hash(), password)
        raise WrongCredentials()
    if not user.check_password(password):
        raise WrongCredentials()
    return user


def set_new_password(user: User, new: str, keep_session: str | None = None) -> None:
    """Store ``new`` as the password, end every login session of the account but ``keep_session``
    (the browser that made the change), and queue the "Your password was changed" email.

    :raises AccountError: the new password is too weak.
    """
    check_password_strength(new)
    user.set_password(new)
    user.password_changed_at = clock.now()
    end_other_sessions(user, keep_session)
    queue_email(
        user.email,
        "Your password was changed",
        "password_changed",
        user_id=user.id,
        user=user,
        changed_at=user.password_changed_at,
        forgot_url=absolute_url("/auth/forgot"),
    )


def change_password(user: User, current: str, new: str) -> None:
    """Replace the password after checking the current one (not committed). The login session
    ``user`` was loaded for stays; every other one (other browsers, remember-me cookies) ends.

    :raises WrongPassword: ``current`` is not the account's password; nothing changes.
    :raises AccountError: the new password is too weak; nothing changes.
    """
    if not user.check_password(current):
        raise WrongPassword()
    set_new_password(user, new, keep_session=user.session_token)


def _reset_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=RESET_SALT)


def password_fingerprint(user: User) -> str:
    """A short keyed digest of the password hash: it changes whenever the password does, which is
    what makes a reset token single-use without storing tokens."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, user.password_hash.encode(), hashlib.sha256).hexdigest()[-16:]


def make_reset_token(user: User) -> str:
    """A signed, timestamped token naming the user and their current password fingerprint."""
    return str(_reset_serializer().dumps({"uid": user.id, "fp": password_fingerprint(user)}))


def user_for_reset_token(token: str, max_age: int, *, for_update: bool = False) -> User:
    """The account a reset token is for; ``for_update`` locks its row until the commit, so two
    requests racing with one token cannot both use it.

    :raises InvalidResetToken: bad signature, older than ``max_age`` seconds, unknown user, or the
        password changed since the token was made (it was used).
    """
    try:
        data = _reset_serializer().loads(token, max_age=max_age)
        user = db.session.get(
            User, int(data["uid"]), with_for_update=for_update, populate_existing=for_update
        )
        fingerprint = str(data["fp"])
    except (BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidResetToken() from exc
    if user is None or not hmac.compare_digest(fingerprint, password_fingerprint(user)):
        raise InvalidResetToken()
    return user


def request_password_reset(email: str) -> User | None:
    """Queue a reset link for the account with this address; ``None`` (and no email) when there
    is none, which the caller must not reveal.
    """
    try:
        user = find_user_by_email(normalise_email(email))
    except AccountError:
        return None
    if user is not None:
        max_age = int(current_app.config["PASSWORD_RESET_MAX_AGE"])
        queue_email(
            user.email,
            "Reset your DICOM Portal password",
            "password_reset",
            user_id=user.id,
            user=user,
            reset_url=absolute_url(f"/auth/reset/{make_reset_token(user)}"),
            valid_minutes=max_age // 60,
        )
    return user


def reset_password(token: str, new: str, max_age: int) -> User:
    """Set a new password with a reset token; the token stops working once this is committed, and
    so does every login session of the account (the caller opens a new one for this browser).

    :raises InvalidResetToken: the token is bad, expired or used.
    :raises AccountError: the new password is too weak.
    """
    user = user_for_reset_token(token, max_age, for_update=True)
    set_new_password(user, new)
    return user


# --- login sessions -----------------------------------------------------------------------------
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


def user_for_session(token: str) -> User | None:
    """The account an open, unexpired login session belongs to (``None`` once it has ended)."""
    user = db.session.scalar(
        select(User)
        .join(LoginSession, LoginSession.user_id == User.id)
        .where(LoginSession.token_digest == _digest(token), LoginSession.expires_at > _wall_clock())
    )
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
