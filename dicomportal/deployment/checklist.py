"""``dicomportal check``: what a deployment still lacks, in the spirit of Django's ``check --deploy``.

Each finding is OK, WARN (fine in some setups: the text says which) or FAIL (unsafe or broken in
production), with what to do. Run it in the production environment, on every app machine.
"""

from __future__ import annotations

import enum
import re
import smtplib
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from dicomportal.billing import gateway
from dicomportal.billing.errors import GatewayMisconfigured, GatewayUnavailable, PaymentRejected
from dicomportal.billing.webhook_events import ENDPOINT_PATH, missing_events
from dicomportal.deployment.safety import (
    PUBLIC_STRIPE_KEYS,
    is_live_key,
    startup_problems,
    webhook_secret_problem,
)
from dicomportal.extensions import db, limiter

MIN_SECRET_KEY_LENGTH = 32
PUBLIC_SECRET_KEYS = frozenset({"test-secret-key-not-for-production"})  # tests/conftest.py
SMTP_TIMEOUT = 5.0


class Level(enum.StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    """One line of the checklist: the setting or topic, what was found and what to do."""

    level: Level
    topic: str
    found: str
    todo: str = ""


Check = Callable[[Flask], list[Finding]]


def ok(topic: str, found: str) -> Finding:
    return Finding(Level.OK, topic, found)


def warn(topic: str, found: str, todo: str) -> Finding:
    return Finding(Level.WARN, topic, found, todo)


def fail(topic: str, found: str, todo: str) -> Finding:
    return Finding(Level.FAIL, topic, found, todo)


def without_password(url: str) -> str:
    """A URL safe to print: any password in it replaced by ***."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


# --- secrets and Stripe --------------------------------------------------------------------------


def check_secret_key(app: Flask) -> list[Finding]:
    key = str(app.config.get("SECRET_KEY") or "")
    key_file = Path(app.instance_path) / "secret_key"
    if key in PUBLIC_SECRET_KEYS or len(key) < MIN_SECRET_KEY_LENGTH:
        published = " and published with dicomportal" if key in PUBLIC_SECRET_KEYS else ""
        return [
            fail(
                "SECRET_KEY",
                f"{len(key)} characters{published}: sessions, CSRF tokens and reset links can be forged.",
                "set SECRET_KEY to 32+ random characters: "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'",
            )
        ]
    if key_file.is_file() and key_file.read_text().strip() == key:
        return [
            warn(
                "SECRET_KEY",
                f"generated and kept in {key_file}: each app machine would have its own, so logins and "
                "reset links fail across machines.",
                "set SECRET_KEY in the environment, the same on every app machine.",
            )
        ]
    return [ok("SECRET_KEY", f"set from the environment ({len(key)} characters)")]


def check_stripe_keys(app: Flask) -> list[Finding]:
    secret = str(app.config.get("STRIPE_SECRET_KEY") or "")
    publishable = str(app.config.get("STRIPE_PUBLISHABLE_KEY") or "")
    live = is_live_key(secret)
    return [secret_key_mode(secret, live), publishable_key_mode(publishable, live), *api_base(app, live)]


def secret_key_mode(secret: str, live: bool) -> Finding:
    todo = "set STRIPE_SECRET_KEY to your Stripe account's secret key (sk_live_... to take real payments)."
    if secret in PUBLIC_STRIPE_KEYS:
        return fail("STRIPE_SECRET_KEY", "the demo's built-in key: no payment can be taken.", todo)
    if not secret.startswith(("sk_", "rk_")):
        return fail("STRIPE_SECRET_KEY", "not a Stripe secret key (sk_... or rk_...).", todo)
    if not live:
        return warn("STRIPE_SECRET_KEY", "a test key: Stripe's test mode, no real payment is taken.", todo)
    return ok("STRIPE_SECRET_KEY", "live mode")


def publishable_key_mode(publishable: str, live: bool) -> Finding:
    todo = "set the publishable key (pk_...) of the same Stripe account and mode as the secret key."
    if publishable in PUBLIC_STRIPE_KEYS:
        return fail("STRIPE_PUBLISHABLE_KEY", "the demo's built-in key.", todo)
    if not publishable.startswith("pk_") or publishable.startswith("pk_live_") != live:
        mode = "live" if live else "test"
        found = f"{publishable[:8] or 'empty'}... is not a {mode} publishable key like the secret key"
        return fail(
            "STRIPE_PUBLISHABLE_KEY", f"{found}: cards saved in the browser could not be charged.", todo
        )
    return ok("STRIPE_PUBLISHABLE_KEY", f"{'live' if live else 'test'} mode, like the secret key")


def api_base(app: Flask, live: bool) -> list[Finding]:
    base = str(app.config.get("STRIPE_API_BASE") or "")
    if not base:
        return []
    level = fail if live else warn
    found = f"payments go to {base}, not to Stripe (localstripe: nothing is really charged)."
    return [level("STRIPE_API_BASE", found, "unset STRIPE_API_BASE in production.")]


def check_webhook_secret(app: Flask) -> list[Finding]:
    secret = str(app.config.get("STRIPE_WEBHOOK_SECRET") or "")
    why = webhook_secret_problem(secret)
    todo = (
        "set it to the signing secret of BASE_URL/webhooks/stripe (Stripe Dashboard > Developers > Webhooks)."
    )
    if why:
        return [fail("STRIPE_WEBHOOK_SECRET", why, todo)]
    if not secret.startswith("whsec_"):
        return [
            warn("STRIPE_WEBHOOK_SECRET", "does not look like a Stripe signing secret (whsec_...).", todo)
        ]
    return [ok("STRIPE_WEBHOOK_SECRET", "set (not a published value)")]


WEBHOOK_ENDPOINT = "webhook_endpoint"


def check_webhook_endpoint(app: Flask) -> list[Finding]:
    """Stripe's webhook endpoints, read with the secret key: one must point at BASE_URL/webhooks/stripe,
    be enabled and receive every event in ``billing.webhook_events.REQUIRED_EVENTS``. A problem
    FAILs with a live key and WARNs with a test key (no real payment is taken)."""
    secret = str(app.config.get("STRIPE_SECRET_KEY") or "")
    base = str(app.config.get("STRIPE_API_BASE") or "")
    url = str(app.config.get("BASE_URL") or "").rstrip("/") + ENDPOINT_PATH
    if not secret.startswith(("sk_", "rk_")) or (secret in PUBLIC_STRIPE_KEYS and not base):
        found = "not checked: no Stripe secret key of yours to read the webhook endpoints with."
        return [warn(WEBHOOK_ENDPOINT, found, "set STRIPE_SECRET_KEY and run the check again.")]
    problem = fail if is_live_key(secret) else warn
    cannot = "cannot read the webhook endpoints"
    try:
        endpoints = gateway.list_webhook_endpoints()
    except PaymentRejected as exc:
        if exc.not_found:
            found = f"{cannot}: {base or 'Stripe'} has no /v1/webhook_endpoints (localstripe has none)."
            todo = f"with your Stripe keys, check again that {url} receives the events README lists."
            return [warn(WEBHOOK_ENDPOINT, found, todo)]
        return [problem(WEBHOOK_ENDPOINT, f"{cannot}: Stripe refused ({exc}).", "check STRIPE_SECRET_KEY.")]
    except GatewayMisconfigured as exc:
        todo = "use the account's secret key (a restricted key needs read access to Webhook Endpoints)."
        return [problem(WEBHOOK_ENDPOINT, f"{cannot}: {exc}", todo)]
    except GatewayUnavailable as exc:
        found = f"{cannot}: Stripe does not answer ({exc})"
        todo = "let this machine reach api.stripe.com (HTTPS), or check STRIPE_API_BASE."
        return [problem(WEBHOOK_ENDPOINT, found, todo)]
    return [endpoint_finding(endpoints, url, problem)]


def endpoint_finding(
    endpoints: list[gateway.WebhookEndpointInfo], url: str, problem: Callable[[str, str, str], Finding]
) -> Finding:
    """What the account's webhook endpoints mean for the portal's, ``url``."""
    ours = [endpoint for endpoint in endpoints if endpoint.url.rstrip("/") == url]
    if not ours:
        others = ", ".join(endpoint.url for endpoint in endpoints) or "none"
        found = f"no endpoint points at {url} (the account has: {others}): payments finished "
        found += "outside the page, refunds and disputes never reach the portal."
        todo = f"in the Stripe Dashboard (Developers > Webhooks) add {url} with the events README lists."
        return problem(WEBHOOK_ENDPOINT, found, todo)
    enabled = [endpoint for endpoint in ours if endpoint.status == "enabled"]
    if not enabled:
        found = f"{url} is disabled at Stripe: no event reaches the portal."
        return problem(WEBHOOK_ENDPOINT, found, "enable it in the Stripe Dashboard (Developers > Webhooks).")
    missing = missing_events({event for endpoint in enabled for event in endpoint.enabled_events})
    if missing:
        found = f"{url} does not receive {', '.join(missing)}."
        return problem(WEBHOOK_ENDPOINT, found, "add these events to the endpoint in the Stripe Dashboard.")
    return ok(WEBHOOK_ENDPOINT, f"{url} is enabled and receives every event the portal needs")


def check_demo_mode(app: Flask) -> list[Finding]:
    if app.config.get("DEMO_MODE"):
        return [
            fail(
                "DICOMPORTAL_DEMO",
                "demo mode: /dev/outbox shows every email, /dev/clock lets anyone move billing time.",
                "unset DICOMPORTAL_DEMO in production.",
            )
        ]
    return [ok("DICOMPORTAL_DEMO", "off")]


# --- HTTP: cookies, address, proxies, rate limits ------------------------------------------------


def check_https(app: Flask) -> list[Finding]:
    findings = []
    if app.config.get("SESSION_COOKIE_SECURE"):
        findings.append(ok("SESSION_COOKIE_SECURE", "session and remember-me cookies only over HTTPS"))
    else:
        findings.append(
            fail(
                "SESSION_COOKIE_SECURE",
                "off: login cookies are also sent over plain HTTP, where anyone on the network can "
                "copy them.",
                "set SESSION_COOKIE_SECURE=1 and serve the portal over HTTPS only.",
            )
        )
    base_url = str(app.config.get("BASE_URL") or "")
    if base_url.startswith("https://"):
        findings.append(ok("BASE_URL", base_url))
    else:
        findings.append(
            fail(
                "BASE_URL",
                f"{base_url or 'empty'}: links in emails and Stripe redirects would not use HTTPS.",
                "set BASE_URL to the public https:// address, e.g. https://billing.example.com",
            )
        )
    return findings


def check_proxy(app: Flask) -> list[Finding]:
    hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops < 0:
        return [fail("TRUSTED_PROXY_HOPS", f"{hops}: must be 0 or more.", "set the number of proxies.")]
    if hops == 0:
        return [
            warn(
                "TRUSTED_PROXY_HOPS",
                "0: X-Forwarded-For is ignored. Behind a reverse proxy every client would have the "
                "proxy's address, and one client's failed logins would lock everyone out.",
                "behind one proxy (nginx, a load balancer) set TRUSTED_PROXY_HOPS=1; keep 0 only if "
                "clients reach gunicorn directly.",
            )
        ]
    return [
        ok(
            "TRUSTED_PROXY_HOPS",
            f"{hops}: client addresses from X-Forwarded-For (only your proxies must reach the app's port)",
        )
    ]


def check_rate_limit_storage(app: Flask) -> list[Finding]:
    uri = str(app.config.get("RATELIMIT_STORAGE_URI") or "memory://")
    if uri.startswith("memory://"):
        return [
            warn(
                "RATELIMIT_STORAGE_URI",
                "memory://: each process counts login attempts on its own (gunicorn -w 4 allows 4x "
                "the attempts) and forgets them on restart.",
                "with more than one process or machine set RATELIMIT_STORAGE_URI=redis://host:6379/0",
            )
        ]
    try:
        reachable = bool(limiter.storage.check())
    except Exception as exc:
        reachable, uri = False, f"{without_password(uri)} ({exc})"
    if not reachable:
        return [
            fail(
                "RATELIMIT_STORAGE_URI",
                f"{without_password(uri)} does not answer: logins would not be limited.",
                "start it or fix the address.",
            )
        ]
    return [ok("RATELIMIT_STORAGE_URI", f"{without_password(uri)} (shared, reachable)")]


# --- mail --------------------------------------------------------------------------------------


def check_mail(app: Flask) -> list[Finding]:
    config = app.config
    if config.get("MAIL_BACKEND") != "smtp":
        return [
            fail(
                "MAIL_BACKEND",
                f"{config.get('MAIL_BACKEND')!r}: mail is only stored, never delivered (no receipt, "
                "reset link or payment-problem email reaches anyone).",
                "set MAIL_BACKEND=smtp and MAIL_SERVER.",
            )
        ]
    findings = [smtp_reachable(app)]
    if config.get("MAIL_USERNAME") and not (config.get("MAIL_USE_TLS") or config.get("MAIL_USE_SSL")):
        findings.append(
            warn(
                "MAIL_USE_TLS",
                "an SMTP login without TLS: the password crosses the network in clear.",
                "set MAIL_USE_TLS=1 (port 587) or MAIL_USE_SSL=1 (port 465).",
            )
        )
    findings.append(
        address_finding(app, "MAIL_DEFAULT_SENDER", "customers' mail servers reject or hide mail from it")
    )
    findings.append(address_finding(app, "SUPPORT_EMAIL", "customers are told to write to it"))
    return findings


def address_finding(app: Flask, setting: str, consequence: str) -> Finding:
    """An email address setting must be a real mailbox at the operator's domain."""
    address = str(app.config.get(setting) or "")
    if "@" not in address or re.search(r"@(localhost|example\.(com|org|net))\b", address):
        return fail(
            setting, f"{address or 'empty'}: {consequence}.", f"set {setting} to an address at your domain."
        )
    return ok(setting, address)


def smtp_reachable(app: Flask) -> Finding:
    host, port = str(app.config.get("MAIL_SERVER") or ""), int(app.config.get("MAIL_PORT") or 25)
    smtp_class = smtplib.SMTP_SSL if app.config.get("MAIL_USE_SSL") else smtplib.SMTP
    try:
        with smtp_class(host, port, timeout=SMTP_TIMEOUT) as server:
            server.noop()
    except (OSError, smtplib.SMTPException) as exc:
        return fail(
            "MAIL_SERVER", f"{host}:{port} does not answer ({exc}).", "set MAIL_SERVER and MAIL_PORT."
        )
    if host in ("localhost", "127.0.0.1", "::1"):
        return warn(
            "MAIL_SERVER",
            f"{host}:{port} answers: a local MTA must relay to the Internet.",
            "make sure it relays (or point MAIL_SERVER at your provider).",
        )
    return ok("MAIL_SERVER", f"{host}:{port} answers")


# --- database ----------------------------------------------------------------------------------


def check_database(app: Flask) -> list[Finding]:
    uri = str(app.config["SQLALCHEMY_DATABASE_URI"])
    shown = make_url(uri).render_as_string(hide_password=True)
    findings = []
    if make_url(uri).get_backend_name() == "sqlite":
        findings.append(
            warn(
                "DATABASE_URL",
                f"SQLite ({shown}): fine for one machine with one worker, not for several.",
                "for several app machines or workers use PostgreSQL: DATABASE_URL=postgresql://...",
            )
        )
    try:
        with db.engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except Exception as exc:
        return [*findings, fail("database", f"{shown}: cannot connect ({exc}).", "check DATABASE_URL.")]
    findings.append(ok("database", f"{shown} answers"))
    return [*findings, schema_finding(app, current)]


def schema_finding(app: Flask, current: set[str]) -> Finding:
    heads = set(ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config()).get_heads())
    if current != heads:
        return fail(
            "migrations",
            f"the schema is at {', '.join(sorted(current)) or 'nothing'}, "
            f"the code needs {', '.join(sorted(heads))}.",
            "run `dicomportal db upgrade && dicomportal seed` (from one machine).",
        )
    from dicomportal.models import Plan

    if not db.session.scalar(select(func.count()).select_from(Plan)):
        return fail("migrations", "the schema is at head but no plan is on sale.", "run `dicomportal seed`.")
    return ok("migrations", f"schema at head ({', '.join(sorted(heads))}), plans loaded")


CHECKS: list[Check] = [
    check_secret_key,
    check_webhook_secret,
    check_stripe_keys,
    check_webhook_endpoint,
    check_demo_mode,
    check_https,
    check_proxy,
    check_rate_limit_storage,
    check_mail,
    check_database,
]


def run_checks(app: Flask) -> list[Finding]:
    """Every finding about ``app``'s deployment, in checklist order."""
    with app.app_context():
        findings = [finding for check in CHECKS for finding in check(app)]
        refused = startup_problems(app.config)
        db.session.remove()
        db.engine.dispose()
    if refused:
        findings.append(
            fail(
                "startup",
                "the app refuses to start with a live Stripe key and "
                + ", ".join(p.setting for p in refused)
                + " as they are.",
                "fix the FAIL lines above.",
            )
        )
    return findings


def report(findings: list[Finding], topic_width: int = 23, width: int = 100) -> str:
    """The checklist as text: one item per finding, what to do under each WARN and FAIL, a summary."""
    indent = " " * (6 + topic_width + 1)
    lines = []
    for finding in findings:
        head = f"{finding.level.value:<5} {finding.topic:<{topic_width}} "
        lines.append(textwrap.fill(finding.found, width, initial_indent=head, subsequent_indent=indent))
        if finding.todo:
            lines.append(
                textwrap.fill(
                    f"-> {finding.todo}", width, initial_indent=indent, subsequent_indent=indent + "   "
                )
            )
    counts = {level: sum(f.level == level for f in findings) for level in Level}
    lines.append("")
    lines.append(", ".join(f"{counts[level]} {level.value}" for level in (Level.FAIL, Level.WARN, Level.OK)))
    return "\n".join(lines)


def passed(findings: list[Finding]) -> bool:
    """True when nothing FAILed (WARNs are for the operator to judge)."""
    return all(f.level != Level.FAIL for f in findings)
