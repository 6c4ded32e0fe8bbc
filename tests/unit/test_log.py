"""Log output: JSON lines with fixed leading keys and bound run_id/env; the console's live
progress line on a terminal; the end-of-run summary of a failed run."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from abfsm import cli, log, runner
from abfsm.errors import StateFailed
from tests.unit.test_runner import fakes, make_run

PROGRESS = {"state": "wait-elb", "poll": 2, "ready": 1, "total": 4, "what": "InService",
            "not_ready": [{"id": "i-0abc", "state": "OutOfService"}],
            "elapsed_s": 30.0, "remaining_s": 570.0}


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_pending_live_line() -> Iterator[None]:
    """The console sink remembers an unfinished live line per stream; start each test clean."""
    log.Sink._pending.clear()
    yield
    log.Sink._pending.clear()


def logger() -> Any:
    return structlog.get_logger("abfsm")


# --- JSON ------------------------------------------------------------------------------------

def test_json_is_one_object_per_line_with_ts_level_event_first():
    """JSON mode: each event is one line, a JSON object whose first keys are ts, level, event."""
    out = io.StringIO()
    assert log.configure("json", stream=out) == "json"
    logger().info("transition", src="scale", dst="wait-instances", trigger="scaled", elapsed_s=0.1)
    logger().warning("inspect.raise_max", asg="qa-b", max_size=4, raise_to=8)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    objs = [json.loads(line) for line in lines]
    assert [list(o)[:3] for o in objs] == [["ts", "level", "event"]] * 2
    assert [(o["level"], o["event"]) for o in objs] == [("info", "transition"), ("warning", "inspect.raise_max")]
    assert objs[0]["ts"].endswith("Z") or objs[0]["ts"].endswith("+00:00")


def test_json_lines_carry_bound_run_id_and_env():
    """Keys bound with log.bind (run_id, env) appear on every later line."""
    out = io.StringIO()
    log.configure("json", stream=out)
    log.bind(run_id="20260101T120000Z-abc123", env="qa")
    logger().info("lock.acquired", lock="qa.lock")
    logger().info("scale.step", asg="qa-b", desired=4)
    for line in out.getvalue().splitlines():
        obj = json.loads(line)
        assert (obj["run_id"], obj["env"]) == ("20260101T120000Z-abc123", "qa")


def test_json_run_through_the_runner_has_run_id_and_env_on_every_line(tmp_path, clock):
    """A whole (fake-action) run logged as JSON: every line parses and names run_id and env."""
    out = io.StringIO()
    log.configure("json", stream=out)
    run = make_run(tmp_path, clock)
    runner._started(run, "deploy")
    runner.drive(run, run.spec.initial, actions=fakes())
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {o["event"] for o in objs} >= {"run.started", "transition", "run.finished"}
    assert all(o["run_id"] == run.record.run_id and o["env"] == "qa" for o in objs)
    assert sum(o["event"] == "transition" for o in objs) == 8


def test_json_debug_events_only_with_verbose():
    """Without --verbose debug events are dropped; with it they are written."""
    quiet, loud = io.StringIO(), io.StringIO()
    log.configure("json", stream=quiet)
    logger().debug("aws.read")
    log.configure("json", verbose=True, stream=loud)
    logger().debug("aws.read")
    assert quiet.getvalue() == "" and json.loads(loud.getvalue())["level"] == "debug"


def test_auto_picks_console_on_a_terminal_and_json_otherwise():
    """--log-format auto: console on a TTY, JSON on a pipe."""
    assert log.configure("auto", stream=FakeTty()) == "console"
    assert log.configure("auto", stream=io.StringIO()) == "json"


# --- console ---------------------------------------------------------------------------------

def test_console_progress_on_a_terminal_is_a_live_line():
    """On a TTY, wait.progress redraws one line: starts with \\r\\x1b[K, no newline."""
    tty = FakeTty()
    log.configure("console", stream=tty)
    logger().info("wait.progress", **PROGRESS)
    text = tty.getvalue()
    assert text.startswith("\r\x1b[K") and "\n" not in text
    assert "wait-elb: 1/4 InService" in text and "i-0abc OutOfService" in text


def test_console_live_line_is_overwritten_by_the_next_poll():
    """Two polls on a TTY: the second redraws over the first, still no newline."""
    tty = FakeTty()
    log.configure("console", stream=tty)
    logger().info("wait.progress", **PROGRESS)
    logger().info("wait.progress", **{**PROGRESS, "ready": 2, "elapsed_s": 60.0})
    text = tty.getvalue()
    assert text.count("\r\x1b[K") == 2 and "\n" not in text
    assert text.rsplit("\r\x1b[K", 1)[1].startswith("  wait-elb: 2/4")


def test_console_next_normal_event_ends_the_live_line():
    """After a live line, the next normal event first writes a newline, then its own line."""
    tty = FakeTty()
    log.configure("console", stream=tty)
    logger().info("wait.progress", **PROGRESS)
    before = tty.getvalue()
    logger().info("transition", src="wait-elb", dst="drain", trigger="healthy", elapsed_s=60.0)
    added = tty.getvalue()[len(before):]
    assert added.startswith("\n") and added.endswith("\n") and added.count("\n") == 2
    assert "wait-elb" in added and "drain" in added and "healthy" in added


def test_console_not_on_a_terminal_prints_progress_as_lines():
    """Console format on a non-TTY: each progress poll is an ordinary line, no \\r."""
    out = io.StringIO()
    log.configure("console", stream=out)
    logger().info("wait.progress", **PROGRESS)
    logger().info("wait.progress", **{**PROGRESS, "ready": 2})
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert len(text.splitlines()) == 2 and text.endswith("\n")


def test_console_verbose_on_a_terminal_scrolls_progress():
    """--verbose keeps every poll: progress is printed as lines even on a TTY."""
    tty = FakeTty()
    log.configure("console", verbose=True, stream=tty)
    logger().info("wait.progress", **PROGRESS)
    assert "\r" not in tty.getvalue() and tty.getvalue().endswith("\n")


def test_console_hides_record_saves_unless_verbose():
    """Console drops the S3 If-Match record saves (noise); --verbose shows them."""
    quiet, loud = io.StringIO(), io.StringIO()
    params = {"Bucket": "locks", "Key": "qa.lock", "IfMatch": "abc"}
    log.configure("console", stream=quiet)
    logger().info("aws.call", service="s3", action="PutObject", params=params)
    log.configure("console", verbose=True, stream=loud)
    logger().info("aws.call", service="s3", action="PutObject", params=params)
    assert quiet.getvalue() == "" and "aws s3 PutObject" in loud.getvalue()


# --- the run summary -------------------------------------------------------------------------

def failed_run_finished(tmp_path: Any, clock: Any) -> dict[str, Any]:
    """The run.finished event of a run that failed in wait-elb (fake actions, local lock)."""
    def broken(run: Any) -> str:
        run.clock.sleep(600)
        raise StateFailed("wait-elb: 3/4 InService in qa-public after 600 s; i-0abc OutOfService")

    run = make_run(tmp_path, clock)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as events:
        runner._started(run, "deploy")
        runner.drive(run, run.spec.initial, actions=fakes(wait_elb=broken),
                     render_next=cli.next_command)
    (finished,) = [e for e in events if e["event"] == "run.finished"]
    return finished


def test_failed_run_summary_says_what_failed_and_what_next(tmp_path, clock):
    """Failed summary: verdict and state, the error, old ASG left as it was, lock kept, resume/unlock."""
    event = failed_run_finished(tmp_path, clock)
    lines = log.summary_lines(event)
    text = "\n".join(lines)
    assert lines[0].startswith("abfsm: qa FAILED in wait-elb after 600.0 s (exit 1)")
    assert "error     wait-elb: 3/4 InService in qa-public after 600 s; i-0abc OutOfService" in text
    assert "old ASG   qa-a: left as it was (4 desired)" in text
    assert f"lock      held by this run: {tmp_path / 'state' / 'qa.lock'}" in text
    assert "abfsm resume --environment qa" in text and "(re-enters wait-elb)" in text
    assert (f"abfsm unlock --environment qa --state-dir {tmp_path / 'state'} "
            f"--run-id {event['run_id']}") in text


def test_failed_run_summary_shows_the_path_with_times(tmp_path, clock):
    """The summary's path lists each state with its time, ending in the final state."""
    lines = log.summary_lines(failed_run_finished(tmp_path, clock))
    (path,) = [line for line in lines if line.startswith("  path")]
    assert "wait-elb 600.0s → failed" in path and path.split()[1] == "locked"


def test_successful_run_summary_says_drained_and_released(tmp_path, clock):
    """A done run's summary: succeeded, old ASG drained to 0, lock released, no next steps."""
    run = make_run(tmp_path, clock)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as events:
        runner._started(run, "deploy")
        runner.drive(run, run.spec.initial, actions=fakes())
    (event,) = [e for e in events if e["event"] == "run.finished"]
    text = "\n".join(log.summary_lines(event))
    assert "qa succeeded" in text and "old ASG   qa-a: drained to 0" in text
    assert "lock      released" in text and "next" not in text


def test_console_renders_run_finished_as_the_summary(tmp_path, clock):
    """The console renderer prints run.finished as the summary lines."""
    event = failed_run_finished(tmp_path, clock)
    out = io.StringIO()
    log.configure("console", stream=out)
    fields = {k: v for k, v in event.items() if k not in ("event", "log_level")}
    logger().info("run.finished", **fields)
    assert out.getvalue().splitlines() == log.summary_lines(event)
