"""Benchmark scenario 5, batches: a big JSONL upload's intake against a bulk INSERT of the same
rows, and its drain through the pipeline."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import httpx
import psycopg

from bench import procs as P
from bench.common import GEN_BODY, GEN_PATH, clamp, log, rnd


# The acceptance baseline's table: the columns (and types) of the job rows a batch inserts, with
# a primary key and nothing else (no other index, no foreign key).
BATCH_BASELINE_COLUMNS = ("id", "tenant_id", "provider", "operation", "status", "credit_cost",
                          "held_at", "published_at", "params", "sync", "run_at", "attempts", "polls",
                          "poll_failures", "created_at", "updated_at", "batch_id", "custom_id")
BATCH_BASELINE_DDL = """CREATE TABLE IF NOT EXISTS bench_batch_rows (
    id varchar(32) PRIMARY KEY, tenant_id varchar(32), provider varchar(32), operation varchar(100),
    status varchar(16), credit_cost integer, held_at timestamptz, published_at timestamptz,
    params jsonb, sync boolean, run_at timestamptz, attempts integer, polls integer,
    poll_failures integer, created_at timestamptz, updated_at timestamptz, batch_id varchar(32),
    custom_id varchar(200))"""


def batch_lines(n: int, tag: str) -> tuple[list[bytes], dict[str, Any]]:
    """``n`` JSONL request lines (own custom_id, the same body: see GEN_BODY on the seed), and
    the stored params of one line (the endpoint's model, dumped as the batch stores it)."""
    from core.batches import job_endpoints
    from providers.registry import OPERATIONS

    base = json.loads(GEN_BODY)
    lines = [json.dumps({"custom_id": f"{tag}-{i:06d}", "endpoint": GEN_PATH, "body": base},
                        separators=(",", ":")).encode() + b"\n" for i in range(n)]
    op = job_endpoints(OPERATIONS)[GEN_PATH]
    params = op.request_model.model_validate(base).model_dump(mode="json")
    return lines, {"params": params, "provider": op.provider, "operation": op.name}


def baseline_rows(lines: list[bytes], spec: dict[str, Any], tenant_id: str) -> list[tuple[Any, ...]]:
    """The rows of the bulk-INSERT baseline: one per line, the values a batch insert writes."""
    import uuid

    from psycopg.types.json import Jsonb

    now = dt.datetime.now(dt.UTC)
    batch_id = uuid.uuid4().hex
    rows = []
    for i in range(len(lines)):
        params = spec["params"]
        created = now + dt.timedelta(microseconds=i)
        rows.append((uuid.uuid4().hex, tenant_id, spec["provider"], spec["operation"], "QUEUED", 0,
                     now, None, Jsonb(params), False, now, 0, 0, 0, created, now, batch_id,
                     f"baseline-{i:06d}"))
    return rows




class BatchScenarios:
    """Mixin of ``bench.run.Bench`` (a ``bench.system.System``)."""

    # ------------------------------------------------------------------ scenario 5
    def batch(self) -> None:
        n = self.a.batch_lines
        log(f"scenario 5: batch ingest, {n:,}-line JSONL (simulator latency 0), "
            f"{self.a.batch_repeats} repetition(s), drain ≤ {self.a.batch_drain:g} s")
        runs: dict[str, list[dict[str, Any]]] = {"visiongate": [], "copy": [], "executemany": [],
                                                 "noop": []}
        with self.pg() as conn:
            tenant_id = conn.execute("SELECT id FROM tenants WHERE name = 'bench'").fetchone()[0]
            conn.execute(BATCH_BASELINE_DDL)
        for rep in range(self.a.batch_repeats):
            for name in ("worker", "beat", "noop-worker", "api", "baseline", "profiled-api"):
                self.stop(name)
            self.wipe()
            if "sim" not in self.procs.running:
                self.start("sim")
            self.sim("POST", "/_sim/reset")
            self.sim("POST", "/_sim/config", json={"latency_seconds": 0})
            lines, params = batch_lines(n, f"r{rep + 1}")
            rows = baseline_rows(lines, params, tenant_id)
            # The bulk-INSERT baselines first (same Postgres, same rows, nothing else busy), then
            # the upload on freshly started processes (VmHWM of the API = this acceptance's peak).
            base = {"copy": self._bulk_insert(rows, "copy"),
                    "executemany": self._bulk_insert(rows, "executemany")}
            del rows
            self.start("api", "worker", "beat")
            vg = self._batch_once(lines, rep)
            del lines
            self.stop("worker", "beat")  # jobs left unfinished by the drain bound are dropped here
            self.redis.flushdb()
            self.start("noop-worker")
            n_noop = clamp(vg["completed"] or n, 200, 200_000)
            noop = self._noop(n_noop, None, drain=max(60.0, n_noop / 50))
            self.stop("noop-worker")
            for key, val in (("visiongate", vg), ("copy", base["copy"]),
                             ("executemany", base["executemany"]), ("noop", noop)):
                runs[key].append(val)
            log(f"  batch rep {rep + 1}: HTTP {vg['http_status']} in {vg['accept_s']} s (COPY "
                f"{base['copy']['seconds']} s, executemany {base['executemany']['seconds']} s); "
                f"API peak RSS {vg['api_rss_after_mib']['total_mib']} MiB; {vg['completed']}/{n} "
                f"completed at {vg['per_s']} jobs/s (no-op {noop['per_s']} tasks/s)")
        self.stop("worker", "beat", "noop-worker")
        with self.pg() as conn:
            conn.execute("DROP TABLE IF EXISTS bench_batch_rows")
        self.results["scenarios"]["batch"] = {
            "runs": runs, "lines": n, "drain_s": self.a.batch_drain,
            "endpoint": GEN_PATH, "baseline_table": "bench_batch_rows (same columns as the job "
                                                    "rows, primary key only)"}
        self.wipe()


    def _bulk_insert(self, rows: list[tuple[Any, ...]], how: str) -> dict[str, Any]:
        """The acceptance baseline: the same rows into a plain table, one transaction, timed from
        the first statement to the commit (connection set up beforehand, table emptied)."""
        cols = ", ".join(BATCH_BASELINE_COLUMNS)
        with self.pg() as conn:
            conn.execute("TRUNCATE bench_batch_rows")
        with psycopg.connect(self.pg_dsn) as conn:  # a transaction, as the API's insert is
            conn.execute("SELECT 1")
            conn.commit()
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                if how == "copy":
                    with cur.copy(f"COPY bench_batch_rows ({cols}) FROM STDIN") as cp:
                        for row in rows:
                            cp.write_row(row)
                else:
                    marks = ", ".join(["%s"] * len(BATCH_BASELINE_COLUMNS))
                    cur.executemany(f"INSERT INTO bench_batch_rows ({cols}) VALUES ({marks})", rows)
            conn.commit()
            seconds = time.perf_counter() - t0
            count = conn.execute("SELECT count(*) FROM bench_batch_rows").fetchone()[0]
        with self.pg() as conn:
            conn.execute("TRUNCATE bench_batch_rows")
        return {"how": how, "rows": count, "seconds": round(seconds, 3),
                "rows_per_s": round(count / seconds, 1) if seconds > 0 else None}


    def _batch_once(self, lines: list[bytes], rep: int) -> dict[str, Any]:
        n = len(lines)
        api = f"http://127.0.0.1:{self.api_port}"
        headers = {"X-API-Key": self.api_key, "Accept": "application/json"}
        payload = b"".join(lines)
        api_pid = self.procs.running["api"].pid
        rss_before = P.peak_rss_mib(api_pid)
        cpu0 = P.cpu_seconds(api_pid)
        status, doc, err = None, {}, None
        t0 = time.perf_counter()
        with httpx.Client(timeout=httpx.Timeout(600.0, connect=10.0)) as client:
            try:
                resp = client.post(f"{api}/api/v1/batches", headers=headers,
                                   files={"file": (f"bench-{rep + 1}.jsonl", payload, "application/jsonl")})
                status = resp.status_code
                accept_s = time.perf_counter() - t0
                try:
                    doc = resp.json()
                except ValueError:
                    doc = {"raw": resp.text[:500]}
            except httpx.HTTPError as exc:
                accept_s, err = time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
        rss_after = P.peak_rss_mib(api_pid)
        api_cpu = P.cpu_seconds(api_pid) - cpu0
        batch = (doc.get("result") or {}) if isinstance(doc, dict) else {}
        log(f"  batch upload ({len(payload) / 1e6:.1f} MB): HTTP {status} in {accept_s:.2f} s; "
            f"counts {batch.get('counts')}; API VmHWM {rss_before['total_mib']} → "
            f"{rss_after['total_mib']} MiB")
        out: dict[str, Any] = {
            "lines": n, "upload_bytes": len(payload), "http_status": status, "error": err,
            "accept_s": round(accept_s, 3), "accepted_counts": batch.get("counts"),
            "batch_id": batch.get("id"), "api_rss_before_mib": rss_before,
            "api_rss_after_mib": rss_after, "api_cpu_accept_s": round(api_cpu, 2),
        }
        if status is None or not 200 <= status < 300 or not batch.get("id"):
            out.update({"detail": str(doc)[:1000], "completed": 0, "finished": 0, "per_s": None,
                        "final_status": None, "drain_s": 0.0, "all_completed": False})
            log(f"  batch upload refused: HTTP {status} {err or str(doc)[:300]}")
            return out
        out.update(self._batch_drain(api, headers, batch["id"], n))
        return out


    def _batch_drain(self, api: str, headers: dict[str, str], batch_id: str, n: int) -> dict[str, Any]:
        """Poll GET /api/v1/batches/{id} until the batch is closed, the drain bound passes, or no
        job finished for the stall bound; then take the times from the job rows."""
        stall = 20.0 if self.a.quick else 180.0
        every = 0.5 if self.a.quick else 2.0
        t0 = time.monotonic()
        deadline = t0 + self.a.batch_drain
        doc: dict[str, Any] = {}
        last, moved, polls, reason = -1, t0, 0, "drain bound"
        with httpx.Client(timeout=30.0) as client:
            while time.monotonic() < deadline:
                polls += 1
                try:
                    r = client.get(f"{api}/api/v1/batches/{batch_id}", headers=headers)
                    if r.status_code == 200:
                        doc = r.json()["result"]
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                if doc.get("status") in ("completed", "cancelled", "failed"):
                    reason = "batch " + doc["status"]
                    break
                finished = (doc.get("counts") or {}).get("finished", 0)
                if finished != last:
                    last, moved = finished, time.monotonic()
                elif time.monotonic() - moved > stall:
                    reason = f"no job finished for {stall:g} s"
                    log(f"  batch: {reason}; giving up waiting ({doc.get('counts')})")
                    break
                self.procs.check_alive(["worker", "beat", "api"])
                time.sleep(every)
        drain = time.monotonic() - t0
        with self.pg() as conn:
            created, closed, bstatus = conn.execute(
                "SELECT extract(epoch from created_at), extract(epoch from finished_at), status "
                "FROM batches WHERE id = %s", (batch_id,)).fetchone()
            completed, finished, first_start, last_done = conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'COMPLETED'), "
                "count(*) FILTER (WHERE status IN ('COMPLETED','ERROR','CANCELLED','EXPIRED')), "
                "extract(epoch from min(started_at)), "
                "extract(epoch from max(finished_at) FILTER (WHERE status = 'COMPLETED')) "
                "FROM jobs WHERE batch_id = %s", (batch_id,)).fetchone()
            states = dict(conn.execute("SELECT status, count(*) FROM jobs WHERE batch_id = %s "
                                       "GROUP BY status", (batch_id,)).fetchall())
        window = float(last_done) - float(created) if completed and last_done is not None else None
        window_started = (float(last_done) - float(first_start)
                          if completed and last_done is not None and first_start is not None else None)
        return {
            "completed": completed, "finished": finished, "states": states,
            "all_completed": completed == n, "final_status": bstatus, "stopped_by": reason,
            "drain_s": round(drain, 1), "status_polls": polls,
            "window_s": rnd(window, 3),
            "per_s": round(completed / window, 2) if window else None,
            "window_from_first_start_s": rnd(window_started, 3),
            "per_s_from_first_start": round(completed / window_started, 2) if window_started else None,
            "batch_wall_s": rnd(float(closed) - float(created), 3) if closed is not None else None,
            "first_start_after_created_s": rnd(float(first_start) - float(created), 3)
            if first_start is not None else None,
        }
