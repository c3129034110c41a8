"""How long one worker pass takes to renew N due subscriptions, against localstripe.

    .venv/bin/python bench/renewals.py --db sqlite --sizes 1000,10000
    .venv/bin/python bench/renewals.py --db postgresql --sizes 10000 --latency-ms 400 --workers 1,2

For each size N: a fresh database (SQLite file, or a PostgreSQL database made for the run),
migrated and seeded, with N customers whose monthly subscription is due, each with a real Stripe
customer and card at localstripe (made once per run, concurrently, and reused for every size and
worker count). Then the pass: ``--workers`` processes, each running the billing jobs once
(``jobs.run_once`` at the renewal moment, timed inside the process, app start excluded), at the
same time. ``--latency-ms`` puts bench/stripe_latency_proxy.py between the app and localstripe so
each Stripe call costs what it would at Stripe. Afterwards the database is checked (N renewal
invoices, each paid once, gapless numbers) and so is localstripe (one succeeded PaymentIntent per
renewal, none doubled). Results go to the top of bench/RESULTS.md. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "RESULTS.md"
MARKER = "<!-- runs: newest first; bench/run.py inserts below this line -->"
SECRET = "bench-secret-key-not-for-production"
START = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)  # subscribed then
DUE_AT = dt.datetime(2026, 2, 15, 10, 0, tzinfo=dt.UTC)  # the pass runs then: every period has ended
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Card:
    customer: str
    payment_method: str


@dataclass(frozen=True)
class Run:
    db: str
    size: int
    workers: int
    concurrency: int
    latency_ms: int
    seconds: float
    renewed: int
    charged: int

    @property
    def ms_per_renewal(self) -> float:
        return 1000 * self.seconds / max(self.renewed, 1)


# --- Stripe customers, made once ----------------------------------------------------------------


def make_cards(api_base: str, count: int) -> list[Card]:
    """``count`` Stripe customers with a saved 4242 card, straight at localstripe, 16 at a time."""
    import stripe

    client = stripe.StripeClient("sk_test_bench", base_addresses={"api": api_base}, max_network_retries=0)

    def one(n: int) -> Card:
        customer = client.v1.customers.create(params={"email": f"bench{n}@example.com"})
        card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}
        method = client.v1.payment_methods.create(params={"type": "card", "card": card})
        client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
        return Card(customer.id, method.id)

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(count)))


# --- the database ---------------------------------------------------------------------------------


def fresh_database(kind: str, workdir: Path, size: int) -> str:
    if kind == "sqlite":
        path = workdir / f"renewals-{size}.db"
        path.unlink(missing_ok=True)
        return f"sqlite:///{path}"
    return new_postgres_database(f"bench_renewals_{size}")


def new_postgres_database(name: str) -> str:
    """An empty PostgreSQL database ``name`` on the local server (dropped first if it exists)."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def seed(url: str, cards: list[Card]) -> None:
    """Migrate, load the catalog, and write one due Patient subscription per card (bulk inserts:
    the rows a successful subscribe would have left, without the first invoice)."""
    from flask_migrate import upgrade
    from sqlalchemy import insert, select
    from werkzeug.security import generate_password_hash

    from dicomportal import create_app
    from dicomportal.billing.catalog import seed_catalog
    from dicomportal.extensions import db
    from dicomportal.models import (
        BillingProfile,
        Interval,
        PaymentMethod,
        Plan,
        Price,
        Role,
        Subscription,
        SubscriptionStatus,
        User,
    )

    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET}, instance_path=str(ROOT / "bench" / "out")
    )
    with app.app_context():
        upgrade()
        seed_catalog()
        price_id = db.session.scalar(
            select(Price.id).join(Plan).where(Plan.code == "patient", Price.interval == Interval.MONTH)
        )
        password = generate_password_hash("bench-only-password", method="scrypt")
        n = len(cards)
        db.session.execute(
            insert(User),
            [
                dict(
                    id=i + 1,
                    email=f"bench{i}@example.com",
                    name=f"Bench {i}",
                    password_hash=password,
                    role=Role.CUSTOMER,
                    locale="en",
                    stripe_customer_id=card.customer,
                    created_at=START,
                )
                for i, card in enumerate(cards)
            ],
        )
        db.session.execute(
            insert(BillingProfile),
            [
                dict(
                    user_id=i + 1,
                    name=f"Bench {i}",
                    address_line1="1 Main St",
                    city="Springfield",
                    postal_code="12345",
                    country="US",
                    updated_at=START,
                )
                for i in range(n)
            ],
        )
        db.session.execute(
            insert(PaymentMethod),
            [
                dict(
                    user_id=i + 1,
                    stripe_payment_method_id=card.payment_method,
                    brand="visa",
                    last4="4242",
                    exp_month=12,
                    exp_year=2035,
                    is_default=True,
                    created_at=START,
                )
                for i, card in enumerate(cards)
            ],
        )
        end = START + dt.timedelta(days=31)
        db.session.execute(
            insert(Subscription),
            [
                dict(
                    user_id=i + 1,
                    price_id=price_id,
                    status=SubscriptionStatus.ACTIVE,
                    current_period_start=START,
                    current_period_end=end,
                    billing_anchor=START,
                    cancel_at_period_end=False,
                    created_at=START,
                    updated_at=START,
                    version=1,
                )
                for i in range(n)
            ],
        )
        if db.engine.dialect.name == "postgresql":
            db.session.execute(db.text("SELECT setval('users_id_seq', (SELECT max(id) FROM users))"))
        db.session.commit()
        db.session.execute(db.text("ANALYZE"))  # fresh planner statistics, as a live database has
        db.session.commit()
        db.engine.dispose()


# --- one worker (a child process) -----------------------------------------------------------------


def child() -> None:
    """One worker's pass, timed from inside (the app is built first); prints JSON."""
    from dicomportal import clock, create_app, jobs

    app = create_app(instance_path=str(ROOT / "bench" / "out"))
    with app.app_context():
        clock.travel_to(DUE_AT)
        started = time.perf_counter()
        results = jobs.run_once()
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "results": {k: dict(v) for k, v in results.items()}}))


def run_pass(
    url: str, stripe_base: str, workers: int, concurrency: int
) -> tuple[float, list[dict[str, Any]]]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET,
        "STRIPE_API_BASE": stripe_base,
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "STRIPE_TIMEOUT": "120",
        "STRIPE_CONCURRENCY": str(concurrency),
        "MAIL_BACKEND": "outbox",
    }
    command = [sys.executable, __file__, "--child"]
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    reports = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"worker failed:\n{err[-3000:]}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return max(r["seconds"] for r in reports), reports


# --- checks -----------------------------------------------------------------------------------------


def check_database(url: str, size: int) -> list[str]:
    """Every subscription renewed once, each renewal invoice paid by one succeeded payment,
    invoice numbers gapless from 1. Returns the PaymentIntent ids."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        numbers = [row[0] for row in conn.execute(sa.text("SELECT number FROM invoices ORDER BY number"))]
        paid = conn.execute(sa.text("SELECT count(*) FROM invoices WHERE status = 'paid'")).scalar()
        per_sub = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT subscription_id FROM invoices GROUP BY subscription_id "
                "HAVING count(*) > 1) AS doubled"
            )
        ).scalar()
        intents = [
            row[0]
            for row in conn.execute(
                sa.text("SELECT stripe_payment_intent_id FROM payments WHERE status = 'succeeded'")
            )
        ]
    engine.dispose()
    expected = [f"DP-2026-{n:06d}" for n in range(1, size + 1)]
    assert numbers == expected, (
        f"invoice numbers not gapless: {numbers[:3]}..{numbers[-3:]} of {len(numbers)}"
    )
    assert paid == size and per_sub == 0, (paid, per_sub)
    assert len(intents) == size == len(set(intents)), (len(intents), len(set(intents)))
    return intents


def check_stripe(api_base: str, intent_ids: list[str]) -> int:
    """How many of these PaymentIntents localstripe holds as succeeded (read directly, no proxy)."""
    import stripe

    client = stripe.StripeClient("sk_test_bench", base_addresses={"api": api_base}, max_network_retries=0)

    def status(intent_id: str) -> str:
        return str(client.v1.payment_intents.retrieve(intent_id).status)

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(status, intent_ids))
    return sum(s == "succeeded" for s in statuses)


# --- report -------------------------------------------------------------------------------------------


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(runs: list[Run], args: argparse.Namespace, before: str, after: str, notes: list[str]) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    base = {(r.db, r.latency_ms, r.workers): r for r in runs if r.size == min(x.size for x in runs)}
    lines = [
        f"## {now}: renewal pass (`bench/renewals.py`)",
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}. "
        f"Load average before: {before}, after: {after}. Command: "
        f"`.venv/bin/python bench/renewals.py {' '.join(sys.argv[1:])}`.",
        "",
        "| database | due | workers | Stripe calls in flight per worker | latency per Stripe call | "
        "pass (s) | renewed | charged | ms per renewal | per renewal vs smallest N |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        first = base.get((r.db, r.latency_ms, r.workers))
        ratio = f"{r.ms_per_renewal / first.ms_per_renewal:.2f}" if first else ""
        lines.append(
            f"| {r.db} | {r.size:,} | {r.workers} | {r.concurrency} | {r.latency_ms} ms | {r.seconds:.1f} | "
            f"{r.renewed:,} | {r.charged:,} | {r.ms_per_renewal:.2f} | {ratio} |"
        )
    return "\n".join([*lines, "", *notes, ""])


def write(text: str) -> None:
    head, _, runs = RESULTS.read_text().partition(MARKER)
    RESULTS.write_text(f"{head}{MARKER}\n\n{text}\n{runs.lstrip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--workers", default="1", help="comma-separated worker counts, e.g. 1,2")
    parser.add_argument("--concurrency", type=int, default=16, help="STRIPE_CONCURRENCY per worker")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.child:
        child()
        return

    from bench.stripe_latency_proxy import LatencyProxy
    from dicomportal.devtools.stripe_server import LocalStripe, free_port

    sizes = [int(s) for s in args.sizes.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    before, runs, notes = load(), [], []
    workdir = Path(tempfile.mkdtemp(prefix="bench-renewals-"))
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    with LocalStripe() as stripe_server:
        started = time.perf_counter()
        cards = make_cards(stripe_server.api_base, max(sizes))
        print(f"{len(cards)} Stripe customers with cards made in {time.perf_counter() - started:.0f} s")
        proxy = (
            LatencyProxy(stripe_server.api_base, args.latency_ms, free_port()) if args.latency_ms else None
        )
        with proxy or contextlib.nullcontext():
            base = proxy.url if proxy else stripe_server.api_base
            for size in sizes:
                for workers in worker_counts:
                    url = fresh_database(args.db, workdir, size)
                    seed(url, cards[:size])
                    seconds, reports = run_pass(url, base, workers, args.concurrency)
                    renewal = [r["results"]["renew_due_subscriptions"] for r in reports]
                    run = Run(
                        args.db,
                        size,
                        workers,
                        args.concurrency,
                        args.latency_ms,
                        seconds,
                        sum(r.get("renewed", 0) for r in renewal),
                        sum(r.get("charged", 0) for r in renewal),
                    )
                    intents = check_database(url, size)
                    at_stripe = check_stripe(stripe_server.api_base, intents)
                    assert at_stripe == size, (
                        f"{at_stripe} succeeded intents at localstripe for {size} renewals"
                    )
                    runs.append(run)
                    split = " + ".join(str(r.get("renewed", 0)) for r in renewal)
                    print(
                        f"{args.db} N={size} workers={workers}: {seconds:.1f} s, renewed {split}, "
                        f"{run.ms_per_renewal:.2f} ms/renewal; checked: {size} invoices paid once, numbers "
                        f"gapless, {at_stripe} succeeded PaymentIntents at localstripe"
                    )
                    notes.append(
                        f"- {args.db}, {size:,} due, {workers} worker(s): renewed per worker {split}; "
                        f"checked {size:,} invoices paid once with gapless numbers and {at_stripe:,} "
                        "succeeded PaymentIntents at localstripe, none doubled."
                    )
    text = report(runs, args, before, load(), notes)
    print(text)
    if not args.no_write:
        write(text)


if __name__ == "__main__":
    main()
