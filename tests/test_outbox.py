"""The demo mail outbox: every email the demo writes, readable in the browser, demo mode only."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from dicomportal.extensions import db
from dicomportal.models import EmailOutbox
from dicomportal.views.dev import autolink
from tests.helpers.auth import AuthActions

DEMO = {"DEMO_MODE": True, "MAIL_BACKEND": "outbox"}


@pytest.fixture
def app_config(app_config: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    """The shared settings, changed by ``@pytest.mark.parametrize("app_config", [...], indirect=True)``."""
    app_config.update(getattr(request, "param", {}))
    return app_config


def newest_email_id() -> int:
    email_id = db.session.scalar(select(EmailOutbox.id).order_by(EmailOutbox.id.desc()).limit(1))
    assert email_id is not None
    return email_id


@pytest.mark.parametrize("path", ["/dev/outbox", "/dev/outbox/1"])
def test_outbox_is_not_found_outside_the_demo(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("app_config", [DEMO], indirect=True)
def test_demo_outbox_lists_mail_and_its_links_work(client: FlaskClient, auth: AuthActions) -> None:
    auth.signup()
    auth.logout()
    client.post("/auth/forgot", data={"email": "pat@example.com"})
    listing = client.get("/dev/outbox").get_data(as_text=True)
    assert "This is the demo mail outbox" in listing
    assert "pat@example.com" in listing and "Reset your DICOM Portal password" in listing
    email = client.get(f"/dev/outbox/{newest_email_id()}").get_data(as_text=True)
    link = re.search(r'<a href="http://localhost(/auth/reset/[^"]+)">', email)
    assert link, email
    assert "Choose a new password" in client.get(link.group(1)).get_data(as_text=True)


@pytest.mark.parametrize("app_config", [DEMO], indirect=True)
def test_demo_outbox_shows_bodies_as_text_never_as_markup(client: FlaskClient, auth: AuthActions) -> None:
    auth.signup(name="<img src=x onerror=alert(1)> Pat")
    client.post("/account/password", data={"current_password": "correct horse battery",
                                           "password": "another long passphrase"})  # fmt: skip
    page = client.get(f"/dev/outbox/{newest_email_id()}").get_data(as_text=True)
    assert "Your password was changed" in page
    assert "&lt;img src=x onerror=alert(1)&gt; Pat" in page
    assert "<img src=x" not in page


@pytest.mark.parametrize("app_config", [DEMO], indirect=True)
def test_unknown_outbox_email_is_not_found(client: FlaskClient) -> None:
    assert client.get("/dev/outbox/999").status_code == 404


def test_links_in_plain_text_become_clickable_without_trailing_punctuation() -> None:
    html = autolink('Go to https://example.com/a?b=1&c=2. Or <b>not</b> "http://x.example/".')
    assert html == (
        'Go to <a href="https://example.com/a?b=1&amp;c=2">https://example.com/a?b=1&amp;c=2</a>. '
        'Or &lt;b&gt;not&lt;/b&gt; &#34;<a href="http://x.example/">http://x.example/</a>&#34;.'
    )


@pytest.mark.parametrize("app_config", [{"DEMO_MODE": True}], indirect=True)
def test_demo_clock_moves_time_forward_and_runs_the_jobs(client: FlaskClient) -> None:
    from dicomportal import clock

    before = clock.now()
    try:
        response = client.post("/dev/clock", data={"step": "month"}, follow_redirects=True)
        assert response.status_code == 200
        assert "It is now" in response.get_data(as_text=True)
        assert clock.now() - before > timedelta(days=27)
        bad = client.post("/dev/clock", data={"step": "century"}, follow_redirects=True)
        assert "Choose a day, a week or a month." in bad.get_data(as_text=True)
    finally:
        clock.reset()


def test_demo_clock_is_not_there_outside_the_demo(client: FlaskClient) -> None:
    assert client.get("/dev/clock").status_code == 404
    assert client.post("/dev/clock", data={"step": "month"}).status_code == 404
