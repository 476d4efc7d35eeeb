"""`visiongate worker` runs one Celery worker process per core (or as configured), each with
its own node name, and stops the others when one exits."""

import sys

from cli import main as cli
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


def test_supervisor_stops_the_others_when_one_exits():
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    assert cli._supervise([sleeper, failing]) != 0  # returns, with a failure, well before 60 s
