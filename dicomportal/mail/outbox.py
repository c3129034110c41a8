"""Email through the outbox: queue a row with the change it reports, deliver it after the commit.

``queue_email`` renders ``templates/email/<name>.txt`` (and ``.html`` when there is one) into an
:class:`EmailOutbox` row in the current session. ``deliver_pending`` sends unsent rows over SMTP
when ``MAIL_BACKEND == "smtp"``; with ``"outbox"`` mail stays in the table (the demo reads it at
/dev/outbox). Delivery never raises: a failure is recorded on the row and retried later.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from typing import Any

from flask import current_app, render_template
from jinja2 import TemplateNotFound
from sqlalchemy import select

from dicomportal import clock
from dicomportal.extensions import db
from dicomportal.mail.smtp import SmtpServer, build_message
from dicomportal.models import EmailOutbox

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10


def absolute_url(path: str) -> str:
    """``path`` on this site as an absolute link for emails (from config BASE_URL)."""
    return str(current_app.config["BASE_URL"]).rstrip("/") + "/" + path.lstrip("/")


def _render_optional(template: str, context: dict[str, Any]) -> str | None:
    try:
        return render_template(template, **context)
    except TemplateNotFound as exc:
        if exc.name != template:  # a template it includes is missing: a bug, not "no HTML part"
            raise
        return None


def queue_email(
    to: str, subject: str, template: str, user_id: int | None = None, **context: Any
) -> EmailOutbox:
    """Render ``email/<template>.txt`` (+ optional ``.html``) and add an outbox row to the session.

    Not committed: the caller commits it together with the change the email reports.
    """
    context = {"base_url": current_app.config["BASE_URL"], "subject": subject, **context}
    row = EmailOutbox(
        to_address=to,
        subject=subject,
        body_text=render_template(f"email/{template}.txt", **context),
        body_html=_render_optional(f"email/{template}.html", context),
        user_id=user_id,
        attempts=0,
    )
    db.session.add(row)
    return row


def _message(row: EmailOutbox, server: SmtpServer) -> EmailMessage:
    return build_message(server.default_sender, row.to_address, row.subject, row.body_text, row.body_html)


def _record_failure(rows: list[EmailOutbox], exc: Exception) -> None:
    if not rows:
        return
    log.warning("mail delivery failed for outbox %s: %s", [r.id for r in rows], exc)
    for row in rows:
        row.attempts += 1
        row.last_error = f"{type(exc).__name__}: {exc}"[:2000]


def _send_rows(rows: list[EmailOutbox]) -> int:
    """Send ``rows`` over one SMTP connection; return how many went out."""
    pending, sent = list(rows), 0
    try:
        server: SmtpServer = current_app.extensions["mail"]
        with server.connect() as connection:
            while pending:
                row = pending.pop(0)
                try:
                    connection.send_message(_message(row, server))
                except (smtplib.SMTPException, OSError, ValueError) as exc:  # this message only
                    _record_failure([row], exc)
                    continue
                row.attempts += 1
                row.sent_at, row.last_error = clock.now(), None
                sent += 1
    except (smtplib.SMTPException, OSError) as exc:  # no connection, or the server went away
        _record_failure(pending, exc)
    return sent


def deliver_pending(limit: int = 50) -> int:
    """Send up to ``limit`` unsent emails when MAIL_BACKEND is "smtp"; return how many were sent.

    Never raises: failures stay unsent with ``last_error`` for the next run. Rows are locked
    (SKIP LOCKED on PostgreSQL) so two workers never send the same email.
    """
    if current_app.config.get("MAIL_BACKEND", "smtp") != "smtp":
        return 0
    try:
        rows = list(
            db.session.scalars(
                select(EmailOutbox)
                .where(EmailOutbox.sent_at.is_(None), EmailOutbox.attempts < MAX_ATTEMPTS)
                .order_by(EmailOutbox.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        sent = _send_rows(rows) if rows else 0
        db.session.commit()
    except Exception:  # the caller's change is committed already; mail must not break the page
        log.exception("mail delivery run failed")
        db.session.rollback()
        return 0
    return sent


def commit_and_deliver() -> None:
    """Commit the session (the change and its emails together), then try to send the emails."""
    db.session.commit()
    deliver_pending()
