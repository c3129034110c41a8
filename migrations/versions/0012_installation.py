"""installation: the key that namespaces Stripe idempotency keys

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 17:50:00

"""
import secrets
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'installation',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('key', sa.String(length=40), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_installation')),
        sa.UniqueConstraint('key', name=op.f('uq_installation_key')),
    )
    # The key is random per database: a copy of a database should get a new one
    # (docs/payments.md, "Idempotency keys").
    table = sa.table('installation', sa.column('id'), sa.column('key'), sa.column('created_at'))
    op.bulk_insert(table, [{'id': 1, 'key': f'dp_{secrets.token_hex(16)}',
                            'created_at': datetime.now(timezone.utc)}])


def downgrade():
    op.drop_table('installation')
