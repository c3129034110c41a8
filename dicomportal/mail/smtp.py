"""The SMTP server mail is delivered through, from the MAIL_* settings, with the standard library.

``init_app`` keeps one :class:`SmtpServer` in ``app.extensions["mail"]``; :func:`build_message`
makes the email a row describes (a text part, and an HTML alternative when there is one).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from flask import Flask

from dicomportal import clock

SMTP_TIMEOUT_SECONDS = 10


@dataclass
class SmtpServer:
    """Where mail goes and how to log in (README, "Configuration": MAIL_SERVER ... MAIL_USE_SSL)."""

    server: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # STARTTLS after connecting (usually port 587)
    use_ssl: bool  # TLS from the first byte (usually port 465)
    default_sender: str
    timeout: float  # a stalled server must not hang a page

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SmtpServer:
        return cls(
            server=str(config.get("MAIL_SERVER") or "localhost"),
            port=int(config.get("MAIL_PORT") or 25),
            username=config.get("MAIL_USERNAME"),
            password=config.get("MAIL_PASSWORD"),
            use_tls=bool(config.get("MAIL_USE_TLS")),
            use_ssl=bool(config.get("MAIL_USE_SSL")),
            default_sender=str(config.get("MAIL_DEFAULT_SENDER") or ""),
            timeout=float(config.get("MAIL_TIMEOUT", SMTP_TIMEOUT_SECONDS)),
        )

    def connect(self) -> smtplib.SMTP:
        """An open, logged-in connection (use it in ``with``).

        :raises smtplib.SMTPException, OSError: the server cannot be reached, refuses TLS or the login.
        """
        tls = ssl.create_default_context()  # the server's certificate and name are verified
        connection: smtplib.SMTP
        if self.use_ssl:
            connection = smtplib.SMTP_SSL(self.server, self.port, timeout=self.timeout, context=tls)
        else:
            connection = smtplib.SMTP(self.server, self.port, timeout=self.timeout)
        try:
            if self.use_tls:
                connection.starttls(context=tls)
            if self.username and self.password:
                connection.login(self.username, self.password)
        except BaseException:
            connection.close()
            raise
        return connection


def init_app(app: Flask) -> None:
    """Read the MAIL_* settings once; delivery finds them in ``app.extensions["mail"]``."""
    app.extensions["mail"] = SmtpServer.from_config(app.config)


def build_message(sender: str, to: str, subject: str, text: str, html: str | None) -> EmailMessage:
    """The email: ``text``, with ``html`` as its alternative when given.

    :raises ValueError: a header (address or subject) would carry a line break.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = make_msgid()
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message
