"""Claiming a job start on PostgreSQL (``visiongate_claim``, one server-side call): the tenant's
concurrency cap holds, older startable jobs have the first claim on free slots, and with slots
to spare nobody waits."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select, text

from core.jobs import claims, sweeps
from core.models import Job, utcnow
from core.tenants import get_or_create_tenant


# No worker consumes this provider's queue: the running system's sweeper may publish these jobs
# (due, or released from the waiting line under the tenant's real plan cap), but nothing else
# claims them, so the claims below are the only ones.
PROVIDER = "claim-test"


@pytest.fixture(autouse=True)
def _remove_claim_test_jobs():
    """Nothing runs these jobs to an end, and later tests wait for queued and running jobs to
    settle: take them away after each test."""
    yield
    from core.db import session_factory

    with session_factory().begin() as s:
        s.execute(text("DELETE FROM jobs WHERE provider = :p"), {"p": PROVIDER})


def _jobs(sessions, n: int) -> list[str]:
    base = utcnow() - dt.timedelta(seconds=10)
    ids = []
    with sessions.begin() as s:
        tenant = get_or_create_tenant(s, f"claim-{uuid.uuid4().hex[:8]}", "pro")
        for i in range(n):
            job = Job(tenant_id=tenant.id, provider=PROVIDER, operation="bria.generate_image",
                      params={"prompt": f"job {i}"}, sync=False, status="QUEUED",
                      created_at=base + dt.timedelta(milliseconds=i), run_at=base)
            s.add(job)
            s.flush()
            ids.append(job.id)
    return ids


def _state(sessions, job_id: str) -> tuple[str, bool]:
    with sessions() as s:
        status, held_at = s.execute(select(Job.status, Job.held_at).where(Job.id == job_id)).one()
    return status, held_at is not None


def test_claim_runs_server_side_and_keeps_cap_and_order(system_env):
    from core.db import session_factory

    sessions = session_factory()
    with sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM pg_proc WHERE proname = 'visiongate_claim'")) == 1
    ids = _jobs(sessions, 4)
    cap_two = lambda _tenant: 2  # noqa: E731

    # Two older jobs could start now: they have the two slots, the third waits (held).
    assert claims.claim(sessions, ids[2], 30, cap_two) is None
    assert _state(sessions, ids[2]) == ("QUEUED", True)
    first = claims.claim(sessions, ids[0], 30, cap_two)
    assert first is not None and first.attempts == 1 and first.params == {"prompt": "job 0"}
    assert first.provider == PROVIDER and first.operation == "bria.generate_image"
    assert claims.claim(sessions, ids[1], 30, cap_two) is not None
    assert claims.claim(sessions, ids[0], 30, cap_two) is None  # a duplicate message: nothing
    assert claims.claim(sessions, ids[3], 30, cap_two) is None  # two running: the cap
    assert [_state(sessions, i)[0] for i in ids] == ["RUNNING", "RUNNING", "QUEUED", "QUEUED"]

    # With slots to spare the younger job starts although an older one is waiting for its
    # release: 2 running + 1 older waiting < 10.
    assert claims.claim(sessions, ids[3], 30, lambda _tenant: 10) is not None
    assert _state(sessions, ids[3]) == ("RUNNING", False)


def test_claim_leaves_jobs_not_due_alone(system_env):
    from core.db import session_factory

    sessions = session_factory()
    [job_id] = _jobs(sessions, 1)
    with sessions.begin() as s:
        s.execute(text("UPDATE jobs SET run_at = now() + interval '1 minute' WHERE id = :id"), {"id": job_id})
    assert claims.claim(sessions, job_id, 30, lambda _tenant: 5) is None
    assert _state(sessions, job_id) == ("QUEUED", False)


def test_waiting_line_query_uses_its_partial_index_in_a_generic_plan(system_env):
    """``release_held`` runs after every job start; psycopg prepares a statement after five
    executions and PostgreSQL may then plan it once for any parameters. Such a generic plan can
    use the waiting line's partial indexes (``WHERE status = 'QUEUED' …``) only if the query
    states the status literally; with a bound status it reads every queued job of the tenant."""
    from sqlalchemy.dialects import postgresql

    from core.db import session_factory

    sql = str(claims._PUBLISHABLE.compile(dialect=postgresql.dialect()))
    assert "status = 'QUEUED'" in sql
    params = {"p_tenant": "some-tenant", "p_stale": utcnow(), "p_n": 1}
    with session_factory()() as s:
        s.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        prepared = sql.replace("%(p_tenant)s", "$1").replace("%(p_stale)s", "$2").replace("%(p_n)s", "$3")
        s.execute(text(f"PREPARE held_line (varchar, timestamptz, int) AS {prepared}"))
        plan = "\n".join(s.scalars(text("EXPLAIN EXECUTE held_line('x', now(), 1)")))
        s.execute(text("DEALLOCATE held_line"))
        # one of the waiting line's partial indexes (which one depends on the table's statistics)
        assert "ix_jobs_held_" in plan and "ix_jobs_tenant_status" not in plan, plan
        assert "Seq Scan" not in plan, plan
        # and it still answers: the oldest held jobs first
        assert claims._publishable(s, params["p_tenant"], params["p_stale"], 1) == []


def test_concurrent_releases_publish_each_held_job_once(system_env):
    """Two callers (two workers' starts, or a start and the sweeper) read the same waiting line
    at once: the second waits for the first's row locks and must then skip what it released,
    not publish those jobs a second time."""
    import threading

    from core.db import session_factory

    sessions = session_factory()
    ids = _jobs(sessions, 6)
    with sessions.begin() as s:
        tenant_id = s.scalar(select(Job.tenant_id).where(Job.id == ids[0]))
        # The running system's sweeper releases waiting lines too; with no slots for this
        # tenant (its own limits) it leaves this line to the two callers below.
        s.execute(text("UPDATE tenants SET limits = CAST(:l AS json) WHERE id = :t"),
                  {"l": '{"concurrency": 0}', "t": tenant_id})
        s.execute(text("UPDATE jobs SET held_at = now() WHERE id = ANY(:ids)"), {"ids": ids})
    wide = lambda _tenant: 100  # noqa: E731 - the callers' own view: slots for all of them

    first = sessions()
    first.begin()
    second: list[str] = []
    waiting = threading.Thread(daemon=True, target=lambda: second.extend(
        d.id for d in _release_in_own_transaction(sessions, wide, tenant_id)))
    try:
        released_first = [d.id for d in claims.release_held(first, wide, 100, tenant_id)]
        assert sorted(released_first) == sorted(ids)  # locked, not committed yet
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive()  # blocked on the first caller's row locks
        first.commit()
    finally:  # a failed check must not leave the rows locked (later tests delete them)
        first.close()
    waiting.join(10.0)
    assert not waiting.is_alive()
    assert second == []  # everything it had read was released by the first caller meanwhile


def _release_in_own_transaction(sessions, concurrency, tenant_id: str) -> list[sweeps.Due]:
    with sessions.begin() as s:
        return claims.release_held(s, concurrency, 100, tenant_id)
