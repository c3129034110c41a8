"""Accounts: create them, and check who is logging in. No flask.request here.

Services add to the session and never commit: the caller commits the change together with the
email that reports it (see :mod:`dicomportal.mail`), then calls ``deliver_pending()``.
"""

from __future__ import annotations

import functools
import secrets

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from dicomportal.accounts.errors import AccountError, EmailTaken, WrongCredentials
from dicomportal.extensions import db
from dicomportal.models import Role, User

MIN_PASSWORD_LENGTH = 10


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
