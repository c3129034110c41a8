"""Static files: content-hashed names in pages, a year of browser cache, gzip when accepted."""

from __future__ import annotations

import gzip
import hashlib
import re

import pytest
from flask.testing import FlaskClient

from dicomportal import resource_dir


@pytest.fixture
def client(web_client: FlaskClient) -> FlaskClient:
    """These pages read no database: one run, not one per database (see ``web_app``)."""
    return web_client


def test_pages_link_static_files_by_content_hash_and_browsers_may_keep_them_a_year(
    client: FlaskClient,
) -> None:
    page = client.get("/help/").get_data(as_text=True)
    (css_url,) = re.findall(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', page)
    digest = hashlib.sha256((resource_dir("static") / "css" / "app.css").read_bytes()).hexdigest()[:12]
    assert css_url == f"/static/css/app.{digest}.css"  # a new version of the file gets a new address

    response = client.get(css_url)
    assert response.status_code == 200
    assert response.get_data() == (resource_dir("static") / "css" / "app.css").read_bytes()
    assert "immutable" in response.headers["Cache-Control"]
    assert int(re.search(r"max-age=(\d+)", response.headers["Cache-Control"]).group(1)) >= 365 * 24 * 3600


def test_static_text_is_sent_gzip_compressed_to_browsers_that_accept_it(client: FlaskClient) -> None:
    page = client.get("/help/").get_data(as_text=True)
    (js_url,) = re.findall(r'src="(/static/vendor/htmx/htmx\.min\.[0-9a-f]{12}\.js)"', page)

    response = client.get(js_url, headers={"Accept-Encoding": "gzip, br"})

    assert response.headers["Content-Encoding"] == "gzip"
    original = (resource_dir("static") / "vendor" / "htmx" / "htmx.min.js").read_bytes()
    assert gzip.decompress(response.get_data()) == original
    assert len(response.get_data()) < len(original) / 2


def test_the_plain_names_still_work_for_pages_cached_before_a_release(client: FlaskClient) -> None:
    response = client.get("/static/css/app.css")
    assert response.status_code == 200 and b"body" in response.get_data()
