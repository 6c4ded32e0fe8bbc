"""examples/specs/manual-approval.yaml on both engines: `abfsm approve` / `abfsm reject` decide
a run waiting at its approval state the same way whichever engine runs it (the local runner
polling the side document, or a compiled execution waiting on a .waitForTaskToken task), and
`abfsm status` shows the pending request for both.

The local run uses a FakeClock whose sleeps let the "operator" act; the execution is followed
by `abfsm sfn start --wait` in a thread while the operator acts from the test's thread.
moto gap corrected in tests/support/sfn_moto.py: SendTaskFailure's cause.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from abfsm.aws import connect
from abfsm.cli import main, next_command
from abfsm.context import Settings
from abfsm.record import parse
from tests.fakes import FakeClock
from tests.support.aws_env import CREDENTIALS, REGION, build_env, capacities
from tests.support.sfn_moto import (
    ASGS, BUCKET, archived_runs, cli, deploy_machine, lock_body, settings_for, start_argv,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "examples/specs/manual-approval.yaml")
WHERE = ("--environment", "qa", "--lock-bucket-name", BUCKET, "--region", REGION)
Operator = Callable[[dict[str, Any]], None]


def _services() -> Any:
    return connect(region=REGION, credentials=CREDENTIALS)


def pending_approval() -> dict[str, Any] | None:
    """`abfsm status`'s view of the lock: the pending approval request, or None."""
    from abfsm.admin import status_data

    current = status_data(settings_for(), services=_services())["current"]
    return None if current is None else current.get("approval")


def run(engine: str, settings: Settings, operator: Operator) -> int:
    """Run `settings` on `engine`; once `abfsm status` shows a pending approval, call
    `operator(request)` once (it decides). The exit code of `abfsm deploy` / `sfn start --wait`."""
    if engine == "local":
        return _run_local(settings, operator)
    return _run_sfn(settings, operator)


def _run_local(settings: Settings, operator: Operator) -> int:
    from structlog.testing import capture_logs

    from abfsm import runner

    clock = FakeClock()
    acted: list[bool] = []

    def maybe_act() -> None:
        request = None if acted else pending_approval()
        if request is not None:
            acted.append(True)
            operator(request)

    clock.on_sleep(maybe_act)
    with capture_logs():
        outcome = runner.deploy(settings, services=_services(), clock=clock,
                                render_next=next_command)
    return int(outcome.exit_code)


def _run_sfn(settings: Settings, operator: Operator, *extra: str) -> int:
    follower = SfnFollower(settings, *extra)
    request = wait_for_pending()
    operator(request)
    return follower.join()


class SfnFollower:
    """`abfsm sfn deploy` of settings.spec, then `abfsm sfn start --wait`, in a thread."""

    def __init__(self, settings: Settings, *extra: str) -> None:
        arn = deploy_machine(settings.spec)
        self.code: int | None = None
        self.error: BaseException | None = None
        argv = ["sfn", "start", "--state-machine-arn", arn, *start_argv(settings),
                "--region", REGION, "--wait", *extra]
        self._thread = threading.Thread(target=self._run, args=(argv,), daemon=True)
        self._thread.start()

    def _run(self, argv: list[str]) -> None:
        try:
            self.code = main(argv)
        except BaseException as exc:  # re-raised in the test's thread by join()
            self.error = exc

    def join(self, timeout: float = 60) -> int:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert self.code is not None, "sfn start --wait did not end"
        return self.code


def wait_for_pending(timeout: float = 60) -> dict[str, Any]:
    """Poll (real time: moto runs the execution in its own thread) for a pending approval."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = pending_approval()
        if request is not None:
            return request
        time.sleep(0.2)
    raise AssertionError("no pending approval showed up")


def approve(*extra: str) -> tuple[int, str]:
    return cli("approve", *WHERE, *extra)


def reject(reason: str) -> tuple[int, str]:
    return cli("reject", *WHERE, "--reason", reason)


def approval_settings(**flags: Any) -> Settings:
    return settings_for(instance_count=2, spec=SPEC, **flags)


@pytest.fixture(autouse=True)
def _no_signal_handlers(monkeypatch):
    """The follower runs in a thread, where signal handlers cannot be installed (Ctrl-C is
    not what these tests exercise)."""
    import abfsm.cli

    monkeypatch.setattr(abfsm.cli, "_install_signals", lambda clock: None)


@pytest.fixture
def world(sfn_make):
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    return sfn_make


ENGINES = ["local", "sfn"]


@pytest.mark.parametrize("engine", ENGINES)
def test_approve_drains_and_completes_the_deployment(world, engine):
    """approve: exit 0, qa-b serves 2, qa-a drained to 0, lock released, record done."""
    decided: list[tuple[int, str]] = []
    assert run(engine, approval_settings(), lambda _: decided.append(approve())) == 0
    [(code, said)] = decided
    assert code == 0 and "approved run " in said and " at approval by " in said
    caps = capacities(world, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (0, 2)
    assert lock_body(world) is None
    [key] = archived_runs(world)
    saved = parse(world("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())[0]
    assert saved is not None and saved.status == "done"


@pytest.mark.parametrize("engine", ENGINES)
def test_reject_rolls_back_while_the_old_asg_serves(world, engine):
    """reject --reason: exit 1, rolled-back: qa-b back to 0, qa-a still 2, lock released,
    the archived record names the rejection and its reason."""
    assert run(engine, approval_settings(), lambda _: reject("p99 doubled")) == 1
    caps = capacities(world, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 0)
    assert lock_body(world) is None
    [key] = archived_runs(world)
    saved = parse(world("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())[0]
    assert saved is not None and saved.status == "rolled-back"
    assert (saved.last_error or "").startswith("approval: rejected by ")
    assert (saved.last_error or "").endswith(": p99 doubled")


@pytest.mark.parametrize("engine", ENGINES)
def test_no_decision_times_out_and_fails_keeping_the_lock(world, engine, tmp_path):
    """approval timeout 2 s and nobody decides: exit 1, the state fails (lock kept, status
    failed, "no decision"), the old ASG still serving."""
    spec = tmp_path / "approval-2s.yaml"
    spec.write_text(Path(SPEC).read_text().replace("timeout: 3600", "timeout: 2"))
    settings = settings_for(instance_count=2, spec=str(spec))
    if engine == "local":
        assert _run_local(settings, lambda _: None) == 1
    else:
        follower = SfnFollower(settings)
        wait_for_pending()
        assert follower.join() == 1
    saved = parse(lock_body(world) or b"")[0]
    assert saved is not None and saved.status == "failed"
    assert "approval" in (saved.last_error or "") and "no decision" in (saved.last_error or "")
    assert capacities(world, ASGS)["qa-a"]["desired"] == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_approve_of_another_run_id_is_refused(world, engine):
    """approve --run-id of another run: exit 3, nothing decided (still pending); approve
    --run-id of the waiting run then completes it."""
    answers: list[tuple[int, str]] = []

    def operator(request: dict[str, Any]) -> None:
        answers.append(approve("--run-id", "20260101T000000Z-0000"))
        answers.append((0, "still pending") if pending_approval() else (1, "decided"))
        answers.append(approve("--run-id", request["run_id"]))

    assert run(engine, approval_settings(), operator) == 0
    assert answers[0][0] == 3 and answers[1] == (0, "still pending") and answers[2][0] == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_second_decision_is_refused(world, engine):
    """approve, then reject at once: the reject exits 3 (the first decision wins: decided
    already, or the execution no longer waits for that token), and the run completes."""
    answers: list[tuple[int, str]] = []

    def operator(_: dict[str, Any]) -> None:
        answers.append(approve())
        answers.append(reject("too late"))

    assert run(engine, approval_settings(), operator) == 0
    assert [code for code, _ in answers] == [0, 3]
    assert capacities(world, ASGS)["qa-a"]["desired"] == 0


def test_status_shows_the_same_pending_approval_for_both_engines(world):
    """`abfsm status` of a run waiting at approval: the same request fields (state, status,
    what, both commands, run_id) whichever engine runs it, the token never shown."""
    seen: dict[str, dict[str, Any]] = {}
    texts: dict[str, str] = {}

    def operator(engine: str) -> Operator:
        def look(request: dict[str, Any]) -> None:
            seen[engine] = request
            texts[engine] = cli("status", *WHERE)[1]
            approve()
        return look

    for engine in ENGINES:
        assert run(engine, approval_settings(), operator(engine)) == 0
    local, sfn = seen["local"], seen["sfn"]
    assert set(local) == set(sfn) and "task_token" not in sfn
    for key in ("kind", "environment", "state", "status", "what", "command", "reject"):
        assert local[key] == sfn[key], key
    assert sfn["status"] == "pending" and sfn["what"] == "approval: approve -> drain, reject -> rollback"
    for engine, text in texts.items():
        assert "approval   pending since " in text, engine
        assert f"approve: abfsm approve --environment qa --lock-bucket-name {BUCKET}" in text


def test_pause_at_approval_exits_4_while_the_execution_waits(world, capsys):
    """--pause-at-approval: `sfn start --wait` (then `sfn watch`) exits 4 printing the decide
    lines `abfsm deploy` prints when it pauses; the execution goes on waiting (pending in the
    lock) and a later reject rolls it back."""
    from structlog.testing import capture_logs

    from abfsm import runner

    settings = approval_settings(pause_at_approval=True, region=REGION)
    with capture_logs():
        local = runner.deploy(settings, services=_services(), clock=FakeClock(),
                              render_next=next_command)
    assert local.exit_code == 4
    assert cli("unlock", *WHERE, "--force")[0] == 0  # the same world for the execution
    world("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b", MinSize=0,
                                                   DesiredCapacity=0)
    capsys.readouterr()
    follower = SfnFollower(settings, "--pause-at-approval")
    assert follower.join() == 4
    err = capsys.readouterr().err
    assert "the execution waits for approval in approval" in err
    for line in local.next[:2]:  # decide: abfsm approve ... / or: abfsm reject ...
        assert line in err, line
    request = pending_approval()
    assert request is not None and request["state"] == "approval"
    [execution] = world("stepfunctions").list_executions(
        stateMachineArn=deploy_machine(SPEC))["executions"]
    assert execution["status"] == "RUNNING"
    watched = cli("sfn", "watch", "--execution-arn", execution["executionArn"], "--spec", SPEC,
                  "--pause-at-approval", "--region", REGION)[0]
    assert watched == 4 and local.next[0] in capsys.readouterr().err  # sfn watch: the same
    assert reject("not today")[0] == 0
    deadline = time.monotonic() + 60
    while world("stepfunctions").describe_execution(
            executionArn=execution["executionArn"])["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert capacities(world, ASGS)["qa-b"]["desired"] == 0 and lock_body(world) is None
