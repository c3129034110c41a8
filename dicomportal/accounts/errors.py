"""Account errors; their messages are for the customer, ``field`` names the form field."""

from __future__ import annotations


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
