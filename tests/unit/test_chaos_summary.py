"""The fault run's figures (``bench/chaos/summary.py``): pure functions over recorded requests,
job rows and the simulator's submission counts. No fault run happens here (``make chaos`` does
that); these only check the arithmetic and the table."""

from __future__ import annotations

from bench.chaos import summary
from bench.chaos.traffic import prompt


def _row(job_id: str, status: str, created: float = 100.0, finished: float | None = 101.0, attempts: int = 1,
         error_code: str | None = None) -> dict:
    return {"id": job_id, "status": status, "error_code": error_code, "attempts": attempts, "created": created,
            "finished": finished if status in summary.FINAL else None, "prompt": "p"}


def test_tally_counts_the_requests_sent_within_the_windows():
    records = [(1.0, 1.1, "202"), (5.0, 9.0, "500"), (6.0, 6.5, "closed"), (7.0, 7.1, "503+RA"), (12.0, 12.1, "202")]
    assert summary.tally(records, [(4.0, 8.0)]) == {"500": 1, "503+RA": 1, "closed": 1}
    assert summary.tally(records) == {"202": 2, "500": 1, "503+RA": 1, "closed": 1}
    assert summary.tally(records, [(0.0, 2.0), (11.0, 13.0)]) == {"202": 2}


def test_job_figures_split_final_and_stuck_and_compare_with_the_answers():
    rows = [_row("a", "COMPLETED"), _row("b", "ERROR", error_code="timeout", attempts=3),
            _row("c", "RUNNING"), _row("d", "QUEUED"), _row("e", "CANCELLED", finished=130.0)]
    f = summary.job_figures(rows, accepted_ids=["a", "b", "c", "d", "x"])
    assert (f["rows"], f["completed"], f["errored"], f["stuck"]) == (5, 1, 2, 2)
    assert f["stuck_states"] == {"QUEUED": 1, "RUNNING": 1}
    assert f["error_codes"] == {"timeout": 1}
    assert (f["lost"], f["unacknowledged"], f["retried"]) == (1, 1, 1)  # x: no row; e: no 202
    assert f["max_job_s"] == 30.0


def test_duplicates_and_settle():
    subs = {"prompts": 3, "tasks": 6, "duplicates": {"t #1#": 2, "t #2#": 3}}
    assert summary.duplicate_figures(subs) == {"dup_jobs": 2, "dup_extra": 3, "upstream_tasks": 6}
    assert summary.settle_seconds(10.0, 42.34) == 32.3
    assert summary.settle_seconds(10.0, None) is None


def test_figures_and_verdicts():
    submits = [(1.0, 1.1, "202", 0), (3.0, 3.2, "500", 1), (4.0, 4.1, "503+RA", 2)]
    f = summary.figures(submits=submits, reads=[(3.5, 3.6, "200")], accepted_ids=["a"], rows=[_row("a", "COMPLETED")],
                        submissions={"tasks": 1, "duplicates": {}}, windows=[(2.0, 5.0)], settled_at=20.0, t0=0.0)
    assert f["submit_during_fault"] == {"500": 1, "503+RA": 1}
    assert (f["settle_s"], f["fault_windows_s"], f["accepted"], f["submitted"]) == (15.0, [[2.0, 5.0]], 1, 3)
    assert summary.verdict("redis", f) == "**MISSED** / met"  # a 500 during the outage; settled in 15 s
    f.update(submit_during_fault={"202": 3, "503+RA": 1}, settle_s=31.0)
    assert summary.verdict("redis", f) == "met / **MISSED**"
    assert summary.verdict("postgres", {**f, "dup_jobs": 1}) == "**MISSED**"
    assert summary.verdict("kill", {**f, "accepted": 1000, "dup_jobs": 1, "settle_s": 20.0}) == "met / met"
    assert summary.verdict("kill", {**f, "accepted": 1000, "dup_jobs": 2, "settle_s": None}) == "**MISSED** / **MISSED**"
    beat = {"before_kills": {"finished_per_s": 10.0}, "beat_windows": [{"down_s": 10.0, "finished": 60}]}
    assert summary.verdict("beat", beat) == "met"
    beat["beat_windows"].append({"down_s": 10.0, "finished": 2})
    assert summary.verdict("beat", beat) == "**MISSED**"
    assert summary.verdict("upstream", f) == "—"


def test_rendering_has_a_row_per_scenario():
    f = summary.figures(submits=[(1.0, 1.1, "202", 0)], reads=[], accepted_ids=["a"], rows=[_row("a", "RUNNING")],
                        submissions={"tasks": 2, "duplicates": {prompt("t", 0): 2}}, windows=[(0.5, 2.0)],
                        settled_at=None, t0=0.0)
    results = {"meta": {"settle_bound_s": 60, "date": "today"},
               "scenarios": {"postgres": {"title": "PostgreSQL outage", "fault": "down 30 s", "figures": f,
                                          "notes": ["a note"], "events": [{"t": 1.0, "kind": "exit", "process": "worker",
                                                                           "code": 1, "restarted_by": "harness"}]}}}
    md = summary.render_markdown(results)
    assert "| PostgreSQL outage | down 30 s | 1 | 0 | 0 | 1 | 1 | 202: 1 | none | > 60 (not settled) |" in md
    assert "**MISSED**" in md and "* a note" in md and "worker exit (exit code 1)" in md
    console = summary.render_console(results).splitlines()
    assert console[0].startswith("Scenario") and "PostgreSQL outage" in console[2] and "**" not in console[2]
