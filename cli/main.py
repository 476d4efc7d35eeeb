"""``visiongate``: run the system, manage tenants and API keys, migrate the database.

    visiongate run                      # embedded: API + worker + beat + simulator, one command
    visiongate keys create --tenant acme --plan starter
    visiongate keys list [--tenant acme]
    visiongate keys revoke vg_AbCdEfG
    visiongate migrate
    visiongate api | worker | beat | simulator   # one component (production / compose)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import httpx
from pydantic import ValidationError
from sqlalchemy import select

from core.db import migrate, session_factory
from core.models import ApiKey, Tenant
from core.settings import ConfigurationError, Settings, ensure_dirs, get_settings
from core import credits
from core.tenants import PLANS, create_key, generate_key, get_or_create_tenant, revoke_key, set_limits, set_plan
from cli.supervise import Child, Supervisor
from workers.upstreams import upstreams, uses_simulator

DEV_TENANT = "dev"


# --------------------------------------------------------------------------- keys
def cmd_keys_create(args: argparse.Namespace) -> int:
    settings = get_settings()
    with session_factory().begin() as session:
        tenant = get_or_create_tenant(session, args.tenant, args.plan, settings.plan_grid)
        row, key = create_key(session, settings.secret_key, tenant, name=args.name or "")
        print(f"tenant: {tenant.name} (plan {tenant.plan})\nkey id: {row.id}\napi key: {key}")
    print("Store the key now: only its hash is kept.", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    with session_factory()() as session:
        query = select(ApiKey, Tenant).join(Tenant, Tenant.id == ApiKey.tenant_id).order_by(ApiKey.created_at)
        if args.tenant:
            query = query.where(Tenant.name == args.tenant)
        for key, tenant in session.execute(query):
            state = "revoked" if key.revoked_at else "active"
            print(f"{key.id}  {key.prefix}…  {tenant.name:<20} {tenant.plan:<10} {state:<8} {key.name}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    with session_factory().begin() as session:
        count = revoke_key(session, args.key)
    print(f"revoked {count} key(s)")
    return 0 if count else 1


def cmd_tenants_list(_args: argparse.Namespace) -> int:
    with session_factory()() as session:
        for tenant in session.scalars(select(Tenant).order_by(Tenant.name)):
            print(f"{tenant.id}  {tenant.name:<20} {tenant.plan:<10} credits {tenant.credits:<8} "
                  f"limits {tenant.limits or '-'}")
    return 0


def _tenant_command(action) -> int:  # noqa: ANN001 - callable(session) -> str
    try:
        with session_factory().begin() as session:
            print(action(session))
    except (LookupError, ValueError) as exc:
        print(f"visiongate: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_tenants_set_plan(args: argparse.Namespace) -> int:
    grid = get_settings().plan_grid
    return _tenant_command(
        lambda s: f"{set_plan(s, args.tenant, args.plan, grid).name}: plan {args.plan} ({grid[args.plan]})")


def cmd_tenants_set_limits(args: argparse.Namespace) -> int:
    values = {k: v for k, v in (("rpm", args.rpm), ("status_rpm", args.status_rpm),
                                ("concurrency", args.concurrency), ("unmetered", args.unmetered))
              if v is not None}
    return _tenant_command(lambda s: f"{args.tenant}: limits {set_limits(s, args.tenant, values).limits}")


def cmd_credits_add(args: argparse.Namespace) -> int:
    def add(session) -> str:  # noqa: ANN001
        tenant = session.scalar(select(Tenant).where(Tenant.name == args.tenant))
        if tenant is None:
            raise LookupError(f"no tenant called {args.tenant!r}")
        balance = credits.grant(session, tenant.id, args.amount, args.note or "added by operator")
        return f"{tenant.name}: {args.amount:+d} credits, {balance} available"

    return _tenant_command(add)


def cmd_migrate(_args: argparse.Namespace) -> int:
    migrate()
    print("database is at the newest revision")
    return 0


# --------------------------------------------------------------------------- processes
def worker_processes() -> int:
    """``visiongate worker`` runs this many Celery worker processes (each one Python process,
    so at most one core's worth of CPU): VISIONGATE_WORKER_PROCESSES, default one per core."""
    value = os.environ.get("VISIONGATE_WORKER_PROCESSES", "").strip()
    return max(1, int(value)) if value else max(1, os.cpu_count() or 1)


def component_command(name: str, settings: Settings, index: int | None = None) -> list[str]:
    py = sys.executable
    if name == "api":
        return [py, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
                os.environ.get("VISIONGATE_HOST", "127.0.0.1"), "--port",
                os.environ.get("VISIONGATE_PORT", "8000"), "--no-access-log",
                "--workers", str(settings.api_processes)]
    if name == "worker":
        from workers.app import worker_queues

        queues = ",".join(worker_queues())
        return [py, "-m", "celery", "-A", "workers.app:celery_app", "worker", "-Q", queues,
                "--pool", os.environ.get("VISIONGATE_WORKER_POOL", "threads"),
                "--concurrency", os.environ.get("VISIONGATE_WORKER_CONCURRENCY", "8"),
                "--loglevel", os.environ.get("VISIONGATE_LOG_LEVEL", "INFO"), "--without-gossip",
                "--without-mingle", "--without-heartbeat"] + (
                    ["-n", f"worker{index}@%h"] if index is not None else [])
    if name == "beat":
        # workers/beat.py: several may run; one leads, the others stand by
        return [py, "-m", "celery", "-A", "workers.app:celery_app", "beat", "--loglevel", "WARNING"]
    if name == "simulator":
        return [py, "-m", "providers.simulator", "--host", settings.simulator_host,
                "--port", str(settings.simulator_port)]
    raise ValueError(name)


def cmd_component(args: argparse.Namespace) -> int:
    settings = get_settings()
    ensure_dirs(settings)
    if args.component == "worker":  # supervised: a worker process that exits is restarted
        n = args.processes or worker_processes()
        return _supervise([component_command("worker", settings, i + 1 if n > 1 else None) for i in range(n)])
    cmd = component_command(args.component, settings)
    os.execv(cmd[0], cmd)
    return 1  # not reached


def _supervise(commands: list[list[str]]) -> int:
    """Run the commands side by side, restarting any that exits (cli/supervise.py), until
    SIGTERM/SIGINT, which is passed on to all of them."""
    return Supervisor([Child(f"worker process {i + 1}", cmd) for i, cmd in enumerate(commands)]).run()


def dev_key(settings: Settings) -> str:
    """The development key: VISIONGATE_DEV_API_KEY, or one made once and kept in the data dir."""
    if settings.dev_api_key:
        key = settings.dev_api_key
    else:
        path = settings.data_path / "dev-api-key"
        if path.exists():
            key = path.read_text().strip()
        else:
            key = generate_key()
            path.write_text(key + "\n")
            path.chmod(0o600)
    with session_factory().begin() as session:
        tenant = get_or_create_tenant(session, DEV_TENANT, "enterprise")
        create_key(session, settings.secret_key, tenant, name="development", key=key)
    return key


def cmd_run(args: argparse.Namespace) -> int:
    settings = get_settings()
    ensure_dirs(settings)
    migrate()
    key = dev_key(settings)
    names = ["api", "worker", "beat"]
    if uses_simulator():
        names.insert(0, "simulator")
    logs = settings.data_path / "logs"
    logs.mkdir(exist_ok=True)
    children = [Child(name, component_command(name, settings),
                      stdout=None if args.verbose else open(logs / f"{name}.log", "ab"))
                for name in names]
    supervisor = Supervisor(children)
    supervisor.start()
    procs = {c.name: c.proc for c in children}
    host = os.environ.get("VISIONGATE_HOST", "127.0.0.1")
    url = f"http://{host}:{os.environ.get('VISIONGATE_PORT', '8000')}"

    def stop(*_a: object) -> None:
        supervisor.stop(grace=10)

    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    try:
        if not _wait_healthy(url, procs):
            print(f"visiongate: the API did not come up; see {logs}", file=sys.stderr)
            stop()
            return 1
        print(BANNER.format(url=url, key=key, logs=logs, data=settings.data_path,
                            upstream="\n               ".join(f"{n:<8} {u}" for n, u in upstreams(settings).items())),
              flush=True)
        while True:  # a component that exits is restarted (with backoff, logged)
            supervisor.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop()
        return 0


def _wait_healthy(url: str, procs: dict[str, subprocess.Popen], timeout: float = 60) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(p.poll() is not None for p in procs.values()):
            return False
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


BANNER = """
visiongate is running (embedded mode)
  API          {url}      (docs: {url}/docs)
  API key      {key}
  upstreams    {upstream}
  data         {data}
  logs         {logs}

Try it:
  curl -H "X-API-Key: {key}" -d '{{"prompt":"a red bicycle","aspect_ratio":"16:9","sync":false}}' \\
       {url}/api/v1/bria/image/generation/generate-image
Stop with Ctrl-C.
"""


# --------------------------------------------------------------------------- entry
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="visiongate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start API, worker, beat and simulator (embedded default)")
    run.add_argument("--verbose", action="store_true", help="print component logs to the terminal")
    run.set_defaults(func=cmd_run)
    sub.add_parser("migrate", help="upgrade the database schema").set_defaults(func=cmd_migrate)
    for component in ("api", "worker", "beat", "simulator"):
        c = sub.add_parser(component, help=f"run the {component} alone (foreground)")
        c.set_defaults(func=cmd_component, component=component, processes=None)
        if component == "worker":
            c.add_argument("--processes", type=int, default=None,
                           help="Celery worker processes (default: VISIONGATE_WORKER_PROCESSES, "
                                "else one per core)")

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_cmd", required=True)
    create = keys.add_parser("create", help="create a key (and the tenant if new)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--plan", choices=PLANS, default="free")
    create.add_argument("--name", default="")
    create.set_defaults(func=cmd_keys_create)
    lst = keys.add_parser("list", help="list keys")
    lst.add_argument("--tenant")
    lst.set_defaults(func=cmd_keys_list)
    rev = keys.add_parser("revoke", help="revoke a key by id or prefix")
    rev.add_argument("key")
    rev.set_defaults(func=cmd_keys_revoke)

    tenants = sub.add_parser("tenants", help="tenants").add_subparsers(dest="tenants_cmd", required=True)
    tenants.add_parser("list", help="tenants with plan, credits and overrides").set_defaults(func=cmd_tenants_list)
    plan = tenants.add_parser("set-plan", help="move a tenant to another plan")
    plan.add_argument("tenant")
    plan.add_argument("plan", choices=PLANS)
    plan.set_defaults(func=cmd_tenants_set_plan)
    lim = tenants.add_parser("set-limits", help="override single limits of a tenant's plan")
    lim.add_argument("tenant")
    lim.add_argument("--rpm", type=int, help="requests per minute per endpoint")
    lim.add_argument("--status-rpm", type=int, help="status/account reads per minute")
    lim.add_argument("--concurrency", type=int, help="jobs running upstream at once")
    lim.add_argument("--unmetered", action=argparse.BooleanOptionalAction, default=None,
                     help="no credit accounting (--no-unmetered to meter again)")
    lim.set_defaults(func=cmd_tenants_set_limits)

    cred = sub.add_parser("credits", help="credits").add_subparsers(dest="credits_cmd", required=True)
    add = cred.add_parser("add", help="grant credits to a tenant (negative to take back)")
    add.add_argument("tenant")
    add.add_argument("amount", type=int)
    add.add_argument("--note", default="")
    add.set_defaults(func=cmd_credits_add)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        get_settings()  # every command, and every process it starts, needs valid settings
    except (ConfigurationError, ValidationError) as exc:
        print(f"visiongate: refusing to start: {exc}", file=sys.stderr)
        return 2
    if args.command in ("keys", "tenants", "credits"):
        migrate()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
