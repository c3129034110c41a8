"""Behind a reverse proxy (TRUSTED_PROXY_HOPS): rate limits and logs see the client, not the proxy."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder

from tests.helpers.auth import AuthActions

PROXY = {"REMOTE_ADDR": "10.0.0.2"}  # every request arrives from the proxy
ATTACKER = {"X-Forwarded-For": "203.0.113.7"}
CUSTOMER = {"X-Forwarded-For": "198.51.100.20"}
WRONG = {"email": "pat@example.com", "password": "not the password"}
RIGHT = {"email": "pat@example.com", "password": "correct horse battery"}


@pytest.fixture
def app_config(app_config: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    """The shared settings, changed by ``@pytest.mark.parametrize("app_config", [...], indirect=True)``."""
    return {**app_config, **getattr(request, "param", {})}


def login(client: FlaskClient, data: dict[str, str], client_headers: dict[str, str]) -> int:
    return client.post("/auth/login", data=data, headers=client_headers, environ_base=PROXY).status_code


def five_failed_logins_from_the_attacker(app: Flask, auth: AuthActions) -> FlaskClient:
    auth.signup()
    auth.logout()
    attacker = app.test_client()
    assert [login(attacker, WRONG, ATTACKER) for _ in range(5)] == [200] * 5
    assert login(attacker, WRONG, ATTACKER) == 429
    return attacker


@pytest.mark.parametrize("app_config", [{"TRUSTED_PROXY_HOPS": 1}], indirect=True)
def test_with_one_trusted_hop_an_attacker_does_not_lock_out_another_client(
    app: Flask, auth: AuthActions
) -> None:
    five_failed_logins_from_the_attacker(app, auth)

    assert login(app.test_client(), RIGHT, CUSTOMER) == 303  # logged in


def test_without_trusted_hops_x_forwarded_for_is_ignored(app: Flask, auth: AuthActions) -> None:
    five_failed_logins_from_the_attacker(app, auth)

    # A forged header does not buy a fresh budget: both clients are the proxy's address.
    assert login(app.test_client(), RIGHT, CUSTOMER) == 429


def served_environ(app: Flask, headers: dict[str, str]) -> dict[str, Any]:
    """The WSGI environ after the app answered, as gunicorn's access log reads it."""
    environ = EnvironBuilder(path="/plans/", headers=headers, environ_base=PROXY).get_environ()
    statuses: list[str] = []
    body = app(environ, lambda status, _headers, _exc_info=None: statuses.append(status))
    b"".join(body)
    getattr(body, "close", lambda: None)()
    assert statuses == ["200 OK"]
    return environ


@pytest.mark.parametrize("app_config", [{"TRUSTED_PROXY_HOPS": 1}], indirect=True)
def test_with_one_trusted_hop_the_access_log_sees_the_client_address_and_https(app: Flask) -> None:
    environ = served_environ(app, {**ATTACKER, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "b.example"})

    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"], environ["HTTP_HOST"]) == (
        "203.0.113.7",
        "https",
        "b.example",
    )


@pytest.mark.parametrize("app_config", [{"TRUSTED_PROXY_HOPS": 2}], indirect=True)
def test_with_two_hops_only_the_address_the_first_proxy_saw_counts(app: Flask) -> None:
    # The client forged the leftmost entry; the outer proxy appended what it saw, the inner one too.
    environ = served_environ(app, {"X-Forwarded-For": "1.2.3.4, 203.0.113.7, 10.0.0.1"})

    assert environ["REMOTE_ADDR"] == "203.0.113.7"
