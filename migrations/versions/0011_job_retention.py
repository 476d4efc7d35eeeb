"""A job's own retention: ``jobs.retention_seconds``.

A job request may ask how long its outputs are kept (``retention_seconds``, core/retention.py);
the job row keeps it, and the move that finishes the job sets ``expires_at`` from it. Null (every
job written before this revision) means the server's default, ``VISIONGATE_RETENTION_SECONDS``,
as before. Adding a nullable column rewrites no row.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retention_seconds', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('retention_seconds')
