"""The results table: Markdown for people, the same rows in results.json for tools.

Every figure is ``median (min–max)`` over the repetitions; a ratio is the median of the
per-repetition ratios (the runs of a repetition are interleaved, so each pair shares the
machine's conditions of that moment).
"""

from __future__ import annotations

from typing import Any, Callable

from bench.stats import ratios, spread

COLUMNS = ["Scenario", "Metric", "visiongate", "Baseline", "Baseline value", "Ratio", "Target", "Result"]


def _fmt(x: float | None, nd: int) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.{nd}f}"


def fmt_spread(s: dict[str, Any], nd: int = 1, unit: str = "") -> str:
    if s["median"] is None:
        return "n/a"
    if s["n"] == 1 or s["min"] == s["max"]:
        return f"{_fmt(s['median'], nd)}{unit}"
    return f"{_fmt(s['median'], nd)}{unit} ({_fmt(s['min'], nd)}–{_fmt(s['max'], nd)})"


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return "n/a"
    return "met" if ok else "**MISSED**"


class Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, str]] = []

    def add(self, scenario: str, metric: str, vg: str, baseline: str = "", base_val: str = "",
            ratio: str = "", target: str = "", result: str = "") -> None:
        self.rows.append(dict(zip(COLUMNS, [scenario, metric, vg, baseline, base_val, ratio,
                                            target or "—", result or "—"])))

    def markdown(self) -> str:
        out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        out += ["| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in self.rows]
        return "\n".join(out)


def _col(runs: list[dict[str, Any]], key: str | Callable[[dict[str, Any]], Any]) -> list[Any]:
    return [key(r) if callable(key) else r.get(key) for r in runs]


def render_markdown(results: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    sc = results["scenarios"]
    meta = results["meta"]
    t = Table()
    notes: list[str] = []

    # ---------------------------------------------------------------- 1 intake
    if "intake" in sc:
        runs = sc["intake"]["runs"]
        vg, bare, typ = runs["visiongate"], runs["bare"], runs["typical"]
        name = f"1 Intake ({sc['intake']['connections']} conn.)"
        rps = _col(vg, "rps")
        r_typ = spread(ratios(rps, _col(typ, "rps")))
        t.add(name, "requests/s", fmt_spread(spread(rps), 0), "typical: ORM insert + send_task",
              fmt_spread(spread(_col(typ, "rps")), 0), fmt_spread(r_typ, 2, "×"), "≥ 3×",
              _verdict(None if r_typ["median"] is None else r_typ["median"] >= 3))
        r_bare = spread(ratios(rps, _col(bare, "rps")))
        t.add(name, "requests/s", fmt_spread(spread(rps), 0), "bare FastAPI + same pydantic model",
              fmt_spread(spread(_col(bare, "rps")), 0), fmt_spread(r_bare, 2, "×"))
        for q in ("p50", "p99"):
            s = spread(_col(vg, f"{q}_ms"))
            ok = None if q == "p50" or s["median"] is None else s["median"] <= 100
            t.add(name, f"{q} latency (ms)", fmt_spread(s, 1), "typical / bare",
                  f"{fmt_spread(spread(_col(typ, f'{q}_ms')), 1)} / {fmt_spread(spread(_col(bare, f'{q}_ms')), 1)}",
                  fmt_spread(spread(ratios(_col(vg, f"{q}_ms"), _col(typ, f"{q}_ms"))), 2, "×") + " of typical",
                  "≤ 100 ms" if q == "p99" else "", _verdict(ok) if q == "p99" else "")
        errs = sum(_col(vg, "errors"))
        t.add(name, "errors (all reps)", f"{errs} of {sum(_col(vg, 'requests')) + errs:,}", "typical / bare",
              f"{sum(_col(typ, 'errors'))} / {sum(_col(bare, 'errors'))}", "", "0", _verdict(errs == 0))
    else:
        t.add("1 Intake", "—", "not run")

    # ---------------------------------------------------------------- 2 status
    if "status" in sc:
        runs = sc["status"]["runs"]
        vg, bare = runs["visiongate"], runs["bare"]
        name = f"2 Status reads ({sc['status']['connections']} conn.)"
        r = spread(ratios(_col(vg, "rps"), _col(bare, "rps")))
        t.add(name, "requests/s", fmt_spread(spread(_col(vg, "rps")), 0), "bare FastAPI GET",
              fmt_spread(spread(_col(bare, "rps")), 0), fmt_spread(r, 2, "×"), "≥ 0.5×",
              _verdict(None if r["median"] is None else r["median"] >= 0.5))
        for q in ("p50", "p99"):
            t.add(name, f"{q} latency (ms)", fmt_spread(spread(_col(vg, f"{q}_ms")), 1), "bare FastAPI GET",
                  fmt_spread(spread(_col(bare, f"{q}_ms")), 1),
                  fmt_spread(spread(ratios(_col(vg, f"{q}_ms"), _col(bare, f"{q}_ms"))), 2, "×"))
        errs = sum(_col(vg, "errors"))
        t.add(name, "errors (all reps)", str(errs), "bare FastAPI GET", str(sum(_col(bare, "errors"))),
              "", "0", _verdict(errs == 0))
        notes.append(f"Status reads cycle over {sc['status']['completed_jobs']} COMPLETED jobs (each read "
                     f"mints a signed URL) and {sc['status']['in_progress_jobs']} IN_PROGRESS jobs, "
                     "alternating.")
    else:
        t.add("2 Status reads", "—", "not run")

    # ---------------------------------------------------------------- 3 pipeline
    if "pipeline" in sc:
        p = sc["pipeline"]
        vg, noop = p["runs"]["visiongate"], p["runs"]["noop"]
        name = "3 Pipeline (sim latency 0)"
        thr = _col(vg, lambda r: r["burst"]["per_s"])
        nthr = _col(noop, lambda r: r["burst"]["per_s"])
        r = spread(ratios(thr, nthr))
        t.add(name, "completed jobs/s (burst)", fmt_spread(spread(thr), 1), "Celery no-op tasks/s",
              fmt_spread(spread(nthr), 1), fmt_spread(r, 3, "×"), "≥ 0.5×",
              _verdict(None if r["median"] is None else r["median"] >= 0.5))
        for q in ("p50", "p99"):
            s = spread(_col(vg, lambda r, q=q: r["paced"][f"{q}_ms"]))
            ns = spread(_col(noop, lambda r, q=q: r["paced"][f"{q}_ms"]))
            ok = None if q == "p99" or s["median"] is None else s["median"] <= 50
            t.add(name, f"added latency {q} (ms), submit→COMPLETED", fmt_spread(s, 0),
                  "no-op task sent→done", fmt_spread(ns, 1), "",
                  "≤ 50 ms" if q == "p50" else "", _verdict(ok) if q == "p50" else "")
        incomplete = sum(r["burst"]["failed"] + r["paced"]["failed"] for r in vg)
        t.add(name, "jobs not COMPLETED (all reps)", str(incomplete), "no-op tasks lost",
              str(sum(r["burst"]["failed"] + r["paced"]["failed"] for r in noop)), "", "0",
              _verdict(incomplete == 0))
        _pipeline_cpu(t, notes, name, vg, noop, meta.get("cpus") or 1)
        windows = _col(vg, lambda r: r["burst"]["window_s"])
        notes.append(
            f"Pipeline throughput: a burst of {p['burst_jobs']} jobs through the API "
            f"(16 connections) vs {p['burst_noop_tasks']} no-op tasks; jobs/s = completed / "
            f"(last finished_at − first created_at) = {fmt_spread(spread(windows), 1)} s windows. "
            f"Latency: a separate paced phase at {p['paced_rate']:g} jobs/s for {meta['duration_s']:g} s "
            "(unloaded), created_at → finished_at from the job row; the no-op baseline's is "
            "publish → task body, timed by the task itself. Every job of scenarios 1, 3, 4 and 5 "
            "sends the same prompt with a fixed seed, so the simulator renders its 1 MP PNG once "
            "and serves it from its cache: the upstream's rendering (40–70 ms of CPU per image on "
            "this machine) is not charged to the gateway; each job still submits, polls, "
            "downloads and stores a real PNG.")
    else:
        t.add("3 Pipeline", "—", "not run")

    # ---------------------------------------------------------------- 4 in flight
    if "inflight" in sc:
        f = sc["inflight"]
        runs = f["runs"]
        n, lat = f["jobs"], f["upstream_latency_s"]
        interval = min(f["poll_interval_max_s"], max(f["poll_interval_s"], 0.1 * lat))
        name = f"4 In flight ({n:,} × {lat:g} s)"
        done = _col(runs, "completed")
        allok = all(_col(runs, "all_completed"))
        t.add(name, "jobs COMPLETED", " / ".join(f"{d:,}" for d in done) + f" of {n:,}", "", "", "",
              "all", _verdict(allok))
        for q in ("p50", "p99"):
            s = spread(_col(runs, f"late_{q}_s"))
            rr = spread([None if x is None else x / interval for x in _col(runs, f"late_{q}_s")])
            t.add(name, f"noticed late {q} (s) after upstream finished", fmt_spread(s, 2),
                  "poll interval at that age", f"{interval:g} s", fmt_spread(rr, 2, "×"))
        s = spread(_col(runs, "late_max_s"))
        worst = [x for x in _col(runs, "late_max_s") if x is not None]
        t.add(name, "noticed late max (s) after upstream finished", fmt_spread(s, 2),
              "2 poll intervals at that age", f"{2 * interval:g} s", "", f"≤ {2 * interval:g} s",
              _verdict(bool(worst) and allok and max(worst) <= 2 * interval))
        within = _col(runs, lambda r: r.get("late_within_2_intervals"))
        if all(w is not None for w in within):
            t.add(name, "jobs noticed within 2 poll intervals", " / ".join(f"{w:,}" for w in within)
                  + f" of {n:,}", "", "", "", "all", _verdict(all(w == n for w in within)))
        for key, label in (("status_rps_mean", "mean over the run"), ("status_rps_peak", "peak 1-s rate")):
            t.add(name, f"upstream status requests/s, {label}", fmt_spread(spread(_col(runs, key)), 1),
                  "jobs in flight / poll interval", _fmt(n / interval, 0))
        for comp in ("worker", "beat", "api"):
            t.add(name, f"peak RSS {comp} (MiB, VmHWM incl. children)",
                  fmt_spread(spread(_col(runs, lambda r, c=comp: r["peak_rss_mib"][c]["total_mib"])), 0))
        totals = _col(runs, lambda r: sum(r["peak_rss_mib"][c]["total_mib"] for c in ("worker", "beat", "api")))
        t.add(name, "peak RSS worker + beat + API (MiB, sum of the peaks)", fmt_spread(spread(totals), 0),
              "", "", "", "< 1,024 MiB", _verdict(max(totals) < 1024 if totals else None))
        notes.append(
            f"In flight: after the last submission the run waits at most (submission time + "
            f"{lat:g} s + {f.get('drain_s', 0):g} s) for every job to finish (and gives up early if no "
            "job changes for 180 s). Lateness (over the jobs that completed) = job finished_at (row) − "
            "the simulator's finish time of the "
            "upstream task (created + latency, from /_bench/tasks); it includes the download and "
            f"storage of the result. The poll interval at age {lat:g} s is min(15, max(1, 0.1 × age)) "
            f"= {interval:g} s. Submission: " + ", ".join(
                f"{r['submit_s']:g} s at {r['submit_rps']:g} req/s" for r in runs) + "; window " +
            ", ".join(f"{r['window_s']:g} s" for r in runs) + ".")
    else:
        t.add("4 In flight", "—", "not run")

    # ---------------------------------------------------------------- 5 batch ingest
    if "batch" in sc:
        b = sc["batch"]
        vg = b["runs"]["visiongate"]
        n = b["lines"]
        name = f"5 Batch ingest ({n:,} lines)"
        acc = _col(vg, "accept_s")
        for key, label in (("copy", "bulk INSERT, COPY (plain table, same rows)"),
                           ("executemany", "bulk INSERT, executemany (plain table, same rows)")):
            base = _col(b["runs"][key], "seconds")
            t.add(name, "seconds to accept (request → 2xx)", fmt_spread(spread(acc), 2), label,
                  fmt_spread(spread(base), 2), fmt_spread(spread(ratios(acc, base)), 1, "×"))
        codes = _col(vg, "http_status")
        totals = _col(vg, lambda r: (r.get("accepted_counts") or {}).get("total"))
        invalid = _col(vg, lambda r: (r.get("accepted_counts") or {}).get("invalid"))
        t.add(name, "HTTP status; counts.total / invalid in the answer",
              " / ".join(str(c) for c in codes) + "; " + " / ".join(
                  "n/a" if x is None else f"{x:,}" for x in totals) + " / " + " / ".join(
                  "n/a" if x is None else f"{x:,}" for x in invalid),
              "", "", "", "202, all lines",
              _verdict(all(c == 202 for c in codes) and all(x == n for x in totals)))
        after = _col(vg, lambda r: r["api_rss_after_mib"]["total_mib"])
        before = _col(vg, lambda r: r["api_rss_before_mib"]["total_mib"])
        t.add(name, "peak RSS API during acceptance (MiB, VmHWM incl. children)",
              fmt_spread(spread(after), 0), "the fresh API just before the upload",
              fmt_spread(spread(before), 0), fmt_spread(spread(ratios(after, before)), 2, "×"))
        big = _col(vg, lambda r: r["api_rss_after_mib"]["largest_mib"])
        big0 = _col(vg, lambda r: r["api_rss_before_mib"]["largest_mib"])
        t.add(name, "peak RSS, largest API process (MiB, VmHWM)", fmt_spread(spread(big), 0),
              "largest API process before the upload", fmt_spread(spread(big0), 0),
              fmt_spread(spread(ratios(big, big0)), 2, "×"))
        thr = _col(vg, "per_s")
        nthr = _col(b["runs"]["noop"], "per_s")
        t.add(name, "completed jobs/s (sim latency 0)", fmt_spread(spread(thr), 1),
              "Celery no-op tasks/s", fmt_spread(spread(nthr), 1),
              fmt_spread(spread(ratios(thr, nthr)), 3, "×"))
        if "pipeline" in sc:  # the same jobs submitted one by one (scenario 3), not interleaved
            pthr = spread([r["burst"]["per_s"] for r in sc["pipeline"]["runs"]["visiongate"]])
            r = (spread(thr)["median"] / pthr["median"]
                 if spread(thr)["median"] is not None and pthr["median"] else None)
            t.add(name, "completed jobs/s (sim latency 0)", fmt_spread(spread(thr), 1),
                  "scenario 3 burst, jobs submitted one by one (median; not interleaved)",
                  fmt_spread(pthr, 1), "n/a" if r is None else f"{r:,.2f}×")
        done = _col(vg, "completed")
        t.add(name, f"jobs COMPLETED within {b['drain_s']:g} s of acceptance",
              " / ".join(f"{d:,}" for d in done) + f" of {n:,}", "no-op tasks done",
              " / ".join(f"{r['completed']:,} of {r['jobs']:,}" for r in b["runs"]["noop"]))
        notes.append(
            f"Batch ingest: each repetition uploads a fresh {n:,}-line JSONL (multipart field `file`, "
            f"{_fmt(vg[0].get('upload_bytes', 0) / 1e6, 1)} MB; lines `{{\"custom_id\", \"endpoint\": "
            f"\"{b['endpoint']}\", \"body\": {{\"prompt\": …, \"seed\": 7, \"sync\": false}}}}`, the "
            "same body on every line, see the seed note) to `POST /api/v1/batches` with httpx, "
            "on freshly started API, worker and "
            "beat processes. Seconds to accept = wall time from the start of the request to the "
            "2xx answer (upload, multipart parse, per-line validation, one-transaction bulk insert, "
            "commit); its ratio is visiongate's seconds / the baseline's (above 1 = slower). "
            "Baselines, measured just before in the same repetition on the same "
            f"PostgreSQL: the same {n:,} rows (the job columns, same params JSON) inserted into "
            f"{b['baseline_table']} in one transaction, by COPY and by executemany, timed from the "
            "first statement to the commit; they exclude HTTP, parsing and validation and the jobs "
            "table's indexes, so the ratio is what the product costs over the bare insert. Peak RSS "
            "is VmHWM read right after the answer (the API was started fresh for the repetition, so "
            "it is the peak of start-up plus this acceptance), summed over the uvicorn tree; the "
            "largest single process is the one that handled the upload.")
        notes.append(
            "Batch completion: the client polls `GET /api/v1/batches/{id}` until the batch is "
            f"completed, for at most {b['drain_s']:g} s after the answer (and stops early if no job "
            "finishes for 180 s, 20 s with --quick); jobs/s = COMPLETED jobs / (last COMPLETED "
            "finished_at − the "
            "batch's created_at), times from the job rows, the same definition as scenario 3 (whose "
            "window starts at the first job's created_at). When the bound stops the drain before "
            "every job finished, the rate is over the jobs that did complete, and the rest are "
            "dropped. Stopped by: " + ", ".join(str(r.get("stopped_by")) for r in vg) + "; from "
            "the first job's started_at instead: " + ", ".join(
                _fmt(r.get("per_s_from_first_start"), 1) for r in vg) + " jobs/s. Baseline: the "
            "harness's no-op Celery tasks (bench/noop.py) on the same broker with the same worker "
            "settings, as many tasks as jobs completed (at least 200), run right after the drain "
            "in the same repetition: it is the queue-and-worker floor measured the same way on the "
            "same machine at that moment. A batch job does the work of a job of scenario 3 (submit, "
            "poll, download, store) after the sweeper releases it, so the no-op ratio says how far "
            "the per-job work is from the bare queue, and the row against scenario 3 (if it ran) "
            "says what a batch costs or saves against submitting the jobs one by one.")
    else:
        t.add("5 Batch ingest", "—", "not run")

    # ---------------------------------------------------------------- load generator
    lg = ["| run | client | load generator CPU (of one core) | server CPU (of one core) | server CPU per request (ms) |",
          "|---|---|---|---|---|"]
    for key, label in (("intake", "1 Intake"), ("status", "2 Status")):
        if key not in sc:
            continue
        for variant, runs in sc[key]["runs"].items():
            lg.append(f"| {label}: {variant} | {runs[0]['client']} | "
                      f"{fmt_spread(spread(_col(runs, 'loadgen_cpu_util')), 2)} | "
                      f"{fmt_spread(spread(_col(runs, 'server_cpu_util')), 2)} | "
                      f"{fmt_spread(spread(_col(runs, _server_ms_per_request)), 2)} |")
    bottleneck = [
        (k, v) for k in ("intake", "status") if k in sc for v, runs in sc[k]["runs"].items()
        if (spread(_col(runs, "loadgen_cpu_util"))["median"] or 0) >= 0.85]

    md = [f"# visiongate benchmark results ({meta['date']})", ""]
    if meta.get("quick"):
        md += ["**Smoke run (`--quick`): ~1 s per scenario and tiny N. These numbers mean nothing.**", ""]
    md += [
        (f"Code: commit {meta['commit']}. " if meta.get("commit") else "") +
        f"Machine: {meta['cpus']} CPUs, Python {meta['python']}, {meta['platform']}. "
        f"API: uvicorn, {meta['api_processes']} process(es) (the baselines app runs under the same "
        f"command line). Worker: {meta['worker']}; beat sweeps every {meta['sweep_interval_s']:g} s; "
        f"{meta['poll_interval']}. Each scenario: {meta['repeats']} repetition(s) of "
        f"{meta['duration_s']:g} s (after {meta['warmup_s']:g} s warm-up), visiongate and baseline "
        f"interleaved; figures are median (min–max) over repetitions; ratios are medians of "
        f"per-repetition ratios. Load: `bench.load` ({meta['client']} client) in its own process "
        f"on loopback. Total run time {meta['wall_s']:g} s. Load average (1/5/15 min) at the start "
        f"{'/'.join(map(str, meta['loadavg_start']))}, at the end {'/'.join(map(str, meta['loadavg_end']))} "
        "(other work on the machine shows up here).", "",
        t.markdown(), "",
    ]
    md += ["Notes:", ""] + [f"* {n}" for n in notes] + [""]
    md += ["## Load generator and server CPU", "",
           "CPU time used during the measured run divided by its wall time (1.00 = one core busy; "
           "the machine has " + f"{meta['cpus']}).", ""] + lg + [""]
    if bottleneck:
        md += ["**The load generator used ≥ 85 % of a core in: " +
               ", ".join(f"{k}/{v}" for k, v in bottleneck) +
               ".** There it may be the bottleneck, and ratios against the faster baseline are "
               "compressed (the baseline's true capacity is higher than measured).", ""]
    return "\n".join(md), t.rows


def main() -> None:
    """``python -m bench.report results.json``: re-render results.md (and the JSON's table)."""
    import json
    import sys
    from pathlib import Path

    path = Path(sys.argv[1])
    results = json.loads(path.read_text())
    md, rows = render_markdown(results)
    results["table"] = rows
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    path.with_name("results.md").write_text(md)


if __name__ == "__main__":
    main()


# Who spends the CPU of a pipeline job (bench.run's CpuMeter over the burst), in report order.
_JOB_PARTS = [("worker", "worker"), ("api", "API"), ("sim", "simulator"), ("postgres", "PostgreSQL"),
              ("redis", "Redis"), ("beat", "beat"), ("loadgen", "load generator")]
_NOOP_PARTS = [("noop-worker", "worker"), ("redis", "Redis"), ("sender", "sender")]


def _per_item_ms(run: dict[str, Any], parts: list[tuple[str, str]]) -> dict[str, float] | None:
    cpu, n = run.get("cpu_s"), run.get("completed")
    if not cpu or not n:
        return None
    return {key: 1000.0 * (cpu.get(key) or 0.0) / n for key, _ in parts}


def _pipeline_cpu(t: Table, notes: list[str], name: str, vg: list[dict[str, Any]],
                  noop: list[dict[str, Any]], cpus: int) -> None:
    """CPU per job by process, next to the no-op's per task, and what that leaves possible."""
    jobs = [_per_item_ms(r["burst"], _JOB_PARTS) for r in vg]
    tasks = [_per_item_ms(r["burst"], _NOOP_PARTS) for r in noop]
    if not any(jobs) or not any(tasks):
        return
    job_total = [sum(j.values()) if j else None for j in jobs]
    task_total = [sum(k.values()) if k else None for k in tasks]

    def parts(rows: list[dict[str, float] | None], names: list[tuple[str, str]]) -> str:
        return ", ".join(f"{label} {fmt_spread(spread([r[key] if r else None for r in rows]), 2)}"
                         for key, label in names)

    t.add(name, "CPU per completed job (ms), burst, all processes", fmt_spread(spread(job_total), 2),
          "CPU per no-op task (ms)", fmt_spread(spread(task_total), 2),
          fmt_spread(spread(ratios(job_total, task_total)), 1, "×"))
    # The part no worker change can remove: the API taking the job, the upstream (simulator),
    # PostgreSQL, Redis, beat. All of it shares this machine's CPUs with the worker.
    fixed = [sum(v for k, v in j.items() if k not in ("worker", "loadgen")) if j else None for j in jobs]
    bound = [cpus * 1000.0 / f if f else None for f in fixed]
    noop_rate = _col(noop, lambda r: r["burst"]["per_s"])
    t.add(name, "jobs/s bound if the worker's own CPU were zero", fmt_spread(spread(bound), 0),
          "Celery no-op tasks/s", fmt_spread(spread(noop_rate), 1),
          fmt_spread(spread(ratios(bound, noop_rate)), 2, "×"))
    notes.append(
        "Pipeline CPU (CPU seconds of each process tree over the burst, from /proc, divided by the "
        f"jobs completed; PostgreSQL and Redis are the whole servers): per job {parts(jobs, _JOB_PARTS)}; "
        f"per no-op task {parts(tasks, _NOOP_PARTS)}. The bound row is {cpus} CPUs divided by the "
        "CPU per job of everything but the worker and the load generator (API, simulator, "
        "PostgreSQL, Redis, beat): the rate the machine could reach if the worker cost nothing, "
        "so a throughput target above it cannot be met here by any change to the worker.")


def _server_ms_per_request(r: dict) -> float | None:
    return 1000 * r["server_cpu_util"] / r["rps"] if r["rps"] else None
