"""This installation's Idempotency-Key namespace (docs/payments.md, "Idempotency keys").

Stripe keeps an idempotency key for 24 hours per account and answers a repeated key with the
first answer. Our row ids restart at 1 in every database, so keys are ``<installation>:<what>``:
the installation's random key, made once and kept in its database, then the logical operation
(``payment-42``). A retry of the same operation sends the same key; another database never does.
"""

from __future__ import annotations

import secrets

from flask import current_app
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from dicomportal import clock
from dicomportal.extensions import db
from dicomportal.models import Installation

_CACHE = "dicomportal_installation_key"


def installation_key() -> str:
    """The installation's key, created (and committed in its own transaction) at first need."""
    cached: str | None = current_app.extensions.get(_CACHE)
    if cached is not None:
        return cached
    key = _stored_key()
    if key is None:
        key = _create_key()
    current_app.extensions[_CACHE] = key
    return key


def forget_cached_key() -> None:
    """For a process whose database was replaced under it (tests that start afresh)."""
    current_app.extensions.pop(_CACHE, None)


def idempotency_key(*parts: object) -> str:
    """``<installation>:<part>-<part>...``: the Idempotency-Key of one logical Stripe operation."""
    return f"{installation_key()}:" + "-".join(str(part) for part in parts)


def _stored_key() -> str | None:
    return db.session.scalar(select(Installation.key).where(Installation.id == 1))


def new_key() -> str:
    return f"dp_{secrets.token_hex(16)}"


def _create_key() -> str:
    """Insert the one row on a connection of its own, committed before any key is sent, so a
    rollback of the caller's transaction cannot lose it; two processes racing both read the
    winner's. (Migration 0012 makes the row; this covers a database made otherwise.)"""
    row = {"id": 1, "key": new_key(), "created_at": clock.now()}
    try:
        with db.engine.begin() as connection:
            connection.execute(insert(Installation), [row])
    except IntegrityError:
        pass
    with db.engine.connect() as connection:
        key = connection.scalar(select(Installation.key).where(Installation.id == 1))
    assert key is not None
    return str(key)
