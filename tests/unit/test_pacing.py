"""The first status check of a task goes out when tasks of its kind are usually done."""

import pytest

from workers.pacing import INLINE_BELOW, LEAD, FirstCheck


def test_unknown_operation_uses_the_configured_first_delay():
    pacing = FirstCheck(0.1, 3600)
    assert pacing.delay("bria.generate_image") == 0.1
    assert pacing.delay("bria.generate_image") >= INLINE_BELOW


def test_tasks_done_at_their_first_check_move_it_to_inline():
    pacing = FirstCheck(0.1, 3600)
    for _ in range(6):  # each one was done at its first check: never seen running
        pacing.observe("op", 0.0)
    assert pacing.delay("op") < INLINE_BELOW


def test_slow_operation_is_first_checked_a_little_before_it_is_usually_done():
    pacing = FirstCheck(0.1, 3600)
    for _ in range(40):
        pacing.observe("video", 57.0)  # still running 57 s after submit, done by the next check
    assert 0.9 * LEAD * 57 < pacing.delay("video") <= LEAD * 57
    assert pacing.delay("image") == 0.1  # per operation


def test_one_short_task_pulls_the_estimate_down_more_than_one_long_one_pushes_it_up():
    pacing = FirstCheck(0.1, 3600)
    for _ in range(40):
        pacing.observe("op", 10.0)
    pacing.observe("op", 0.0)
    after_short = pacing.delay("op")
    assert after_short <= LEAD * 5.0 + 1e-9  # halfway down at once
    pacing.observe("op", 100.0)
    assert pacing.delay("op") < LEAD * 25.0  # one slow task: a fifth of the way up


def test_later_checks_are_not_sent_before_the_first_is_due_and_the_ceiling_holds():
    pacing = FirstCheck(0.1, 30.0)
    for _ in range(40):
        pacing.observe("op", 1000.0)
    assert pacing.delay("op") == 30.0
    # a task 10 s old that the normal schedule would check in 1 s waits until 30 s of age
    assert pacing.not_before("op", 10.0, 1.0) == 20.0
    assert pacing.not_before("op", 40.0, 4.0) == 4.0  # past it: the normal schedule


def test_no_early_check_per_task_once_tasks_are_seen_running_before_any_finished():
    pacing = FirstCheck(0.1, 3600, cold_after=1.0)
    pacing.running("video", 0.5)  # younger than one poll interval: says nothing yet
    assert pacing.delay("video") == 0.1
    pacing.running("video", 1.2)  # still running after a poll interval, none finished
    assert pacing.delay("video") == 1.0  # first checked by the sweeper's schedule
    assert pacing.delay("image") == 0.1  # per operation
    pacing.observe("video", 0.0)  # the first finish: the estimate takes over
    assert pacing.delay("video") == pytest.approx(0.05)  # halfway down from 0.1
    pacing.running("video", 30.0)  # with an estimate, running tasks change nothing
    assert pacing.delay("video") == pytest.approx(0.05)  # halfway down from 0.1
    assert FirstCheck(0.1, 3600).delay("x") == 0.1  # without cold_after: always the early check
