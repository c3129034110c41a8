"""Shared fixtures: the app on SQLite and PostgreSQL, localstripe, an SMTP sink, a browser.

Every test that uses ``app`` (directly or through ``client``) runs twice: on SQLite and on
PostgreSQL (``TEST_DATABASE_URL``). Without that variable the PostgreSQL run is skipped locally;
with ``CI=true`` it fails instead, and so do browser tests without Chromium.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, g
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from dicomportal import create_app
from dicomportal.devtools.stripe_server import LocalStripe, free_port
from dicomportal.extensions import db, limiter
from tests.helpers.auth import AuthActions
from tests.helpers.environment import CHROMIUM, WEBHOOK_SECRET, require
from tests.helpers.mail import SmtpSink
from tests.helpers.strict_stripe import StrictStripe, StrictView

# --- databases ---------------------------------------------------------------------------------


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _migrate(url: str, instance: Path) -> None:
    from flask_migrate import upgrade

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True}, instance_path=str(instance))
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("instance")
    (path / "secret_key").write_text("test-secret-key-not-for-production")
    return path


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, instance_dir: Path) -> Iterator[str]:
    """A migrated, empty database for this test session (one per xdist worker)."""
    if request.param == "sqlite":
        url = f"sqlite:///{instance_dir / f'test-{_worker()}.db'}"
        _migrate(url, instance_dir)
        yield url
        return
    base = os.environ.get("TEST_DATABASE_URL")
    require(bool(base), "TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    assert base
    base = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", base)
    name = f"dicomportal_test_{_worker()}_{os.getpid()}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    _migrate(url, instance_dir)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_all_tables() -> None:
    tables = [t for t in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        db.session.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(table.delete())
    db.session.commit()


# --- services ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[LocalStripe]:
    """One localstripe for the session, on a free loopback port."""
    with LocalStripe() as server:
        yield server


@pytest.fixture(scope="session")
def strict_stripe_proxy(stripe_server: LocalStripe) -> Iterator[StrictStripe]:
    """The app's Stripe: a proxy in front of localstripe that refuses what real Stripe would
    (tests/helpers/strict_stripe.py). One per session, like one Stripe account."""
    with StrictStripe(stripe_server.api_base) as proxy:
        yield proxy


@pytest.fixture
def strict_stripe(strict_stripe_proxy: StrictStripe) -> StrictView:
    """What the app asked of Stripe during this test: ``.requests``, ``.refused``, ``.clear()``,
    ``.expect_refusals()``, and ``.upstream`` (localstripe itself, past the rules)."""
    return strict_stripe_proxy.view()


@pytest.fixture(autouse=True)
def _stripe_refusals_fail_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """A request the strict Stripe refused fails the test that made it, unless the test said
    ``strict_stripe.expect_refusals()``: in the app a refusal looks like a failed payment, which a
    test could take for the decline it expects. Tests that never reach Stripe start nothing here."""
    if "strict_stripe_proxy" not in request.fixturenames:
        yield
        return
    view: StrictView = request.getfixturevalue("strict_stripe")
    yield
    unexpected = view.unexpected_refusals()
    if unexpected:
        lines = "\n".join(f"  {s.method} {s.path} -> {s.status} [{s.rule}] {s.message}" for s in unexpected)
        pytest.fail(
            f"the strict Stripe refused {len(unexpected)} request(s) of the app:\n{lines}", pytrace=False
        )


@pytest.fixture(scope="session")
def _smtp_server() -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink("127.0.0.1", free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            sink.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
            return "250 OK"

    controller = Controller(Handler(), hostname=sink.host, port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture
def smtp(_smtp_server: SmtpSink) -> SmtpSink:
    """The SMTP sink, emptied for this test."""
    _smtp_server.messages.clear()
    return _smtp_server


# --- the app -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _real_time_after_each_test() -> Iterator[None]:
    """``tick --now`` and the demo clock move this process's clock; no test inherits the move."""
    from dicomportal import clock

    yield
    clock.reset()


@pytest.fixture
def app_config(
    database_url: str, strict_stripe_proxy: StrictStripe, _smtp_server: SmtpSink
) -> dict[str, Any]:
    """Settings for the app under test; a test may change them before asking for ``app``."""
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "WTF_CSRF_ENABLED": False,
        "STRIPE_API_BASE": strict_stripe_proxy.api_base,
        "STRIPE_SECRET_KEY": "sk_test_dicomportal",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_dicomportal",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_CONCURRENCY": 4,  # the worker's Stripe pool is on in every test
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": _smtp_server.host,
        "MAIL_PORT": _smtp_server.port,
        "RATELIMIT_STORAGE_URI": "memory://",
        "BASE_URL": "http://localhost",
    }


@pytest.fixture
def app(app_config: dict[str, Any], instance_dir: Path) -> Iterator[Flask]:
    """The app on a freshly emptied database with the catalog seeded."""
    from dicomportal.billing.catalog import seed_catalog

    app = create_app(app_config, instance_path=str(instance_dir))

    @app.before_request
    def forget_the_last_requests_user() -> None:
        # Requests reuse the test's app context (and its ``g``), where Flask-Login caches the
        # user; in production every request has its own. Two test clients must not share a login.
        g.pop("_login_user", None)

    with app.app_context():
        _empty_all_tables()
        seed_catalog()
        limiter.reset()
        yield app
        db.session.remove()
        db.engine.dispose()
    # A connection leaked by this test is reported here, against this test, not in a later one.
    gc.collect()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def web_app(instance_dir: Path) -> Iterator[Flask]:
    """The app for pages that read no database (the help centre, static files, redirects): their
    tests run once, not once per database. Its database is empty and in memory, with no tables,
    so a page that did query would fail its test."""
    config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "WTF_CSRF_ENABLED": False}
    app = create_app({**config, "STRIPE_API_BASE": "http://127.0.0.1:9"}, instance_path=str(instance_dir))
    with app.app_context():
        yield app
        db.engine.dispose()


@pytest.fixture
def web_client(web_app: Flask) -> FlaskClient:
    return web_app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


# --- browser -----------------------------------------------------------------------------------


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served over HTTP on a free loopback port, for the browser."""
    port = free_port()
    app.config["BASE_URL"] = f"http://127.0.0.1:{port}"
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="session")
def _browser() -> Iterator[Any]:
    require(Path(CHROMIUM).exists() or bool(shutil.which("chromium")), f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    # CI machines are small and busy: give assertions the same patience as actions.
    expect.set_options(timeout=15_000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(_browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page; on failure a screenshot lands in test-artifacts/."""
    context = _browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        out = Path("test-artifacts")
        out.mkdir(exist_ok=True)
        # e.g. test-artifacts/tests.test_subscribe_browser.test_pay[postgresql].png
        name = f"{request.node.module.__name__}.{request.node.name}"
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
