"""Passwords: change one, and reset a forgotten one with a single-use emailed link."""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from dicomportal import clock
from dicomportal.accounts.errors import AccountError, InvalidResetToken, WrongPassword
from dicomportal.accounts.sessions import end_other_sessions
from dicomportal.accounts.users import check_password_strength, find_user_by_email, normalise_email
from dicomportal.extensions import db
from dicomportal.mail import absolute_url, queue_email
from dicomportal.models import User

RESET_SALT = "password-reset"


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
