"""Logging out ends the session on the server: a copy of the cookies taken before opens nothing."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dicomportal.accounts import purge_expired_sessions
from dicomportal.extensions import db
from dicomportal.models import LoginSession
from tests.helpers.auth import AuthActions
from tests.helpers.mail import SmtpSink
from tests.test_auth import ask_for_reset_link

PASSWORD = "correct horse battery"


def login(client: FlaskClient, remember: bool = False) -> None:
    data = {"email": "pat@example.com", "password": PASSWORD} | ({"remember": "y"} if remember else {})
    assert client.post("/auth/login", data=data).status_code == 303


def copy_cookie(app: Flask, source: FlaskClient, name: str) -> FlaskClient:
    """A new browser holding a copy of one of ``source``'s cookies (what a thief would keep)."""
    cookie = source.get_cookie(name)
    assert cookie is not None, f"no {name} cookie"
    thief = app.test_client()
    thief.set_cookie(name, cookie.value)
    return thief


def logged_in(client: FlaskClient) -> bool:
    status = client.get("/account/").status_code
    assert status in (200, 302)
    return status == 200


def session_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(LoginSession)) or 0


def test_a_session_cookie_copied_before_logout_stops_working_after_logout(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.signup()
    copy = copy_cookie(app, client, "session")
    assert logged_in(copy)  # the copy works while the session is open

    auth.logout()

    assert not logged_in(copy)
    assert not logged_in(client)
    assert session_count() == 0


def test_a_remember_me_cookie_copied_before_logout_stops_working_after_logout(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.signup()
    auth.logout()
    login(client, remember=True)
    used_before = copy_cookie(app, client, "remember_token")
    assert logged_in(used_before)  # a browser restarted with only the remember-me cookie
    kept_for_later = copy_cookie(app, client, "remember_token")

    auth.logout()

    assert not logged_in(used_before)
    assert not logged_in(kept_for_later)


def test_changing_the_password_ends_other_browsers_and_their_remember_me_cookies(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.signup()
    laptop = app.test_client()
    login(laptop, remember=True)
    stolen = copy_cookie(app, laptop, "remember_token")

    response = client.post(
        "/account/password", data={"current_password": PASSWORD, "password": "a new passphrase"}
    )

    assert response.status_code == 303
    assert logged_in(client)  # the browser that made the change stays logged in
    assert not logged_in(laptop)
    assert not logged_in(stolen)
    assert session_count() == 1


def test_resetting_the_password_ends_every_session_and_logs_in_only_the_resetting_browser(
    app: Flask, client: FlaskClient, auth: AuthActions, smtp: SmtpSink
) -> None:
    auth.signup()
    auth.logout()
    laptop = app.test_client()
    login(laptop, remember=True)
    stolen = copy_cookie(app, laptop, "remember_token")
    link = ask_for_reset_link(client, smtp)

    assert client.post(link, data={"password": "a new passphrase"}).status_code == 303

    assert logged_in(client)
    assert not logged_in(laptop)
    assert not logged_in(stolen)
    assert session_count() == 1


def test_the_database_keeps_only_a_digest_of_what_the_cookie_carries(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.signup()
    cookie = client.get_cookie("session")
    assert cookie is not None
    token = app.session_interface.get_signing_serializer(app).loads(cookie.value)["_user_id"]  # type: ignore[attr-defined]

    (stored,) = db.session.scalars(select(LoginSession.token_digest)).all()

    assert len(token) >= 40
    assert stored == hashlib.sha256(token.encode()).hexdigest() != token


def test_a_plain_login_ends_after_31_days_remember_me_lasts_and_the_job_purges_what_expired(
    app: Flask, auth: AuthActions
) -> None:
    start = datetime.now(UTC)
    auth.signup()
    auth.logout()
    plain, remembered = app.test_client(), app.test_client()
    login(plain)
    login(remembered, remember=True)

    with time_machine.travel(start + timedelta(days=32)):
        assert not logged_in(plain)
        assert logged_in(remembered)
        assert purge_expired_sessions() == 1  # the plain login's row; the remembered one stays
        assert session_count() == 1
        assert logged_in(remembered)
