"""Smoke test of the benchmark harness (``make bench``): every scenario for about a second with a
tiny N, against the real PostgreSQL and Redis, to prove the harness starts and stops the system,
drives it, and writes the table and the JSON with the right columns.

No timing is asserted: the numbers of a one-second run on a shared machine mean nothing. The test
fails when PostgreSQL or Redis is not reachable (``scripts/ensure-services.sh`` starts them; make test runs it).
It uses its own database (created and dropped by the harness) and Redis database 13; override
them with ``BENCH_SMOKE_DB`` and ``BENCH_SMOKE_REDIS`` (or ``BENCH_SMOKE_REDIS_URL``) to run it
beside another run of it. The batch scenario runs with a 50-line batch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.procs import alive
from bench.report import COLUMNS

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = (os.environ.get("BENCH_SMOKE_REDIS") or os.environ.get("BENCH_SMOKE_REDIS_URL")
             or "redis://127.0.0.1:6379/13")
DB = os.environ.get("BENCH_SMOKE_DB") or "visiongate_bench_smoke"
BATCH_LINES = 50

pytestmark = pytest.mark.integration


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not (_reachable("127.0.0.1", 5432) and _reachable("127.0.0.1", 6379)):
        pytest.fail("needs local PostgreSQL and Redis: run scripts/ensure-services.sh (make test does)")
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out), "--db", DB,
         "--pg-admin", PG_ADMIN, "--redis", REDIS_URL, "--lock-wait", "60",
         "--batch-lines", str(BATCH_LINES)],
        cwd=ROOT, capture_output=True, text=True, timeout=340)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return {"out": out, "json": json.loads((out / "results.json").read_text()),
            "md": (out / "results.md").read_text(), "log": proc.stdout}


def test_markdown_table_has_the_columns_and_every_scenario(smoke: dict[str, Any]) -> None:
    md = smoke["md"]
    assert "| " + " | ".join(COLUMNS) + " |" in md
    for scenario in ("1 Intake", "2 Status reads", "3 Pipeline", "4 In flight", "5 Batch ingest"):
        assert f"| {scenario}" in md, scenario
    assert "Smoke run" in md  # a quick run says its numbers mean nothing


def test_json_rows_match_the_table(smoke: dict[str, Any]) -> None:
    rows = smoke["json"]["table"]
    assert rows and all(list(r) == COLUMNS for r in rows)
    targets = {r["Target"] for r in rows}
    assert {"≥ 3×", "≤ 100 ms", "≥ 0.5×", "≤ 50 ms"} <= targets
    assert any(t.startswith("all") for t in targets)  # in flight: every job completes
    for row in rows:
        if row["Target"] != "—":
            assert row["Result"] in ("met", "**MISSED**", "n/a"), row


def test_each_scenario_recorded_its_repetitions(smoke: dict[str, Any]) -> None:
    sc = smoke["json"]["scenarios"]
    for variant in ("visiongate", "bare", "typical"):
        run = sc["intake"]["runs"][variant][0]
        assert {"rps", "p50_ms", "p99_ms", "errors", "loadgen_cpu_util", "server_cpu_util"} <= set(run)
        assert run["requests"] > 0
    for variant in ("visiongate", "bare"):
        assert sc["status"]["runs"][variant][0]["requests"] > 0
    for variant in ("visiongate", "noop"):
        rep = sc["pipeline"]["runs"][variant][0]
        assert rep["burst"]["completed"] > 0 and rep["paced"]["completed"] > 0
        assert {"per_s", "p50_ms", "p99_ms", "window_s"} <= set(rep["burst"])
    # where a burst's CPU went: the worker and the servers did some work, measured per process
    job_cpu = sc["pipeline"]["runs"]["visiongate"][0]["burst"]["cpu_s"]
    assert {"worker", "api", "sim", "beat", "postgres", "redis", "loadgen"} <= set(job_cpu)
    assert job_cpu["worker"] > 0 and job_cpu["postgres"] > 0 and job_cpu["sim"] > 0
    noop_cpu = sc["pipeline"]["runs"]["noop"][0]["burst"]["cpu_s"]
    assert {"noop-worker", "redis", "sender"} <= set(noop_cpu) and noop_cpu["noop-worker"] > 0
    rows = {r["Metric"]: r for r in smoke["json"]["table"] if r["Scenario"].startswith("3 ")}
    assert "jobs/s bound if the worker's own CPU were zero" in rows
    inflight = sc["inflight"]["runs"][0]
    assert inflight["completed"] == inflight["jobs"]
    assert inflight["late_p50_s"] is not None and inflight["status_requests"] > 0
    assert set(inflight["peak_rss_mib"]) == {"worker", "beat", "api"}
    assert all(v["total_mib"] > 0 for v in inflight["peak_rss_mib"].values())


def test_batch_ingest_rows_have_numbers(smoke: dict[str, Any]) -> None:
    rows = [r for r in smoke["json"]["table"] if r["Scenario"].startswith("5 Batch ingest")]
    metrics = {r["Metric"] for r in rows}
    assert {"seconds to accept (request → 2xx)", "completed jobs/s (sim latency 0)",
            "peak RSS API during acceptance (MiB, VmHWM incl. children)"} <= metrics, metrics
    assert f"({BATCH_LINES:,} lines)" in rows[0]["Scenario"]
    for row in rows:
        if row["Metric"] in ("seconds to accept (request → 2xx)", "completed jobs/s (sim latency 0)"):
            for col in ("visiongate", "Baseline value", "Ratio"):
                assert any(ch.isdigit() for ch in row[col]) and "n/a" not in row[col], row
    accepted = next(r for r in rows if r["Metric"].startswith("HTTP status"))
    assert accepted["visiongate"].startswith("202; 50 / 0") and accepted["Result"] == "met", accepted


def test_batch_ingest_recorded_its_repetition(smoke: dict[str, Any]) -> None:
    b = smoke["json"]["scenarios"]["batch"]
    assert b["lines"] == BATCH_LINES
    vg = b["runs"]["visiongate"][0]
    assert vg["http_status"] == 202 and vg["accepted_counts"]["total"] == BATCH_LINES
    assert vg["accept_s"] > 0 and vg["completed"] > 0 and vg["per_s"] > 0
    assert vg["api_rss_after_mib"]["total_mib"] > 0 and vg["api_rss_before_mib"]["total_mib"] > 0
    for key in ("copy", "executemany"):
        assert b["runs"][key][0]["rows"] == BATCH_LINES and b["runs"][key][0]["seconds"] > 0
    assert b["runs"]["noop"][0]["completed"] > 0


def test_no_process_is_left_running_and_the_database_is_gone(smoke: dict[str, Any]) -> None:
    pids = smoke["json"]["meta"]["pids"]
    assert pids
    assert [p for p in pids if alive(p)] == []
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone() is None
