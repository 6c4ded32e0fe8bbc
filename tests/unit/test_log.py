"""Log output: JSON lines with fixed leading keys and bound run_id/env; the console's live
progress line on a terminal and its ticking; one sentence per event; the end-of-run summary;
output streams that go away under a run."""

from __future__ import annotations

import errno
import io
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from abfsm import cli, log, log_schema, runner
from abfsm.errors import StateFailed
from abfsm.spec import load_spec
from tests.fakes import FakeTicker
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
    log.reset()
    yield
    log.reset()


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
    assert sum(o["event"] == "transition" for o in objs) == 9


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

def test_console_progress_on_a_terminal_is_a_live_line(monkeypatch):
    """On a TTY, wait.progress redraws one line: starts with \\r\\x1b[K, no newline."""
    monkeypatch.setenv("COLUMNS", "160")  # the live line is cut to the terminal's width
    tty = FakeTty()
    log.configure("console", stream=tty)
    logger().info("wait.progress", **PROGRESS)
    text = tty.getvalue()
    assert text.startswith("\r\x1b[K") and "\n" not in text
    assert "wait-elb: 1/4 InService" in text and "waiting for 1 OutOfService (i-0abc)" in text


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


# --- the live line ticks between polls ------------------------------------------------------

def ticking(**kw: Any) -> tuple[FakeTty, FakeTicker]:
    tty, ticker = FakeTty(), FakeTicker()
    log.configure("console", stream=tty, ticker=ticker, **kw)
    return tty, ticker


def last_redraw(text: str) -> str:
    return text.rsplit("\r\x1b[K", 1)[1]


def test_live_line_ticks_its_elapsed_time_every_second():
    """Between polls the live line is redrawn each second, elapsed up and remaining down."""
    tty, ticker = ticking()
    logger().info("wait.progress", **PROGRESS)  # 30 s elapsed, 570 s left
    ticker.advance(2)
    text = tty.getvalue()
    assert text.count("\r\x1b[K") == 3 and "\n" not in text
    assert "32 s elapsed, 568 s left" in last_redraw(text)
    assert last_redraw(text).startswith("  wait-elb: 1/4 InService")


def test_any_other_line_stops_the_ticking():
    """A normal line ends the live line and its ticker: later ticks (even late ones) draw nothing."""
    tty, ticker = ticking()
    logger().info("wait.progress", **PROGRESS)
    logger().info("transition", src="wait-elb", dst="drain", trigger="healthy", elapsed_s=60.0)
    after = tty.getvalue()
    assert not ticker.running
    ticker.advance(3)
    ticker.fire_late()
    assert tty.getvalue() == after and after.endswith("healthy, 60.00 s)\n")


def test_the_next_poll_restarts_the_ticking_from_its_own_time():
    """A new poll replaces the ticker: ticks count from the new poll's elapsed time."""
    tty, ticker = ticking()
    logger().info("wait.progress", **PROGRESS)
    ticker.advance(1)
    logger().info("wait.progress", **{**PROGRESS, "ready": 2, "elapsed_s": 60.0, "remaining_s": 540.0})
    ticker.advance(1)
    ticker.fire_late(0)  # the first poll's ticker, stopped, must not draw its older poll
    assert "61 s elapsed, 539 s left" in last_redraw(tty.getvalue())
    assert "2/4" in last_redraw(tty.getvalue()) and ticker.started == 2


def test_remaining_time_never_ticks_below_zero():
    """Ticking past the timeout shows 0 s left, not a negative time."""
    tty, ticker = ticking()
    logger().info("wait.progress", **{**PROGRESS, "elapsed_s": 599.0, "remaining_s": 1.0})
    ticker.advance(3)
    assert "602 s elapsed, 0 s left" in last_redraw(tty.getvalue())


@pytest.mark.parametrize(("fmt", "tty", "verbose"), [("console", False, False),
                                                     ("console", True, True),
                                                     ("json", True, False)])
def test_no_ticking_off_a_terminal_with_verbose_or_json(fmt, tty, verbose):
    """Only a live line ticks: a pipe, --verbose and JSON print each poll once, no ticker."""
    ticker = FakeTicker()
    out = FakeTty() if tty else io.StringIO()
    log.configure(fmt, stream=out, verbose=verbose, ticker=ticker)
    logger().info("wait.progress", **PROGRESS)
    ticker.advance(5)
    assert ticker.started == 0 and len(out.getvalue().splitlines()) == 1


def test_the_real_ticker_stops_when_told():
    """log.Ticker calls its function from a thread until the returned stop is called."""
    import threading

    calls = threading.Semaphore(0)
    ticker = log.Ticker()
    ticker.interval = 0.01
    stop = ticker.start(calls.release)
    assert calls.acquire(timeout=5) and calls.acquire(timeout=5)
    stop()


# --- output that goes away under a run -------------------------------------------------------

class GoneStream(io.StringIO):
    """A stream whose writes fail with `err` after `ok` successful writes (like `| head`)."""

    def __init__(self, ok: int, err: int = errno.EPIPE) -> None:
        super().__init__()
        self.ok, self.err, self.attempts = ok, err, 0

    def write(self, text: str) -> int:
        self.attempts += 1
        if self.attempts > self.ok:
            raise OSError(self.err, os.strerror(self.err))
        return super().write(text)


@pytest.mark.parametrize("err", [errno.EPIPE, errno.EIO, errno.ENOSPC],
                         ids=["EPIPE", "EIO", "ENOSPC"])
@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_stream_that_goes_away_never_stops_the_run(tmp_path, clock, fmt, err):
    """Logging into a broken stream: the run still ends done, lock released, one failed write."""
    stream = GoneStream(ok=3, err=err)
    log.configure(fmt, stream=stream)
    run = make_run(tmp_path, clock)
    runner._started(run, "deploy")
    outcome = runner.drive(run, run.spec.initial, actions=fakes())
    assert (outcome.exit_code, outcome.status, outcome.lock) == (0, "done", "released")
    assert not (tmp_path / "state" / "qa.lock").exists()
    assert stream.attempts == 4  # three lines, one failed write, then nothing was tried again


def test_a_closed_pipe_is_pointed_at_dev_null():
    """After EPIPE the stream's descriptor is /dev/null: the interpreter's last flush cannot fail."""
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    os.close(read_end)
    log.configure("json", stream=stream)
    logger().info("lock.acquired", lock="qa.lock")  # EPIPE inside, not raised
    assert os.path.samestat(os.fstat(write_end), os.stat(os.devnull))
    stream.write("still buffered\n")
    stream.close()  # flushes into /dev/null without an error


def test_write_safely_says_whether_it_wrote():
    """write_safely: True when written, False on a dead stream, which is never written again."""
    assert log.write_safely(out := io.StringIO(), "ok\n") and out.getvalue() == "ok\n"
    gone = GoneStream(ok=0)
    assert not log.write_safely(gone, "lost\n")
    assert not log.write_safely(gone, "lost again\n") and gone.attempts == 1


# --- every event is a sentence ---------------------------------------------------------------

SAMPLE = {"str": "qa-b", "int": 2, "number": 1.5, "bool": True, "object": {}, "list": []}
SPEC_TRIGGERS = sorted({t.trigger for t in load_spec(None, runner.ACTIONS).transitions})


def sample_event(name: str, **values: Any) -> dict[str, Any]:
    """An event with every required key at a plain value of its type, `values` on top."""
    required = log_schema.EVENTS[name]["required"]
    event = {k: SAMPLE["list" if t.startswith("list") else t.split("|")[0]]
             for k, t in required.items()}
    for key in ("trigger", "next"):  # keys that hold a trigger name
        if required.get(key) == "str":
            event[key] = "nothing_to_do"
    event.update(ts="2026-01-01T12:00:00Z", level=log_schema.EVENTS[name]["level"], event=name,
                 run_id="20260101T120000Z-abc123", env="qa", **values)
    return event


def console(event: dict[str, Any]) -> str:
    rendered = log.ConsoleRenderer(verbose=True)(None, "info", dict(event))
    return rendered[0][0] if isinstance(rendered, tuple) else str(rendered)


@pytest.mark.parametrize("name", list(log_schema.EVENTS))
def test_every_documented_event_has_its_own_console_sentence(name):
    """Each event renders through its own method: no `key=value`, no internal trigger name."""
    assert log.ConsoleRenderer.method(name) is not None, f"{name} falls back to key=value"
    event = sample_event(name)
    text = console(event)
    assert text.strip()
    assert not [k for k in event if f"{k}=" in text], text
    assert not [t for t in SPEC_TRIGGERS if "_" in t and t in text], text


@pytest.mark.parametrize("trigger", SPEC_TRIGGERS)
def test_transition_lines_name_triggers_in_words(trigger):
    """A transition line shows `instances ready`, never the identifier `instances_ready`."""
    text = console(sample_event("transition", src="wait-instances", dst="wait-elb",
                                trigger=trigger, elapsed_s=0.25))
    assert text == f"  wait-instances  → wait-elb        ({trigger.replace('_', ' ')}, 0.25 s)"


def test_no_elb_check_reads_as_a_reason_not_a_nested_skip():
    """--no-elb-check: `no load balancer to wait for (--no-elb-check)`, no `(skipped (...))`."""
    decided = console(sample_event("inspect.decided", target="qa-b", active="qa-a",
                                   target_count=4, steps=[2, 4], empty_first=None,
                                   serving=None, lb_source="skipped (--no-elb-check)"))
    skipped = console(sample_event("wait_elb.skipped", reason="skipped (--no-elb-check)"))
    assert decided == ("  inspect: qa-a → qa-b, 4 instance(s) in 2 steps (desired 2 → 4); "
                       "no load balancer to wait for (--no-elb-check)")
    assert skipped == "  wait-elb: no load balancer to wait for (--no-elb-check)"


def test_the_max_size_warning_is_a_sentence():
    """inspect.raise_max: a marked sentence naming the ASG, its MaxSize and the new one."""
    text = console(sample_event("inspect.raise_max", asg="qa-b", max_size=4, raise_to=8))
    assert text == ("  ⚠ inspect: qa-b has MaxSize 4, fewer than the 8 instances wanted; "
                    "the scale call raises MaxSize to 8")


def test_not_ready_instances_are_grouped_by_load_balancer_state_and_reason():
    """Eight OutOfService in one ELB are one group naming the ELB once, then each other group."""
    items = [{"id": f"i-{n}", "lb": "qa-public", "state": "OutOfService", "reason": "Instance"}
             for n in range(1, 5)]
    items += [{"id": "i-5", "lb": "targetgroup/qa-tg0", "state": "unhealthy",
               "reason": "Target.FailedHealthChecks"}, {"id": "i-6", "state": "Pending"},
              {"id": "2 more", "state": "not launched yet"}]
    assert log.not_ready_text(items) == (
        "qa-public: 4 OutOfService (Instance: i-1, i-2, i-3, i-4); "
        "targetgroup/qa-tg0: 1 unhealthy (Target.FailedHealthChecks: i-5); 1 Pending (i-6); "
        "2 more not launched yet")


def test_not_ready_groups_show_at_most_limit_ids():
    """Past `limit` ids a group says `+N more` (the count still says how many)."""
    items = [{"id": f"i-{n}", "lb": "qa-public", "state": "OutOfService"} for n in range(10)]
    assert log.not_ready_text(items, limit=3) == "qa-public: 10 OutOfService (i-0, i-1, i-2, +7 more)"


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


@pytest.mark.parametrize("name", list(log_schema.EVENTS))
def test_every_event_requires_run_id_and_env(name):
    """No event may be logged without its run: the schema reports a line lacking run_id or env."""
    event = {k: v for k, v in sample_event(name).items() if k not in ("run_id", "env")}
    assert log_schema.validate(event) == [f"{name}: missing key 'run_id'",
                                          f"{name}: missing key 'env'"]


@pytest.mark.parametrize(("source", "lbs", "shown"), [
    ("flags", ["qa-public"], "waits for qa-public (as given)"),
    ("discovered", ["qa-public", "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/qa-tg0/ab"],
     "waits for qa-public, targetgroup/qa-tg0 (attached to qa-b)"),
    ("none attached", [], "no load balancer to wait for (none attached to qa-b)"),
    ("not waited for: no state of my.yaml waits for them", ["qa-public"],
     "qa-public not waited for: no state of my.yaml waits for them"),
])
def test_inspect_says_where_the_load_balancers_come_from(source, lbs, shown):
    """inspect.decided names the load balancers (target groups by name) and their source."""
    text = console(sample_event("inspect.decided", target="qa-b", active=None, target_count=2,
                                steps=[2], empty_first=None, serving=None, lb_source=source,
                                load_balancers=lbs[:1], target_groups=lbs[1:]))
    assert text == f"  inspect: no active ASG → qa-b, 2 instance(s) in one step; {shown}"


@pytest.mark.parametrize("name", list(log_schema.EVENTS))
def test_no_sentence_nests_a_reason_in_parentheses(name):
    """A reason that carries its own `(--flag)` is not wrapped in more parentheses: no `))`."""
    required = log_schema.EVENTS[name]["required"]
    event = sample_event(name, **{k: "bake time 0 (--bake-time)" for k, t in required.items()
                                  if t == "str" and k not in ("trigger", "next", "state")})
    assert "))" not in console(event)
