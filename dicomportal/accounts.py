"""Account services: create users, change and reset passwords. No flask.request here."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select

from dicomportal.extensions import db
from dicomportal.models import Role, User

MIN_PASSWORD_LENGTH = 10


class AccountError(Exception):
    """A request about an account that cannot be carried out; the message is for the customer."""


class EmailTaken(AccountError):
    pass


def normalise_email(raw: str) -> str:
    """Validate the syntax and return the address in canonical form (domain lowercased, local part
    lowercased too: we treat addresses case-insensitively so nobody gets two accounts).

    :raises AccountError: when the address is not a valid email address.
    """
    try:
        info = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise AccountError(f"That email address is not valid: {exc}") from exc
    return info.normalized.lower()


def check_password_strength(password: str) -> None:
    """:raises AccountError: when the password is too short."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def create_user(email: str, password: str, name: str, role: Role = Role.CUSTOMER) -> User:
    """Create an account (not committed: the caller owns the transaction).

    :raises AccountError: invalid email or weak password.
    :raises EmailTaken: an account with that email exists.
    """
    address = normalise_email(email)
    check_password_strength(password)
    if not name.strip():
        raise AccountError("Please tell us your name.")
    if find_user_by_email(address) is not None:
        raise EmailTaken("An account with that email already exists. Log in or reset your password.")
    user = User(email=address, name=name.strip(), role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user
