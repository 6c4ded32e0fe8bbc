"""`abfsm sfn watch`, `sfn status` and `sfn start --wait` on real executions of the compiled
machine (moto's ASL interpreter, in process): the log stream of a local run, the exit codes of
`abfsm deploy`, Ctrl-C, a machine compiled from another spec, notifications."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

from abfsm.cli import main
from abfsm.clock import SystemClock
from abfsm.log_schema import validate
from tests.fakes import FakeClock
from tests.support.aws_env import CREDENTIALS, REGION, build_env
from tests.support.notify_receivers import HttpReceiver
from tests.support.sfn_moto import BUCKET, ROLE, cli, settings_for, start_argv

STEPPED = settings_for(instance_count=2, instance_count_step=1)


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _machine(make: Any, **env: Any) -> str:
    build_env(make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET, **env)
    code, arn = cli("sfn", "deploy", "--name", "abfsm", "--role-arn", ROLE, "--region", REGION)
    assert code == 0, arn
    return arn


def _start(machine: str, settings: Any = STEPPED) -> str:
    code, out = cli("sfn", "start", "--state-machine-arn", machine, *start_argv(settings),
                    "--region", REGION)
    assert code == 0, out
    return out


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _moves(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["src"], e["dst"], e["trigger"]) for e in events if e["event"] == "transition"]


def _names(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events if e["event"] not in ("wait.progress", "aws.call")]


def _wait_for_end(make: Any, execution: str) -> None:
    """Let moto's execution thread finish before the mock goes away."""
    clock = SystemClock()
    while make("stepfunctions").describe_execution(executionArn=execution)["status"] == "RUNNING":
        clock.sleep(0.5)


def test_watch_logs_the_moves_a_local_deploy_logs_and_exits_0(sfn_make):
    """A stepped A/B execution, watched as JSON lines: every line valid, the same
    (src, dst, trigger) moves as `abfsm deploy` logs for the same flags, run.finished exit 0."""
    from structlog.testing import capture_logs

    from abfsm import runner
    from abfsm.aws import connect

    execution = _start(_machine(sfn_make))
    code, out, _ = _run("sfn", "watch", "--execution-arn", execution, "--log-format", "json",
                        "--region", REGION)
    events = _events(out)
    assert code == 0 and [validate(e) for e in events] == [[]] * len(events)
    assert events[0]["event"] == "run.started" and events[-1]["event"] == "run.finished"
    assert {e["run_id"] for e in events} == {execution.rsplit(":", 1)[1]}
    # the same world again, on the local engine (qa-b now serves: it deploys to qa-a)
    with capture_logs() as local:
        services = connect(region=REGION, credentials=CREDENTIALS)
        assert runner.deploy(STEPPED, services=services, clock=FakeClock()).exit_code == 0
    swap = {"qa-a": "qa-b", "qa-b": "qa-a"}
    assert _moves(events) == _moves(local) and len(_moves(events)) == 9
    # the same events in the same order, but the per-poll lines and the AWS calls (a local
    # run saves its record at every state; the execution at the end)
    assert _names(events) == _names(local)
    assert events[-1]["exit_code"] == 0 and events[-1]["lock"] == "released"
    assert swap[events[-1]["target"]] == [e for e in local if e["event"] == "run.finished"][0]["target"]


def test_start_wait_prints_the_arn_then_the_console_log_of_a_local_run(sfn_make):
    """`sfn start --wait --log-format console`: the ARN, then lines as a local run renders them
    (transition lines, the summary), exit 0."""
    code, out, _ = _run("sfn", "start", "--state-machine-arn", _machine(sfn_make),
                        *start_argv(STEPPED), "--region", REGION, "--wait", "--log-format",
                        "console")
    lines = out.splitlines()
    assert code == 0 and ":execution:abfsm:" in lines[0]
    assert "  wait-instances  → scale           (next step, " in out
    assert "abfsm: qa succeeded after" in out and "  old ASG   qa-a: drained to 0" in out


def test_watch_of_a_failed_execution_exits_1_and_logs_the_failing_state(sfn_make, frozen_world):
    """Instances never ready: state.failed in wait-instances (→ fail), run.finished exit 1 with
    the lock held; the same exit code as `abfsm deploy`."""
    execution = _start(_machine(sfn_make), settings_for(instance_count=2))
    code, out, err = _run("sfn", "watch", "--execution-arn", execution, "--log-format", "json",
                          "--region", REGION)
    events = _events(out)
    [failed] = [e for e in events if e["event"] == "state.failed"]
    assert code == 1 and failed["state"] == "wait-instances" and failed["next"] == "fail"
    assert events[-1]["lock"] == "held by this run: s3://abfsm-locks/qa.lock"
    assert "not reached after" in err  # JSON: the final one-liner on stderr, as deploy's


def test_a_refused_execution_exits_3(sfn_make):
    """Both ASGs populated: `sfn start --wait` exits 3 as `abfsm deploy` does."""
    machine = _machine(sfn_make)
    sfn_make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=1)
    code, out, _ = _run("sfn", "start", "--state-machine-arn", machine, *start_argv(STEPPED),
                        "--region", REGION, "--wait", "--log-format", "json")
    assert code == 3 and _moves(_events(out)) == [("locked", "inspect", "acquired"),
                                                 ("inspect", "refused", "refuse")]


def test_status_reports_the_state_path_and_error_of_a_failed_execution(sfn_make, frozen_world):
    """`sfn status --format json` after the end: FAILED in wait-instances, abfsm.StateFailed and
    its cause, the path of moves; the text form says the same in a few lines."""
    execution = _start(_machine(sfn_make), settings_for(instance_count=2))
    _wait_for_end(sfn_make, execution)
    code, out, _ = _run("sfn", "status", "--execution-arn", execution, "--format", "json",
                        "--region", REGION)
    report = json.loads(out)
    assert code == 0 and (report["status"], report["state"]) == ("FAILED", "failed")
    assert report["failed_state"] == "wait-instances" and report["exit_code"] == 1
    assert report["error"] == "abfsm.StateFailed" and "not reached" in report["cause"]
    assert [m["dst"] for m in report["path"]] == ["inspect", "scale", "wait-instances", "failed"]
    code, text, _ = _run("sfn", "status", "--execution-arn", execution, "--region", REGION)
    assert text.startswith("qa: execution ") and "is FAILED in wait-instances (exit 1)" in text
    assert "wait-instances -> failed (fail, " in text


def test_ctrl_c_stops_following_only_and_names_the_watch_command(sfn_make, frozen_world,
                                                                  monkeypatch):
    """A stop request between polls: exit 130, the execution still RUNNING, and a last line with
    the `abfsm sfn watch --execution-arn ARN --region R` command that picks it up again."""
    import abfsm.clock

    execution = _start(_machine(sfn_make), settings_for(instance_count=2))
    stopping = FakeClock()
    stopping.stop_after_sleeps(1)
    monkeypatch.setattr(abfsm.clock, "clock_from_env", lambda: stopping)
    monkeypatch.setattr("signal.signal", lambda *_: None)  # the test runner keeps its handlers
    code, _, err = _run("sfn", "watch", "--execution-arn", execution, "--region", REGION)
    still = sfn_make("stepfunctions").describe_execution(executionArn=execution)["status"]
    _wait_for_end(sfn_make, execution)
    assert code == 130 and still == "RUNNING"
    assert err.rstrip().splitlines()[-1].endswith(
        f"follow it again with: abfsm sfn watch --execution-arn {execution} --region {REGION}")


def test_a_machine_not_compiled_from_the_spec_is_said_in_one_line(sfn_make):
    """The execution's definition differs from the spec's compilation: one note line on stderr
    naming it, and the history is still mapped."""
    _machine(sfn_make)
    from abfsm.context import Settings
    from abfsm.runner import load
    from abfsm.sfn.compiler import compile_spec, to_json

    doc = compile_spec(load(Settings("-")))
    doc["Comment"] = "abfsm: other.yaml (spec version 7)"
    arn = sfn_make("stepfunctions").create_state_machine(
        name="other", definition=to_json(doc), roleArn=ROLE)["stateMachineArn"]
    execution = _start(arn)
    _wait_for_end(sfn_make, execution)
    code, out, err = _run("sfn", "status", "--execution-arn", execution, "--region", REGION)
    notes = [line for line in err.splitlines() if "not the compilation" in line]
    assert code == 0 and len(notes) == 1 and "other.yaml" in notes[0]
    assert "SUCCEEDED in done" in out


def test_a_followed_execution_notifies_a_webhook_of_its_start_and_end(sfn_make):
    """`sfn start --wait --notify webhook:URL`: the receiver gets run.started and run.finished
    (exit 0) of the execution's run."""
    machine = _machine(sfn_make)
    with HttpReceiver() as rx:
        code, out, _ = _run("sfn", "start", "--state-machine-arn", machine, *start_argv(STEPPED),
                            "--region", REGION, "--wait", "--log-format", "json",
                            "--notify", f"webhook:{rx.url()}")
    bodies = rx.bodies()
    run_id = out.splitlines()[0].rsplit(":", 1)[1]
    assert code == 0 and [b["event"] for b in bodies] == ["run.started", "run.finished"]
    assert {b["run_id"] for b in bodies} == {run_id} and bodies[-1]["exit_code"] == 0
