"""Partial indexes for the waiting line and the sweeper's scans.

A big batch leaves tens of thousands of QUEUED jobs waiting for their tenant's concurrency.
Without these, every job start (``release_held``) and every sweep (``due_starts``,
``overdue``) read all of them; with them each reads only the rows it can act on.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

HELD = sa.text("status = 'QUEUED' AND held_at IS NOT NULL")
DUE = sa.text("status = 'QUEUED' AND held_at IS NULL")
ACTIVE_SINGLE = sa.text("status IN ('QUEUED', 'RUNNING', 'SUBMITTED') AND batch_id IS NULL")
ACTIVE_BATCH_STARTED = sa.text("status IN ('QUEUED', 'RUNNING', 'SUBMITTED') AND batch_id IS NOT NULL "
                               "AND started_at IS NOT NULL")


def upgrade() -> None:
    # Released-but-unclaimed held jobs of a tenant (published_at range), and the line itself.
    op.create_index('ix_jobs_held_published', 'jobs', ['tenant_id', 'published_at'],
                    postgresql_where=HELD, sqlite_where=HELD)
    op.create_index('ix_jobs_held_line', 'jobs', ['tenant_id', 'created_at'],
                    postgresql_where=HELD, sqlite_where=HELD)
    # Queued jobs not waiting for a slot, by due time (the sweeper's due_starts).
    op.create_index('ix_jobs_due_starts', 'jobs', ['run_at'], postgresql_where=DUE, sqlite_where=DUE)
    # Unfinished single (non-batch) jobs by age (the sweeper's overdue check).
    op.create_index('ix_jobs_active_single_created', 'jobs', ['created_at'],
                    postgresql_where=ACTIVE_SINGLE, sqlite_where=ACTIVE_SINGLE)
    # Started, unfinished batch jobs by start time (batch jobs are timed from their start).
    op.create_index('ix_jobs_active_batch_started', 'jobs', ['started_at'],
                    postgresql_where=ACTIVE_BATCH_STARTED, sqlite_where=ACTIVE_BATCH_STARTED)


def downgrade() -> None:
    for name in ('ix_jobs_active_batch_started', 'ix_jobs_active_single_created', 'ix_jobs_due_starts', 'ix_jobs_held_line',
                 'ix_jobs_held_published'):
        op.drop_index(name, table_name='jobs')
