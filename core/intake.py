"""Accepting a job: the one path every single-endpoint submission takes.

Validation has already happened (the operation's request model). A submission becomes a job
row, its credit reservation (metered tenants) and its webhook subscription, all in one
transaction; the start message is published after the commit, never before.

**Group commit.** Under load many requests arrive at once, and the cost of each is dominated by
its own transaction (a round trip per statement plus a commit) and its own broker publish.
``GroupWriter`` lets concurrent submissions share them: a request hands its job to the writer
and awaits it; the writer takes everything waiting, writes it in one transaction (one
multi-row INSERT, one credit UPDATE per tenant), commits once, publishes every start message
in one round trip, and answers each request. While it is busy, new requests queue up for the
next round, so batches grow with load and a lone request is written at once (no timer).

Credits stay exact: a tenant's reservations in a round are taken with one conditional UPDATE
(``credits >= total``); when the balance cannot cover them all, that tenant's jobs are reserved
one by one in arrival order, so each gets what a one-at-a-time path would have given it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import idempotency
from core.credits import InsufficientCredits
from core.jobs.states import JobStatus
from core.models import CreditEntry, Job, Tenant, new_id, utcnow
from core.tenants import Principal
from core.webhooks.outbox import subscribe_job
from core.webhooks.schemas import JobOptions
from providers.base import Operation

log = logging.getLogger(__name__)

# Publishes start messages for (job id, provider) pairs; raises if the broker is unreachable.
PublishMany = Callable[[list[tuple[str, str]]], Awaitable[None]]


@dataclass(frozen=True)
class Accepted:
    job_id: str
    provider: str
    credit_cost: int
    credits_remaining: int | None  # None: unmetered tenant

    def receipt(self) -> dict[str, Any]:
        return {"credit_cost": self.credit_cost, "credits_remaining": self.credits_remaining}


@dataclass(frozen=True)
class KeyClaim:
    """The ``Idempotency-Key`` claim a request holds: its job is linked to it in the job's own
    transaction (core/idempotency.py ``link``)."""
    tenant_id: str
    key: str
    token: str


@dataclass
class _Pending:
    row: dict[str, Any]
    cost: int
    metered: bool
    options: JobOptions | None
    base_url: str
    future: asyncio.Future = field(repr=False)
    key: KeyClaim | None = None


def job_row(principal: Principal, op: Operation, params: dict[str, Any], *, sync: bool,
            cost: int, retention_seconds: int | None = None) -> dict[str, Any]:
    """The job's row; ``retention_seconds``: what the request asked for (None: the server's)."""
    now = utcnow()
    return dict(id=new_id(), tenant_id=principal.tenant_id, provider=op.provider, operation=op.name,
                params=params, sync=sync, status=JobStatus.QUEUED.value, run_at=now,
                published_at=now, created_at=now, updated_at=now, attempts=0, polls=0,
                poll_failures=0, credit_cost=cost, retention_seconds=retention_seconds)


class GroupWriter:
    """Writes concurrent submissions in shared transactions (see the module docstring)."""

    def __init__(self, sessions: async_sessionmaker, publish_many: PublishMany, *,
                 max_batch: int = 500):
        self._sessions = sessions
        self._publish_many = publish_many
        self._max_batch = max_batch
        self._waiting: list[_Pending] = []
        self._running: asyncio.Task | None = None
        self.rounds = 0  # observability: transactions written (tests, /metrics later)

    async def submit(self, principal: Principal, op: Operation, params: dict[str, Any], *,
                     sync: bool, options: JobOptions | None = None, base_url: str = "",
                     key: KeyClaim | None = None) -> Accepted:
        """Persist and publish one job; raises ``InsufficientCredits`` when the tenant cannot
        pay for it (nothing is written for it then). ``key``: the request's idempotency claim,
        linked to the job in the same transaction."""
        metered = not principal.limits.unmetered
        cost = op.cost(params) if metered else 0
        retention = options.retention_seconds if options is not None else None
        pending = _Pending(job_row(principal, op, params, sync=sync, cost=cost, retention_seconds=retention),
                           cost, metered,
                           options if options is not None and options.webhook_url else None,
                           base_url, asyncio.get_running_loop().create_future(), key)
        self._waiting.append(pending)
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        # shield: a client that disconnects must not cancel a round other requests share.
        return await asyncio.shield(pending.future)

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:self._max_batch], self._waiting[self._max_batch:]
            try:
                await self._write(batch)
            except BaseException as exc:  # every request of the round sees the failure
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise

    async def _write(self, batch: list[_Pending]) -> None:
        self.rounds += 1
        answers: dict[int, Accepted | Exception] = {}
        async with self._sessions() as session:
            accepted = await self._reserve(session, batch, answers)
            if accepted:
                await session.execute(insert(Job), [p.row for p in accepted])
                ledger = [dict(tenant_id=p.row["tenant_id"], job_id=p.row["id"], kind="reserve",
                               amount=p.cost, balance_after=answers[id(p)].credits_remaining,
                               note="", created_at=p.row["created_at"])
                          for p in accepted if p.metered]
                if ledger:
                    await session.execute(insert(CreditEntry), ledger)
                for p in accepted:
                    if p.options is not None:
                        subscribe_job(session, p.row["id"], p.options, p.base_url)
                    if p.key is not None:
                        await session.execute(idempotency.link(p.key.tenant_id, p.key.key, p.key.token,
                                                               p.row["id"]))
                await session.commit()
        published = accepted
        if published:
            try:
                await self._publish_many([(p.row["id"], p.row["provider"]) for p in published])
            except Exception:  # broker down: the sweeper publishes them once it is back
                log.warning("publish of %d job(s) failed; left to the sweeper", len(published), exc_info=True)
                async with self._sessions() as session:
                    await session.execute(update(Job).where(Job.id.in_([p.row["id"] for p in published]))
                                          .values(published_at=None))
                    await session.commit()
        for p in batch:
            answer = answers[id(p)]
            if p.future.done():
                continue
            if isinstance(answer, Exception):
                p.future.set_exception(answer)
            else:
                p.future.set_result(answer)

    async def _reserve(self, session: AsyncSession, batch: list[_Pending],
                       answers: dict[int, Accepted | Exception]) -> list[_Pending]:
        """Take the credits of the round's metered jobs; returns the jobs to write, in order."""
        by_tenant: dict[str, list[_Pending]] = {}
        for p in batch:
            if p.metered and p.cost > 0:
                by_tenant.setdefault(p.row["tenant_id"], []).append(p)
            else:
                answers[id(p)] = Accepted(p.row["id"], p.row["provider"], p.cost,
                                          None if not p.metered else await _balance(session, p))
        for tenant_id, items in by_tenant.items():
            total = sum(p.cost for p in items)
            balance = await session.scalar(
                update(Tenant).where(Tenant.id == tenant_id, Tenant.credits >= total)
                .values(credits=Tenant.credits - total).returning(Tenant.credits))
            if balance is not None:
                left = int(balance) + total
                for p in items:  # the balance after each, as if reserved one at a time
                    left -= p.cost
                    answers[id(p)] = Accepted(p.row["id"], p.row["provider"], p.cost, left)
                continue
            for p in items:  # not enough for all: in arrival order, each as far as it goes
                balance = await session.scalar(
                    update(Tenant).where(Tenant.id == tenant_id, Tenant.credits >= p.cost)
                    .values(credits=Tenant.credits - p.cost).returning(Tenant.credits))
                if balance is None:
                    available = await session.scalar(select(Tenant.credits).where(Tenant.id == tenant_id))
                    answers[id(p)] = InsufficientCredits(p.cost, int(available or 0))
                else:
                    answers[id(p)] = Accepted(p.row["id"], p.row["provider"], p.cost, int(balance))
        return [p for p in batch if isinstance(answers[id(p)], Accepted)]


async def _balance(session: AsyncSession, p: _Pending) -> int:
    """A metered job that costs nothing: report the balance as it stands."""
    return int(await session.scalar(select(Tenant.credits).where(Tenant.id == p.row["tenant_id"])) or 0)
