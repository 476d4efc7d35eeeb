"""Held jobs not released yet, per tenant in line order.

``release_held`` runs after every job start and finish; it looks for held jobs that were never
released (or whose release went stale). With only ``ix_jobs_held_line`` that meant reading the
whole waiting line when every job in it was already released (a 50,000-job batch with slots to
spare: ~45,000 rows on every call); this index holds only the unreleased ones.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

UNRELEASED = sa.text("status = 'QUEUED' AND held_at IS NOT NULL AND published_at IS NULL")


def upgrade() -> None:
    op.create_index('ix_jobs_held_unreleased', 'jobs', ['tenant_id', 'created_at'],
                    postgresql_where=UNRELEASED, sqlite_where=UNRELEASED)


def downgrade() -> None:
    op.drop_index('ix_jobs_held_unreleased', table_name='jobs')
