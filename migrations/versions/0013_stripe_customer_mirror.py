"""billing profiles mirrored to the Stripe customer: the tax ID's id at Stripe, a pending mirror

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 17:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('billing_profiles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tax_id_revision', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('stripe_tax_id', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('stripe_mirror_due', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('stripe_mirror_error', sa.String(length=500), nullable=True))
        batch_op.create_index(batch_op.f('ix_billing_profiles_stripe_mirror_due'), ['stripe_mirror_due'], unique=False)
    # Profiles saved before this revision were never mirrored with their company and tax ID.
    op.execute("UPDATE billing_profiles SET stripe_mirror_due = true")


def downgrade():
    with op.batch_alter_table('billing_profiles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_profiles_stripe_mirror_due'))
        batch_op.drop_column('stripe_mirror_error')
        batch_op.drop_column('stripe_mirror_due')
        batch_op.drop_column('stripe_tax_id')
        batch_op.drop_column('tax_id_revision')
