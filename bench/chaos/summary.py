"""What a fault scenario's records come to (pure functions: no servers, unit-tested), and the
table of ``chaos.md``.

The figures of a scenario:

* ``accepted``: submissions answered 202; ``rows``: job rows in the database (a row whose
  submission was not answered 202 is ``unacknowledged``: the client was told it failed, yet the
  job exists; an accepted job without a row is ``lost``);
* ``completed`` / ``errored`` (ERROR, CANCELLED) / ``stuck`` (not final when the settle bound ran
  out), over the rows;
* ``dup_jobs``: jobs whose prompt the simulator saw submitted more than once (``dup_extra``: the
  submissions beyond the first);
* answers by outcome to the requests *sent* during the fault windows (submits and status reads);
* ``settle_s``: from the end of the last fault to the moment every job was final (None: not
  within the bound).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

FINAL = ("COMPLETED", "ERROR", "CANCELLED", "EXPIRED")
OK_DURING_OUTAGE = {"202", "200", "503+RA"}  # the target: 202, or 503 with Retry-After

TARGETS = {
    "kill": "≤ 1 duplicate per 1,000 jobs; a killed worker's jobs picked up within 30 s",
    "redis": "no 500, no closed connection (202 or 503 + Retry-After); lost starts re-published within 30 s",
    "redis-empty": "lost start messages re-published within 30 s",
    "postgres": "0 duplicates during a 30 s outage",
    "beat": "killing one of two beats does not stop progress (jobs/s while down ≥ half the rate before)",
    "upstream": "— (finding: every submit timeout became a duplicate)",
    "webhook": "— (every job's webhook delivered once the receiver is back)",
}


def in_windows(t: float, windows: Sequence[tuple[float, float]]) -> bool:
    return any(a <= t <= b for a, b in windows)


def tally(records: Iterable[Sequence[Any]], windows: Sequence[tuple[float, float]] | None = None) -> dict[str, int]:
    """Outcomes (``record[2]``) of the requests sent (``record[0]``) within ``windows`` (all when None)."""
    counts = Counter(r[2] for r in records if windows is None or in_windows(r[0], windows))
    return dict(sorted(counts.items()))


def job_figures(rows: list[dict[str, Any]], accepted_ids: Iterable[str]) -> dict[str, Any]:
    states = Counter(r["status"] for r in rows)
    ids = {r["id"] for r in rows}
    accepted = set(accepted_ids)
    ages = [r["finished"] - r["created"] for r in rows if r["status"] in FINAL and r["finished"] is not None]
    return {
        "rows": len(rows),
        "completed": states.get("COMPLETED", 0),
        "errored": states.get("ERROR", 0) + states.get("CANCELLED", 0),
        "stuck": sum(n for s, n in states.items() if s not in FINAL),
        "stuck_states": {s: n for s, n in sorted(states.items()) if s not in FINAL},
        "error_codes": dict(sorted(Counter(r["error_code"] for r in rows if r["status"] == "ERROR").items())),
        "lost": len(accepted - ids),
        "unacknowledged": len(ids - accepted),
        "retried": sum(1 for r in rows if (r["attempts"] or 0) > 1),
        "max_job_s": round(max(ages), 1) if ages else None,
    }


def duplicate_figures(submissions: dict[str, Any]) -> dict[str, Any]:
    dups = submissions.get("duplicates") or {}
    return {"dup_jobs": len(dups), "dup_extra": sum(n - 1 for n in dups.values()),
            "upstream_tasks": submissions.get("tasks", 0)}


def settle_seconds(fault_end: float, settled_at: float | None) -> float | None:
    return None if settled_at is None else round(max(0.0, settled_at - fault_end), 1)


def figures(*, submits: list, reads: list, accepted_ids: Iterable[str], rows: list[dict[str, Any]],
            submissions: dict[str, Any], windows: list[tuple[float, float]], settled_at: float | None,
            t0: float) -> dict[str, Any]:
    """Every figure of one scenario (times relative to ``t0``, the scenario's start)."""
    accepted_ids = list(accepted_ids)
    fault_end = max((b for _, b in windows), default=t0)
    return {
        "accepted": len(accepted_ids),
        "submitted": len(submits),
        **job_figures(rows, accepted_ids),
        **duplicate_figures(submissions),
        "submit_during_fault": tally(submits, windows),
        "reads_during_fault": tally(reads, windows),
        "submit_all": tally(submits),
        "reads_all": tally(reads),
        "fault_windows_s": [[round(a - t0, 1), round(b - t0, 1)] for a, b in windows],
        "settle_s": settle_seconds(fault_end, settled_at),
    }


def verdict(name: str, f: dict[str, Any]) -> str:
    """The issue's target for this scenario against its figures: ``met``, ``MISSED`` or ``—``."""
    settled30 = f.get("settle_s") is not None and f["settle_s"] <= 30
    if name == "kill":
        per_1000 = 1000 * f["dup_jobs"] / max(1, f["accepted"])
        return _both(per_1000 <= 1, settled30)
    if name == "redis":
        answers = set(f["submit_during_fault"]) | set(f["reads_during_fault"])
        return _both(answers <= OK_DURING_OUTAGE, settled30)
    if name == "redis-empty":
        return _one(settled30)
    if name == "postgres":
        return _one(f["dup_jobs"] == 0)
    if name == "beat":  # progress while a beat is down: at least half the rate before the kills
        windows = f.get("beat_windows") or []
        rate = (f.get("before_kills") or {}).get("finished_per_s") or 0.0
        return _one(bool(windows) and rate > 0 and all(
            w["down_s"] > 0 and w["finished"] / w["down_s"] >= rate / 2 for w in windows))
    return "—"


def _one(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def _both(first: bool, second: bool) -> str:
    return f"{_one(first)} / {_one(second)}"


# --------------------------------------------------------------------------- rendering
def fmt_tally(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "none"


def fmt_settle(f: dict[str, Any], bound: float) -> str:
    return f"{f['settle_s']:.1f}" if f.get("settle_s") is not None else f"> {bound:.0f} (not settled)"


COLUMNS = ["Scenario", "Fault", "Accepted", "Completed", "Errored", "Stuck", "Dup. submits (jobs)",
           "Submit answers during fault", "Status reads during fault", "Settle (s)", "Restarts / exits",
           "Target (issue)", "Result"]


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    bound = results.get("meta", {}).get("settle_bound_s", 0)
    rows = []
    for name, s in results["scenarios"].items():
        f = s["figures"]
        dups = f"{f['dup_jobs']:,}" + (f" (+{f['dup_extra'] - f['dup_jobs']} more)" if f["dup_extra"] > f["dup_jobs"] else "")
        rows.append([s["title"], s["fault"], f"{f['accepted']:,}", f"{f['completed']:,}", f"{f['errored']:,}",
                     f"{f['stuck']:,}", dups, fmt_tally(f["submit_during_fault"]),
                     fmt_tally(f["reads_during_fault"]), fmt_settle(f, bound), s.get("restarts", "—"),
                     TARGETS.get(name, "—"), verdict(name, f)])
    return rows


CONSOLE = [("Scenario", 0), ("Accepted", 2), ("Completed", 3), ("Errored", 4), ("Stuck", 5),
           ("Dup. jobs", 6), ("Submits during fault", 7), ("Reads during fault", 8), ("Settle (s)", 9),
           ("Restarts / exits", 10), ("Result", 12)]


def render_console(results: dict[str, Any]) -> str:
    """The table for a terminal: the markdown table's figures, aligned, without the long texts."""
    rows = [[row[i].replace("**", "") for _, i in CONSOLE] for row in table_rows(results)]
    head = [name for name, _ in CONSOLE]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def render_markdown(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    lines = [f"# visiongate fault run ({meta.get('date', '?')})", "",
             f"Code: commit {meta.get('commit')}. Worker: {meta.get('worker')}; API: "
             f"{meta.get('api_processes')} process(es); simulator latency {meta.get('sim_latency_s')} s; "
             f"settle bound {meta.get('settle_bound_s')} s; total {meta.get('wall_s')} s"
             + (" (--quick)" if meta.get("quick") else "") + ". Figures are what happened; nothing here "
             "is asserted. `bench/README.md` explains each column.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in table_rows(results)]
    lines += ["", "## Details", ""]
    for name, s in results["scenarios"].items():
        f = s["figures"]
        lines.append(f"### {s['title']}")
        lines.append("")
        lines.append(f"* Fault: {s['fault']}; windows (s from the scenario's start): {f['fault_windows_s']}.")
        lines.append(f"* Jobs: {f['submitted']:,} submitted, {f['accepted']:,} accepted (202), {f['rows']:,} rows; "
                     f"lost (202 but no row) {f['lost']}, unacknowledged (a row, no 202) {f['unacknowledged']}; "
                     f"retried (attempts > 1) {f['retried']}; longest job {f['max_job_s']} s; "
                     f"error codes {fmt_tally(f['error_codes'])}; stuck states {fmt_tally(f['stuck_states'])}.")
        lines.append(f"* Upstream: {f['upstream_tasks']:,} tasks created; {f['dup_jobs']} job(s) submitted more "
                     f"than once ({f['dup_extra']} extra submission(s)).")
        lines.append(f"* All submit answers: {fmt_tally(f['submit_all'])}; all status reads: {fmt_tally(f['reads_all'])}.")
        for note in s.get("notes", []):
            lines.append(f"* {note}")
        for ev in s.get("events", []):
            lines.append(f"* Event at {ev['t']} s: {ev['process']} {ev['kind']}"
                         + (f" (exit code {ev.get('code')}), relaunched by the {ev.get('restarted_by')}"
                            if ev["kind"] == "exit" else "")
                         + (f"; log: `{' / '.join(ev.get('log_tail') or [])[:300]}`" if ev.get("log_tail") else ""))
        lines.append("")
    return "\n".join(lines) + "\n"
