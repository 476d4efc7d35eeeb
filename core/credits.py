"""Credits: a ledger in the database, settled in the same transaction as the job's move.

* submit  → a ``reserve`` row (balance − cost, only if enough; else the API answers 406, no job):
  written by the intake (core/intake.py) for single requests, by ``reserve_many`` for batches
* COMPLETED → ``capture`` (the reservation becomes a charge; balance unchanged)
* ERROR / cancel → ``release`` (balance + cost): a failed job never costs the tenant
* operator → ``grant``

``tenants.credits`` is the available balance; every change to it writes a ledger row in the
same transaction, so a crash between steps can neither create nor lose credits, and
``SUM(grant) − SUM(reserve) + SUM(release)`` always equals the balance.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.jobs.states import ACTIVE, values
from core.models import CreditEntry, Job, Tenant, utcnow


class InsufficientCredits(Exception):
    def __init__(self, cost: int, available: int):
        super().__init__(f"this request costs {cost} credit(s); {available} available")
        self.cost = cost
        self.available = available


_TENANTS = Tenant.__table__
# settle() runs in every metered job's final transaction: its statements are built once.
_BALANCE = select(_TENANTS.c.credits).where(_TENANTS.c.id == bindparam("t"))
_GIVE_BACK = (update(_TENANTS).where(_TENANTS.c.id == bindparam("t"))
              .values(credits=_TENANTS.c.credits + bindparam("cost")).returning(_TENANTS.c.credits))
_LEDGER_ENTRY = insert(CreditEntry.__table__)


def settle(session: Session, tenant_id: str, job_id: str, cost: int, *, captured: bool) -> None:
    """Capture (COMPLETED) or release (ERROR, cancel) a job's reservation. Called by the one
    transaction that moved the job to its final state, so it runs once per job."""
    if cost <= 0:
        return
    balance = session.scalar(_BALANCE if captured else _GIVE_BACK, {"t": tenant_id, "cost": cost})
    session.execute(_LEDGER_ENTRY, {"tenant_id": tenant_id, "job_id": job_id, "amount": cost,
                                    "kind": "capture" if captured else "release",
                                    "balance_after": balance, "note": "", "created_at": utcnow()})


def grant(session: Session, tenant_id: str, amount: int, note: str = "") -> int:
    balance = session.scalar(
        update(Tenant).where(Tenant.id == tenant_id)
        .values(credits=Tenant.credits + amount).returning(Tenant.credits))
    session.execute(insert(CreditEntry).values(
        tenant_id=tenant_id, job_id=None, kind="grant", amount=amount, balance_after=balance,
        note=note[:200], created_at=utcnow()))
    return int(balance)


async def reserved(session: AsyncSession, tenant_id: str) -> int:
    """Credits held by unfinished jobs."""
    value = await session.scalar(
        select(func.coalesce(func.sum(Job.credit_cost), 0))
        .where(Job.tenant_id == tenant_id, Job.status.in_(values(ACTIVE))))
    return int(value or 0)


# --------------------------------------------------------------------------- bulk (batches)
def reserve_many(session: Session, tenant_id: str, items: list[tuple[str, int]], note: str = "") -> int:
    """Reserve the credits of many jobs at once (a batch): one conditional balance update for
    the total, then one ledger row per job, written in bulk. All or nothing: raises
    ``InsufficientCredits`` (and changes nothing) when the total is not available. Returns the
    balance left."""
    total = sum(cost for _job_id, cost in items)
    balance = session.scalar(
        update(Tenant).where(Tenant.id == tenant_id, Tenant.credits >= total)
        .values(credits=Tenant.credits - total).returning(Tenant.credits))
    if balance is None:
        available = session.scalar(select(Tenant.credits).where(Tenant.id == tenant_id))
        raise InsufficientCredits(total, int(available or 0))
    _ledger_rows(session, tenant_id, items, "reserve", int(balance) + total, -1, note)
    return int(balance)


def release_many(session: Session, tenant_id: str, items: list[tuple[str, int]], note: str = "") -> int:
    """Give back the reservations of many jobs that ended without running (batch cancel), in
    the transaction that moved them. Returns the new balance."""
    total = sum(cost for _job_id, cost in items if cost > 0)
    if total <= 0:
        return int(session.scalar(select(Tenant.credits).where(Tenant.id == tenant_id)) or 0)
    balance = session.scalar(
        update(Tenant).where(Tenant.id == tenant_id)
        .values(credits=Tenant.credits + total).returning(Tenant.credits))
    _ledger_rows(session, tenant_id, items, "release", int(balance) - total, +1, note)
    return int(balance)


def _ledger_rows(session: Session, tenant_id: str, items: list[tuple[str, int]], kind: str,
                 start: int, sign: int, note: str, chunk: int = 2000) -> None:
    """One ledger row per job with the running balance, as if the moves happened one by one."""
    now = utcnow()
    balance, rows = start, []
    for job_id, cost in items:
        if cost <= 0:
            continue
        balance += sign * cost
        rows.append({"tenant_id": tenant_id, "job_id": job_id, "kind": kind, "amount": cost,
                     "balance_after": balance, "note": note[:200], "created_at": now})
    for i in range(0, len(rows), chunk):
        session.execute(insert(CreditEntry), rows[i:i + chunk])
