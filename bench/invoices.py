"""Invoice PDFs and the invoice history: render time, serving a stored PDF, and whether the history
page slows down as a customer's invoices grow.

    .venv/bin/python bench/invoices.py [--db sqlite|postgresql] [--requests 200] [--no-write]

For a customer with 100 and with 100,000 paid invoices (written straight to a fresh database by
bench/account_scale.py's seed), logged in through the real form, in-process with Flask's test
client:
- the median time to render one invoice PDF from its row (records -> WeasyPrint -> Factur-X);
- the median time of ``GET /billing/invoices/<id>/pdf`` once stored, and with ``If-None-Match``;
- the median time of ``GET /billing/invoices`` (first page) and of a page deep in the history
  (keyset ``before=`` the middle invoice); the ratio 100,000 : 100 is the figure to watch.
Results go to the top of bench/RESULTS.md. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.account_scale import CSRF, EMAIL, PASSWORD, database, seed  # noqa: E402
from bench.renewals import MARKER, RESULTS, SECRET  # noqa: E402

SIZES = (100, 100_000)
YEAR = dt.datetime.now(dt.UTC).year - 5  # a year in the middle of the history


def median_ms(action: Callable[[], object], runs: int) -> float:
    for _ in range(min(10, runs)):
        action()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def measure(kind: str, invoices: int, requests: int) -> dict[str, float]:
    from flask import current_app
    from sqlalchemy import func, select

    from dicomportal import create_app
    from dicomportal.billing.history import Cursor
    from dicomportal.documents import jinja_renderer, render_pdf
    from dicomportal.documents.records import invoice_document
    from dicomportal.extensions import db
    from dicomportal.models import Invoice, InvoiceLine, LineKind, User

    url = database(kind, invoices)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET}, instance_path=tempfile.mkdtemp())
    started = time.perf_counter()
    with app.app_context():
        seed(invoices, spacing=dt.timedelta(days=3650) / invoices)  # ten years of history
        user_id = db.session.scalar(select(User.id).where(User.email == EMAIL))
        newest = db.session.scalars(
            select(Invoice).where(Invoice.user_id == user_id).order_by(Invoice.finalized_at.desc()).limit(1)
        ).one()
        middle = db.session.scalars(
            select(Invoice)
            .where(Invoice.user_id == user_id)
            .order_by(Invoice.finalized_at.desc())
            .offset(invoices // 2)
            .limit(1)
        ).one()
        deep = Cursor.of(middle).token()
        # The seed writes invoices without lines; the one printed gets the plan's line.
        newest.lines.append(
            InvoiceLine(
                kind=LineKind.PLAN,
                description="Professional plan, monthly",
                quantity=1,
                unit_amount_cents=newest.subtotal_cents,
                amount_cents=newest.subtotal_cents,
                period_start=newest.period_start,
                period_end=newest.period_end,
            )
        )
        db.session.commit()
        newest_id = newest.id
        assert db.session.scalar(select(func.count()).select_from(Invoice)) == invoices + 200
        render = jinja_renderer(current_app.jinja_env)
        results = {"render": median_ms(lambda: render_pdf(invoice_document(newest, app.config), render), 10)}
    seeded = time.perf_counter() - started

    client = app.test_client()
    token = CSRF.search(client.get("/auth/login").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    answer = client.post("/auth/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
    assert answer.status_code in (302, 303), answer.status_code
    pdf_url = f"/billing/invoices/{newest_id}/pdf"
    first = client.get(pdf_url)
    assert first.status_code == 200 and first.data.startswith(b"%PDF"), first.status_code
    etag = first.headers["ETag"]
    pdf_kb = len(first.data) / 1024

    def get(path: str, status: int = 200, **headers: Any) -> Callable[[], None]:
        def run() -> None:
            response = client.get(path, headers=headers)
            assert response.status_code == status, (path, response.status_code)

        return run

    page = client.get("/billing/invoices").get_data(as_text=True)
    assert len(re.findall(r'class="inv-number"', page)) == 20, "the history did not show a page of invoices"
    results["stored"] = median_ms(get(pdf_url), requests)
    results["not_modified"] = median_ms(get(pdf_url, 304, **{"If-None-Match": etag}), requests)
    results["history"] = median_ms(get("/billing/invoices"), requests)
    results["deep"] = median_ms(get(f"/billing/invoices?before={deep}"), requests)
    results["filtered"] = median_ms(get(f"/billing/invoices?status=paid&year={YEAR}"), requests)
    results["seed_s"], results["pdf_kb"] = seeded, pdf_kb
    with app.app_context():
        db.engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results = {n: measure(args.db, n, args.requests) for n in SIZES}
    after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    small, large = results[SIZES[0]], results[SIZES[1]]
    rows = [
        ("render one invoice PDF from its row (records, WeasyPrint, Factur-X)", "render"),
        (f"`GET /billing/invoices/<id>/pdf`, stored PDF ({small['pdf_kb']:.0f} KB)", "stored"),
        ("the same with `If-None-Match` (304)", "not_modified"),
        ("`GET /billing/invoices` (first page, 20 invoices)", "history"),
        ("`GET /billing/invoices?before=<middle of the history>`", "deep"),
        (f"`GET /billing/invoices?status=paid&year={YEAR}`", "filtered"),
    ]
    lines = [
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: invoice PDFs and the invoice history "
        f"(`bench/invoices.py --db {args.db}`)",
        "",
        f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}, {platform.platform()}. Load average before: {before}, after: {after}. "
        f"In-process (Flask test client), median of {args.requests} requests after 10 to warm up (PDF "
        "rendering: median of 10). The customer has the number of paid invoices below; 200 other "
        "invoices belong to another customer.",
        "",
        f"| median ms | {SIZES[0]:,} invoices | {SIZES[1]:,} invoices | ratio |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {label} | {small[key]:.2f} | {large[key]:.2f} | {large[key] / small[key]:.2f}x |"
            for label, key in rows
        ),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        head, _, runs = RESULTS.read_text().partition(MARKER)
        RESULTS.write_text(f"{head}{MARKER}\n\n{text}\n{runs.lstrip()}")


if __name__ == "__main__":
    main()
