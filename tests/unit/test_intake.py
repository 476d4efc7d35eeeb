"""Group commit at intake: concurrent submissions share a transaction and a publish, and each
still gets exactly what a one-at-a-time path would have given it (job, credits, answer)."""

import asyncio

from sqlalchemy import func, select, update

from core.credits import InsufficientCredits
from core.intake import GroupWriter
from core.models import CreditEntry, Job, JobWebhook, Tenant
from core.plans import DEFAULT_PLANS
from core.tenants import Principal, get_or_create_tenant
from core.webhooks.schemas import JobOptions
from providers.registry import OPERATIONS

GEN = OPERATIONS["bria.generate_image"]


def principal(sessions, name: str, plan: str, credits: int | None = None) -> Principal:
    with sessions.begin() as s:
        tenant = get_or_create_tenant(s, name, plan)
        if credits is not None:
            s.execute(update(Tenant).where(Tenant.id == tenant.id).values(credits=credits))
        return Principal(tenant.id, name, plan, "k", DEFAULT_PLANS[plan])


class Broker:
    def __init__(self, fail: bool = False):
        self.fail = fail
        self.calls: list[list[tuple[str, str]]] = []

    async def __call__(self, items):
        await asyncio.sleep(0.01)  # a round trip: lets later requests gather meanwhile
        self.calls.append(items)
        if self.fail:
            raise ConnectionError("broker down")


def run_many(writer: GroupWriter, who: Principal, n: int, **params):
    async def go():
        tasks = [writer.submit(who, GEN, {"prompt": f"p{i}", "num_results": 1, **params}, sync=False)
                 for i in range(n)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    return asyncio.run(go())


def test_concurrent_submissions_share_rounds_and_publishes(db):
    sessions, asessions = db
    who = principal(sessions, "busy", "enterprise")
    broker = Broker()
    writer = GroupWriter(asessions, broker)
    answers = run_many(writer, who, 40)
    ids = [a.job_id for a in answers]
    assert len(set(ids)) == 40 and all(a.credits_remaining is None for a in answers)
    assert writer.rounds < 40 and len(broker.calls) == writer.rounds  # one publish per round
    assert sorted(j for call in broker.calls for j, _ in call) == sorted(ids)
    with sessions() as s:
        rows = s.execute(select(Job.id, Job.status, Job.params["prompt"].as_string())).all()
    assert sorted(r[0] for r in rows) == sorted(ids) and {r[1] for r in rows} == {"QUEUED"}
    assert sorted(r[2] for r in rows) == sorted(f"p{i}" for i in range(40))


def test_credits_run_out_in_arrival_order(db):
    sessions, asessions = db
    who = principal(sessions, "penny", "free", credits=5)
    answers = run_many(GroupWriter(asessions, Broker()), who, 4, num_results=2)  # 2 credits each
    ok = [a for a in answers if not isinstance(a, Exception)]
    refused = [a for a in answers if isinstance(a, InsufficientCredits)]
    assert [a.credits_remaining for a in ok] == [3, 1] and [a.credit_cost for a in ok] == [2, 2]
    assert answers[2:] == refused and all(r.available == 1 and r.cost == 2 for r in refused)
    with sessions() as s:
        assert s.scalar(select(Tenant.credits).where(Tenant.id == who.tenant_id)) == 1
        assert s.scalar(select(func.count()).select_from(Job)) == 2  # the refused left nothing
        ledger = s.execute(select(CreditEntry.kind, CreditEntry.amount, CreditEntry.balance_after)
                           .where(CreditEntry.job_id.is_not(None)).order_by(CreditEntry.balance_after.desc())).all()
    assert [tuple(r) for r in ledger] == [("reserve", 2, 3), ("reserve", 2, 1)]


def test_enough_credits_for_the_whole_round(db):
    sessions, asessions = db
    who = principal(sessions, "rich", "starter", credits=100)
    answers = run_many(GroupWriter(asessions, Broker()), who, 10)
    assert sorted(a.credits_remaining for a in answers) == list(range(90, 100))
    with sessions() as s:
        assert s.scalar(select(Tenant.credits).where(Tenant.id == who.tenant_id)) == 90
        assert s.scalar(select(func.count()).select_from(CreditEntry).where(CreditEntry.kind == "reserve")) == 10


def test_broker_down_leaves_jobs_for_the_sweeper(db):
    sessions, asessions = db
    who = principal(sessions, "calm", "pro")
    answers = run_many(GroupWriter(asessions, Broker(fail=True)), who, 3)
    assert all(a.job_id for a in answers)  # accepted all the same: the row is the truth
    with sessions() as s:
        assert s.scalars(select(Job.published_at)).all() == [None, None, None]


def test_webhook_subscription_is_written_with_its_job(db):
    sessions, asessions = db
    who = principal(sessions, "hooked", "pro")
    writer = GroupWriter(asessions, Broker())
    options = JobOptions.model_validate({"webhook_url": "https://example.com/hook"})

    async def go():
        return await writer.submit(who, GEN, {"prompt": "hook me", "num_results": 1}, sync=False,
                                   options=options, base_url="http://gw")

    accepted = asyncio.run(go())
    with sessions() as s:
        hook = s.scalar(select(JobWebhook).where(JobWebhook.job_id == accepted.job_id))
    assert hook.url == "https://example.com/hook" and hook.base_url == "http://gw"


def test_database_failure_reaches_every_request_of_the_round(db, tmp_path):
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    sessions, _ = db
    who = principal(sessions, "ghost", "pro")
    broken = async_sessionmaker(create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db"))
    broker = Broker()
    answers = run_many(GroupWriter(broken, broker), who, 3)
    assert all(isinstance(a, Exception) and not isinstance(a, InsufficientCredits) for a in answers)
    assert broker.calls == []  # nothing published for jobs that were never written
