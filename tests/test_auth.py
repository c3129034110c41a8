"""Signing up, logging in and out, changing and resetting a password, as a customer sees it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dicomportal.extensions import db
from dicomportal.models import EmailOutbox, Role, User
from tests.helpers.auth import AuthActions
from tests.helpers.mail import SmtpSink

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def app_config(app_config: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    """The shared settings, changed by ``@pytest.mark.parametrize("app_config", [...], indirect=True)``."""
    app_config.update(getattr(request, "param", {}))
    return app_config


def user_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User)) or 0


def user(email: str = "pat@example.com") -> User:
    db.session.expire_all()
    found = db.session.scalar(select(User).where(User.email == email))
    assert found is not None
    return found


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def ask_for_reset_link(client: FlaskClient, smtp: SmtpSink, address: str = "pat@example.com") -> str:
    """Use "forgot password" and return the path of the link in the email that arrives."""
    client.post("/auth/forgot", data={"email": address})
    body = SmtpSink.text(smtp.last_to(address))
    match = re.search(r"http://localhost(/auth/reset/\S+)", body)
    assert match, body
    return match.group(1)


@pytest.fixture
def customer(auth: AuthActions) -> AuthActions:
    """Pat has an account and is logged out."""
    auth.signup()
    auth.logout()
    return auth


# --- sign up -----------------------------------------------------------------------------------


def test_signup_logs_the_customer_in_with_a_normalised_email(client: FlaskClient, auth: AuthActions) -> None:
    response = auth.signup(email="  Pat.Lee@Example.COM ")
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/"
    assert user("pat.lee@example.com").name == "Pat Lee"
    dashboard = client.get("/account/")
    assert dashboard.status_code == 200
    assert "pat.lee@example.com" in text(dashboard)


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", PASSWORD, "That email address is not valid"),
        ("pat@example.com", "short", "Choose a password of at least 10 characters."),
    ],
)
def test_signup_with_bad_input_explains_and_creates_nobody(
    auth: AuthActions, email: str, password: str, message: str
) -> None:
    response = auth.signup(email=email, password=password)
    assert response.status_code == 422
    assert message in text(response)
    assert 'aria-invalid="true"' in text(response)
    assert user_count() == 0


@pytest.mark.usefixtures("customer")
def test_signup_with_a_taken_email_in_other_case_is_refused(client: FlaskClient, auth: AuthActions) -> None:
    response = auth.signup(email="PAT@Example.com", name="Someone Else")
    assert response.status_code == 422
    assert "An account with that email already exists" in text(response)
    assert user_count() == 1


def test_signup_keeps_next_so_subscribe_continues_to_the_chosen_plan(client: FlaskClient) -> None:
    target = "/checkout/md?interval=year"
    form = client.get("/auth/signup", query_string={"next": target})
    assert 'name="next" type="hidden" value="/checkout/md?interval=year"' in text(form)
    response = client.post(
        "/auth/signup",
        data={"name": "Pat Lee", "email": "pat@example.com", "password": PASSWORD, "next": target},
    )
    assert response.headers["Location"] == target


@pytest.mark.usefixtures("customer")
def test_login_returns_to_the_page_that_asked_for_it(client: FlaskClient) -> None:
    asked = client.get("/account/password")
    assert asked.status_code == 302
    login_page = client.get(asked.headers["Location"])
    assert 'name="next" type="hidden" value="/account/password?"' in text(login_page)
    response = client.post(
        "/auth/login", data={"email": "pat@example.com", "password": PASSWORD, "next": "/account/password?"}
    )
    assert response.headers["Location"] == "/account/password"


@pytest.mark.parametrize(
    "target", ["https://evil.example", "//evil.example/", "/\\evil.example", "javascript:alert(1)"]
)
@pytest.mark.usefixtures("customer")
def test_next_pointing_to_another_site_is_ignored(client: FlaskClient, target: str) -> None:
    response = client.post(
        "/auth/login", data={"email": "pat@example.com", "password": PASSWORD, "next": target}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/"


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}], indirect=True)
def test_signup_without_csrf_token_is_refused(auth: AuthActions) -> None:
    response = auth.signup()
    assert response.status_code == 400
    assert "The form expired" in text(response)
    assert user_count() == 0


# --- log in and out ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "password"), [("pat@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)]
)
@pytest.mark.usefixtures("customer")
def test_wrong_email_or_password_gets_one_generic_message(
    client: FlaskClient, auth: AuthActions, email: str, password: str
) -> None:
    response = auth.login(email=email, password=password)
    assert response.status_code == 200
    assert "Wrong email or password" in text(response)
    assert client.get("/account/").status_code == 302


@pytest.mark.usefixtures("customer")
def test_login_with_remember_me_sets_a_lasting_cookie(client: FlaskClient) -> None:
    response = client.post(
        "/auth/login", data={"email": "pat@example.com", "password": PASSWORD, "remember": "y"}
    )
    assert response.status_code == 303
    assert "remember_token=" in " ".join(response.headers.getlist("Set-Cookie"))


def test_sixth_login_attempt_within_a_minute_is_refused(client: FlaskClient, auth: AuthActions) -> None:
    for _ in range(5):
        assert auth.login(password="wrong password!").status_code == 200
    response = auth.login(password="wrong password!")
    assert response.status_code == 429
    assert "Too many attempts" in text(response)
    assert client.get("/auth/login").status_code == 200  # looking at the form is never limited


def test_logout_is_post_only_and_ends_the_session(client: FlaskClient, auth: AuthActions) -> None:
    auth.signup()
    assert client.get("/auth/logout").status_code == 405
    assert client.get("/account/").status_code == 200
    response = auth.logout()
    assert response.status_code == 303
    assert client.get("/account/").status_code == 302


# --- change password ---------------------------------------------------------------------------


def test_change_password_with_a_wrong_current_password_changes_nothing(
    client: FlaskClient, auth: AuthActions, smtp: SmtpSink
) -> None:
    auth.signup()
    before = user().password_hash
    response = client.post(
        "/account/password", data={"current_password": "not my password", "password": NEW_PASSWORD}
    )
    assert response.status_code == 422
    assert "That is not your current password." in text(response)
    assert user().password_hash == before
    assert smtp.messages == []


def test_change_password_emails_the_customer_and_the_new_one_works(
    client: FlaskClient, auth: AuthActions, smtp: SmtpSink
) -> None:
    auth.signup()
    response = client.post("/account/password", data={"current_password": PASSWORD, "password": NEW_PASSWORD})
    assert response.status_code == 303
    assert user().password_changed_at is not None
    assert smtp.last_to("pat@example.com")["Subject"] == "Your password was changed"
    auth.logout()
    assert auth.login(password=PASSWORD).status_code == 200
    assert auth.login(password=NEW_PASSWORD).status_code == 303


def test_change_password_page_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/account/password")
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


# --- password reset ----------------------------------------------------------------------------


@pytest.mark.usefixtures("customer")
def test_forgot_password_answers_the_same_for_unknown_addresses_and_sends_nothing(
    client: FlaskClient, smtp: SmtpSink
) -> None:
    client.get("/auth/forgot")  # shows (and clears) the "logged out" message
    with time_machine.travel(datetime.now(UTC), tick=False):  # same CSRF timestamp in both pages
        known = client.post("/auth/forgot", data={"email": "pat@example.com"}, follow_redirects=True)
        assert len(smtp.to("pat@example.com")) == 1
        unknown = client.post("/auth/forgot", data={"email": "nobody@example.com"}, follow_redirects=True)
    assert known.status_code == unknown.status_code == 200
    assert known.get_data() == unknown.get_data()
    assert "If an account exists for that address, we've sent a link" in text(unknown)
    assert smtp.to("nobody@example.com") == []
    assert db.session.scalar(select(func.count()).select_from(EmailOutbox)) == 1


@pytest.mark.usefixtures("customer")
def test_reset_link_from_the_email_sets_a_new_password_once(
    client: FlaskClient, auth: AuthActions, smtp: SmtpSink
) -> None:
    link = ask_for_reset_link(client, smtp)
    assert "Choose a new password" in text(client.get(link))
    response = client.post(link, data={"password": NEW_PASSWORD})
    assert response.status_code == 303
    assert client.get("/account/").status_code == 200  # logged in
    assert smtp.last_to("pat@example.com")["Subject"] == "Your password was changed"
    auth.logout()
    assert auth.login(password=NEW_PASSWORD).status_code == 303
    auth.logout()
    changed = user().password_hash
    for again in (client.get(link), client.post(link, data={"password": "yet another passphrase"})):
        assert again.status_code == 400
        assert "This reset link has expired or was already used. Ask for a new one." in text(again)
    assert user().password_hash == changed


@pytest.mark.usefixtures("customer")
def test_reset_link_expires_after_an_hour(client: FlaskClient, smtp: SmtpSink) -> None:
    link, before = ask_for_reset_link(client, smtp), user().password_hash
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=61)):
        response = client.post(link, data={"password": NEW_PASSWORD})
    assert response.status_code == 400
    assert "expired or was already used" in text(response)
    assert user().password_hash == before


def test_tampered_reset_link_is_refused(client: FlaskClient, auth: AuthActions, smtp: SmtpSink) -> None:
    auth.signup()
    link = ask_for_reset_link(client, smtp)
    response = client.get(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"))
    assert response.status_code == 400
    assert client.get("/auth/reset/not-a-token").status_code == 400


@pytest.mark.usefixtures("customer")
def test_reset_with_a_short_password_explains_and_keeps_the_link_usable(
    client: FlaskClient, smtp: SmtpSink
) -> None:
    link = ask_for_reset_link(client, smtp)
    response = client.post(link, data={"password": "short"})
    assert response.status_code == 422
    assert "at least 10 characters" in text(response)
    assert client.post(link, data={"password": NEW_PASSWORD}).status_code == 303


# --- command line ------------------------------------------------------------------------------


def test_create_user_command_makes_an_admin(app: Flask, runner: Any) -> None:
    result = runner.invoke(
        args=[
            "create-user", "--role", "admin", "--email", "Admin@Example.com",
            "--name", "Ada Admin", "--password", "a long admin passphrase",
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    admin = user("admin@example.com")
    assert admin.role == Role.ADMIN
    assert admin.check_password("a long admin passphrase")


def test_changing_the_password_logs_out_other_sessions_but_not_this_one(
    app: Flask, auth: AuthActions
) -> None:
    auth.signup()
    other_device = app.test_client()
    AuthActions(other_device).login()
    assert other_device.get("/account/").status_code == 200

    response = auth.client.post(
        "/account/password",
        data={"current_password": "correct horse battery", "password": "a brand new passphrase"},
    )

    assert response.status_code in (302, 303)
    assert auth.client.get("/account/").status_code == 200
    assert other_device.get("/account/").status_code == 302  # sent to the login page
