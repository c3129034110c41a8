"""Addresses that moved when each blueprint got its own prefix keep working: old links, bookmarks
and emails land on the same page (GETs move for good, form posts keep their method and body)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient


@pytest.fixture
def client(web_client: FlaskClient) -> FlaskClient:
    """These pages read no database: one run, not one per database (see ``web_app``)."""
    return web_client


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        ("/", "/plans/", 302),
        ("/demo", "/viewer/demo", 302),
        ("/pricing", "/plans/", 301),
        ("/pricing?interval=year", "/plans/?interval=year", 301),
        ("/subscribe/md?interval=year", "/checkout/md?interval=year", 301),
        ("/subscribe/md/card?interval=month", "/checkout/md/card?interval=month", 301),
        ("/subscribe/done", "/checkout/done", 301),
        ("/subscribe/authenticate/42", "/checkout/authenticate/42", 301),
    ],
)
def test_old_addresses_redirect_to_where_the_page_lives_now(
    client: FlaskClient, old: str, new: str, code: int
) -> None:
    response = client.get(old)
    assert (response.status_code, response.headers["Location"]) == (code, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/subscribe/md?interval=month", "/checkout/md?interval=month"),
        ("/subscribe/md/confirm?interval=month", "/checkout/md/confirm?interval=month"),
        ("/subscribe/complete", "/checkout/complete"),
    ],
)
def test_old_form_posts_are_redirected_with_their_method_kept(
    client: FlaskClient, old: str, new: str
) -> None:
    response = client.post(old, data={"payment_id": "1"})
    assert (response.status_code, response.headers["Location"]) == (308, new)


def test_an_old_pricing_link_still_shows_the_plans(app: Flask) -> None:
    page = app.test_client().get("/pricing?interval=year", follow_redirects=True)
    assert page.status_code == 200 and "Save up to" in page.get_data(as_text=True)
