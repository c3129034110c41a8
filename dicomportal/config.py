"""Settings from the environment (12-factor), with defaults for the embedded demo.

Every setting is documented in README.md ("Configuration"). ``load_config`` is the only place
that reads ``os.environ`` for the web app.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import tempfile
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

TRUE = {"1", "true", "yes", "on"}


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in TRUE


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def private_dir(path: Path) -> Path:
    """Create ``path`` (missing parents too) for this user only (0700), or make it so if it exists.

    The instance folder holds the secret key and the SQLite database: nobody else on the machine
    may list or read it.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        try:
            path.chmod(0o700)
        except PermissionError:
            log.warning("%s is readable by other users and not ours to change: chmod 700 it", path)
    return path


def secret_key(instance_path: Path) -> str:
    """Return SECRET_KEY from the environment, or one generated once and kept in the instance folder.

    Safe when several processes boot at once (gunicorn workers, the worker next to the web app):
    each writes a candidate key to its own private temporary file and links it to ``secret_key``,
    which succeeds for one of them only; the name never shows a half-written key, and every
    process then reads the same winner.
    """
    from_env = os.environ.get("SECRET_KEY")
    if from_env:
        return from_env
    key_file = private_dir(instance_path) / "secret_key"
    if not key_file.exists():
        _publish_new_key(key_file)
    key = key_file.read_text().strip()
    if not key:
        raise RuntimeError(f"{key_file} is empty: delete it to generate a new key, or set SECRET_KEY")
    return key


def _publish_new_key(key_file: Path) -> None:
    fd, candidate = tempfile.mkstemp(dir=key_file.parent, prefix=".secret_key.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process's key won: use that one
            os.link(candidate, key_file)
    finally:
        os.unlink(candidate)


def sqlite_path(database_uri: str, instance_path: Path) -> Path | None:
    """The file of a SQLite database URL (relative paths are in the instance folder, as
    Flask-SQLAlchemy resolves them); ``None`` for other databases and in-memory SQLite."""
    url = make_url(database_uri)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("uri") or url.database.startswith("file:"):
        return None  # SQLite URI filenames: left as they are
    path = Path(url.database)
    return path if path.is_absolute() else instance_path / path


def private_sqlite_file(database_uri: str, instance_path: Path) -> None:
    """Make sure a SQLite database file exists readable by this user only (0600) before SQLAlchemy
    opens it, so it is never created world-readable; SQLite gives its journal and WAL files the
    database file's mode. A file that exists already is tightened."""
    path = sqlite_path(database_uri, instance_path)
    if path is None:
        return
    if path.parent == instance_path:
        private_dir(instance_path)
    elif not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            try:
                path.chmod(0o600)
            except PermissionError:
                log.warning("%s is readable by other users and not ours to change: chmod 600 it", path)


def database_url(instance_path: Path) -> str:
    """DATABASE_URL, defaulting to a SQLite file in the instance folder.

    ``postgres://`` (as some hosts print it) is accepted and mapped to the psycopg 3 driver.
    """
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance_path / 'dicomportal.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_config(instance_path: Path) -> dict[str, Any]:
    """Read every setting from the environment and return the Flask config mapping."""
    stripe_base = os.environ.get("STRIPE_API_BASE", "")
    stripe_key = os.environ.get("STRIPE_SECRET_KEY", "sk_test_dicomportal")
    return {
        "SECRET_KEY": secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": database_url(instance_path),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "BASE_URL": os.environ.get("BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        "DEMO_MODE": _bool("DICOMPORTAL_DEMO", False),
        # Stripe
        "STRIPE_SECRET_KEY": stripe_key,
        "STRIPE_PUBLISHABLE_KEY": os.environ.get("STRIPE_PUBLISHABLE_KEY", "pk_test_dicomportal"),
        # No default: a published one would let anyone forge events. Empty, every webhook is refused
        # (Stripe's SDK will not verify without a secret); `dicomportal demo` sets its own.
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET", ""),
        "STRIPE_API_BASE": stripe_base.rstrip("/"),
        "STRIPE_TIMEOUT": float(os.environ.get("STRIPE_TIMEOUT", "20")),
        # How many Stripe calls one worker keeps in flight (each payment still in its own
        # transactions). Stripe allows 100 requests/s in live mode and 25 in test mode.
        "STRIPE_CONCURRENCY": _int("STRIPE_CONCURRENCY", 16),
        # Mail: "smtp" delivers through MAIL_SERVER; "outbox" only keeps mail in the database
        # (the demo shows it at /dev/outbox).
        "MAIL_BACKEND": os.environ.get("MAIL_BACKEND", "smtp"),
        "MAIL_SERVER": os.environ.get("MAIL_SERVER", "localhost"),
        "MAIL_PORT": _int("MAIL_PORT", 25),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME"),
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD"),
        "MAIL_USE_TLS": _bool("MAIL_USE_TLS", False),
        "MAIL_USE_SSL": _bool("MAIL_USE_SSL", False),
        "MAIL_DEFAULT_SENDER": os.environ.get("MAIL_DEFAULT_SENDER", "DICOM Portal <billing@localhost>"),
        "SUPPORT_EMAIL": os.environ.get("SUPPORT_EMAIL", "support@localhost"),
        # Seller identity, printed on invoices
        "SELLER_NAME": os.environ.get("SELLER_NAME", "DICOM Portal Demo Ltd"),
        "SELLER_ADDRESS": os.environ.get("SELLER_ADDRESS", "1 Example Street, Brisbane QLD 4000"),
        "SELLER_COUNTRY": os.environ.get("SELLER_COUNTRY", "AU"),
        "SELLER_VAT_NUMBER": os.environ.get("SELLER_VAT_NUMBER", ""),
        # Billing rules
        "TAX_RATES": json.loads(os.environ.get("TAX_RATES", "{}")),  # {"DE": 1900} basis points
        "DUNNING_SCHEDULE_DAYS": [
            int(d) for d in os.environ.get("DUNNING_SCHEDULE_DAYS", "1,3,7").split(",") if d.strip()
        ],
        "PAUSE_WEEKS": _int("PAUSE_WEEKS", 12),
        "RESTORE_WINDOW_DAYS": _int("RESTORE_WINDOW_DAYS", 30),
        # Reconciliation with Stripe (`dicomportal reconcile`, and the worker once a day): invoices
        # paid in the last RECONCILE_DAYS days, at most RECONCILE_MAX_STRIPE_CALLS calls a run.
        "RECONCILE_DAYS": _int("RECONCILE_DAYS", 35),
        "RECONCILE_EVERY_HOURS": _int("RECONCILE_EVERY_HOURS", 24),
        "RECONCILE_MAX_STRIPE_CALLS": _int("RECONCILE_MAX_STRIPE_CALLS", 2000),
        "PASSWORD_RESET_MAX_AGE": _int("PASSWORD_RESET_MAX_AGE", 3600),
        # Request bodies: anything bigger is refused with 413 before it is read.
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 16 * 1024 * 1024),
        "WEBHOOK_MAX_CONTENT_LENGTH": _int("WEBHOOK_MAX_CONTENT_LENGTH", 1024 * 1024),
        # Viewer: megabytes of decoded series each process keeps (rendered images get a sixth more)
        "VIEWER_CACHE_MB": _int("VIEWER_CACHE_MB", 768),
        # Study storage (dicomportal/studies): where DICOM files live and how big an upload may be
        "STUDY_STORAGE": os.environ.get("STUDY_STORAGE", "local").strip().lower(),
        "STUDY_STORAGE_DIR": os.environ.get("STUDY_STORAGE_DIR") or str(instance_path / "studies"),
        "ORTHANC_URL": os.environ.get("ORTHANC_URL", "http://127.0.0.1:8042").rstrip("/"),
        "ORTHANC_USERNAME": os.environ.get("ORTHANC_USERNAME", ""),
        "ORTHANC_PASSWORD": os.environ.get("ORTHANC_PASSWORD", ""),
        "ORTHANC_TIMEOUT": float(os.environ.get("ORTHANC_TIMEOUT", "60")),
        "UPLOAD_MAX_MB": _int("UPLOAD_MAX_MB", 2048),
        "UPLOAD_MAX_FILE_MB": _int("UPLOAD_MAX_FILE_MB", 512),
        "UPLOAD_MAX_FILES": _int("UPLOAD_MAX_FILES", 5000),
        "UPLOAD_ZIP_MAX_RATIO": _int("UPLOAD_ZIP_MAX_RATIO", 100),
        # Share links: the longest expiry a customer may choose, and the one offered first
        "SHARE_LINK_MAX_DAYS": _int("SHARE_LINK_MAX_DAYS", 30),
        "SHARE_LINK_DEFAULT_DAYS": _int("SHARE_LINK_DEFAULT_DAYS", 7),
        # Security
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_HEADERS_ENABLED": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", False),
        # Behind reverse proxies: how many of them set X-Forwarded-For/-Proto/-Host (0: none, the
        # headers are ignored). Rate limits and logs then see the client, not the proxy.
        "TRUSTED_PROXY_HOPS": _int("TRUSTED_PROXY_HOPS", 0),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", False),
        "WTF_CSRF_TIME_LIMIT": None,
    }


def is_test_mode(config: dict[str, Any] | Any) -> bool:
    """True when payments go to localstripe or use a Stripe test key (the TEST MODE banner)."""
    return bool(config.get("STRIPE_API_BASE")) or str(config.get("STRIPE_SECRET_KEY", "")).startswith(
        "sk_test_"
    )


def support_address(config: Any) -> str:
    """The bare address customers are told to write to and staff notices go to (SUPPORT_EMAIL,
    ``Support <help@example.com>`` or a bare address; else MAIL_DEFAULT_SENDER)."""
    configured = config.get("SUPPORT_EMAIL") or config.get("MAIL_DEFAULT_SENDER")
    return parseaddr(str(configured or ""))[1] or "support@localhost"
