"""``make chaos``: a fault run anyone can repeat.

    python -m bench.chaos                    # every scenario (~10-25 min, most of it waiting to settle)
    python -m bench.chaos --quick            # every scenario, small and short (~5 min)
    python -m bench.chaos --only kill,redis  # some of them
    python -m bench.chaos --help

Starts its own Redis and PostgreSQL (temporary, free loopback ports), the simulator, and the
product's processes with their production command lines (``bench.system``): the API, ``visiongate
worker`` and beat. Then, one scenario after the other on a freshly started product with no jobs:
worker SIGKILLs under load, a Redis outage, Redis restarted empty with start messages queued, a
PostgreSQL outage, beat killed, upstream 429/5xx/timeouts, a webhook receiver down. For each it
reports accepted, completed, errored and stuck jobs, duplicate upstream submissions (the
simulator counts them per prompt), the API's answers during the fault, and the time to settle.
Figures are reported, never asserted. Writes ``<out>/<stem>.json`` and ``<stem>.md``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

from bench.chaos import edges, outages, processes, summary
from bench.chaos.cluster import Cluster
from bench.chaos.services import Services
from bench.common import ROOT, log

SCENARIOS: dict[str, Callable[[Cluster], dict[str, Any]]] = {
    "kill": processes.kill,
    "redis": outages.redis_outage,
    "redis-empty": outages.redis_empty,
    "postgres": outages.postgres_outage,
    "beat": processes.beat,
    "upstream": edges.upstream,
    "webhook": edges.webhook,
}


QUICK = {"kill_jobs": 200, "kills": 4, "redis_outage": 6.0, "pg_outage": 8.0, "lead": 5.0, "tail": 5.0,
         "queued": 100, "upstream_jobs": 100, "webhook_jobs": 40, "webhook_down": 8.0, "burst": 100,
         "beat_kills": 1, "beat_down": 8.0, "beat_up": 3.0, "settle": 60.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), help="results folder")
    p.add_argument("--stem", default=None, help="file names (default chaos; chaos-quick with --quick; "
                                                "chaos-only with --only)")
    p.add_argument("--quick", action="store_true", help="small and short: a smoke run of every scenario")
    p.add_argument("--only", default="", help="comma-separated subset of " + ",".join(SCENARIOS))
    p.add_argument("--settle", type=float, default=None,
                   help="seconds a scenario waits for every job to be final (default 330; --quick 60)")
    p.add_argument("--worker-processes", type=int, default=2, help="visiongate worker --processes")
    p.add_argument("--api-processes", type=int, default=2)
    p.add_argument("--sim-latency", type=float, default=1.0, help="simulator seconds per task")
    p.add_argument("--upstream-timeout", type=float, default=5.0,
                   help="VISIONGATE_UPSTREAM_TIMEOUT_SECONDS (the product default is 30)")
    p.add_argument("--webhook-schedule", default="0,2,5,10,20,40,60",
                   help="VISIONGATE_WEBHOOK_RETRY_SCHEDULE (the product default is 0,5,300,1800,…)")
    p.add_argument("--rate", type=float, default=20.0, help="jobs/s of the outage scenarios' load")
    p.add_argument("--read-rate", type=float, default=10.0, help="status reads/s during every scenario")
    p.add_argument("--lead", type=float, default=10.0, help="seconds of load before a fault")
    p.add_argument("--tail", type=float, default=10.0, help="seconds of load after an outage")
    p.add_argument("--kill-jobs", type=int, default=1000)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--kill-rate", type=float, default=20.0, help="jobs/s of the kill scenario")
    p.add_argument("--kill-gap", type=float, default=0.5,
                   help="seconds a worker runs after it is back before the next kill")
    p.add_argument("--burst", type=int, default=300,
                   help="jobs submitted at --burst-rate as a Redis or PostgreSQL outage begins; the "
                        "server goes three quarters of the way through them (0: no burst)")
    p.add_argument("--burst-rate", type=float, default=150.0)
    p.add_argument("--redis-outage", type=float, default=15.0)
    p.add_argument("--queued", type=int, default=400, help="start messages queued before Redis restarts")
    p.add_argument("--pg-outage", type=float, default=30.0)
    p.add_argument("--beats", type=int, default=2, choices=(1, 2), help="beat processes in the beat scenario")
    p.add_argument("--beat-kills", type=int, default=3)
    p.add_argument("--beat-down", type=float, default=15.0)
    p.add_argument("--beat-up", type=float, default=5.0)
    p.add_argument("--upstream-jobs", type=int, default=400)
    p.add_argument("--webhook-jobs", type=int, default=200)
    p.add_argument("--webhook-down", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=7, help="which worker process each kill picks")
    p.add_argument("--keep", action="store_true", help="keep the servers' folder and the logs")
    if p.parse_args(argv).quick:  # smaller defaults; what is given on the command line still counts
        p.set_defaults(**QUICK)
    a = p.parse_args(argv)
    if a.settle is None:
        a.settle = 330.0
    unknown = [n for n in a.only.split(",") if n and n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    a.stem = a.stem or ("chaos-quick" if a.quick else "chaos-only" if a.only else "chaos")
    return a


def stop_clients(cluster: Cluster | None) -> None:
    """Stop the current scenario's clients (they are stopped already when it ended normally)."""
    scenario = getattr(cluster, "scenario", None)
    if scenario is not None:
        cluster.scenario = None
        try:
            scenario.traffic.stop()
        except Exception as exc:  # noqa: BLE001 - cleaning up
            log(f"stopping the clients: {exc}")


def write(out: Path, stem: str, results: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    md = summary.render_markdown(results)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / f"{stem}.md").write_text(md)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    only = {n for n in a.only.split(",") if n}
    wanted = [n for n in SCENARIOS if not only or n in only]

    def on_term(*_a: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    started = time.time()
    services = Services(keep=a.keep)
    cluster: Cluster | None = None
    results: dict[str, Any] = {"scenarios": {}}
    code = 0
    try:
        services.start()
        cluster = Cluster(a, services)
        cluster.setup()
        cluster.launch("sim")
        for name in wanted:
            try:
                results["scenarios"][name] = SCENARIOS[name](cluster)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - report it, go on with the next scenario
                log(f"{name} failed: {type(exc).__name__}: {exc}")
                for proc in list(cluster.procs.running):
                    print(f"----- {proc} log (tail)\n{cluster.procs.log_tail(proc, 1500)}", file=sys.stderr)
                results.setdefault("failed", {})[name] = f"{type(exc).__name__}: {exc}"
                code = 1
            finally:
                stop_clients(cluster)
            results["meta"] = cluster.meta(started)
            write(Path(a.out), a.stem, results)
        print()
        print(summary.render_console(results))
        log(f"wrote {Path(a.out) / (a.stem + '.md')} and {a.stem}.json")
    except KeyboardInterrupt:
        log("interrupted; stopping every process")
        code = 130
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        stop_clients(cluster)
        if cluster is not None:
            cluster.watched.clear()
            if a.keep:
                log(f"logs kept in {cluster.data_dir / 'logs'}")
                cluster.a.keep = True
            cluster.teardown()
        services.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
