"""Accounts: sign-up, login, passwords and login sessions. No flask.request here.

Services add to the session and never commit: the caller commits the change together with the
email that reports it (see :mod:`dicomportal.mail`).
"""

from dicomportal.accounts.errors import (
    AccountError,
    EmailTaken,
    InvalidResetToken,
    WrongCredentials,
    WrongPassword,
)
from dicomportal.accounts.passwords import (
    change_password,
    make_reset_token,
    password_fingerprint,
    request_password_reset,
    reset_password,
    set_new_password,
    user_for_reset_token,
)
from dicomportal.accounts.sessions import (
    end_other_sessions,
    end_session,
    purge_expired_sessions,
    start_session,
    user_for_session,
)
from dicomportal.accounts.users import (
    MIN_PASSWORD_LENGTH,
    authenticate,
    check_password_strength,
    create_user,
    find_user_by_email,
    normalise_email,
)

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "AccountError",
    "EmailTaken",
    "InvalidResetToken",
    "WrongCredentials",
    "WrongPassword",
    "authenticate",
    "change_password",
    "check_password_strength",
    "create_user",
    "end_other_sessions",
    "end_session",
    "find_user_by_email",
    "make_reset_token",
    "normalise_email",
    "password_fingerprint",
    "purge_expired_sessions",
    "request_password_reset",
    "reset_password",
    "set_new_password",
    "start_session",
    "user_for_reset_token",
    "user_for_session",
]
