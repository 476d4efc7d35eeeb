"""The repository is self-contained: a fresh clone, with nothing beside it, collects the whole
suite and passes the tests that read the reference (its copy lives in spec/). Nothing in the
project reads a file outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def test_no_tracked_file_points_outside_the_repo():
    offenders = []
    for name in tracked_files():
        path = REPO / name
        if path.suffix not in (".py", ".sh", ".toml", ".ini", ".cfg", ".yml", ".yaml") and path.name not in (
                "Makefile", "Dockerfile", "run"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        outside = "/".join(("..", "shared"))  # the folder beside a checkout that a user's clone lacks
        for needle in (outside, '"shared"', "'shared'"):
            if needle in text and name != "tests/unit/test_self_contained.py":
                offenders.append(f"{name}: {needle}")
    assert not offenders, offenders


def test_a_fresh_clone_collects_and_runs_the_spec_tests(tmp_path: Path):
    """The working tree's tracked files, copied into an empty folder (what a clone holds), with no
    shared/ or anything else beside it."""
    clone = tmp_path / "isolated" / "visiongate"
    for name in tracked_files():
        source = REPO / name
        if source.is_file():
            target = clone / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    assert not (clone.parent.parent / "shared").exists() and not (clone.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISIONGATE_", "DATABASE_", "BROKER_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    where = subprocess.run([sys.executable, "-c", "import api, providers; print(api.__file__)"], cwd=clone,
                           env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0 and where.stdout.strip().startswith(str(clone)), where.stdout + where.stderr

    collect = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only"],
                             cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert collect.returncode == 0, collect.stdout[-3000:] + collect.stderr[-3000:]

    spec_tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         "tests/unit/providers/bria/test_openapi.py", "tests/unit/providers/bria/test_schemas.py", "tests/unit/test_request_models.py"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert spec_tests.returncode == 0, spec_tests.stdout[-3000:] + spec_tests.stderr[-3000:]
    assert " passed" in spec_tests.stdout.splitlines()[-1]
