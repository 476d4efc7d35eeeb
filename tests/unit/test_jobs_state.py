"""The job state machine: transition rules, timing rules and the conditional updates."""

import datetime as dt

import pytest
from sqlalchemy import update

from core.jobs import claims, moves, states, sweeps, timing
from core.jobs.states import JobStatus as S
from core.models import Job, utcnow
from core.tenants import get_or_create_tenant


def test_transition_table_rejects_illegal_moves():
    states.check_transition([S.QUEUED], S.RUNNING)
    states.check_transition([S.RUNNING, S.SUBMITTED], S.COMPLETED)
    for src, dst in [(S.COMPLETED, S.RUNNING), (S.QUEUED, S.COMPLETED), (S.EXPIRED, S.QUEUED),
                     (S.ERROR, S.COMPLETED), (S.SUBMITTED, S.QUEUED)]:
        with pytest.raises(states.IllegalTransition):
            states.check_transition([src], dst)


def test_public_status_is_bria_dialect():
    assert {s: states.public_status(s.value) for s in S} == {
        S.QUEUED: "IN_PROGRESS", S.RUNNING: "IN_PROGRESS", S.SUBMITTED: "IN_PROGRESS",
        S.COMPLETED: "COMPLETED", S.ERROR: "ERROR", S.CANCELLED: "ERROR", S.EXPIRED: None}


def test_backoff_grows_and_is_capped():
    assert 0.8 <= timing.backoff(1, 1, 60) <= 1.2
    assert 3.2 <= timing.backoff(3, 1, 60) <= 4.8
    assert timing.backoff(30, 1, 60) <= 72
    assert timing.backoff(2, 1, 60, jitter=0) == 2


def test_poll_delay_tracks_elapsed_time():
    assert timing.next_poll_delay(0, 1, 15) == 1
    assert timing.next_poll_delay(50, 1, 15) == 5
    assert timing.next_poll_delay(1000, 1, 15) == 15


def _job(sessions, **kw) -> str:
    with sessions.begin() as s:
        tenant = get_or_create_tenant(s, "t")
        job = Job(tenant_id=tenant.id, provider="bria", operation="bria.generate_image",
                  params={}, sync=False, **kw)
        s.add(job)
        s.flush()
        return job.id


def test_claim_is_exclusive_and_respects_run_at(db):
    sessions, _ = db
    job_id = _job(sessions)
    with sessions.begin() as s:
        assert claims.claim_start(s, job_id, 30).status == "RUNNING"
    with sessions.begin() as s:
        assert claims.claim_start(s, job_id, 30) is None  # a duplicate message does nothing
    later = _job(sessions, run_at=utcnow() + dt.timedelta(seconds=60))
    with sessions.begin() as s:
        assert claims.claim_start(s, later, 30) is None


def test_finish_moves_only_active_jobs(db):
    sessions, _ = db
    job_id = _job(sessions)
    with sessions.begin() as s:
        claims.claim_start(s, job_id, 30)
        assert moves.mark_submitted(s, job_id, [{"id": "u1"}], 1)
        assert moves.complete(s, job_id, [{"key": "k"}], {"seed": 1}, 60)
        assert not moves.fail(s, job_id, "x", "late failure", 60)  # already final
        assert not moves.complete(s, job_id, [], {}, 60)
        job = s.get(Job, job_id)
        s.refresh(job)
        assert job.status == "COMPLETED" and job.expires_at > utcnow()


def test_requeue_refund_and_due_starts(db):
    sessions, _ = db
    job_id = _job(sessions)
    with sessions.begin() as s:
        claims.claim_start(s, job_id, 30)
        assert moves.requeue(s, job_id, 0, refund_attempt=True)
        job = s.get(Job, job_id)
        s.refresh(job)
        assert job.status == "QUEUED" and job.attempts == 0 and job.published_at is None
    with sessions.begin() as s:
        assert [d.id for d in sweeps.due_starts(s, 300, 10)] == [job_id]
    with sessions.begin() as s:  # now published: not due again until requeue_after passes
        assert sweeps.due_starts(s, 300, 10) == []
        s.execute(update(Job).values(published_at=utcnow() - dt.timedelta(seconds=301)))
    with sessions.begin() as s:
        assert [d.id for d in sweeps.due_starts(s, 300, 10)] == [job_id]


def test_due_polls_and_lost_leases(db):
    sessions, _ = db
    polling = _job(sessions, status="SUBMITTED", run_at=utcnow() - dt.timedelta(seconds=1))
    waiting = _job(sessions, status="SUBMITTED", run_at=utcnow() + dt.timedelta(seconds=60))
    lost = _job(sessions, status="RUNNING", lease_until=utcnow() - dt.timedelta(seconds=1), attempts=1)
    _job(sessions, status="RUNNING", lease_until=utcnow() + dt.timedelta(seconds=60))
    with sessions.begin() as s:
        assert [d.id for d in sweeps.due_polls(s, 30, 10)] == [polling]
    with sessions.begin() as s:
        assert sweeps.due_polls(s, 30, 10) == []  # leased by the first sweep
        assert sweeps.lost_starts(s, 10) == [(lost, 1, False)]
    assert waiting


def test_visibility(db):
    sessions, _ = db
    job_id = _job(sessions)
    with sessions() as s:
        job = s.get(Job, job_id)
        assert states.is_visible(job, job.tenant_id)
        assert not states.is_visible(job, "someone-else")
        job.expires_at = utcnow() - dt.timedelta(seconds=1)
        assert not states.is_visible(job, job.tenant_id)
        job.expires_at, job.status = None, "EXPIRED"
        assert not states.is_visible(job, job.tenant_id)


def test_a_move_says_whether_the_job_has_webhook_subscribers(db):
    """The move's RETURNING answers "does anyone subscribe?" so most jobs skip the lookup; a
    job's own webhook and an enabled endpoint of its tenant count, a disabled endpoint does not."""
    from core.models import JobWebhook, WebhookEndpoint, WebhookEvent

    sessions, _ = db

    def moved(job_id: str) -> moves.Moved:
        with sessions.begin() as s:
            return moves._move(s, job_id, (S.QUEUED,), S.RUNNING)

    plain = _job(sessions)
    assert moved(plain).hooked is False
    with sessions.begin() as s:
        assert moves.complete(s, plain, [], {}, 60)  # nobody subscribes: no event recorded
    own = _job(sessions)
    with sessions.begin() as s:
        s.add(JobWebhook(job_id=own, url="https://hooks.example/own", events=["job.completed"]))
    assert moved(own).hooked is True
    with sessions.begin() as s:
        tenant_id = s.get(Job, plain).tenant_id
        endpoint = WebhookEndpoint(tenant_id=tenant_id, url="https://hooks.example/all",
                                   events=["job.completed"], enabled=False)
        s.add(endpoint)
    assert moved(_job(sessions)).hooked is False  # disabled endpoint
    with sessions.begin() as s:
        s.get(WebhookEndpoint, endpoint.id).enabled = True
    subscribed = _job(sessions)
    result = moved(subscribed)
    assert result.hooked is True and result.tenant_id == tenant_id
    with sessions.begin() as s:  # the finishing move records the subscriber's event
        assert moves.complete(s, subscribed, [], {}, 60)
    with sessions() as s:
        recorded = {e.job_id for e in s.query(WebhookEvent).all()}
    assert subscribed in recorded and plain not in recorded
