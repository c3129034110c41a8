"""The app starts, serves its pages and knows which mode it is in."""

from __future__ import annotations

from flask.testing import FlaskClient


def test_pricing_page_shows_test_mode_banner_with_localstripe(client: FlaskClient) -> None:
    response = client.get("/plans/")
    assert response.status_code == 200
    assert "TEST MODE" in response.get_data(as_text=True)


def test_unknown_page_is_a_friendly_404(client: FlaskClient) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


def test_security_headers_are_set(client: FlaskClient) -> None:
    headers = client.get("/plans/").headers
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
