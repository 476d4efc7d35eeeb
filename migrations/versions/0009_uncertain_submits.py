"""Count the start attempts that may have reached the upstream unrecorded.

A worker that dies after sending a submit and before recording the upstream's task id, or a
submit that times out, leaves a job whose next start may be a second paid generation.
``jobs.uncertain_submits`` counts those attempts (workers/pipeline.py, workers/sweeper.py), so
possible duplicates are visible per job and in the fault runs' figures.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('uncertain_submits', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('uncertain_submits')
