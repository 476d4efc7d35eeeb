"""Credits ledger: reserve at submit (the intake's path), capture on COMPLETED, release on
ERROR, and the balance always equals what the ledger says."""

import asyncio

import pytest
from sqlalchemy import func, select

from core import credits
from core.jobs import claims, moves
from core.intake import GroupWriter
from core.models import CreditEntry, Job, Tenant
from core.plans import DEFAULT_PLANS
from core.tenants import Principal, get_or_create_tenant
from providers.registry import OPERATIONS

GEN = OPERATIONS["bria.generate_image"]


def ledger_balance(session, tenant_id) -> int:
    rows = dict(session.execute(select(CreditEntry.kind, func.sum(CreditEntry.amount))
                                .where(CreditEntry.tenant_id == tenant_id).group_by(CreditEntry.kind)).all())
    return rows.get("grant", 0) - rows.get("reserve", 0) + rows.get("release", 0)


async def _no_broker(_items) -> None:
    pass


def submit(async_sessions, tenant_id, cost):
    """One request through the intake (a job of ``cost`` images costs ``cost`` credits)."""
    who = Principal(tenant_id, "a", "free", "k", DEFAULT_PLANS["free"])

    async def go():
        accepted = await GroupWriter(async_sessions, _no_broker).submit(
            who, GEN, {"prompt": "a fox", "num_results": cost}, sync=False)
        return accepted.job_id, accepted.credits_remaining

    return asyncio.run(go())


def test_new_tenant_gets_its_plans_initial_credits(db):
    sessions, _ = db
    with sessions.begin() as s:
        t = get_or_create_tenant(s, "a", "starter")
        assert t.credits == DEFAULT_PLANS["starter"].initial_credits
        assert ledger_balance(s, t.id) == t.credits


def test_reserve_capture_release(db):
    sessions, async_sessions = db
    with sessions.begin() as s:
        tenant_id = get_or_create_tenant(s, "a", "free").id  # 100 credits
    done, left = submit(async_sessions, tenant_id, 4)
    assert left == 96
    failed, left = submit(async_sessions, tenant_id, 10)
    assert left == 86
    with sessions.begin() as s:
        for job_id in (done, failed):
            claims.claim_start(s, job_id, 30)
        assert moves.complete(s, done, [], {}, 60)
        assert moves.fail(s, failed, "x", "upstream said no", 60)
        assert not moves.fail(s, failed, "x", "again", 60)  # settled once only
    with sessions() as s:
        balance = s.get(Tenant, tenant_id).credits
        assert balance == 96  # 4 captured, 10 released
        assert ledger_balance(s, tenant_id) == balance
        kinds = s.execute(select(CreditEntry.job_id, CreditEntry.kind).where(CreditEntry.job_id.is_not(None))).all()
        assert sorted(kinds) == sorted([(done, "reserve"), (done, "capture"), (failed, "reserve"), (failed, "release")])


def test_insufficient_credits_reserves_nothing(db):
    sessions, async_sessions = db
    with sessions.begin() as s:
        tenant_id = get_or_create_tenant(s, "a", "free").id
        credits.grant(s, tenant_id, -99)  # 1 left
    with pytest.raises(credits.InsufficientCredits) as info:
        submit(async_sessions, tenant_id, 2)
    assert (info.value.cost, info.value.available) == (2, 1)
    with sessions() as s:
        assert s.get(Tenant, tenant_id).credits == 1
        assert s.scalar(select(func.count()).select_from(Job)) == 0
        assert ledger_balance(s, tenant_id) == 1
