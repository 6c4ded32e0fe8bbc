"""The compiled machine keeps the run record (entries, moves, heartbeats, a lost lock) and
goes from its input's entry to `abfsm.resume?`; `sfn start --resume`'s checks and input
(no AWS)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from abfsm.actions import ACTIONS
from abfsm.cli import main
from abfsm.context import Settings
from abfsm.record import RunRecord
from abfsm.sfn import engine
from abfsm.sfn.compiler import RESUME, compile_spec, resumable
from abfsm.sfn.fragments import NOW
from abfsm.spec import Spec, load_spec

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:abfsm"
DEAD = ["--endpoint-url", "http://127.0.0.1:9", "--region", "us-east-1"]  # any call fails
RESUME_ARGV = ["sfn", "start", "--resume", "--state-machine-arn", ARN, "--environment", "qa",
               "--lock-bucket-name", "locks", *DEAD]


def _spec() -> Spec:
    return load_spec(None, ACTIONS)


def _states() -> dict[str, Any]:
    return dict(compile_spec(_spec())["States"])


def test_each_spec_state_entry_appends_the_move_and_saves_the_record_with_if_match():
    """Every working state but the initial one: STATE appends $.move to $.hist, STATE.record
    builds the record (that state, running, heartbeat = entered time, history, plan) and
    STATE.save puts it with IfMatch on $.lock.etag, tracks the new ETag, and goes to the
    action (STATE.act) or, failing, to STATE.lock-lost."""
    spec, states = _spec(), _states()
    for name in spec.working_states:
        if name == spec.initial:
            continue
        entry = states[name]
        assert entry["ResultPath"] == "$.hist" and "$.move" in entry["Parameters"]["list.$"]
        assert entry["Next"] == f"{name}.record"
        rec = states[f"{name}.record"]["Parameters"]
        assert (rec["state"], rec["status"], rec["heartbeat.$"]) == (name, "running", NOW)
        assert rec["history.$"] == "$.hist.list" and "$.plan" in rec["context.$"]
        save = states[f"{name}.save"]
        assert save["Resource"].endswith(":s3:putObject")
        assert save["Parameters"]["IfMatch.$"] == "$.lock.etag"
        assert save["ResultSelector"] == {"etag.$": "$.ETag"} and save["ResultPath"] == "$.lock"
        assert save["Next"] == f"{name}.act"
        assert save["Catch"][0]["Next"] == f"{name}.lock-lost"


def test_every_transition_passes_through_a_move_state_naming_it():
    """Each spec transition SRC --trigger--> DST is the Pass SRC.on-TRIGGER putting
    {at, src, dst, trigger} in $.move, then DST; no other state leads into a spec state
    (but the resume entry)."""
    spec, states = _spec(), _states()
    for t in spec.transitions:
        move = states.get(f"{t.source}.on-{t.trigger}")
        if move is None:  # a move from a state no path reaches (planned, locked's fail)
            continue
        assert move["Parameters"] == {"at.$": NOW, "src": t.source, "dst": t.dest,
                                      "trigger": t.trigger}
        assert move["ResultPath"] == "$.move" and move["Next"] == t.dest
    into: dict[str, list[str]] = {name: [] for name in spec.states}
    for key, st in states.items():
        targets = [st.get("Next"), st.get("Default")] + [c["Next"] for c in st.get("Choices", [])]
        for target in targets:
            if target in into:
                into[target].append(key)
    for name, sources in into.items():
        assert all(".on-" in src or src in (RESUME, "abfsm.resume.to") for src in sources), name


def test_a_wait_refreshes_the_record_after_every_sleep():
    """Each poll loop goes sleep -> beat (the record of that state, a new heartbeat) ->
    beat-save (IfMatch, a lost lock stops it) -> its next poll."""
    states = _states()
    sleeps = [k for k, st in states.items() if st["Type"] == "Wait"]
    assert {k.rsplit(".", 1)[0] for k in sleeps} == {"empty", "wait-instances", "wait-elb", "drain", "rollback", "bake"}
    for key in sleeps:
        state = key.rsplit(".", 1)[0]
        hops = [states[key]["Next"]]  # bake counts its elapsed seconds first (bake.tick)
        while hops[-1] != f"{state}.beat" and len(hops) < 4:
            hops.append(states[hops[-1]].get("Next") or states[hops[-1]].get("Default"))
        assert hops[-1] == f"{state}.beat", (key, hops)
        beat = states[f"{state}.beat"]["Parameters"]
        assert (beat["state"], beat["heartbeat.$"]) == (state, NOW)
        save = states[f"{state}.beat-save"]
        assert save["Parameters"]["IfMatch.$"] == "$.lock.etag"
        assert save["Catch"][0]["Next"] == f"{state}.lock-lost"
        assert save["Next"] in (f"{state}.describe", f"{state}.alarms")  # the next poll


def test_a_lost_lock_fails_the_execution_as_state_failed_saying_so():
    """STATE.lock-lost names the state and the taken lock, and ends in abfsm.lock-lost:
    Fail abfsm.StateFailed, no state after it."""
    states = _states()
    lost = states["wait-instances.lock-lost"]
    assert lost["Parameters"]["Error"] == "abfsm.StateFailed"
    assert "wait-instances: stopped, its lock was taken away" in lost["Parameters"]["Cause.$"]
    assert states[lost["Next"]] == {"Type": "Fail", "Error": "abfsm.StateFailed",
                                    "CausePath": "$.error.Cause"}


def test_the_input_entry_leads_to_the_resume_choice():
    """abfsm.input's checks end at abfsm.resume?: without $.resume on to the initial state;
    with it, a state it re-enters goes to the take-over, any other to a Refused end."""
    doc = compile_spec(_spec())
    assert doc["StartAt"] == "abfsm.input"
    assert doc["States"]["abfsm.input.check"]["Default"] == RESUME
    choice = doc["States"][RESUME]
    assert choice["Default"] == "locked"
    known, other = choice["Choices"]
    names = {rule["StringEquals"] for rule in known["And"][1]["Or"]}
    assert names == set(resumable(_spec())) and "locked" not in names and "done" not in names
    assert known["Next"] == "abfsm.resume.record"
    assert other == {"Variable": "$.resume", "IsPresent": True, "Next": "abfsm.resume.unknown"}
    assert doc["States"]["abfsm.resume.unknown"]["Next"] == "abfsm.resume.refused"


def test_resume_takes_the_lock_over_with_if_match_on_the_etag_read():
    """The take-over puts the record with IfMatch on $.resume.etag (a changed lock: Refused),
    records the move `resume` and re-enters the named state through its entry."""
    states = _states()
    take = states["abfsm.resume.take"]
    assert take["Parameters"]["IfMatch.$"] == "$.resume.etag" and take["ResultPath"] == "$.lock"
    assert take["Catch"][0]["Next"] == "abfsm.resume.changed"
    assert states["abfsm.resume.changed"]["Parameters"]["Error"] == "abfsm.Refused"
    assert states["abfsm.resume.refused"]["Error"] == "abfsm.Refused"
    assert states["abfsm.resume.move"]["Parameters"]["trigger"] == "resume"
    to = states["abfsm.resume.to"]["Choices"]
    assert {c["StringEquals"]: c["Next"] for c in to} == {s: s for s in resumable(_spec())}


def test_a_failed_record_names_the_state_it_failed_in():
    """failed's record takes failed_state from the move into it; rolled-back's does not
    (its move comes from the rollback state)."""
    states = _states()
    assert states["failed.record"]["Parameters"]["failed_state.$"] == "$.move.src"
    assert "failed_state.$" not in states["rolled-back.record"]["Parameters"]
    assert states["failed.record"]["Parameters"]["exit_code"] == 1


def _saved(**extra: Any) -> RunRecord:
    history = [{"at": "2026-12-01T00:00:01Z", "src": "locked", "dst": "inspect",
                "trigger": "acquired"}]
    fields: dict[str, Any] = dict(
        run_id="20261201T000000Z-abcdef", environment="qa", spec_version=1, state="failed",
        status="failed", started_at="2026-12-01T00:00:00Z", heartbeat="2026-12-01T00:00:09Z",
        settings=Settings("qa", lock_bucket_name="locks").to_dict(), history=history,
        engine="stepfunctions",
        execution_arn=ARN.replace(":stateMachine:", ":execution:") + ":20261201T000000Z-abcdef")
    return RunRecord(**(fields | extra))


def test_resume_input_carries_the_run_the_plan_and_the_history_text():
    """The run's id and start, the plan and count apart, the history as list and as the
    comma-terminated text the entries append to, and resume {state, from, etag}."""
    saved = _saved()
    doc = engine.resume_input(saved, Settings("qa", update_timeout=2, health_check_timeout=10),
                              "wait-instances", '"e1"', {"target": "qa-b"}, {"n": 2})
    assert doc["run_id"] == saved.run_id and doc["started_at"] == saved.started_at
    assert doc["plan"] == {"target": "qa-b"} and doc["count"] == {"n": 2}
    assert doc["limits"] == {"interval": 2, "polls": 6,
                             "seconds": {"bake_time": 1, "health_check_timeout": 10}}
    assert json.loads("[" + doc["hist"]["text"] + '"end"]')[:-1] == saved.history
    assert doc["hist"]["list"] == saved.history and doc["hist"]["ctx"] == {"count": {"n": 2}}
    assert doc["resume"] == {"state": "wait-instances", "from": "failed", "etag": '"e1"'}


@pytest.mark.parametrize("execution, n", [("20261201T000000Z-abcdef", 1),
                                          ("20261201T000000Z-abcdef-resume-1", 2),
                                          ("20261201T000000Z-abcdef-resume-9", 10)])
def test_the_next_resume_is_named_one_past_the_recorded_execution(execution, n):
    """RUN_ID -> RUN_ID-resume-1; RUN_ID-resume-K -> RUN_ID-resume-(K+1)."""
    saved = _saved(execution_arn=ARN.replace(":stateMachine:", ":execution:") + ":" + execution)
    assert engine._resume_number(saved) == n


@pytest.mark.parametrize("flags, says", [
    (["--from-state", "nowhere"], "--from-state nowhere: not a state of"),
    (["--from-state", "done"], "--from-state done: a final state"),
    (["--from-state", "locked"], "--from-state locked: the initial state"),
    (["--instance-count", "5"], "--instance-count is not taken with it"),
    (["--zero"], "--zero is not taken with it"),
])
def test_resume_refuses_bad_flags_with_exit_2_before_any_aws_call(flags, says, capsys):
    """A --from-state the machine cannot re-enter, a deploy flag beside --resume: exit 2,
    one line (a dead endpoint: an AWS call would fail otherwise)."""
    assert main([*RESUME_ARGV, *flags]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


def test_from_state_without_resume_is_a_usage_error(capsys):
    """--from-state belongs to --resume: exit 2."""
    assert main(["sfn", "start", "--state-machine-arn", ARN, "--environment", "qa",
                 "--lock-bucket-name", "locks", "--no-elb-check", "--from-state", "scale",
                 *DEAD]) == 2
    assert "--from-state is taken only with --resume" in capsys.readouterr().err


def test_resume_needs_the_lock_bucket(capsys):
    """The record is in the lock: --resume without --lock-bucket-name exits 2."""
    argv = [a for a in RESUME_ARGV if a not in ("--lock-bucket-name", "locks")]
    assert main(argv) == 2
    assert "--lock-bucket-name is required" in capsys.readouterr().err


def test_abfsm_resume_points_an_execution_run_to_sfn_start_resume(tmp_path):
    """`abfsm resume` on a record of engine stepfunctions refuses (exit 3), naming the
    command that carries it on, with the state machine of the recorded execution."""
    from abfsm import runner
    from abfsm.errors import Refused
    from tests.fakes import FakeClock

    (tmp_path / "qa.lock").write_bytes(_saved().to_json())
    with pytest.raises(Refused) as refused:
        runner.resume(Settings("qa", state_dir=str(tmp_path)), services=object(),  # type: ignore[arg-type]
                      clock=FakeClock(), force=True)
    assert refused.value.exit_code == 3
    assert f"abfsm sfn start --resume --state-machine-arn {ARN}" in str(refused.value)
