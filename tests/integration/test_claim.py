"""Claiming a job start on PostgreSQL (``visiongate_claim``, one server-side call): the tenant's
concurrency cap holds, older startable jobs have the first claim on free slots, and with slots
to spare nobody waits."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select, text

from core import jobs
from core.models import Job, utcnow
from core.tenants import get_or_create_tenant


def _jobs(sessions, n: int) -> list[str]:
    base = utcnow() - dt.timedelta(seconds=10)
    ids = []
    with sessions.begin() as s:
        tenant = get_or_create_tenant(s, f"claim-{uuid.uuid4().hex[:8]}", "pro")
        for i in range(n):
            job = Job(tenant_id=tenant.id, provider="bria", operation="bria.generate_image",
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
    assert jobs.claim(sessions, ids[2], 30, cap_two) is None
    assert _state(sessions, ids[2]) == ("QUEUED", True)
    first = jobs.claim(sessions, ids[0], 30, cap_two)
    assert first is not None and first.attempts == 1 and first.params == {"prompt": "job 0"}
    assert first.provider == "bria" and first.operation == "bria.generate_image"
    assert jobs.claim(sessions, ids[1], 30, cap_two) is not None
    assert jobs.claim(sessions, ids[0], 30, cap_two) is None  # a duplicate message: nothing
    assert jobs.claim(sessions, ids[3], 30, cap_two) is None  # two running: the cap
    assert [_state(sessions, i)[0] for i in ids] == ["RUNNING", "RUNNING", "QUEUED", "QUEUED"]

    # With slots to spare the younger job starts although an older one is waiting for its
    # release: 2 running + 1 older waiting < 10.
    assert jobs.claim(sessions, ids[3], 30, lambda _tenant: 10) is not None
    assert _state(sessions, ids[3]) == ("RUNNING", False)


def test_claim_leaves_jobs_not_due_alone(system_env):
    from core.db import session_factory

    sessions = session_factory()
    [job_id] = _jobs(sessions, 1)
    with sessions.begin() as s:
        s.execute(text("UPDATE jobs SET run_at = now() + interval '1 minute' WHERE id = :id"), {"id": job_id})
    assert jobs.claim(sessions, job_id, 30, lambda _tenant: 5) is None
    assert _state(sessions, job_id) == ("QUEUED", False)
