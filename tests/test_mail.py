"""Emails go through the outbox: written with the change, sent after the commit, kept on failure."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dicomportal.accounts import create_user, request_password_reset
from dicomportal.devtools.stripe_server import free_port
from dicomportal.extensions import db
from dicomportal.mail import MAX_ATTEMPTS, commit_and_deliver, deliver_pending, queue_email
from dicomportal.models import EmailOutbox
from tests.helpers.mail import SmtpSink

CLOSED_PORT = free_port()  # nothing listens there: connecting is refused


@pytest.fixture
def app_config(app_config: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    """The shared settings, changed by ``@pytest.mark.parametrize("app_config", [...], indirect=True)``."""
    app_config.update(getattr(request, "param", {}))
    return app_config


def outbox() -> list[EmailOutbox]:
    db.session.expire_all()
    return list(db.session.scalars(select(EmailOutbox).order_by(EmailOutbox.id)))


def test_reset_email_has_text_and_html_parts_with_absolute_links(app: Flask, smtp: SmtpSink) -> None:
    create_user("pat@example.com", "correct horse battery", "Pat Lee")
    request_password_reset("pat@example.com")
    commit_and_deliver()
    message = smtp.last_to("pat@example.com")
    assert message["Subject"] == "Reset your DICOM Portal password"
    text = SmtpSink.text(message)
    assert text.startswith("Hi Pat Lee,")
    assert "http://localhost/auth/reset/" in text
    html = message.get_body(preferencelist=("html",))
    assert html is not None and 'href="http://localhost/auth/reset/' in str(html.get_content())
    [row] = outbox()
    assert row.sent_at is not None and row.attempts == 1 and row.last_error is None


def test_queued_email_is_only_kept_when_the_caller_commits(app: Flask, smtp: SmtpSink) -> None:
    user = create_user("pat@example.com", "correct horse battery", "Pat Lee")
    queue_email(
        user.email, "Your password was changed", "password_changed",
        user=user, changed_at=user.created_at, forgot_url="http://localhost/auth/forgot",
    )  # fmt: skip
    db.session.rollback()
    assert outbox() == []
    assert deliver_pending() == 0
    assert smtp.messages == []


@pytest.mark.parametrize("app_config", [{"MAIL_BACKEND": "outbox"}], indirect=True)
def test_outbox_backend_keeps_mail_in_the_table_unsent(client: FlaskClient, smtp: SmtpSink) -> None:
    create_user("pat@example.com", "correct horse battery", "Pat Lee")
    db.session.commit()
    assert client.post("/auth/forgot", data={"email": "pat@example.com"}).status_code == 303
    [row] = outbox()
    assert row.sent_at is None and row.last_error is None and row.attempts == 0
    assert smtp.messages == []


@pytest.mark.parametrize("app_config", [{"MAIL_PORT": CLOSED_PORT}], indirect=True)
def test_unreachable_mail_server_keeps_the_email_queued_and_the_page_works(
    app: Flask, client: FlaskClient, smtp: SmtpSink
) -> None:
    create_user("pat@example.com", "correct horse battery", "Pat Lee")
    db.session.commit()
    response = client.post("/auth/forgot", data={"email": "pat@example.com"}, follow_redirects=True)
    assert response.status_code == 200
    assert "Check your email" in response.get_data(as_text=True)
    [row] = outbox()
    assert row.sent_at is None and row.attempts == 1
    assert row.last_error and "refused" in row.last_error.lower()
    app.extensions["mail"].port = smtp.port  # the server is back: the next run delivers it
    assert deliver_pending() == 1
    assert smtp.last_to("pat@example.com")["Subject"] == "Reset your DICOM Portal password"
    assert outbox()[0].sent_at is not None


@pytest.mark.parametrize("app_config", [{"MAIL_PORT": CLOSED_PORT}], indirect=True)
def test_an_email_that_keeps_failing_is_left_for_a_person_to_look_at(app: Flask) -> None:
    create_user("pat@example.com", "correct horse battery", "Pat Lee")
    request_password_reset("pat@example.com")
    db.session.commit()
    for _ in range(MAX_ATTEMPTS + 2):
        deliver_pending()
    [row] = outbox()
    assert row.attempts == MAX_ATTEMPTS and row.sent_at is None
    assert db.session.scalar(select(func.count()).select_from(EmailOutbox)) == 1


@pytest.mark.parametrize(
    "app_config", [{"MAIL_DEFAULT_SENDER": "DICOM Portal Billing <billing@example.org>"}], indirect=True
)
def test_email_comes_from_the_configured_sender_with_a_date_and_an_id(app: Flask, smtp: SmtpSink) -> None:
    create_user("pat@example.com", "correct horse battery", "Pat Lee")
    request_password_reset("pat@example.com")
    commit_and_deliver()
    message = smtp.last_to("pat@example.com")
    assert message["From"].addresses[0].addr_spec == "billing@example.org"
    assert message["From"].addresses[0].display_name == "DICOM Portal Billing"
    assert message["Date"].datetime is not None
    assert message["Message-ID"].startswith("<") and message["Message-ID"].endswith(">")


def test_an_email_with_a_line_break_in_its_subject_is_kept_and_the_others_go_out(
    app: Flask, smtp: SmtpSink
) -> None:
    def row(to: str, subject: str) -> EmailOutbox:
        return EmailOutbox(to_address=to, subject=subject, body_text="Hello", body_html=None, attempts=0)

    db.session.add_all([row("pat@example.com", "Hi\r\nBcc: eve@example.com"), row("kim@example.com", "Hi")])
    db.session.commit()
    assert deliver_pending() == 1
    bad, good = outbox()
    assert bad.sent_at is None and bad.attempts == 1 and bad.last_error
    assert good.sent_at is not None
    assert [str(m["To"]) for m in smtp.messages] == ["kim@example.com"]
