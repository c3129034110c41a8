"""Throughput of dicomportal's pages against a bare Flask app, both under gunicorn.

    .venv/bin/python bench/run.py [--duration 10] [--workers 2] [--connections N] [--no-write]

Serves ``wsgi:app`` (a temporary SQLite database, migrated and seeded, plus one subscribed
customer from ``bench/customer.py``) and ``bench/bare_app.py`` with the same gunicorn settings on
free loopback ports. Logs that customer in once through the real login form, checks that
``/account/`` shows their dashboard, then loads each URL from a separate process (``wrk`` if
installed, else a small Python load generator; the dashboard with the session cookie) for a
bounded time, prints requests/s and the ratio to the bare endpoint, and records the run at the
top of bench/RESULTS.md. Only 127.0.0.1 is ever loaded. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import multiprocessing
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "RESULTS.md"
RUNS_MARKER = "<!-- runs: newest first; bench/run.py inserts below this line -->"
PORTAL_PATHS = ("/plans/", "/help/", "/help/?q=refund")
DASHBOARD_PATH = "/account/"
Headers = tuple[tuple[str, str], ...]
CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')  # the login form's hidden field


@dataclass(frozen=True)
class Target:
    """One URL to load; ``label`` is what the table calls it."""

    label: str
    url: str
    headers: Headers = ()


@dataclass(frozen=True)
class Measurement:
    target: Target
    status: int
    requests_per_second: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_database(workdir: Path) -> dict[str, str]:
    """Migrate and seed a fresh SQLite database; return the environment gunicorn serves it with."""
    env = {
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "SECRET_KEY": "bench-only-secret-key",
        "MAIL_BACKEND": "outbox",
        "RATELIMIT_STORAGE_URI": "memory://",
        "BASE_URL": "http://127.0.0.1",
    }
    script = (
        "from flask_migrate import upgrade\n"
        "from dicomportal import create_app\n"
        "from dicomportal.billing.catalog import seed_catalog\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    upgrade(); seed_catalog()\n"
    )
    full_env = {**os.environ, **env}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=full_env, check=True, capture_output=True)
    subprocess.run([sys.executable, str(BENCH / "customer.py")], cwd=ROOT, env=full_env, check=True)
    return full_env


def gunicorn_command(app: str, chdir: Path, port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(chdir),
        "--log-level",
        "warning",
        app,
    ]


@contextmanager
def gunicorn(command: list[str], env: dict[str, str], ready_url: str) -> Iterator[None]:
    """Run gunicorn until the block ends; wait until ``ready_url`` answers."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_up(process, ready_url)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def wait_until_up(process: subprocess.Popen[bytes], url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"gunicorn exited: {err[-2000:]}")
        if status_of(url) != 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url} within {timeout}s")


def fetch(
    url: str, headers: Headers = (), method: str = "GET", body: str | None = None
) -> tuple[int, dict[str, list[str]], str]:
    """One request, redirects not followed: status, headers (lower-case names) and body text.

    No User-Agent is sent, like wrk: Flask-Login's session protection ties a login to the user
    agent, and a session used from another one would be marked non-fresh on every request.
    """
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body, headers=dict(headers))
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        found: dict[str, list[str]] = {}
        for name, value in response.getheaders():
            found.setdefault(name.lower(), []).append(value)
        return int(response.status), found, text
    finally:
        conn.close()


def status_of(url: str, headers: Headers = ()) -> int:
    """The HTTP status of one GET, redirects not followed (0 when nothing answers)."""
    try:
        return fetch(url, headers)[0]
    except (OSError, http.client.HTTPException):
        return 0


def warm_up(url: str, headers: Headers = (), requests: int = 30) -> None:
    for _ in range(requests):
        status_of(url, headers)


# --- the logged-in customer --------------------------------------------------------------------


def session_cookie(headers: dict[str, list[str]]) -> str | None:
    """The value of the ``session`` cookie a response sets, if it sets one."""
    for line in headers.get("set-cookie", []):
        name, _, rest = line.partition("=")
        if name.strip() == "session":
            return rest.split(";", 1)[0]
    return None


def log_in(base_url: str) -> str:
    """Log the benchmark customer in once through the real form; the session cookie it gets.

    Login POSTs are limited to 5 a minute per IP, so this runs exactly once per benchmark.
    """
    from customer import EMAIL, PASSWORD

    status, headers, page = fetch(f"{base_url}/auth/login")
    token = CSRF_INPUT.search(page)
    cookie = session_cookie(headers)
    if status != 200 or token is None or cookie is None:
        raise SystemExit(f"GET /auth/login: status {status}, csrf token or session cookie missing")
    form = urllib.parse.urlencode({"email": EMAIL, "password": PASSWORD, "csrf_token": token.group(1)})
    sent = (("Cookie", f"session={cookie}"), ("Content-Type", "application/x-www-form-urlencoded"))
    status, headers, _ = fetch(f"{base_url}/auth/login", sent, "POST", form)
    logged_in = session_cookie(headers)
    if status not in (302, 303) or logged_in is None:
        raise SystemExit(f"POST /auth/login answered {status} without a redirect and a new session")
    return logged_in


def check_dashboard(target: Target) -> None:
    """Refuse to measure ``/account/`` unless it is the customer's dashboard (not a login redirect)."""
    from customer import PLAN_NAME

    status, headers, page = fetch(target.url, target.headers)
    if status != 200 or PLAN_NAME not in page or "4242" not in page:
        where = headers.get("location", ["-"])[0]
        raise SystemExit(
            f"{target.url} with the session cookie answered {status} (Location: {where}); expected the "
            f"dashboard with {PLAN_NAME!r} and the card ending 4242. Not measuring a login page."
        )


# --- load generators ---------------------------------------------------------------------------


def wrk_command(url: str, duration: int, connections: int, headers: Headers = ()) -> list[str]:
    threads = max(1, min(connections, os.cpu_count() or 1))
    sent = [arg for name, value in headers for arg in ("-H", f"{name}: {value}")]
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", *sent, url]


def run_wrk(target: Target, duration: int, connections: int) -> tuple[float, float | None, float | None, int]:
    """Requests/s, p50 and p99 latency (ms) and error count, as wrk reports them."""
    out = subprocess.run(
        wrk_command(target.url, duration, connections, target.headers),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return rps, wrk_latency(out, "50%"), wrk_latency(out, "99%"), errors


def wrk_latency(out: str, percentile: str) -> float | None:
    found = re.search(rf"^\s*{re.escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", out, flags=re.MULTILINE)
    if not found:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    return float(found.group(1)) * scale


def _python_worker(
    url: str, headers: Headers, deadline: float, queue: multiprocessing.Queue[tuple[int, int, list[float]]]
) -> None:
    """One connection's loop: GET until the deadline (bounded), counting successes and errors."""
    host_port, path = url.removeprefix("http://").split("/", 1)
    host, port = host_port.split(":")
    done = errors = 0
    latencies: list[float] = []
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request("GET", "/" + path, headers=dict(headers))
            response = conn.getresponse()
            response.read()
            conn.close()
            ok = 200 <= response.status < 400
        except (OSError, http.client.HTTPException):
            ok = False
        done, errors = done + ok, errors + (not ok)
        latencies.append((time.monotonic() - started) * 1000)
    queue.put((done, errors, latencies))


def run_python(
    target: Target, duration: int, connections: int
) -> tuple[float, float | None, float | None, int]:
    """The fallback when wrk is missing: one process per connection, stopped by a deadline."""
    queue: multiprocessing.Queue[tuple[int, int, list[float]]] = multiprocessing.Queue()
    deadline = time.monotonic() + duration
    workers = [
        multiprocessing.Process(target=_python_worker, args=(target.url, target.headers, deadline, queue))
        for _ in range(connections)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=duration + 60) for _ in workers]
    for worker in workers:
        worker.join()
    latencies = sorted(ms for _, _, lat in results for ms in lat)
    done = sum(r[0] for r in results)

    def pick(q: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

    return done / duration, pick(0.50), pick(0.99), sum(r[1] for r in results)


def measure(target: Target, tool: str, duration: int, connections: int) -> Measurement:
    status = status_of(target.url, target.headers)
    warm_up(target.url, target.headers)
    runner = run_wrk if tool == "wrk" else run_python
    rps, p50, p99, errors = runner(target, duration, connections)
    return Measurement(target, status, rps, p50, p99, errors)


# --- report ------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, flags=re.MULTILINE)
    gunicorn_version = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--version"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model.group(1).strip() if model else platform.processor() or "unknown",
        "python": platform.python_version(),
        "gunicorn": gunicorn_version,
        "os": platform.platform(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(results: list[Measurement]) -> list[str]:
    bare = results[0].requests_per_second or 1.0
    lines = [
        "| URL | status | requests/s | ratio to bare | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in results:
        lines.append(
            f"| {m.target.label} | {m.status} | {m.requests_per_second:,.0f} | "
            f"{m.requests_per_second / bare:.2f} | {fmt_ms(m.p50_ms)} | {fmt_ms(m.p99_ms)} | {m.errors} |"
        )
    return lines


def report(
    results: list[Measurement], commands: list[str], args: argparse.Namespace, tool: str, info: dict[str, str]
) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {when}",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, {info['gunicorn']}, "
        f"{info['os']}. Load generator: {tool} on the same machine, {args.connections} connections, "
        f"{args.duration} s per URL after a warm-up. Load average before the run: {info['load']}, "
        f"after: {info.get('load_after', '-')} "
        "(other work on the machine lowers every figure; compare ratios).",
        "",
        *table(results),
        "",
        "Commands:",
        "",
        "```sh",
        *commands,
        "```",
        "",
    ]
    return "\n".join(lines)


def write_results(run_text: str) -> None:
    """Insert this run at the top of the runs in bench/RESULTS.md, keeping earlier ones."""
    head, runs = RESULTS_HEADER, ""
    if RESULTS.exists() and RUNS_MARKER in RESULTS.read_text():
        head, _, runs = RESULTS.read_text().partition(RUNS_MARKER)
    earlier = runs.strip("\n")
    RESULTS.write_text(f"{head}{RUNS_MARKER}\n\n{run_text}" + (f"\n{earlier}\n" if earlier else ""))


RESULTS_HEADER = """# Benchmark results

Throughput of dicomportal's pages (public ones, and `/account/` as a logged-in subscribed customer
from `bench/customer.py`) compared with a bare Flask endpoint served the same way
(gunicorn, sync workers, loopback), from `bench/run.py`. The load generator shares the machine
with the server, so absolute figures are lower than on a dedicated box; the ratio to the bare
endpoint is the figure to compare between runs. Status is what the URL answered before the run:
a non-200 row measures an error page, not the feature. `wrk` comes from Debian
(`apt-get install -y wrk`); without it a slower Python load generator is used and says so.

"""


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per URL (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per app (default 2)")
    parser.add_argument("--connections", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 120 or not 1 <= args.connections <= 64:
        parser.error("keep --duration within 1..120 s and --connections within 1..64")
    return args


def portal_targets(base_url: str) -> list[Target]:
    """The public pages, then the dashboard as the benchmark customer (logged in once, checked)."""
    targets = [Target(f"`{p}`", f"{base_url}{p}") for p in PORTAL_PATHS]
    cookie = (("Cookie", f"session={log_in(base_url)}"),)
    dashboard = Target(f"`{DASHBOARD_PATH}` (logged in)", f"{base_url}{DASHBOARD_PATH}", cookie)
    check_dashboard(dashboard)
    return [*targets, dashboard]


def commands_shown(args: argparse.Namespace, tool: str, bare_cmd: list[str], app_cmd: list[str]) -> list[str]:
    """What was run, with ports and the session cookie replaced by placeholders."""
    shown = [
        " ".join(c[1:]).replace(str(ROOT) + "/", "").replace(str(ROOT), ".") for c in (bare_cmd, app_cmd)
    ]
    commands = [
        f"python {' '.join(sys.argv)}",
        "python bench/customer.py  # before gunicorn starts: the subscribed customer, no Stripe call",
        *(f"python {c}" for c in shown),
    ]
    if tool == "wrk":
        commands += [" ".join(wrk_command("<URL>", args.duration, args.connections))]
        cookie = (("Cookie", "session=<from one POST /auth/login>"),)
        login_wrk = wrk_command("<URL>/account/", args.duration, args.connections, cookie)
        commands += [" ".join(f"'{a}'" if " " in a else a for a in login_wrk)]
    return [re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<free port>", c) for c in commands]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tool = ("wrk" if shutil.which("wrk") else "python") if args.tool == "auto" else args.tool
    bare_port, app_port = free_port(), free_port()
    bare_cmd = gunicorn_command("bare_app:app", BENCH, bare_port, args.workers)
    app_cmd = gunicorn_command("wsgi:app", ROOT, app_port, args.workers)
    bare = Target("bare Flask `/`", f"http://127.0.0.1:{bare_port}/")
    app_base = f"http://127.0.0.1:{app_port}"
    info = machine()  # before the load: the load average is the machine's, not ours
    with tempfile.TemporaryDirectory(prefix="dicomportal-bench-") as tmp:
        env = prepare_database(Path(tmp))
        with gunicorn(bare_cmd, env, bare.url), gunicorn(app_cmd, env, f"{app_base}{PORTAL_PATHS[0]}"):
            targets = [bare, *portal_targets(app_base)]
            results = [measure(t, tool, args.duration, args.connections) for t in targets]
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = report(results, commands_shown(args, tool, bare_cmd, app_cmd), args, tool, info)
    print(text)
    if not args.no_write:
        write_results(text)
        print(f"recorded in {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
