"""Benchmark scenarios of the job pipeline: jobs per second through worker and simulator against
a Celery no-op, and slow upstream calls held in flight."""

from __future__ import annotations

import math
import subprocess
import threading
import time
from typing import Any

import httpx

from bench import procs as P
from bench.common import GEN_BODY, GEN_PATH, PY, ROOT, children_cpu, clamp, log, rnd
from bench.stats import percentile



class PipelineScenarios:
    """Mixin of ``bench.run.Bench`` (a ``bench.system.System``)."""

    def _pipeline_burst(self, n: int) -> dict[str, Any]:
        self.wipe_jobs()
        meter = self.cpu_meter("worker", "beat", "api", "sim")
        sub = self.load(f"http://127.0.0.1:{self.api_port}", [GEN_PATH], method="POST", body=GEN_BODY,
                        concurrency=16, duration=max(60.0, n / 5), warmup=0, max_requests=n,
                        expect=(202,))
        self._wait_jobs(sub["requests"], timeout=self._drain_timeout(10))
        st = self._job_stats()
        st["submit_errors"] = sub["errors"]
        st["cpu_s"] = {**meter.read(), "loadgen": sub.get("loadgen_cpu_s")}
        return st


    def _pipeline_paced(self) -> dict[str, Any]:
        self.wipe_jobs()
        n = int(self.a.pipeline_rate * self.a.duration)
        sub = self.load(f"http://127.0.0.1:{self.api_port}", [GEN_PATH], method="POST", body=GEN_BODY,
                        concurrency=4, duration=self.a.duration + 5, warmup=0, max_requests=n,
                        rate=self.a.pipeline_rate, expect=(202,))
        self._wait_jobs(sub["requests"], timeout=self._drain_timeout(6))
        st = self._job_stats()
        st["submit_errors"] = sub["errors"]
        return st


    def _drain_timeout(self, factor: float) -> float:
        return 30.0 if self.a.quick else max(60.0, factor * self.a.duration)


    def _noop(self, n: int, rate: float | None, drain: float | None = None) -> dict[str, Any]:
        from bench.noop import RESULTS_KEY

        self.redis.delete(RESULTS_KEY)
        max_s = (n / rate + 30) if rate else 120.0
        meter, sender0 = self.cpu_meter("noop-worker"), children_cpu()
        res = subprocess.run([PY, "-m", "bench.noop", "send", str(n), str(rate or 0), str(max_s)],
                             cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=max_s + 60)
        if res.returncode != 0:
            raise RuntimeError(f"noop sender failed: {res.stderr[-2000:]}")
        sent = int(res.stdout.strip().splitlines()[-1])
        deadline = time.monotonic() + (drain or self._drain_timeout(10))
        while time.monotonic() < deadline and self.redis.llen(RESULTS_KEY) < sent:
            self.procs.check_alive(["noop-worker"])
            time.sleep(0.1)
        cpu = {**meter.read(), "sender": round(children_cpu() - sender0, 3)}
        pairs = [tuple(map(float, x.split(b","))) for x in self.redis.lrange(RESULTS_KEY, 0, -1)]
        lat = [(d - s) * 1000 for s, d in pairs]
        window = (max(d for _, d in pairs) - min(s for s, _ in pairs)) if pairs else 0.0
        return {"jobs": sent, "completed": len(pairs), "failed": sent - len(pairs),
                "window_s": round(window, 3), "per_s": round(len(pairs) / window, 2) if window > 0 else None,
                "p50_ms": rnd(percentile(lat, 0.5)), "p99_ms": rnd(percentile(lat, 0.99)), "cpu_s": cpu}


    def pipeline(self) -> None:
        log("scenario 3: pipeline (simulator latency 0)")
        self.sim("POST", "/_sim/config", json={"latency_seconds": 0})
        if "api" not in self.procs.running:
            self.start("api")
        target = self.a.duration
        if self.a.quick:
            n_pipe, n_noop = self.a.pipeline_max_jobs, 200
        else:  # size the bursts so each lasts about `duration` seconds at the measured rate
            self.start("worker", "beat")
            cal = self._pipeline_burst(100)
            self.stop("worker", "beat")
            self.start("noop-worker")
            cal_noop = self._noop(1000, None)
            self.stop("noop-worker")
            n_pipe = clamp(math.ceil((cal["per_s"] or 10) * target * 1.3), 100, self.a.pipeline_max_jobs)
            n_noop = clamp(math.ceil((cal_noop["per_s"] or 100) * target * 1.3), 1000, 200_000)
            log(f"  calibration: pipeline {cal['per_s']} jobs/s → N={n_pipe}; "
                f"no-op {cal_noop['per_s']} tasks/s → N={n_noop}")
        runs: dict[str, list[dict[str, Any]]] = {"visiongate": [], "noop": []}
        for rep in range(self.a.repeats):
            self.start("worker", "beat")
            if not self.a.quick:  # steady state: the fresh worker has met the operation once
                self._pipeline_burst(clamp(round(n_pipe * self.a.warmup / target), 20, n_pipe))
            burst, paced = self._pipeline_burst(n_pipe), self._pipeline_paced()
            self.stop("worker", "beat")
            runs["visiongate"].append({"burst": burst, "paced": paced})
            log(f"  pipeline rep {rep + 1}: {burst['per_s']} jobs/s over {burst['window_s']} s; "
                f"paced p50 {paced['p50_ms']} ms p99 {paced['p99_ms']} ms")
            self.start("noop-worker")
            if not self.a.quick:
                self._noop(clamp(round(n_noop * self.a.warmup / target), 200, n_noop), None)
            burst, paced = self._noop(n_noop, None), self._noop(
                int(self.a.pipeline_rate * self.a.duration), self.a.pipeline_rate)
            self.stop("noop-worker")
            runs["noop"].append({"burst": burst, "paced": paced})
            log(f"  no-op    rep {rep + 1}: {burst['per_s']} tasks/s over {burst['window_s']} s; "
                f"paced p50 {paced['p50_ms']} ms p99 {paced['p99_ms']} ms")
        self.redis.flushdb()
        self.results["scenarios"]["pipeline"] = {
            "runs": runs, "burst_jobs": n_pipe, "burst_noop_tasks": n_noop,
            "paced_rate": self.a.pipeline_rate}


    # ------------------------------------------------------------------ scenario 4
    def inflight(self) -> None:
        n, lat = self.a.inflight_jobs, self.a.inflight_latency
        log(f"scenario 4: {n} jobs in flight, upstream latency {lat:.0f} s")
        runs = []
        for rep in range(self.a.inflight_repeats):
            for name in ("worker", "beat", "noop-worker", "api", "baseline", "sim"):
                self.stop(name)
            self.wipe()
            self.start("sim", "api", "worker", "beat")  # fresh processes: VmHWM is this run's
            runs.append(self._inflight_once(n, lat))
            r = runs[-1]
            log(f"  in-flight rep {rep + 1}: {r['completed']}/{n} completed; lateness p50 "
                f"{r['late_p50_s']} s p99 {r['late_p99_s']} s; status req/s {r['status_rps_mean']}")
        self.stop("worker", "beat")
        self.results["scenarios"]["inflight"] = {
            "runs": runs, "jobs": n, "upstream_latency_s": lat,
            "poll_interval_s": 1.0, "poll_interval_max_s": 15.0, "drain_s": self.a.inflight_drain}
        self.wipe()


    def _inflight_once(self, n: int, lat: float) -> dict[str, Any]:
        self.sim("POST", "/_sim/reset")
        self.sim("POST", "/_sim/config", json={"latency_seconds": lat})
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        hard_end = time.monotonic() + n / 5 + lat + self.a.inflight_drain + 120

        def sample() -> None:  # upstream status requests, once a second, bounded
            with httpx.Client(timeout=5) as c:
                while not stop.is_set() and time.monotonic() < hard_end:
                    try:
                        s = c.get(f"http://127.0.0.1:{self.sim_port}/_sim/stats").json()
                        samples.append((time.time(), int(s["status"])))
                    except Exception:  # noqa: BLE001 - a missed sample only
                        pass
                    stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.time()
        try:
            sub = self.load(f"http://127.0.0.1:{self.api_port}", [GEN_PATH], method="POST",
                            body=GEN_BODY, concurrency=32, duration=max(60.0, n / 5), warmup=0,
                            max_requests=n, expect=(202,))
            t_sub = time.time()
            counts = self._wait_jobs(sub["requests"], timeout=lat + self.a.inflight_drain + (t_sub - t0))
            t_end = time.time()
            rss = {name: P.peak_rss_mib(self.procs.running[name].pid) for name in ("worker", "beat", "api")}
        finally:
            stop.set()
            sampler.join(10)
        done_at = self.sim("GET", "/_bench/tasks")
        stats = self.sim("GET", "/_sim/stats")
        with self.pg() as conn:
            rows = conn.execute("SELECT status, extract(epoch from finished_at), upstream_tasks, polls "
                                "FROM jobs").fetchall()
        late = []
        for status, fin, tasks, _ in rows:
            if status == "COMPLETED" and tasks and tasks[0].get("id") in done_at:
                late.append(float(fin) - max(done_at[t["id"]] for t in tasks if t.get("id") in done_at))
        polls = [r[3] for r in rows if r[0] == "COMPLETED"]
        completed = sum(1 for r in rows if r[0] == "COMPLETED")
        finished = [float(r[1]) for r in rows if r[0] == "COMPLETED"]
        window = (max(finished) - t0) if finished else (t_end - t0)
        rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(samples, samples[1:]) if b[0] > a[0]]
        return {
            "jobs": n, "submitted": sub["requests"], "submit_errors": sub["errors"],
            "submit_s": round(t_sub - t0, 1), "submit_rps": sub["rps"],
            "completed": completed, "states": counts, "all_completed": completed == n,
            "window_s": round(window, 1),
            "late_p50_s": rnd(percentile(late, 0.5)), "late_p99_s": rnd(percentile(late, 0.99)),
            "late_max_s": rnd(max(late) if late else None),
            # noticed within two poll intervals of the upstream finishing (the target)
            "late_within_2_intervals": sum(1 for x in late if x <= 2 * min(15.0, max(1.0, 0.1 * lat))),
            "polls_per_job_p50": percentile(polls, 0.5),
            "status_requests": stats["status"], "submit_requests": stats["submit"],
            "download_requests": stats["download"],
            "status_rps_mean": round(stats["status"] / window, 1) if window > 0 else None,
            "status_rps_peak": round(max(rates), 1) if rates else None,
            "peak_rss_mib": rss,
        }
