"""The schema is created only by migrations, and the models never drift from them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from dicomportal.extensions import db


def schema_drift(metadata: sa.MetaData) -> list[Any]:
    """What Alembic autogenerate would write to make the migrated database match ``metadata``."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if not _is_alembic_table(d)]


def _is_alembic_table(diff: Any) -> bool:
    return isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name == "alembic_version"


def test_models_match_the_migrations(app: Flask) -> None:
    assert schema_drift(db.metadata) == []


def test_a_column_added_without_a_migration_is_reported(app: Flask) -> None:
    changed = sa.MetaData()
    for table in db.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["users"].append_column(sa.Column("nickname", sa.String(50)))

    drift = schema_drift(changed)

    assert [(d[0], d[3].name) for d in drift] == [("add_column", "nickname")]
