"""Benchmark scenarios of the API's front: intake (submissions per second and latency, with an
optional profile of the API) and status reads."""

from __future__ import annotations

from typing import Any

from bench.common import GEN_BODY, GEN_PATH, log


class ReadScenarios:
    """Mixin of ``bench.run.Bench`` (a ``bench.system.System``)."""

    # ------------------------------------------------------------------ scenario 1
    def intake(self) -> None:
        log("scenario 1: intake")
        self.start("api", "baseline")
        api = f"http://127.0.0.1:{self.api_port}"
        base = f"http://127.0.0.1:{self.base_port}"
        variants = {
            "visiongate": ("api", api, GEN_PATH, (202,)),
            "bare": ("baseline", base, "/bare/generate-image", (202,)),
            "typical": ("baseline", base, "/typical/generate-image", (202,)),
        }
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
        for rep in range(self.a.repeats):
            for name, (server, url, path, expect) in variants.items():
                res = self.measured_load(server, url, [path], method="POST", body=GEN_BODY, expect=expect)
                runs[name].append(res)
                log(f"  intake {name} rep {rep + 1}: {res['rps']} req/s p50 {res['p50_ms']} ms "
                    f"p99 {res['p99_ms']} ms errors {res['errors']} (loadgen cpu {res['loadgen_cpu_util']})")
        self.results["scenarios"]["intake"] = {"runs": runs, "connections": self.a.connections}
        if not self.a.no_profile:
            self.profile_intake()
        self.wipe()


    def profile_intake(self) -> None:
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            log("  pyinstrument is not installed: no intake profile (pip install -e '.[bench]')")
            return
        log("  profiling the intake path (1 uvicorn process under pyinstrument)")
        self.start("profiled-api")
        res = self.load(f"http://127.0.0.1:{self.prof_port}", [GEN_PATH], method="POST",
                        body=GEN_BODY, expect=(202,))
        self.stop("profiled-api")
        self.results["scenarios"]["intake"]["profile_run"] = res
        path = self.out / "intake-profile.txt"
        if path.exists():
            header = (f"# pyinstrument profile of the intake path: POST {GEN_PATH} (sync:false),\n"
                      f"# {self.a.connections} connections for {self.a.duration:.0f} s against ONE uvicorn "
                      f"process (event-loop thread only;\n# the group writer's insert and Redis publish run on "
                      f"the same loop). Result of that run: {res['rps']} req/s, "
                      f"p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms.\n\n")
            path.write_text(header + path.read_text())


    # ------------------------------------------------------------------ scenario 2
    def status(self) -> None:
        log("scenario 2: status reads")
        for name in ("worker", "beat", "noop-worker"):
            self.stop(name)
        self.start(*[n for n in ("api", "baseline") if n not in self.procs.running])
        half = max(1, self.a.status_jobs // 2)
        with self.pg() as conn:
            completed = [r[0] for r in conn.execute(
                "SELECT id FROM jobs WHERE status='COMPLETED' LIMIT %s", (half,))]
        missing = half - len(completed)
        if missing > 0:  # no pipeline scenario in this run: make completed jobs now
            self.start("worker", "beat")
            self.load(f"http://127.0.0.1:{self.api_port}", [GEN_PATH], method="POST", body=GEN_BODY,
                      concurrency=8, duration=120, warmup=0, max_requests=missing, expect=(202,))
            self._wait_jobs(missing + len(completed), timeout=120)
            self.stop("worker", "beat")
            with self.pg() as conn:
                completed = [r[0] for r in conn.execute(
                    "SELECT id FROM jobs WHERE status='COMPLETED' LIMIT %s", (half,))]
        # In progress: accepted jobs nobody works on (workers stopped), so they stay QUEUED.
        self.load(f"http://127.0.0.1:{self.api_port}", [GEN_PATH], method="POST", body=GEN_BODY,
                  concurrency=8, duration=120, warmup=0, max_requests=half, expect=(202,))
        with self.pg() as conn:
            in_progress = [r[0] for r in conn.execute(
                "SELECT id FROM jobs WHERE status='QUEUED' LIMIT %s", (half,))]
        ids = [x for pair in zip(completed, in_progress) for x in pair]
        api = f"http://127.0.0.1:{self.api_port}"
        base = f"http://127.0.0.1:{self.base_port}"
        runs: dict[str, list[dict[str, Any]]] = {"visiongate": [], "bare": []}
        for rep in range(self.a.repeats):
            res = self.measured_load("api", api, [f"/api/v1/bria/status/{i}" for i in ids])
            runs["visiongate"].append(res)
            bare = self.measured_load("baseline", base, [f"/bare/status/{i}" for i in ids])
            runs["bare"].append(bare)
            log(f"  status rep {rep + 1}: {res['rps']} req/s (p99 {res['p99_ms']} ms) vs bare "
                f"{bare['rps']} req/s (p99 {bare['p99_ms']} ms)")
        self.stop("baseline")
        self.results["scenarios"]["status"] = {
            "runs": runs, "completed_jobs": len(completed), "in_progress_jobs": len(in_progress),
            "connections": self.a.connections}
        self.wipe()
