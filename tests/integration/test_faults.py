"""Faults, with real processes: a private PostgreSQL database, a private Redis server (so it can
be stopped and restarted empty), the API, beat, the simulator and workers started with the
product's commands. Each test breaks one thing and checks that no job is lost, none is submitted
upstream twice when that can be avoided, and no request gets a 500."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from sqlalchemy import create_engine, text

from tests.integration.conftest import DB_NAME, PG_ADMIN, Client
from tests.integration.system import ROOT, System, free_port
from tests.integration.tcp_proxy import Proxy

DB = f"{DB_NAME}_faults"


class RedisServer:
    def __init__(self, folder: Path):
        self.port, self.folder, self.proc = free_port(), folder, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
                                     stdout=subprocess.DEVNULL, start_new_session=True)
        for _ in range(100):
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except Exception:  # noqa: BLE001
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:  # nothing is saved: it comes back empty
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="module")
def rig(system_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')
    db_url = system_env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{DB}"
    broker = RedisServer(folder)
    broker.start()
    pg_port = int(re.search(r":(\d+)/", db_url).group(1))
    proxy = Proxy(pg_port)  # the workers reach the database through it: it can be cut
    env = {**system_env, "DATABASE_URL": db_url, "BROKER_URL": broker.url,
           "VISIONGATE_DATA_DIR": str(folder), "VISIONGATE_SIMULATOR_PORT": str(free_port()),
           "VISIONGATE_REQUEUE_AFTER_SECONDS": "300"}  # a lost message must not wait for this
    run = lambda *a: subprocess.run([sys.executable, "-m", "cli.main", *a], cwd=ROOT, env=env,  # noqa: E731
                                    capture_output=True, text=True, check=True)
    run("migrate")
    key = re.search(r"api key: (\S+)", run("keys", "create", "--tenant", "faults", "--plan", "enterprise").stdout)[1]
    sys_ = System(env, folder)
    sys_.worker_env = {"DATABASE_URL": db_url.replace(f":{pg_port}/", f":{proxy.port}/")}
    sys_.broker, sys_.proxy = broker, proxy
    sys_.engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1)
                                if db_url.startswith("postgresql://") else db_url)
    try:
        for name in ("simulator", "api", "beat"):
            sys_.start(name)
        sys_.sim("POST", "/_sim/config", json={"latency_seconds": 0.3}).raise_for_status()
        sys_.client = Client(sys_.api_url, key)
        yield sys_
    finally:
        sys_.stop()
        proxy.close()
        broker.stop()
        sys_.engine.dispose()


@pytest.fixture
def rig_reset(rig):
    rig.sim("POST", "/_sim/reset").raise_for_status()
    rig.sim("POST", "/_sim/config", json={"latency_seconds": 0.3}).raise_for_status()
    rig.proxy.restore()
    yield rig
    for name in [n for n in rig.procs if "worker" in n or n == "beat2"]:
        rig.kill(name)


def job_row(rig, job_id: str) -> dict:
    with rig.engine.connect() as conn:
        return dict(conn.execute(text("SELECT status, uncertain_submits, upstream_tasks FROM jobs "
                                      "WHERE id = :id"), {"id": job_id}).mappings().one())


def submits(rig) -> int:
    return rig.sim_stats().get("submit", 0)


def submit(rig, prompt: str) -> str:
    resp = rig.client.generate({"prompt": prompt, "sync": False})
    assert resp.status_code == 202, resp.text
    return resp.json()["result"]["request_id"]


# Where a worker process is killed during a start, and what recovery must make of it:
# after_send   the upstream answered, nothing kept yet: Bria offers no lookup by our reference
#              and no cancel, so recovery submits again and says so on the job;
# after_note   the id is noted in the host's journal, not yet in the database (what remains
#              of the window is the answer reaching us): resumed, not resubmitted;
# after_record the id is in the job's row, the rest of the start is not done: resumed.
@pytest.mark.parametrize("point,upstream_submits,uncertain", [
    ("after_send", 2, 1), ("after_note", 1, 0), ("after_record", 1, 0)])
def test_a_worker_killed_during_a_start(rig_reset, tmp_path, point, upstream_submits, uncertain):
    rig = rig_reset
    marker = tmp_path / "crashed"
    rig.start("supervised-worker", env={**rig.worker_env, "VISIONGATE_FAULT_AT": f"{point}:{marker}"})
    job_id = submit(rig, f"killed at {point}")
    assert rig.client.wait(job_id, timeout=60)["status"] == "COMPLETED"
    assert marker.exists()  # it did die there (and `visiongate worker` started it again)
    assert submits(rig) == upstream_submits
    assert job_row(rig, job_id)["uncertain_submits"] == uncertain


def test_a_database_outage_while_the_task_id_is_recorded_does_not_submit_again(rig_reset, tmp_path):
    rig = rig_reset
    pause = tmp_path / "paused"
    rig.start("worker", env={**rig.worker_env, "VISIONGATE_FAULT_AT": f"after_send:{pause}:pause"})
    job_id = submit(rig, "database away while recording")
    deadline = time.time() + 30
    while not pause.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert pause.exists()
    rig.proxy.cut()  # the worker's database goes away the moment the upstream has answered
    pause.unlink()
    time.sleep(8)  # the quick retries give up: the ids go to the journal
    assert "kept in the journal" in rig.log_path("worker").read_text()
    rig.proxy.restore()
    assert rig.client.wait(job_id, timeout=60)["status"] == "COMPLETED"
    assert submits(rig) == 1
    assert job_row(rig, job_id)["uncertain_submits"] == 0


def test_redis_down_submits_and_status_reads_never_answer_500(rig_reset):
    rig = rig_reset
    rig.start("worker", env=rig.worker_env)
    worker_pid = rig.procs["worker"].pid
    before = submit(rig, "before the outage")
    rig.broker.stop()
    answers: dict[int, int] = {}
    accepted = []
    try:
        for i in range(20):
            resp = rig.client.generate({"prompt": f"during the outage {i}", "sync": False})
            answers[resp.status_code] = answers.get(resp.status_code, 0) + 1
            if resp.status_code == 202:
                accepted.append(resp.json()["result"]["request_id"])
            else:
                assert resp.status_code == 503 and resp.headers.get("Retry-After"), resp.text
            status = rig.client.status(before)
            answers[status.status_code] = answers.get(status.status_code, 0) + 1
            assert status.status_code == 200, status.text
    finally:
        rig.broker.start()
    assert 500 not in answers and accepted, answers  # the row is the truth: intake went on
    for job_id in [before, *accepted]:
        assert rig.client.wait(job_id, timeout=60)["status"] == "COMPLETED"
    assert rig.procs["worker"].poll() is None and rig.procs["worker"].pid == worker_pid  # survived


def test_queued_messages_lost_with_an_emptied_broker_are_published_again_at_once(rig_reset):
    rig = rig_reset
    ids = [submit(rig, f"queued {i}") for i in range(10)]  # no worker: the messages wait in Redis
    rig.broker.stop()
    rig.broker.start()  # back, empty
    started = time.time()
    rig.start("worker", env=rig.worker_env)
    for job_id in ids:
        assert rig.client.wait(job_id, timeout=60)["status"] == "COMPLETED"
    # A publish lease of VISIONGATE_REQUEUE_AFTER_SECONDS (300 here) was the only way back before.
    assert time.time() - started < 60


def test_a_killed_worker_process_is_started_again(rig_reset):
    rig = rig_reset
    rig.start("supervised-worker", env=rig.worker_env)
    supervisor = rig.procs["supervised-worker"].pid
    child = _celery_children(supervisor)
    assert len(child) == 1
    os.kill(child[0], signal.SIGKILL)
    deadline = time.time() + 20
    now = child  # one listing per look: the killed child is listed until it is reaped
    while time.time() < deadline and (not now or now == child):
        time.sleep(0.2)
        now = _celery_children(supervisor)
    assert now and now != child, now
    assert "restarting in 1 s" in rig.log_path("supervised-worker").read_text()
    job_id = submit(rig, "after the restart")
    assert rig.client.wait(job_id, timeout=60)["status"] == "COMPLETED"


def _celery_children(parent: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


def test_two_beats_one_leads_and_killing_the_leader_hands_over(rig_reset):
    rig = rig_reset
    rig.start("worker", env=rig.worker_env)
    rig.start("beat2")
    time.sleep(4)
    logs = {n: rig.log_path(n).read_text() for n in ("beat", "beat2")}
    leader = "beat" if "is the leader now" in logs["beat"] else "beat2"
    standby = "beat2" if leader == "beat" else "beat"
    sent_before = rig.log_path(standby).read_text().count("Sending due task")
    assert sent_before == 0 and "is the leader now" not in logs[standby]
    rig.kill(leader)
    deadline = time.time() + 15
    while time.time() < deadline and "is the leader now" not in rig.log_path(standby).read_text():
        time.sleep(0.2)
    assert "is the leader now" in rig.log_path(standby).read_text()
    job_id = submit(rig, "after the hand-over")
    assert rig.client.wait(job_id, timeout=60)["status"] == "COMPLETED"
    if leader == "beat":  # keep the module's "beat" name for later tests
        rig.procs["beat"] = rig.procs.pop("beat2")


def test_an_api_killed_after_creating_a_keyed_job_answers_the_retry_from_that_job(rig_reset, tmp_path):
    """The job is linked to its Idempotency-Key in the transaction that creates it: an API
    process that dies before storing its answer leaves a key the retry adopts, not a second job."""
    rig = rig_reset
    marker, port = tmp_path / "api-crashed", free_port()
    rig.start("api-crash", env={"VISIONGATE_FAULT_AT": f"idempotent_created:{marker}"}, port=port)
    key, body = "crash-after-create-1", {"prompt": "keyed, then the API died", "sync": False}
    path = "/api/v1/bria/image/generation/generate-image"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=rig.client.http.headers, timeout=30) as c:
        with pytest.raises(httpx.TransportError):  # no answer: the process died
            c.post(path, json=body, headers={"Idempotency-Key": key})
    assert marker.exists() and rig.procs["api-crash"].wait(10) == -signal.SIGKILL
    rig.kill("api-crash")
    with rig.engine.begin() as conn:
        jobs = conn.execute(text("SELECT id FROM jobs WHERE params->>'prompt' = :p"), {"p": body["prompt"]}).all()
        assert len(jobs) == 1
        conn.execute(text("UPDATE idempotency_keys SET locked_until = now() - interval '1 second' WHERE key = :k"),
                     {"k": key})  # ... the claim's lock has lapsed
    retry = rig.client.http.post(path, json=body, headers={"Idempotency-Key": key})
    assert retry.status_code == 202, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["result"]["request_id"] == jobs[0][0]
    again = rig.client.http.post(path, json=body, headers={"Idempotency-Key": key})
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == retry.json()  # stored now
    with rig.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM jobs WHERE params->>'prompt' = :p"), {"p": body["prompt"]}) == 1


def test_a_database_outage_answers_503_and_keeps_the_connection_open(rig_reset):
    """Every request during a database outage gets its 503, and the keep-alive connection stays
    usable: the server closed a connection whose request had raised, even after answering it, so
    a client's next request on it got no answer (seen as closed connections in `make chaos`)."""
    rig = rig_reset
    port = free_port()
    # It reaches the database through the proxy, and keeps keys it has checked (as in production),
    # so status reads take the fast path, which runs outside FastAPI's exception handling.
    rig.start("api-cut", env={**rig.worker_env, "VISIONGATE_AUTH_CACHE_SECONDS": "60"}, port=port)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"X-API-Key": rig.client.http.headers["X-API-Key"], "Content-Type": "application/json"}

    def ask(method: str, path: str, body: str | None = None) -> tuple[int, dict, bytes]:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()

    assert ask("GET", "/api/v1/bria/status/" + "0" * 32)[0] == 404  # the key is known (cached) now
    sock = conn.sock
    rig.proxy.cut()
    try:
        for n in range(3):  # the status fast path, a submit, the job view: one connection
            for method, path, body in (("GET", f"/api/v1/bria/status/{n:032d}", None),
                                       ("POST", "/api/v1/bria/image/generation/generate-image",
                                        json.dumps({"prompt": f"cut {n}", "sync": False})),
                                       ("GET", f"/api/v1/jobs/{n:032d}", None)):
                status, got, raw = ask(method, path, body)
                assert status == 503 and got.get("retry-after"), (method, path, status, raw[:300])
                assert json.loads(raw)["error"]["code"] == "service_unavailable"
                assert conn.sock is sock  # the same connection, still open
    finally:
        rig.proxy.restore()
        conn.close()
    assert "Exception in ASGI application" not in rig.log_path("api-cut").read_text()
