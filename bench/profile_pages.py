"""Where a page's time goes, in-process: cProfile over N Flask test-client GETs of each benchmarked URL.

    .venv/bin/python bench/profile_pages.py [--requests 200] [--top 15]

Uses the same kind of database as bench/run.py (migrated, seeded, plus the customer from
bench/customer.py) and the same login form for ``/account/``. Prints, per URL, the mean time per
request, the SQL statements per request and the top cumulative cProfile entries. No server, no
network; numbers are for explaining bench/run.py's ratios, not for comparing with them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from run import CSRF_INPUT, DASHBOARD_PATH, PORTAL_PATHS, prepare_database


def logged_in_client(app: Any) -> Any:
    """A test client logged in as the benchmark customer through the real form (CSRF included)."""
    from customer import EMAIL, PASSWORD, PLAN_NAME

    client = app.test_client()
    page = client.get("/auth/login").get_data(as_text=True)
    token = CSRF_INPUT.search(page)
    assert token, "no csrf_token on /auth/login"
    client.post("/auth/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token.group(1)})
    answer = client.get(DASHBOARD_PATH)
    if answer.status_code != 200 or PLAN_NAME not in answer.get_data(as_text=True):
        raise SystemExit(f"{DASHBOARD_PATH} answered {answer.status_code} without {PLAN_NAME!r}")
    return client


def count_queries(app: Any) -> list[int]:
    """A one-element counter of SQL statements the app's engine executes from now on."""
    from sqlalchemy import event

    from dicomportal.extensions import db

    counter = [0]
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda *_: counter.__setitem__(0, counter[0] + 1))
    return counter


def profile(client: Any, path: str, requests: int, top: int, queries: list[int]) -> None:
    """Warm up, then GET ``path`` ``requests`` times under cProfile and print the summary."""
    for _ in range(10):
        client.get(path)
    queries[0] = 0
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(requests):
        client.get(path)
    profiler.disable()
    elapsed = time.perf_counter() - started
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    print(
        f"\n=== {path}: {elapsed / requests * 1000:.2f} ms/request under cProfile, "
        f"{queries[0] / requests:.1f} SQL statements/request"
    )
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dicomportal-profile-") as tmp:
        os.environ.update(prepare_database(Path(tmp)))
        from dicomportal import create_app

        app = create_app()
        anonymous, customer = app.test_client(), logged_in_client(app)
        queries = count_queries(app)
        for path in PORTAL_PATHS:  # as wrk loads them: no cookie
            profile(anonymous, path, args.requests, args.top, queries)
        profile(customer, DASHBOARD_PATH, args.requests, args.top, queries)


if __name__ == "__main__":
    main()
