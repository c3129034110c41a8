"""``dicomportal demo`` starts the whole portal with one command and stops cleanly on Ctrl-C.

Runs the real command in a child process from a directory outside the source tree, talks to it
over HTTP like a browser would (cookies, the CSRF token from the login form) and checks that
Ctrl-C leaves no process behind.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dicomportal.demo import DEMO_CUSTOMER
from dicomportal.stripe_server import free_port

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
        found = re.search(r"Demo running at (http://\S+?)/pricing", line)
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
def demo(tmp_path: Path) -> Iterator[DemoProcess]:
    """``dicomportal demo`` on a free port with its data in a temporary folder, run from that folder."""
    port = free_port()
    command = [sys.executable, "-m", "dicomportal.cli", "demo", "--port", str(port)]
    command += ["--data-dir", str(tmp_path / "data")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("DATABASE_URL", "STRIPE_API_BASE", "BASE_URL"):
        env.pop(name, None)
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    seen: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines, seen), daemon=True).start()
    try:
        yield DemoProcess(proc, _wait_for_url(proc, seen, lines), lines)
    finally:
        for pid in children_of(proc.pid):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


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
    status, _, page = Browser(demo.url).get("/pricing")

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
