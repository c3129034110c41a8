"""``dicomportal demo``: the whole product on one machine with one command.

Starts localstripe on loopback, points the app at it with demo settings, migrates and seeds a
SQLite database, creates a demo customer and a support user, registers the webhook and serves
the app until Ctrl-C, then stops everything it started.

The data dir keeps everything a restart needs: the database, localstripe's state (the customers,
cards and payments the database refers to) and the demo clock, so stopping and starting again with
the same ``--data-dir`` continues where it left off.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from flask import Flask
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from dicomportal import clock
from dicomportal.devtools.stripe_server import LocalStripe
from dicomportal.models import Role

DEMO_SECRET_KEY = "sk_test_demo_dicomportal"
DEMO_PUBLISHABLE_KEY = "pk_test_demo_dicomportal"
DEMO_WEBHOOK_SECRET = "whsec_demo_dicomportal"
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
# In the data dir, next to the database:
STRIPE_STATE_FILE = "localstripe.pickle"
CLOCK_FILE = "demo-clock.json"

Echo = Callable[[str], None]


class DemoError(Exception):
    """The demo cannot start; the message tells the person at the console what to do."""


@dataclass(frozen=True)
class DemoLogin:
    """An account the demo creates and prints, so anyone can log in at once."""

    email: str
    password: str
    name: str
    role: Role


DEMO_CUSTOMER = DemoLogin("demo@dicomportal.test", "demo-customer-pass", "Demo Customer", Role.CUSTOMER)
DEMO_SUPPORT = DemoLogin("support@dicomportal.test", "demo-support-pass", "Demo Support", Role.SUPPORT)


@dataclass(frozen=True)
class DemoOptions:
    """What ``dicomportal demo`` was asked for on the command line."""

    host: str = "127.0.0.1"
    port: int = 5000
    stripe_port: int | None = None
    data_dir: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.reachable_host}:{self.port}"

    @property
    def reachable_host(self) -> str:
        """The address a local client (browser, localstripe's webhooks) uses to reach the app."""
        if self.host in WILDCARD_HOSTS:
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host


def demo_environment(options: DemoOptions, stripe_api_base: str) -> dict[str, str]:
    """The settings that make the app a self-contained demo (config.py reads them)."""
    return {
        "DICOMPORTAL_DEMO": "1",
        "MAIL_BACKEND": "outbox",
        "BASE_URL": options.base_url,
        "STRIPE_API_BASE": stripe_api_base,
        "STRIPE_SECRET_KEY": DEMO_SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": DEMO_PUBLISHABLE_KEY,
        "STRIPE_WEBHOOK_SECRET": DEMO_WEBHOOK_SECRET,
    }


def check_port_free(host: str, port: int) -> None:
    """:raises DemoError: when something already listens on ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            message = f"Port {port} on {host} is in use ({exc.strerror}). Choose another with --port."
            raise DemoError(message) from exc


def build_app(options: DemoOptions, stripe_api_base: str) -> Flask:
    """Set the demo environment and create the app (its data in ``options.data_dir``)."""
    import email_validator

    from dicomportal import create_app

    # The demo logins use the reserved .test domain (RFC 6761) so no real mailbox is ever named;
    # email_validator refuses reserved domains unless told this is a test environment.
    email_validator.TEST_ENVIRONMENT = True
    os.environ.update(demo_environment(options, stripe_api_base))
    instance = str(options.data_dir.resolve()) if options.data_dir else None
    if options.data_dir and "DATABASE_URL" not in os.environ:
        os.environ["DATABASE_URL"] = f"sqlite:///{options.data_dir.resolve() / 'dicomportal.db'}"
    return create_app(instance_path=instance)


def data_dir_of(app: Flask) -> Path:
    """The demo's data dir (``--data-dir`` or the instance folder), created if missing."""
    path = Path(app.instance_path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def resume_clock(data_dir: Path) -> None:
    """Continue the demo clock saved in the data dir (if any) and save each move there from now on.

    :raises DemoError: when the saved clock cannot be read.
    """
    try:
        clock.keep_in(data_dir / CLOCK_FILE)
    except (OSError, ValueError) as exc:
        raise DemoError(f"Cannot resume the demo clock: {exc}") from exc


def prepare_database(app: Flask) -> None:
    """Apply migrations, seed the catalog and make sure the demo logins work (idempotent)."""
    from flask_migrate import upgrade

    from dicomportal.billing.catalog import seed_catalog

    with app.app_context():
        upgrade()
        seed_catalog()
        for login in (DEMO_CUSTOMER, DEMO_SUPPORT):
            ensure_login(login)


def ensure_login(login: DemoLogin) -> None:
    """Create the account, or reset its password and role so the printed login always works."""
    from dicomportal.accounts import create_user, find_user_by_email
    from dicomportal.extensions import db

    user = find_user_by_email(login.email)
    if user is None:
        create_user(login.email, login.password, login.name, login.role)
    else:
        if not user.check_password(login.password):
            user.set_password(login.password)
        user.role = login.role
    db.session.commit()


def start_background_worker(app: Flask, interval_seconds: float = 10.0) -> Callable[[], None]:
    """Run the billing worker (renewals, dunning retries, reconcile, mail) in a daemon thread and
    return the function that stops it; ``run_demo`` calls that on Ctrl-C before stopping localstripe."""
    from dicomportal import jobs

    stop = threading.Event()

    def loop() -> None:
        with app.app_context():
            jobs.run_forever(interval_seconds, stop)

    thread = threading.Thread(target=loop, name="dicomportal-worker", daemon=True)
    thread.start()

    def stop_worker() -> None:
        stop.set()
        thread.join(timeout=interval_seconds + 5)

    return stop_worker


def banner(app: Flask, options: DemoOptions, stripe: LocalStripe) -> list[str]:
    """The lines printed once the demo is ready: where it is and how to log in."""
    url = options.base_url
    database = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).render_as_string(hide_password=True)
    return [
        "",
        "dicomportal demo (TEST MODE: no real card is ever charged)",
        f"  Stripe:    localstripe at {stripe.api_base}",
        f"  Database:  {database}",
        f"  Data:      {app.instance_path} (kept across restarts; delete it to start over)",
        f"  Clock:     {clock.now():%d %b %Y %H:%M} UTC (move it at {url}/dev/clock)",
        f"  Outbox:    {url}/dev/outbox (every email the demo sends)",
        "  Log in as:",
        f"    customer  {DEMO_CUSTOMER.email} / {DEMO_CUSTOMER.password}",
        f"    support   {DEMO_SUPPORT.email} / {DEMO_SUPPORT.password}",
        "  Test cards: 4242 4242 4242 4242 (succeeds), 4000 0025 0000 3155 (3-D Secure),",
        "              4000 0000 0000 0341 (saved, then declined at renewal); any future date, any CVC",
        "",
        f"Demo running at {url}/plans/",
        "Press Ctrl-C to stop",
    ]


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    # SIGTERM (kill, systemd, docker stop) takes the same clean path as Ctrl-C.
    raise KeyboardInterrupt


def serve(app: Flask, options: DemoOptions, on_ready: Callable[[], None]) -> None:
    """Serve ``app`` with werkzeug's threaded server until Ctrl-C or SIGTERM."""
    server = make_server(options.host, options.port, app, threaded=True)
    try:
        on_ready()
        server.serve_forever()  # returns on KeyboardInterrupt
    finally:
        server.server_close()


def start_stripe(stripe: LocalStripe) -> None:
    """:raises DemoError: when localstripe does not come up."""
    try:
        stripe.start()
    except RuntimeError as exc:
        raise DemoError(str(exc)) from exc


def run_demo(options: DemoOptions, echo: Echo) -> None:
    """Run the demo in the foreground; everything it started is stopped when it returns.

    :raises DemoError: when the port is taken or localstripe cannot start.
    """
    check_port_free(options.host, options.port)
    if options.data_dir:
        options.data_dir.mkdir(parents=True, exist_ok=True)
    stripe = LocalStripe(port=options.stripe_port)
    stop_worker: Callable[[], None] | None = None
    previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
    try:
        app = build_app(options, stripe.api_base)
        data_dir = data_dir_of(app)
        resume_clock(data_dir)
        stripe.state_file = data_dir / STRIPE_STATE_FILE
        start_stripe(stripe)
        prepare_database(app)
        stripe.register_webhook(f"{options.base_url}/webhooks/stripe", DEMO_WEBHOOK_SECRET)
        stop_worker = start_background_worker(app)
        serve(app, options, on_ready=lambda: echo("\n".join(banner(app, options, stripe))))
    except KeyboardInterrupt:
        pass
    finally:
        echo("Stopping the demo...")
        if stop_worker is not None:
            stop_worker()
        stripe.stop()  # SIGTERM: localstripe saves its state as it exits
        signal.signal(signal.SIGTERM, previous_sigterm)
        clock.save()  # the last moment, so the next start never goes back before it
        clock.reset()
    echo("Demo stopped.")
