"""``dicomportal demo`` starts the whole portal with one command and stops cleanly on Ctrl-C.

Runs the real command in a child process from a directory outside the source tree, talks to it
over HTTP like a browser would (cookies, the CSRF token from the login form) and checks that
Ctrl-C leaves no process behind, and that a restart with the same data dir continues where the
demo left off: the same Stripe customers and cards, the same demo clock.
"""

from __future__ import annotations

import http.cookiejar
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
import stripe
from dateutil.relativedelta import relativedelta

from dicomportal.devtools.demo import DEMO_CUSTOMER, DEMO_SECRET_KEY
from dicomportal.devtools.stripe_server import free_port

START_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0


@dataclass
class DemoProcess:
    """The running ``dicomportal demo`` and everything it printed so far."""

    process: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def stripe_api_base(self) -> str:
        """Where the demo's localstripe listens (from the banner)."""
        found = re.search(r"Stripe:\s+localstripe at (http://\S+)", self.output)
        assert found, self.output
        return found.group(1)

    def wait_for_output(self, text: str, timeout: float = STOP_TIMEOUT) -> bool:
        """True once ``text`` was printed (output arrives through a reader thread)."""
        deadline = time.monotonic() + timeout
        while text not in self.output and time.monotonic() < deadline:
            time.sleep(0.05)
        return text in self.output


def _pump(stream: object, lines: list[str], seen: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line.rstrip("\n"))
        seen.put(line)


def _wait_for_url(proc: subprocess.Popen[str], seen: queue.Queue[str], lines: list[str]) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            line = seen.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        found = re.search(r"Demo running at (http://\S+?)/plans/", line)
        if found:
            return found.group(1)
    joined = "\n".join(lines)
    raise AssertionError(f"the demo did not print its URL within {START_TIMEOUT}s:\n{joined}")


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may contain spaces: the parent pid follows the last ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[[], DemoProcess]]:
    """Start ``dicomportal demo`` on a free port with its data in a temporary folder, run from that
    folder; every start uses the same data dir. Whatever is still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []

    def start() -> DemoProcess:
        command = [sys.executable, "-m", "dicomportal.cli", "demo", "--port", str(free_port())]
        command += ["--data-dir", str(tmp_path / "data")]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for name in ("DATABASE_URL", "STRIPE_API_BASE", "BASE_URL"):
            env.pop(name, None)
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        started.append(proc)
        lines: list[str] = []
        seen: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines, seen), daemon=True).start()
        return DemoProcess(proc, _wait_for_url(proc, seen, lines), lines)

    try:
        yield start
    finally:
        for proc in started:
            for pid in children_of(proc.pid):
                os.kill(pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


@pytest.fixture
def demo(launch: Callable[[], DemoProcess]) -> DemoProcess:
    """``dicomportal demo`` running with a fresh data dir."""
    return launch()


class _CsrfFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.token: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("name") == "csrf_token" and self.token is None:
            self.token = values.get("value")


def csrf_token(html: str) -> str:
    finder = _CsrfFinder()
    finder.feed(html)
    assert finder.token, "the login form has no csrf_token field"
    return finder.token


class _AttributeFinder(HTMLParser):
    """The attributes of every element with an id, and the classes used on the page."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str | None]] = {}
        self.by_tag: dict[str, list[dict[str, str | None]]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.by_id[str(values["id"])] = values
        self.by_tag.setdefault(tag, []).append(values)


def parse(html: str) -> _AttributeFinder:
    finder = _AttributeFinder()
    finder.feed(html)
    return finder


class Browser:
    """Just enough of a browser: cookies, redirects, forms."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[int, str, str]:
        """Status, final URL (after redirects) and body."""
        return self._open(self.base_url + path, None)

    def post(self, path: str, form: dict[str, str]) -> tuple[int, str, str]:
        """Submit a form as a browser would (urlencoded), following the redirect."""
        return self._open(self.base_url + path, urllib.parse.urlencode(form).encode())

    def _open(self, url: str, data: bytes | None) -> tuple[int, str, str]:
        try:
            with self.opener.open(url, data=data, timeout=20) as response:
                return response.status, response.geturl(), response.read().decode()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.geturl(), error.read().decode()


def test_demo_serves_pricing_in_test_mode_and_prints_the_logins(demo: DemoProcess) -> None:
    status, _, page = Browser(demo.url).get("/plans/")

    assert status == 200, demo.output
    assert "TEST MODE" in page
    assert f"{DEMO_CUSTOMER.email} / {DEMO_CUSTOMER.password}" in demo.output
    assert "Press Ctrl-C to stop" in demo.output


def test_demo_customer_logs_in_through_the_login_form(demo: DemoProcess) -> None:
    browser = Browser(demo.url)
    status, _, form = browser.get("/auth/login")
    assert status == 200, demo.output

    status, _, _ = browser.post(
        "/auth/login",
        {"email": DEMO_CUSTOMER.email, "password": DEMO_CUSTOMER.password, "csrf_token": csrf_token(form)},
    )
    assert status == 200, demo.output
    status, url, account = browser.get("/account/")

    assert status == 200, demo.output
    assert urllib.parse.urlparse(url).path == "/account/", f"not logged in: ended at {url}"
    assert DEMO_CUSTOMER.name in account


def test_ctrl_c_stops_the_demo_and_its_localstripe(demo: DemoProcess) -> None:
    children = children_of(demo.process.pid)
    assert children, "the demo should run localstripe as a child process"

    demo.process.send_signal(signal.SIGINT)

    assert demo.process.wait(timeout=STOP_TIMEOUT) == 0
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(is_running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if is_running(pid)], "localstripe outlived the demo"
    assert demo.wait_for_output("Demo stopped."), demo.output


# --- a restart with the same data dir --------------------------------------------------------------


def log_in(browser: Browser) -> None:
    _, _, form = browser.get("/auth/login")
    status, url, _ = browser.post(
        "/auth/login",
        {"email": DEMO_CUSTOMER.email, "password": DEMO_CUSTOMER.password, "csrf_token": csrf_token(form)},
    )
    assert status == 200 and "/auth/login" not in url, f"not logged in: ended at {url}"


def subscribe_with_card(browser: Browser, stripe_api_base: str, plan_code: str, card_number: str) -> None:
    """The subscribe flow as the browser runs it; the SDK plays Stripe.js confirming the SetupIntent."""
    _, _, form = browser.get(f"/checkout/{plan_code}")
    details = {"name": "Demo Customer", "country": "US", "address_line1": "1 Main St", "city": "Springfield"}
    status, url, card_page = browser.post(
        f"/checkout/{plan_code}", details | {"postal_code": "12345", "csrf_token": csrf_token(form)}
    )
    assert status == 200 and urllib.parse.urlparse(url).path == f"/checkout/{plan_code}/card", url
    card_form = parse(card_page).by_id["card-form"]
    setup_intent_id = str(card_form["data-client-secret"]).split("_secret_")[0]
    card = {"number": card_number, "exp_month": 12, "exp_year": 2035, "cvc": "123"}
    setup = stripe_client(stripe_api_base).v1.setup_intents.confirm(
        setup_intent_id, params={"payment_method_data": {"type": "card", "card": card}}
    )
    assert setup.status == "succeeded", setup.status

    status, url, _ = browser.post(
        str(card_form["action"]), {"setup_intent_id": setup_intent_id, "csrf_token": csrf_token(card_page)}
    )

    assert status == 200 and urllib.parse.urlparse(url).path == "/checkout/done", url


def demo_time(page: str) -> datetime:
    """The time the demo clock page shows (its ``<time datetime=...>``)."""
    times = parse(page).by_tag.get("time", [])
    assert times, "the clock page shows no <time>"
    return datetime.fromisoformat(str(times[0]["datetime"]))


def move_clock(browser: Browser, step: str) -> datetime:
    """Press "+1 <step>" on the demo clock page; the demo's time afterwards."""
    _, _, page = browser.get("/dev/clock")
    status, _, page = browser.post("/dev/clock", {"step": step, "csrf_token": csrf_token(page)})
    assert status == 200, page
    return demo_time(page)


def paid_invoices(browser: Browser, expected: int, timeout: float = 30.0) -> int:
    """How many invoices the account page shows as paid, waiting up to ``timeout`` for ``expected``."""
    deadline = time.monotonic() + timeout
    while True:
        _, _, page = browser.get("/account/")
        paid = page.count("invoice-paid")
        if paid >= expected or time.monotonic() > deadline:
            return paid
        time.sleep(0.5)


def stripe_client(api_base: str) -> stripe.StripeClient:
    return stripe.StripeClient(DEMO_SECRET_KEY, base_addresses={"api": api_base}, max_network_retries=0)


def payment_intents_of(api_base: str, email: str) -> list[str]:
    """The statuses of the PaymentIntents localstripe holds for the customer with ``email``, oldest first."""
    api = stripe_client(api_base)
    customers = [
        c.id for c in api.v1.customers.list(params={"limit": 100}).auto_paging_iter() if c.email == email
    ]
    assert len(customers) == 1, customers
    intents = api.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    return [
        i.status for i in sorted((i for i in intents if i.customer == customers[0]), key=lambda i: i.created)
    ]


def stop(demo: DemoProcess) -> None:
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=STOP_TIMEOUT + 15) == 0, demo.output


def test_a_restart_with_the_same_data_dir_keeps_stripe_and_the_demo_clock(
    launch: Callable[[], DemoProcess],
) -> None:
    first = launch()
    browser = Browser(first.url)
    log_in(browser)
    subscribe_with_card(browser, first.stripe_api_base, "professional", "4242424242424242")
    a_week_ahead = move_clock(browser, "week")  # so the demo's time differs from the real time
    stop(first)

    second = launch()
    browser = Browser(second.url)
    log_in(browser)
    _, _, page = browser.get("/dev/clock")
    resumed = demo_time(page)
    a_month_later = move_clock(browser, "month")

    assert resumed >= a_week_ahead, "the clock went back at the restart"
    assert resumed - datetime.now(UTC) > timedelta(days=6), "the restart lost the week the clock was ahead"
    assert abs(a_month_later - (resumed + relativedelta(months=1))) < timedelta(minutes=1)
    assert paid_invoices(browser, expected=2) == 2, "the renewal after the restart was not paid"
    assert payment_intents_of(second.stripe_api_base, DEMO_CUSTOMER.email) == ["succeeded", "succeeded"]


def test_the_demo_without_its_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """localstripe is the ``demo`` extra: a production install (``pip install .``) lacks it."""
    import importlib.util

    from click.testing import CliRunner

    from dicomportal.cli import build_cli

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "localstripe" else real_find_spec(name, *a),
    )
    for command in (["demo"], ["stripe-server"]):
        result = CliRunner().invoke(build_cli(), command)
        assert result.exit_code != 0
        assert "pip install '.[demo]'" in result.output, result.output
