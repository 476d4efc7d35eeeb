"""`visiongate worker` runs one Celery worker process per core (or as configured), each with
its own node name, and restarts one that exits (cli/supervise.py)."""

import signal
import sys
import threading
import time

from cli import main as cli
from cli.supervise import Child, Supervisor
from core.settings import Settings


def test_worker_processes_default_to_the_cores_and_follow_the_setting(monkeypatch):
    monkeypatch.delenv("VISIONGATE_WORKER_PROCESSES", raising=False)
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 6)
    assert cli.worker_processes() == 6
    monkeypatch.setenv("VISIONGATE_WORKER_PROCESSES", "3")
    assert cli.worker_processes() == 3
    monkeypatch.setenv("VISIONGATE_WORKER_PROCESSES", "0")
    assert cli.worker_processes() == 1


def test_each_worker_process_gets_its_own_node_name(tmp_path):
    settings = Settings(VISIONGATE_DATA_DIR=tmp_path)
    one = cli.component_command("worker", settings)
    second = cli.component_command("worker", settings, 2)
    assert "-n" not in one
    assert second[:len(one)] == one and second[len(one):] == ["-n", "worker2@%h"]
    assert "bria.poll" in one[one.index("-Q") + 1].split(",")


def test_supervisor_restarts_a_child_that_exits_with_backoff_and_logs_it():
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    lines: list[str] = []
    sup = Supervisor([Child("steady", sleeper), Child("flaky", failing)], log=lines.append)
    sup.start()
    steady_pid = sup.children[0].proc.pid
    try:
        deadline = time.monotonic() + 8
        while sup.children[1].restarts < 2 and time.monotonic() < deadline:
            sup.check()
            time.sleep(0.05)
    finally:
        code = sup.stop(grace=5)
    assert sup.children[1].restarts >= 2  # restarted after 1 s, then after 2 s
    assert sup.children[0].proc.pid == steady_pid  # the others keep running
    assert any("flaky exited with 3; restarting in 1 s" in line for line in lines)
    assert any("flaky exited with 3; restarting in 2 s" in line for line in lines)
    assert code != 0 or sup.children[0].proc.returncode is not None


def test_supervisor_run_ends_on_sigterm_and_stops_every_child():
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    sup = Supervisor([Child("a", sleeper), Child("b", sleeper)], log=lambda _m: None)
    threading.Timer(1.0, lambda: signal.raise_signal(signal.SIGTERM)).start()
    started = time.monotonic()
    sup.run(grace=5)
    assert time.monotonic() - started < 10
    assert all(c.proc.poll() is not None for c in sup.children)
