"""Production safety: the app refuses to start with dangerous settings, and `dicomportal check`
lists what a deployment still lacks (OK / WARN / FAIL, exit status 1 on a FAIL)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from dicomportal import create_app
from dicomportal.billing import gateway
from dicomportal.billing.webhook_events import REQUIRED_EVENTS
from dicomportal.cli import build_cli
from dicomportal.config import load_config
from dicomportal.deployment.checklist import Finding, Level, run_checks
from dicomportal.deployment.safety import PUBLIC_STRIPE_KEYS, PUBLIC_WEBHOOK_SECRETS, UnsafeSettings
from dicomportal.devtools import demo
from dicomportal.devtools.stripe_server import LocalStripe, free_port
from tests.helpers.environment import WEBHOOK_SECRET
from tests.helpers.mail import SmtpSink

LIVE = {
    "STRIPE_SECRET_KEY": "sk_live_51Habcdefghijklmnop",
    "STRIPE_PUBLISHABLE_KEY": "pk_live_51Habcdefghijklmnop",
    "STRIPE_WEBHOOK_SECRET": "whsec_9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "STRIPE_API_BASE": "",
    "DEMO_MODE": False,
}
SECRET_KEY = "Xq3vN8pL2tR7wY5zK9mB4cF6hJ1sD0gA-EuIoPnQrSt"
ITEM = re.compile(r"^(OK|WARN|FAIL) +(\S+)", flags=re.MULTILINE)  # a checklist line: level, topic


def start(tmp_path: Path, **settings: Any) -> Flask:
    """create_app as gunicorn would call it (no TESTING), on a SQLite file in ``tmp_path``."""
    config = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'portal.db'}", **settings}
    return create_app(config, instance_path=str(tmp_path))


def refused_settings(tmp_path: Path, **settings: Any) -> list[str]:
    with pytest.raises(UnsafeSettings) as refused:
        start(tmp_path, **settings)
    message = str(refused.value)
    named = [p.setting for p in refused.value.problems]
    assert all(f"- {name}:" in message for name in named), message
    return named


# --- the app refuses to start ------------------------------------------------------------------


def test_a_live_key_without_a_webhook_secret_does_not_start_and_says_why(tmp_path: Path) -> None:
    with pytest.raises(UnsafeSettings) as refused:
        start(tmp_path, **(LIVE | {"STRIPE_WEBHOOK_SECRET": ""}))

    message = str(refused.value)
    assert "STRIPE_WEBHOOK_SECRET: not set" in message
    assert "signing secret" in message  # what to do
    assert "dicomportal check" in message
    assert not (tmp_path / "portal.db").exists()  # refused before touching anything


@pytest.mark.parametrize(
    ("unsafe", "named"),
    [
        *[({"STRIPE_WEBHOOK_SECRET": s}, ["STRIPE_WEBHOOK_SECRET"]) for s in sorted(PUBLIC_WEBHOOK_SECRETS)],
        ({"STRIPE_PUBLISHABLE_KEY": demo.DEMO_PUBLISHABLE_KEY}, ["STRIPE_PUBLISHABLE_KEY"]),
        ({"STRIPE_PUBLISHABLE_KEY": "pk_test_51Habcdefghijklmnop"}, ["STRIPE_PUBLISHABLE_KEY"]),
        ({"STRIPE_API_BASE": "http://127.0.0.1:8420"}, ["STRIPE_API_BASE"]),
        ({"DEMO_MODE": True}, ["DICOMPORTAL_DEMO"]),
        (
            {"STRIPE_SECRET_KEY": "rk_live_51Habcdefghijklmnop", "STRIPE_WEBHOOK_SECRET": ""},
            ["STRIPE_WEBHOOK_SECRET"],
        ),
    ],
)
def test_a_live_key_with_demo_or_published_values_does_not_start(
    tmp_path: Path, unsafe: dict[str, Any], named: list[str]
) -> None:
    assert refused_settings(tmp_path, **(LIVE | unsafe)) == named


def test_one_error_names_every_setting_to_fix(tmp_path: Path) -> None:
    everything_wrong = LIVE | {
        "DEMO_MODE": True,
        "STRIPE_WEBHOOK_SECRET": demo.DEMO_WEBHOOK_SECRET,
        "STRIPE_PUBLISHABLE_KEY": demo.DEMO_PUBLISHABLE_KEY,
        "STRIPE_API_BASE": "http://127.0.0.1:8420",
    }

    assert refused_settings(tmp_path, **everything_wrong) == [
        "DICOMPORTAL_DEMO",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_PUBLISHABLE_KEY",
        "STRIPE_API_BASE",
    ]


@pytest.mark.parametrize(
    "settings",
    [
        LIVE,  # a complete live setup
        {"STRIPE_SECRET_KEY": "sk_test_51Habc", "STRIPE_WEBHOOK_SECRET": ""},  # staging on a test key
        LIVE | {"STRIPE_WEBHOOK_SECRET": "", "TESTING": True},  # the test suite decides for itself
    ],
)
def test_safe_combinations_start(tmp_path: Path, settings: dict[str, Any]) -> None:
    assert isinstance(start(tmp_path, **settings), Flask)


def test_the_demo_starts_with_its_own_published_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in demo.demo_environment(demo.DemoOptions(), "http://127.0.0.1:8420").items():
        monkeypatch.setenv(name, value)

    app = create_app(instance_path=str(tmp_path))

    assert app.config["DEMO_MODE"] and app.config["STRIPE_WEBHOOK_SECRET"] == demo.DEMO_WEBHOOK_SECRET


def test_every_secret_published_in_this_repository_is_known_as_public(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)

    assert {demo.DEMO_WEBHOOK_SECRET, WEBHOOK_SECRET, "whsec_dicomportal_demo"} <= PUBLIC_WEBHOOK_SECRETS
    assert {demo.DEMO_SECRET_KEY, demo.DEMO_PUBLISHABLE_KEY} <= PUBLIC_STRIPE_KEYS
    assert load_config(tmp_path)["STRIPE_WEBHOOK_SECRET"] == ""  # no public default any more


# --- dicomportal check ---------------------------------------------------------------------------


def by_topic(findings: list[Finding]) -> dict[str, Finding]:
    topics = [f.topic for f in findings]
    assert len(topics) == len(set(topics)), topics
    return {f.topic: f for f in findings}


def levels(findings: list[Finding]) -> dict[str, str]:
    return {f.topic: f.level.value for f in findings}


def checked(tmp_path: Path, **settings: Any) -> dict[str, Finding]:
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'portal.db'}", **settings},
        instance_path=str(tmp_path),
        refuse_unsafe=False,
    )
    return by_topic(run_checks(app))


def test_check_reports_a_short_or_generated_secret_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    generated = checked(tmp_path / "a")["SECRET_KEY"]
    short = checked(tmp_path / "b", SECRET_KEY="too-short")["SECRET_KEY"]

    assert (generated.level, short.level) == (Level.WARN, Level.FAIL)
    assert "kept in" in generated.found and "the same on every app machine" in generated.todo
    assert short.found.startswith("9 characters")


def test_check_of_an_unmigrated_and_of_an_unreachable_database(tmp_path: Path) -> None:
    unmigrated = checked(tmp_path)
    unreachable = checked(
        tmp_path, SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://nobody:pw@127.0.0.1:{free_port()}/none"
    )

    assert unmigrated["migrations"].level == Level.FAIL
    assert "dicomportal db upgrade" in unmigrated["migrations"].todo
    assert unreachable["database"].level == Level.FAIL
    assert "pw" not in unreachable["database"].found  # the password is never printed


def test_check_of_rate_limit_storage_and_proxy_settings(tmp_path: Path) -> None:
    down = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    found = checked(tmp_path, RATELIMIT_STORAGE_URI=down, TRUSTED_PROXY_HOPS=0)

    assert levels([found["RATELIMIT_STORAGE_URI"], found["TRUSTED_PROXY_HOPS"]]) == {
        "RATELIMIT_STORAGE_URI": "FAIL",
        "TRUSTED_PROXY_HOPS": "WARN",
    }
    assert "hunter2" not in found["RATELIMIT_STORAGE_URI"].found
    assert "TRUSTED_PROXY_HOPS=1" in found["TRUSTED_PROXY_HOPS"].todo


def production_environment(app: Flask, database_url: str, smtp: SmtpSink) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "BASE_URL": "https://billing.example.org",
        "STRIPE_SECRET_KEY": LIVE["STRIPE_SECRET_KEY"],
        "STRIPE_PUBLISHABLE_KEY": LIVE["STRIPE_PUBLISHABLE_KEY"],
        "STRIPE_WEBHOOK_SECRET": LIVE["STRIPE_WEBHOOK_SECRET"],
        "STRIPE_API_BASE": "",
        "DICOMPORTAL_DEMO": "",
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": smtp.host,
        "MAIL_PORT": str(smtp.port),
        "MAIL_DEFAULT_SENDER": "DICOM Portal Billing <billing@dicomportal.org>",
        "SUPPORT_EMAIL": "support@dicomportal.org",
        "RATELIMIT_STORAGE_URI": "memory://",
        "SESSION_COOKIE_SECURE": "1",
        "TRUSTED_PROXY_HOPS": "1",
    }


def run_check(tmp_path: Path, env: dict[str, str]) -> Any:
    return CliRunner().invoke(build_cli(), ["check", "--data-dir", str(tmp_path)], env=env)


def test_check_on_a_production_like_environment_passes(
    app: Flask, database_url: str, smtp: SmtpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The one call that would leave this machine (to api.stripe.com) answers as Stripe would for
    # a complete endpoint; the endpoint check itself is tested against a stub server below.
    complete = gateway.WebhookEndpointInfo(
        "we_1", "https://billing.example.org/webhooks/stripe", "enabled", REQUIRED_EVENTS
    )
    monkeypatch.setattr(gateway, "list_webhook_endpoints", lambda: [complete])

    result = run_check(tmp_path, production_environment(app, database_url, smtp))

    assert result.exit_code == 0, result.output
    lines = {m.group(2): m.group(1) for m in ITEM.finditer(result.output)}
    warned = {"RATELIMIT_STORAGE_URI", "MAIL_SERVER"} | (
        {"DATABASE_URL"} if "sqlite" in database_url else set()
    )
    assert {topic for topic, level in lines.items() if level == "WARN"} == warned
    assert "FAIL" not in lines.values()
    assert {"SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "SESSION_COOKIE_SECURE", "BASE_URL", "migrations"} <= set(
        lines
    )


def test_check_names_what_would_stop_a_live_deployment_and_exits_1(
    app: Flask, database_url: str, smtp: SmtpSink, tmp_path: Path
) -> None:
    env = production_environment(app, database_url, smtp) | {"STRIPE_WEBHOOK_SECRET": ""}

    result = run_check(tmp_path, env)

    assert result.exit_code == 1
    assert re.search(r"^FAIL +STRIPE_WEBHOOK_SECRET +not set", result.output, flags=re.MULTILINE)
    assert "FAIL  startup" in result.output and "STRIPE_WEBHOOK_SECRET" in result.output.split("startup")[1]


def test_check_on_the_demos_environment_fails_what_production_must_change(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    env = demo.demo_environment(demo.DemoOptions(), "http://127.0.0.1:8420") | {"DATABASE_URL": database_url}

    result = run_check(tmp_path, env)

    assert result.exit_code == 1
    failed = {m.group(2) for m in ITEM.finditer(result.output) if m.group(1) == "FAIL"}
    assert failed == {
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_SECRET_KEY",
        "STRIPE_PUBLISHABLE_KEY",
        "DICOMPORTAL_DEMO",
        "SESSION_COOKIE_SECURE",
        "BASE_URL",
        "MAIL_BACKEND",
    }


# --- dicomportal check: Stripe's webhook endpoints -------------------------------------------------

PORTAL_ENDPOINT = "https://billing.example.org/webhooks/stripe"


class StubStripe:
    """A stand-in for Stripe's API on a free loopback port: ``GET /v1/webhook_endpoints`` answers
    ``endpoints`` as one page of Stripe's list; every other request is a 404."""

    def __init__(self) -> None:
        self.endpoints: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/v1/webhook_endpoints":
                    self.send_error(404)
                    return
                page = {"object": "list", "url": "/v1/webhook_endpoints", "has_more": False}
                body = json.dumps({**page, "data": stub.endpoints}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.api_base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def endpoint(
        self, url: str = PORTAL_ENDPOINT, status: str = "enabled", events: Any = REQUIRED_EVENTS
    ) -> None:
        """An endpoint shaped like Stripe's example (tests/fixtures/stripe_fixtures3.json)."""
        example = json.loads(FIXTURES.read_text())["resources"]["webhook_endpoint"]
        number = len(self.endpoints) + 1
        self.endpoints.append(
            {**example, "id": f"we_{number}", "url": url, "status": status, "enabled_events": list(events)}
        )


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "stripe_fixtures3.json"


@pytest.fixture
def stub_stripe() -> Iterator[StubStripe]:
    stub = StubStripe()
    thread = threading.Thread(target=stub.server.serve_forever, daemon=True)
    thread.start()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()
    thread.join()


def endpoint_check(tmp_path: Path, api_base: str, key: str = LIVE["STRIPE_SECRET_KEY"]) -> Finding:
    settings = {
        "STRIPE_SECRET_KEY": key,
        "STRIPE_API_BASE": api_base,
        "BASE_URL": "https://billing.example.org",
    }
    return checked(tmp_path, **settings)["webhook_endpoint"]


def test_check_fails_a_live_endpoint_that_misses_a_required_event_and_names_it(
    tmp_path: Path, stub_stripe: StubStripe
) -> None:
    stub_stripe.endpoint("https://old.example.org/hooks", events=["*"])
    stub_stripe.endpoint(events=[e for e in REQUIRED_EVENTS if e != "charge.dispute.created"])

    finding = endpoint_check(tmp_path, stub_stripe.api_base)

    assert finding.level == Level.FAIL
    assert finding.found == f"{PORTAL_ENDPOINT} does not receive charge.dispute.created."


def test_check_passes_an_enabled_endpoint_with_every_required_event_or_all_events(
    tmp_path: Path, stub_stripe: StubStripe
) -> None:
    stub_stripe.endpoint()
    every = endpoint_check(tmp_path / "a", stub_stripe.api_base)
    stub_stripe.endpoints.clear()
    stub_stripe.endpoint(events=["*"])
    star = endpoint_check(tmp_path / "b", stub_stripe.api_base)

    assert (every.level, star.level) == (Level.OK, Level.OK)
    assert PORTAL_ENDPOINT in every.found


def test_check_fails_when_no_endpoint_points_at_the_portal_or_it_is_disabled(
    tmp_path: Path, stub_stripe: StubStripe
) -> None:
    stub_stripe.endpoint("https://staging.example.org/webhooks/stripe", events=["*"])
    elsewhere = endpoint_check(tmp_path / "a", stub_stripe.api_base)
    stub_stripe.endpoint(status="disabled", events=["*"])
    disabled = endpoint_check(tmp_path / "b", stub_stripe.api_base)

    assert (elsewhere.level, disabled.level) == (Level.FAIL, Level.FAIL)
    assert f"no endpoint points at {PORTAL_ENDPOINT}" in elsewhere.found
    assert "staging.example.org" in elsewhere.found
    assert "is disabled" in disabled.found


def test_check_with_stripe_unreachable_fails_with_a_live_key_and_warns_with_a_test_key(
    tmp_path: Path,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"

    live = endpoint_check(tmp_path / "a", nobody)
    test = endpoint_check(tmp_path / "b", nobody, key="sk_test_51Habcdefghijklmnop")

    assert (live.level, test.level) == (Level.FAIL, Level.WARN)
    assert live.found.startswith("cannot read the webhook endpoints: Stripe does not answer")
    assert "api.stripe.com" in live.todo


def test_check_against_localstripe_says_it_cannot_check_the_webhook_endpoints(
    tmp_path: Path, stripe_server: LocalStripe
) -> None:
    finding = endpoint_check(tmp_path, stripe_server.api_base, key="sk_test_dicomportal")

    assert finding.level == Level.WARN
    assert "has no /v1/webhook_endpoints (localstripe has none)" in finding.found
