"""refunds: credit note reversals, scheduled runs (the daily reconciliation's last run)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 17:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('scheduled_runs',
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('job', name=op.f('pk_scheduled_runs'))
    )
    with op.batch_alter_table('credit_notes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reversed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reversal_number', sa.String(length=30), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_credit_notes_reversal_number'), ['reversal_number'])


def downgrade():
    with op.batch_alter_table('credit_notes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_credit_notes_reversal_number'), type_='unique')
        batch_op.drop_column('reversal_number')
        batch_op.drop_column('reversed_at')
    op.drop_table('scheduled_runs')
