"""Ids from outside (URLs, hidden fields) beyond what an id column holds are a 404, never a 500."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import NotFound
from werkzeug.routing import Map, Rule

from dicomportal.models.types import MAX_ID
from dicomportal.views._routing import IdConverter
from tests.helpers.auth import AuthActions

TOO_BIG = [str(MAX_ID + 1), "99999999999", "9" * 20, "9" * 5000]
INT_PART = re.compile(r"<int(?:\([^)]*\))?:\w+>")
OTHER_PART = re.compile(r"<(?:\w+(?:\([^)]*\))?:)?\w+>")


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    """Demo mode on, so the /dev routes answer too."""
    return {**app_config, "DEMO_MODE": True}


def int_routes(app: Flask) -> list[Rule]:
    return [rule for rule in app.url_map.iter_rules() if INT_PART.search(rule.rule)]


def url_for_id(rule: Rule, value: str) -> str:
    return OTHER_PART.sub("x", INT_PART.sub(value, rule.rule))


def test_every_int_route_answers_404_for_an_id_no_column_can_hold(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.signup()  # logged in: the views would run their queries
    routes = int_routes(app)
    assert {r.endpoint for r in routes} >= {"checkout.authenticate", "dev.outbox_email"}

    answers = {
        (rule.endpoint, method, value[:12]): client.open(url_for_id(rule, value), method=method).status_code
        for rule in routes
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for value in TOO_BIG
    }

    assert answers and set(answers.values()) == {404}, answers


def test_the_largest_id_still_reaches_the_view(client: FlaskClient, auth: AuthActions) -> None:
    auth.signup()
    response = client.get(f"/checkout/authenticate/{MAX_ID}")
    assert response.status_code == 404  # the view looked and found no such payment
    assert "Page not found" in response.get_data(as_text=True)


def test_a_payment_id_too_large_in_the_3d_secure_form_is_a_404(
    client: FlaskClient, auth: AuthActions
) -> None:
    auth.signup()
    for value in (str(MAX_ID + 1), "9" * 18, "9" * 20, "12abc"):
        assert client.post("/checkout/complete", data={"payment_id": value}).status_code == 404, value


def test_the_converter_bounds_ids_without_an_app() -> None:
    urls = Map([Rule("/payments/<int:payment_id>", endpoint="payment")], converters={"int": IdConverter})
    adapter = urls.bind("portal.test")

    assert adapter.match(f"/payments/{MAX_ID}") == ("payment", {"payment_id": MAX_ID})
    assert adapter.match("/payments/007") == ("payment", {"payment_id": 7})
    for value in ("-1", str(MAX_ID + 1), "9" * 5000):
        with pytest.raises(NotFound):
            adapter.match(f"/payments/{value}")
