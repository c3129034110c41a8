"""Share links and processing credits: what opening a shared study and spending a credit cost.

    .venv/bin/python bench/sharing_credits.py [--runs 50] [--postgres URL] [--no-write]

- **Share link**: the viewer page of a stored study (a synthetic 20-slice CT on local disk) opened
  by its owner (``GET /viewer/s<id>``) and through a share link by someone without an account
  (``GET /viewer/shared-<token>``: the link's checks and the counted opening on top); median ms
  after a warm-up (the decoded series is cached per process, as in production).
- **Credits**: ``spend_credit()`` (balance of the period, the ledger row, its commit), median ms,
  for a customer whose ledger is empty and for one with 10,000 rows from earlier periods (the
  balance reads only the current period, so the cost should not grow).

SQLite in a temporary directory; ``--postgres`` also on a throwaway PostgreSQL database. Records the
run at the top of the "Share links and credits" section of bench/RESULTS.md. Never part of the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

from bench.studies import _empty, databases, load_average, logged_in_client, portal  # noqa: E402
from dicomportal.billing.subscriptions import live_subscription  # noqa: E402
from dicomportal.extensions import db  # noqa: E402
from dicomportal.models import CreditEntry, CreditKind, ShareLink, Study, User  # noqa: E402
from dicomportal.studies import credits  # noqa: E402
from tests.helpers.dicom_data import ct_series  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Share links and credits (bench/sharing_credits.py)"
MARKER = "<!-- sharing and credits runs: newest first; bench/sharing_credits.py inserts below this line -->"
OLD_ENTRIES = 10_000


def median_ms(action: Callable[[], object], runs: int) -> float:
    action()  # warm-up: decode the series, fill caches
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def viewer_pages(app: Flask, runs: int) -> dict[str, float]:
    client = logged_in_client(app)
    files = {"files": [(io.BytesIO(d), n) for n, d in ct_series(20, size=128)]}
    assert client.post("/studies/upload", data=files, content_type="multipart/form-data").status_code == 303
    study = db.session.scalars(sa.select(Study)).one()
    assert client.post(f"/studies/{study.id}/shares", data={"days": "7"}).status_code == 303
    token = db.session.scalars(sa.select(ShareLink.token)).one()
    stranger = app.test_client()

    def get(who: FlaskClient, path: str) -> None:
        assert who.get(path).status_code == 200

    return {
        "viewer page, owner: `GET /viewer/s<id>`": median_ms(
            lambda: get(client, f"/viewer/s{study.id}"), runs
        ),
        "viewer page through a share link (counted)": median_ms(
            lambda: get(stranger, f"/viewer/shared-{token}"), runs
        ),
    }


def spending(runs: int) -> dict[str, float]:
    user = db.session.scalars(sa.select(User)).one()
    subscription = live_subscription(user.id)
    assert subscription is not None
    results = {"`spend_credit()`, empty ledger": median_ms(lambda: _spend(user.id), runs)}
    db.session.execute(
        sa.insert(CreditEntry),
        [
            {
                "user_id": user.id,
                "subscription_id": subscription.id,
                "period_start": subscription.current_period_start - dt.timedelta(days=31 * (1 + i // 1000)),
                "kind": CreditKind.USE,
                "seq": i % 1000 + 1,
                "quantity": 1,
                "unit_amount_cents": 0,
                "action": "3d",
                "series_uid": f"2.25.{i}",
            }
            for i in range(OLD_ENTRIES)
        ],
    )
    db.session.commit()
    results[f"`spend_credit()`, {OLD_ENTRIES:,} older ledger rows"] = median_ms(lambda: _spend(user.id), runs)
    return results


def _spend(user_id: int) -> None:
    credits.spend_credit(user_id, credits.BUILD_3D, 1, "2.25.bench")


def run(runs: int, postgres: str | None) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, databases(postgres, Path(tmp)) as urls:
        for db_name, url in urls:
            directory = Path(tmp) / db_name
            directory.mkdir()
            with portal(url, directory) as app:
                for name, ms in {**viewer_pages(app, runs), **spending(runs)}.items():
                    rows.append(f"| {name} | {db_name} | {ms:.1f} ms |")
            _empty(url)
    return rows


def record(rows: list[str], before: str, after: str, args: argparse.Namespace) -> str:
    now = dt.datetime.now(dt.UTC)
    return "\n".join(
        [
            f"### {now:%Y-%m-%d %H:%M} UTC",
            "",
            f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
            f"{platform.python_version()}. Load average before the run: {before}, after: {after}. "
            f"Command: `python bench/sharing_credits.py --runs {args.runs}"
            + (" --postgres ...`" if args.postgres else "`"),
            "",
            "| measurement | database | median |",
            "| --- | --- | ---: |",
            *rows,
            "",
        ]
    )


def write(entry: str) -> None:
    text = RESULTS.read_text()
    if MARKER not in text:
        text = (
            text.rstrip("\n")
            + f"\n\n{SECTION}\n\nSee the docstring of bench/sharing_credits.py.\n\n{MARKER}\n"
        )
    RESULTS.write_text(text.replace(MARKER, f"{MARKER}\n\n{entry}", 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--postgres", default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    before = load_average()
    entry = record(run(args.runs, args.postgres), before, load_average(), args)
    print(entry)
    if not args.no_write:
        write(entry)


if __name__ == "__main__":
    main()
