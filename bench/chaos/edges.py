"""Scenarios where the outside world misbehaves: the upstream (429, 5xx, submit timeouts, from the
simulator's fault book) and a webhook receiver that is down for a while."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.chaos.cluster import Cluster
from bench.chaos.scenario import Scenario
from bench.chaos.traffic import Receiver, prompt
from bench.common import free_port

# Every 10 jobs: 2 get a 429 on their first submit, 1 a 500, 1 a 503, 1 a timeout, 5 nothing.
GROUPS = {0: "429", 1: "429", 2: "500", 3: "503", 4: "timeout"}


def group_of(n: int) -> str:
    return GROUPS.get(n % 10, "clean")


def upstream(c: Cluster) -> dict[str, Any]:
    a = c.c
    c.fresh()
    n = a.upstream_jobs
    delay = a.upstream_timeout + 2.0
    s = Scenario(c, "upstream", "Upstream 429 / 5xx / submit timeouts",
                 f"{n} jobs: first submit answered 429 (20 %), 500 (10 %), 503 (10 %) or only after "
                 f"{delay:g} s, past the {a.upstream_timeout:g} s client timeout (10 %); {n // 5} status "
                 "checks answered 500/503")
    rules: list[dict[str, Any]] = []
    for k in range(n):
        group = group_of(k)
        if group == "clean":
            continue
        rule: dict[str, Any] = {"on": "submit", "kind": group, "times": 1, "match": f"#{k}#"}
        if group == "429":
            rule["retry_after"] = 1
        if group == "timeout":
            rule["delay"] = delay
        rules.append(rule)
    rules += [{"on": "status", "kind": "500", "times": n // 10}, {"on": "status", "kind": "503", "times": n // 10}]
    c.sim_faults(rules)
    with s.fault():
        s.traffic.submit(n, a.rate)
        s.wait_submitted()
    record = s.finish()
    dups = c.submissions(s.tag)["duplicates"]
    rows = {r["prompt"]: r for r in c.job_rows()}
    per: dict[str, Counter] = {}
    for k in range(n):
        row = rows.get(prompt(s.tag, k))
        g = per.setdefault(group_of(k), Counter())
        g["jobs"] += 1
        g[row["status"] if row else "no row"] += 1
        g["duplicated"] += prompt(s.tag, k) in dups
    record["figures"]["by_fault"] = {g: dict(v) for g, v in sorted(per.items())}
    left = c.sim("GET", "/_sim/faults")["pending"]
    record["notes"].append("by injected fault (jobs, final states, jobs submitted twice): " + "; ".join(
        f"{g}: " + ", ".join(f"{k} {v}" for k, v in sorted(d.items())) for g, d in sorted(per.items()))
        + f"; fault rules never used: {sum(r['times'] for r in left)}")
    return record


def webhook(c: Cluster) -> dict[str, Any]:
    a = c.c
    receiver = Receiver(free_port())
    c.fresh()
    s = Scenario(c, "webhook", "Webhook receiver down",
                 f"{a.webhook_jobs} jobs with a webhook_url; the receiver refuses connections for the first "
                 f"{a.webhook_down:g} s (retry schedule {a.webhook_schedule} s)",
                 webhook_base=f"http://127.0.0.1:{receiver.port}")
    try:
        with s.fault():
            s.traffic.submit(a.webhook_jobs, a.rate)
            c.sleep(a.webhook_down)
            receiver.start()
        back = s.windows[-1][1]

        def delivered() -> bool:
            got = {number for _, number, _ in receiver.received}
            return set(s.traffic.accepted) <= got

        record = s.finish(extra_done=delivered)
    finally:
        receiver.stop()
    got = receiver.received
    firsts: dict[int, float] = {}
    for t, number, _ in got:
        firsts.setdefault(number, t)
    ids = Counter(wid for _, _, wid in got)
    accepted = set(s.traffic.accepted)
    late = [firsts[k] - back for k in accepted if k in firsts]
    f = record["figures"]
    f.update({"deliveries_received": len(got), "jobs_delivered": len(accepted & set(firsts)),
              "jobs_not_delivered": len(accepted - set(firsts)),
              "duplicate_deliveries": sum(n - 1 for n in ids.values() if n > 1),
              "last_first_delivery_after_back_s": round(max(late), 1) if late else None,
              "deliveries_in_db": c.deliveries()})
    record["notes"].append(
        f"deliveries: {len(got)} received for {f['jobs_delivered']} of {len(accepted)} accepted jobs "
        f"({f['jobs_not_delivered']} never delivered, {f['duplicate_deliveries']} received more than once "
        f"with the same webhook-id); the last job's first delivery came {f['last_first_delivery_after_back_s']} s "
        f"after the receiver was back; deliveries in the database by state: {f['deliveries_in_db']}.")
    return record
