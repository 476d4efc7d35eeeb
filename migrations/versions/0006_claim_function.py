"""``visiongate_claim``: a job's start claim as one server-side call (PostgreSQL only).

A claim locks its tenant's row (so the count of running jobs stays true under concurrency),
counts, and moves the job. Done as separate statements from a worker, the lock is held across
several round trips and the worker's own Python time between them; every other claim of the
tenant waits that long, which capped a tenant at a few dozen job starts per second however many
workers ran. Inside one function called in autocommit mode the lock lasts only the database's
own work. The rules are those of ``core.jobs.claims.claim_start`` (which SQLite still runs in Python).

The order rule (older startable jobs first) is checked when at most ``p_fifo_window`` slots are
free (``core.jobs.claims.FIFO_WINDOW``); with more free slots than that a job starts without counting
the older ones, so a claim never reads more than that many of them (a 50,000-job batch would
otherwise make every claim count its whole backlog).

Returns the job's new attempt count when it was claimed, -1 when it must wait for a slot (it is
then held), NULL when there is nothing to do (not QUEUED, not due, or claimed by another).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

CLAIM = """
CREATE OR REPLACE FUNCTION visiongate_claim(p_job varchar, p_cap integer, p_lease double precision,
                                            p_now timestamptz, p_fifo_window integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_tenant varchar;
    v_status varchar;
    v_run_at timestamptz;
    v_created timestamptz;
    v_running integer;
    v_older integer;
    v_free integer;
    v_attempts integer;
BEGIN
    SELECT tenant_id INTO v_tenant FROM jobs WHERE id = p_job;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- FOR NO KEY UPDATE: serialises the tenant's claims without blocking its job inserts.
    PERFORM 1 FROM tenants WHERE id = v_tenant FOR NO KEY UPDATE;
    -- Read after the lock (each statement of a function sees what committed before it).
    SELECT status, run_at, created_at INTO v_status, v_run_at, v_created FROM jobs WHERE id = p_job;
    IF v_status <> 'QUEUED' OR v_run_at > p_now THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO v_running FROM (
        SELECT 1 FROM jobs WHERE tenant_id = v_tenant AND status IN ('RUNNING', 'SUBMITTED')
        LIMIT p_cap) AS running;
    v_free := p_cap - v_running;
    IF v_free > 0 AND v_free <= p_fifo_window THEN
        -- Older jobs that could start now have the first claim on the free slots (counted up
        -- to the number of free slots: only "are there at least that many" matters).
        SELECT count(*) INTO v_older FROM (
            SELECT 1 FROM jobs WHERE tenant_id = v_tenant AND status = 'QUEUED' AND id <> p_job
              AND created_at < v_created
              AND ((held_at IS NOT NULL AND published_at IS NULL) OR (held_at IS NULL AND run_at <= p_now))
            LIMIT v_free) AS older;
    ELSE
        v_older := 0;
    END IF;
    IF v_free <= 0 OR v_older >= v_free THEN
        UPDATE jobs SET held_at = coalesce(held_at, p_now), published_at = NULL
         WHERE id = p_job AND status = 'QUEUED';
        RETURN -1;
    END IF;
    UPDATE jobs SET status = 'RUNNING', updated_at = p_now, held_at = NULL,
                    lease_until = p_now + make_interval(secs => p_lease),
                    attempts = attempts + 1, started_at = coalesce(started_at, p_now)
     WHERE id = p_job AND status = 'QUEUED' AND run_at <= p_now
    RETURNING attempts INTO v_attempts;
    RETURN v_attempts;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(CLAIM)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP FUNCTION IF EXISTS visiongate_claim(varchar, integer, double precision, timestamptz, integer)')
