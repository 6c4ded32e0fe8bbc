"""The history mapper (abfsm/sfn/history.py) on recorded histories of the compiled packaged
machine (tests/golden/sfn_history, `python -m tests.support.sfn_history --write`) and on
small hand-made ones; the history adapter's paging."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from abfsm.aws.stepfunctions import Execution, HistoryEvent, StateMachines
from abfsm.context import Settings
from abfsm.errors import AbfsmError
from abfsm.log_schema import validate
from abfsm.runner import load
from abfsm.sfn import engine
from abfsm.sfn.history import HistoryMapper, exit_code, map_history
from abfsm.spec import StateSpec, Transition
from tests.support.sfn_history import CASES, execution_arn, load as recorded

SPEC = load(Settings("-"))
AB_STEPPED = [("locked", "inspect", "acquired"), ("inspect", "scale", "deploy"),
              ("scale", "wait-instances", "scaled"), ("wait-instances", "scale", "next_step"),
              ("scale", "wait-instances", "scaled"), ("wait-instances", "wait-elb", "instances_ready"),
              ("wait-elb", "bake", "healthy"), ("bake", "drain", "baked"), ("drain", "done", "drained")]


def _mapped(case: str) -> list[dict[str, Any]]:
    return map_history(recorded(case), SPEC, execution_arn=execution_arn(case))


def _named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


def _moves(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["src"], e["dst"], e["trigger"]) for e in _named(events, "transition")]


@pytest.mark.parametrize("case", CASES)
def test_every_mapped_event_conforms_to_the_log_schema(case):
    """Each event of each recorded history, as a JSON line (ts, run_id, env added by the
    logger), validates; the first is run.started and the last run.finished."""
    events = _mapped(case)
    for e in events:
        line = json.loads(json.dumps({**e, "ts": "2026-01-01T00:00:00Z", "run_id": "r", "env": "qa"}))
        assert validate(line) == [], line
    assert events[0]["event"] == "run.started" and events[-1]["event"] == "run.finished"


def test_a_stepped_run_maps_to_the_spec_moves_and_exit_0():
    """Two steps of one: every move of the spec with its trigger, in order; done, exit 0,
    the lock released, qa-a drained (asg:active changed)."""
    events = _mapped("ab-stepped")
    assert _moves(events) == AB_STEPPED
    [decided] = _named(events, "inspect.decided")
    assert (decided["active"], decided["target"], decided["steps"]) == ("qa-a", "qa-b", [1, 2])
    end = events[-1]
    assert (end["outcome"], end["exit_code"], end["lock"], end["error"]) == ("done", 0, "released", None)
    assert end["changed"] == ["asg:active", "asg:target"]
    assert [p["state"] for p in end["path"]] == [m[0] for m in AB_STEPPED]


def test_each_mutating_call_is_one_aws_call_event():
    """The execution's lock put, two scale calls, the drain, the archive and the delete (the
    record's saves, PutObject IfMatch on the lock, aside, as the console drops them); no reads."""
    calls = [(e["service"], e["action"], e["params"].get("DesiredCapacity"))
             for e in _named(_mapped("ab-stepped"), "aws.call")
             if not (e["action"] == "PutObject" and "IfMatch" in e["params"])]
    assert calls == [("s3", "PutObject", None), ("autoscaling", "UpdateAutoScalingGroup", 1),
                     ("autoscaling", "UpdateAutoScalingGroup", 2),
                     ("autoscaling", "UpdateAutoScalingGroup", 0), ("s3", "PutObject", None),
                     ("s3", "DeleteObject", None)]


def test_scale_steps_drain_and_the_states_with_nothing_to_do_are_logged_as_locally():
    """scale.step 1/2 and 2/2 (desired 1, 2), wait_elb.skipped (--no-elb-check), bake.skipped,
    drain.started of qa-a's 2 instances."""
    events = _mapped("ab-stepped")
    assert [(e["desired"], e["step"], e["steps"]) for e in _named(events, "scale.step")] == [
        (1, 1, 2), (2, 2, 2)]
    assert _named(events, "wait_elb.skipped")[0]["reason"] == "skipped (--no-elb-check)"
    assert _named(events, "bake.skipped")[0]["state"] == "bake"
    [drain] = _named(events, "drain.started")
    assert (drain["asg"], drain["instances"]) == ("qa-a", 2)


def test_a_held_lock_is_refused_with_exit_3_and_the_lock_not_taken():
    """locked -> refused by `refuse`, state.failed exit 3 naming the lock; no lock.acquired."""
    events = _mapped("lock-held")
    assert _moves(events) == [("locked", "refused", "refuse")]
    [failed] = _named(events, "state.failed")
    assert failed["state"] == "locked" and failed["exit_code"] == 3 and "qa.lock" in failed["error"]
    assert _named(events, "lock.acquired") == []
    end = events[-1]
    assert (end["exit_code"], end["lock"], end["failed_state"]) == (3, "not taken", "locked")


def test_a_wait_timeout_fails_with_exit_1_and_keeps_the_lock():
    """wait-instances -> failed by `fail` after its polls; exit 1, lock held, unlock named."""
    events = _mapped("wait-timeout")
    assert _moves(events)[-1] == ("wait-instances", "failed", "fail")
    [failed] = _named(events, "state.failed")
    assert failed["next"] == "fail" and failed["error_type"] == "WaitTimeout"
    end = events[-1]
    assert (end["outcome"], end["exit_code"], end["failed_state"]) == ("failed", 1, "wait-instances")
    assert end["lock"] == "held by this run: s3://abfsm-locks/qa.lock"
    assert any("unlock" in line for line in end["next"])


def test_rollback_on_failure_takes_the_rollback_trigger():
    """wait-instances -> rollback by `rollback`, rollback -> rolled-back; rollback.done; exit 1,
    lock released."""
    events = _mapped("rollback")
    assert _moves(events)[-2:] == [("wait-instances", "rollback", "rollback"),
                                   ("rollback", "rolled-back", "rolled_back")]
    assert _named(events, "state.failed")[0]["next"] == "rollback"
    assert _named(events, "rollback.done")[0] == {"event": "rollback.done", "level": "info",
                                                  "asg": "qa-b", "kept": "qa-a"}
    assert (events[-1]["exit_code"], events[-1]["lock"]) == (1, "released")


def test_fed_in_overlapping_pieces_each_event_is_mapped_once():
    """Polls that bring the history a few events at a time, overlapping: the same events as
    one read of it, none twice."""
    history = recorded("ab-stepped")
    whole = map_history(history, SPEC)
    mapper = HistoryMapper(SPEC)
    pieces: list[dict[str, Any]] = []
    for start in range(0, len(history), 7):
        pieces += mapper.feed(history[max(0, start - 3):start + 7])
    assert pieces == whole and mapper.ended


def test_the_report_of_a_running_execution_names_its_state_and_the_lock_held():
    """Half a history: RUNNING, in the spec state last entered, the lock held, no exit code,
    the moves so far."""
    history = recorded("ab-stepped")
    mapper = HistoryMapper(SPEC, execution_arn("ab-stepped"))
    cut = next(e.id for e in history if e.name == "wait-instances")
    mapper.feed([e for e in history if e.id <= cut + 3])
    report = mapper.report()
    assert (report["status"], report["exit_code"], report["error"]) == ("RUNNING", None, None)
    assert report["state"] == report["path"][-1]["dst"] == "wait-instances"
    assert report["lock"] == "held by this run: s3://abfsm-locks/qa.lock"


T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _history(*steps: tuple[str, str | None, dict[str, Any] | None]) -> list[HistoryEvent]:
    start = {"run_id": "r1", "settings": {"environment": "qa", "lock_bucket_name": "b"}}
    out = [HistoryEvent(1, "ExecutionStarted", T0, data=json.dumps(start))]
    for kind, name, doc in steps:
        out.append(HistoryEvent(len(out) + 1, kind, T0 + timedelta(seconds=len(out)), name,
                                json.dumps(doc) if doc is not None else None))
    return out


def test_inner_states_entry_states_and_map_iterations_are_not_moves():
    """`abfsm.input`, `scale.anything` and a state named like a spec state inside a Map
    iteration move nothing; the spec states around them do."""
    events = map_history(_history(
        ("PassStateEntered", "abfsm.input", {}), ("PassStateEntered", "locked", {}),
        ("PassStateEntered", "locked.anything", {}), ("PassStateEntered", "inspect", {}),
        ("MapStateEntered", "inspect.map", {}), ("MapIterationStarted", "inspect.map", None),
        ("PassStateEntered", "drain", {}), ("MapIterationSucceeded", "inspect.map", None),
        ("MapStateExited", "inspect.map", {}), ("PassStateEntered", "inspect.next", {}),
        ("ChoiceStateEntered", "scale", {}), ("PassStateEntered", "scale.anything", {})), SPEC)
    assert _moves(events) == [("locked", "inspect", "acquired"), ("inspect", "scale", "deploy")]


def test_a_spec_state_whose_name_has_a_dot_is_still_a_spec_state():
    """A spec with a state `bake.long`: entering it is a move; `bake.long.part` is not."""
    spec = replace(SPEC, states={**SPEC.states, "bake.long": StateSpec("bake.long", action="bake")},
                   transitions=(*SPEC.transitions, Transition("go", "locked", "bake.long")))
    events = map_history(_history(("PassStateEntered", "locked", {}),
                                  ("PassStateEntered", "bake.long", {}),
                                  ("PassStateEntered", "bake.long.part", {})), spec)
    assert _moves(events) == [("locked", "bake.long", "go")]


def test_a_move_the_spec_does_not_declare_has_the_unknown_trigger():
    """An execution of another machine (locked -> drain): the move is logged, trigger unknown."""
    events = map_history(_history(("PassStateEntered", "locked", {}),
                                  ("PassStateEntered", "drain", {})), SPEC)
    assert _moves(events) == [("locked", "drain", "unknown")]


def test_of_two_triggers_to_one_state_a_new_error_picks_the_failure_trigger():
    """A spec where `gave_up` and `fail` both lead wait-instances -> failed: the recorded
    timeout (a new error in the document) is `fail`; the same move without one is `gave_up`."""
    spec = replace(SPEC, transitions=(*SPEC.transitions,
                                      Transition("gave_up", "wait-instances", "failed")))
    assert _moves(map_history(recorded("wait-timeout"), spec))[-1][2] == "fail"
    quiet = map_history(_history(("PassStateEntered", "wait-instances", {}),
                                 ("ChoiceStateEntered", "failed", {})), spec)
    assert _moves(quiet) == [("wait-instances", "failed", "gave_up")]


def test_a_timed_out_execution_ends_with_exit_1_and_says_the_lock_may_be_held():
    """ExecutionTimedOut in scale: run.finished outcome timed-out, exit 1, failed_state scale,
    the error naming TIMED_OUT."""
    history = _history(("PassStateEntered", "locked", {}), ("TaskScheduled", None,
                                                            {"IfNoneMatch": "*"}))
    history[-1] = HistoryEvent(3, "TaskScheduled", T0, data='{"IfNoneMatch": "*"}',
                               resource="aws-sdk:s3:putObject")
    history += [HistoryEvent(4, "TaskSucceeded", T0), HistoryEvent(5, "PassStateEntered", T0, "inspect", "{}"),
                HistoryEvent(6, "ChoiceStateEntered", T0, "scale", "{}"),
                HistoryEvent(7, "ExecutionTimedOut", T0 + timedelta(seconds=9), error="States.Timeout")]
    end = map_history(history, SPEC)[-1]
    assert (end["outcome"], end["exit_code"], end["failed_state"]) == ("timed-out", 1, "scale")
    assert end["error"].startswith("execution TIMED_OUT") and end["duration_s"] == 9
    assert end["lock"] == "may still be held: s3://b/qa.lock"


def test_an_input_the_machine_refused_ends_with_exit_2_and_nothing_taken():
    """FAILED abfsm.InvalidInput before any spec state: outcome invalid-input, exit 2, the
    cause as the error, the lock not taken, no move."""
    history = [*_history(("PassStateEntered", "abfsm.input", {})),
               HistoryEvent(3, "ExecutionFailed", T0, error="abfsm.InvalidInput",
                            cause="execution input: settings.environment is missing")]
    events = map_history(history, SPEC)
    end = events[-1]
    assert (end["outcome"], end["exit_code"], end["lock"]) == ("invalid-input", 2, "not taken")
    assert end["error"] == "execution input: settings.environment is missing"
    assert _moves(events) == [] and end["failed_state"] is None


def test_a_resuming_execution_starts_as_a_resume_in_the_state_it_re_enters():
    """Input with `resume` (sfn start --resume): run.started `sfn start --resume` from
    wait-instances; the first spec state entered is no move; the lock held from the start."""
    start = {"run_id": "r1", "settings": {"environment": "qa", "lock_bucket_name": "b"},
             "resume": {"state": "wait-instances", "from": "failed", "etag": "e1"}}
    history = [HistoryEvent(1, "ExecutionStarted", T0, data=json.dumps(start)),
               HistoryEvent(2, "ChoiceStateEntered", T0, "abfsm.resume?", "{}"),
               HistoryEvent(3, "PassStateEntered", T0, "wait-instances",
                            json.dumps({"lock": {"etag": "e2"}})),
               HistoryEvent(4, "ChoiceStateEntered", T0, "wait-elb", "{}")]
    events = map_history(history, SPEC)
    assert (events[0]["command"], events[0]["from_state"]) == ("sfn start --resume", "wait-instances")
    assert _moves(events) == [("wait-instances", "wait-elb", "instances_ready")]
    mapper = HistoryMapper(SPEC)
    mapper.feed(history)
    assert mapper.report()["lock"] == "held by this run: s3://b/qa.lock"


@pytest.mark.parametrize(("status", "error"), [
    ("SUCCEEDED", None), ("FAILED", "abfsm.Refused"), ("FAILED", "abfsm.StateFailed"),
    ("FAILED", "abfsm.RolledBack"), ("FAILED", "abfsm.InvalidInput"),
    ("FAILED", "States.Runtime"), ("TIMED_OUT", None),
    ("ABORTED", None)])
def test_the_mapped_exit_code_is_the_one_engine_outcome_gives(status, error):
    """exit_code() agrees with the error engine.outcome() raises for every ending."""
    try:
        engine.outcome(Execution("arn", status, error, "cause"))
        expected = 0
    except AbfsmError as exc:
        expected = exc.exit_code
    assert exit_code(status, error) == expected


class _PagedClient:
    """GetExecutionHistory over ids 1..n, newest first in pages of `size` (reverseOrder)."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size, self.calls = n, size, 0

    def get_execution_history(self, **kw: Any) -> dict[str, Any]:
        assert kw["reverseOrder"] is True
        self.calls += 1
        top = int(kw.get("nextToken") or self.n)
        ids = list(range(top, max(0, top - self.size), -1))
        page: dict[str, Any] = {"events": [{"id": i, "type": "PassStateEntered", "timestamp": T0}
                                           for i in ids]}
        if ids[-1] > 1:
            page["nextToken"] = str(ids[-1] - 1)
        return page


def test_history_reads_every_page_the_first_time():
    """2500 events in pages of 1000: three calls, all events oldest first."""
    client = _PagedClient(2500, 1000)
    events = StateMachines(client).history("arn")
    assert [e.id for e in events] == list(range(1, 2501)) and client.calls == 3


def test_history_after_an_id_reads_only_the_pages_that_are_new():
    """After event 2450 of 2500: one page read, the 50 new events returned in order."""
    client = _PagedClient(2500, 1000)
    events = StateMachines(client).history("arn", after=2450)
    assert [e.id for e in events] == list(range(2451, 2501)) and client.calls == 1


def test_a_history_that_is_not_abfsms_maps_without_crashing():
    """An execution of some other machine (input `{}`, one Pass state "A State", as plain
    moto's server answers without execute_state_machine): run.started and run.finished, no
    transition, no next step, exit 0 for SUCCEEDED, never a traceback."""
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    history = [HistoryEvent(1, "ExecutionStarted", t0, data="{}"),
               HistoryEvent(2, "PassStateEntered", t0, name="A State", data="{}"),
               HistoryEvent(3, "PassStateExited", t0, name="A State", data='"An output"'),
               HistoryEvent(4, "ExecutionSucceeded", t0 + timedelta(seconds=1), data='"An output"')]
    events = map_history(history, SPEC, execution_arn=execution_arn("ab-stepped"))
    assert [e["event"] for e in events] == ["run.started", "run.finished"]
    assert events[-1]["exit_code"] == 0 and events[-1]["next"] == []


def test_a_failed_execution_names_the_sfn_start_resume_that_carries_it_on():
    """A wait timeout (lock kept, resumable): the first next step is `abfsm sfn start --resume
    --state-machine-arn MACHINE ... --wait`, re-entering wait-instances; it parses as that
    command, for the execution's own state machine. A rollback (lock released) offers none."""
    import shlex

    from abfsm.cli import build_parser, next_command

    arn = execution_arn("wait-timeout")
    events = map_history(recorded("wait-timeout"), SPEC, execution_arn=arn,
                         render_next=next_command, connection={"region": "us-east-1"})
    first = events[-1]["next"][0]
    why, command = first.split(": ", 1)
    assert why == "fix the cause, then" and command.endswith("(re-enters wait-instances)")
    args = build_parser().parse_args(shlex.split(command.rsplit("  (", 1)[0])[1:])
    assert (args.command, args.sfn_command, args.resume, args.wait) == ("sfn", "start", True, True)
    assert args.state_machine_arn == arn.rsplit(":", 1)[0].replace(":execution:", ":stateMachine:")
    assert (args.environment, args.lock_bucket_name, args.region) == ("qa", "abfsm-locks", "us-east-1")
    rolled = map_history(recorded("rollback"), SPEC, execution_arn=execution_arn("rollback"),
                         render_next=next_command)
    assert not any("--resume" in line for line in rolled[-1]["next"])
