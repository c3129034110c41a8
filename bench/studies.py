"""Study storage: upload throughput on local disk and Orthanc, and the listing of a 1,000-study account.

    .venv/bin/python bench/studies.py [--slices 100] [--runs 3] [--postgres URL] [--no-write]

- **Upload**: a synthetic 100-slice CT series (512 x 512, 16-bit, about 52 MB, made with pydicom)
  posted as one multipart upload to ``POST /studies/upload`` through Flask's test client, in
  process: the real route (multipart parsing, every file checked with pydicom, UIDs rewritten,
  quota, rows, files stored, commit). MB/s is the series' size over the wall time of the POST.
  Once with ``STUDY_STORAGE=local`` (a temporary directory) and once with ``orthanc`` (Debian's
  Orthanc, started on a free loopback port the way the tests start it).
- **Listing**: one customer with 1,000 ready studies (rows only); the time of ``library()`` (the
  count, the first page of 100 and the meter) and of ``GET /studies/`` (the whole page) and its
  last page (``OFFSET`` 1,000).

SQLite in a temporary directory by default; ``--postgres postgresql://...`` also runs on a
throwaway PostgreSQL database made there and dropped after. Records the run at the top of the
"Study storage" section of bench/RESULTS.md with the load average. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' Orthanc launcher and synthetic CT series

import sqlalchemy as sa  # noqa: E402
from flask import Flask  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

from dicomportal import create_app  # noqa: E402
from dicomportal.accounts import create_user  # noqa: E402
from dicomportal.billing.catalog import seed_catalog  # noqa: E402
from dicomportal.extensions import db  # noqa: E402
from dicomportal.models import Study, StudyStatus, SubscriptionStatus, User  # noqa: E402
from dicomportal.studies.library import PAGE_SIZE, library  # noqa: E402
from tests.helpers.dicom_data import ct_series  # noqa: E402
from tests.helpers.orthanc import ORTHANC_PASSWORD, ORTHANC_USER, running_orthanc  # noqa: E402
from tests.helpers.studies import subscribe_without_stripe  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Study storage (bench/studies.py)"
MARKER = "<!-- study storage runs: newest first; bench/studies.py inserts below this line -->"
PASSWORD = "bench-only-password"
LISTED_STUDIES = 1000


@contextmanager
def portal(database_url: str, directory: Path, **config: Any) -> Iterator[Flask]:
    """The app on a migrated, seeded database, with a subscribed (Surgical, 1 TB) customer."""
    (directory / "secret_key").write_text("bench-secret-key")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "STUDY_STORAGE": "local",
            "STUDY_STORAGE_DIR": str(directory / "studies"),
            **config,
        },
        instance_path=str(directory),
    )
    with app.app_context():
        upgrade()
        seed_catalog()
        user = create_user("bench-studies@example.com", PASSWORD, "Bench Studies")
        db.session.commit()
        subscribe_without_stripe(user, "surgical", SubscriptionStatus.ACTIVE)
        yield app
        db.session.remove()
        db.engine.dispose()


def logged_in_client(app: Flask) -> Any:
    client = app.test_client()
    response = client.post("/auth/login", data={"email": "bench-studies@example.com", "password": PASSWORD})
    assert response.status_code in (302, 303), response.status_code
    return client


def upload_seconds(app: Flask, series: list[tuple[str, bytes]], runs: int) -> list[float]:
    """Wall time of each POST of the whole series; every run must store it (checked)."""
    client = logged_in_client(app)
    times = []
    for _ in range(runs):
        data = {"files": [(io.BytesIO(content), name) for name, content in series]}
        started = time.perf_counter()
        response = client.post("/studies/upload", data=data, content_type="multipart/form-data")
        times.append(time.perf_counter() - started)
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
    ready = db.session.scalar(
        sa.select(sa.func.count()).select_from(Study).where(Study.status == StudyStatus.READY)
    )
    assert ready == runs, ready
    return times


def listing_ms(app: Flask, runs: int = 20) -> dict[str, float]:
    """Median ms of ``library()`` (first page), ``GET /studies/`` and its last page, for a customer
    with 1,000 studies (100 a page)."""
    user = db.session.scalar(sa.select(User).where(User.email == "bench-studies@example.com"))
    assert user is not None
    db.session.execute(
        sa.insert(Study),
        [
            {
                "user_id": user.id,
                "status": StudyStatus.READY,
                "storage_backend": "local",
                "study_instance_uid": f"2.25.{i + 1}",
                "modalities": "CT",
                "study_date": dt.date(2024, 1, 1) + dt.timedelta(days=i % 365),
                "description": f"CT CHEST {i}",
                "series_count": 2,
                "image_count": 300,
                "size_bytes": 150_000_000,
            }
            for i in range(LISTED_STUDIES)
        ],
    )
    db.session.commit()
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Study).where(Study.user_id == user.id))
    last_page = -(-total // PAGE_SIZE)
    client = logged_in_client(app)
    times: dict[str, list[float]] = {
        "library()": [],
        "GET /studies/": [],
        f"GET /studies/?page={last_page}": [],
    }
    for _ in range(runs):
        started = time.perf_counter()
        found = library(user.id)
        times["library()"].append((time.perf_counter() - started) * 1000)
        assert len(found.studies) == PAGE_SIZE and found.total == total
        db.session.expire_all()
        for path, expected in (("/studies/", PAGE_SIZE), (f"/studies/?page={last_page}", total % PAGE_SIZE)):
            started = time.perf_counter()
            response = client.get(path)
            times[f"GET {path}"].append((time.perf_counter() - started) * 1000)
            assert response.get_data(as_text=True).count('<tr id="study-') == (expected or PAGE_SIZE)
    return {name: statistics.median(values) for name, values in times.items()}


@contextmanager
def databases(postgres: str | None, directory: Path) -> Iterator[list[tuple[str, str]]]:
    """(name, url) of each database to run on, made empty for this run."""
    urls = [("SQLite", f"sqlite:///{directory / 'bench.db'}")]
    admin = None
    if postgres:
        base = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", postgres)
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        name = f"dicomportal_bench_studies_{os.getpid()}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        urls.append(("PostgreSQL", admin.url.set(database=name).render_as_string(hide_password=False)))
    try:
        yield urls
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def run(slices: int, runs: int, postgres: str | None) -> list[str]:
    """Every measurement, as Markdown table rows."""
    series = ct_series(slices, size=512, description="CT BENCH")
    megabytes = sum(len(d) for _, d in series) / 1e6
    rows = []
    with tempfile.TemporaryDirectory() as tmp, databases(postgres, Path(tmp)) as urls:
        for db_name, url in urls:
            for backend in ("local", "orthanc"):
                directory = Path(tmp) / f"{db_name}-{backend}"
                directory.mkdir()
                with orthanc_if(backend, directory) as extra, portal(url, directory, **extra) as app:
                    times = upload_seconds(app, series, runs)
                    best, median = min(times), statistics.median(times)
                    rows.append(
                        f"| upload {slices} CT slices ({megabytes:.1f} MB) | {backend} | {db_name} | "
                        f"{megabytes / median:.1f} MB/s (median of {runs}; best {megabytes / best:.1f}) | "
                        f"{median:.2f} s |"
                    )
                    if backend == "local":
                        for name, ms in listing_ms(app).items():
                            listed = f"account with {LISTED_STUDIES:,} studies: `{name}`"
                            rows.append(f"| {listed} | - | {db_name} | - | {ms:.1f} ms |")
                _empty(url)
    return rows


def _empty(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        else:
            meta = sa.MetaData()
            meta.reflect(conn)
            meta.drop_all(conn)
    engine.dispose()


@contextmanager
def orthanc_if(backend: str, directory: Path) -> Iterator[dict[str, Any]]:
    if backend != "orthanc":
        yield {}
        return
    with running_orthanc(directory) as server:
        yield {
            "STUDY_STORAGE": "orthanc",
            "ORTHANC_URL": server.url,
            "ORTHANC_USERNAME": ORTHANC_USER,
            "ORTHANC_PASSWORD": ORTHANC_PASSWORD,
        }


def record(rows: list[str], load_before: str, load_after: str, args: argparse.Namespace) -> str:
    now = dt.datetime.now(dt.UTC)
    cpu = platform.processor() or platform.machine()
    return "\n".join(
        [
            f"### {now:%Y-%m-%d %H:%M} UTC",
            "",
            f"Machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
            f"{platform.platform()}. "
            f"Load average before the run: {load_before}, after: {load_after}. "
            f"Command: `python bench/studies.py --slices {args.slices} --runs {args.runs}"
            + (" --postgres ...`" if args.postgres else "`"),
            "",
            "| measurement | store | database | throughput | time |",
            "| --- | --- | --- | ---: | ---: |",
            *rows,
            "",
        ]
    )


def write(entry: str) -> None:
    text = RESULTS.read_text()
    if MARKER not in text:
        text = text.rstrip("\n") + (
            f"\n\n{SECTION}\n\nUpload throughput of a synthetic CT series through `POST /studies/upload` "
            "(in process, Flask's test client) on each store, and the listing of an account with 1,000 "
            "studies. "
            f"See the docstring of bench/studies.py for what is timed.\n\n{MARKER}\n"
        )
    RESULTS.write_text(text.replace(MARKER, f"{MARKER}\n\n{entry}", 1))


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", default=None, help="a server URL where the user may create databases")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    before = load_average()
    rows = run(args.slices, args.runs, args.postgres)
    entry = record(rows, before, load_average(), args)
    print(entry)
    if not args.no_write:
        write(entry)


if __name__ == "__main__":
    main()
