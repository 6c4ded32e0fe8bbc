"""hook: argv without a shell, the run in ABFSM_* variables, exit code -> outcome, each output
line an event, and a timeout that kills the command's whole process group."""

from __future__ import annotations

import sys
import time

import pytest
from structlog.testing import capture_logs

from abfsm.actions.hook import hook
from abfsm.context import Plan
from abfsm.errors import StateFailed
from tests.support.gates import gate_run, with_params

VARS = ("ABFSM_RUN_ID", "ABFSM_ENVIRONMENT", "ABFSM_STATE", "ABFSM_ACTIVE_ASG",
        "ABFSM_TARGET_ASG", "ABFSM_TARGET_COUNT", "ABFSM_INSTANCE_IDS", "ABFSM_LOAD_BALANCERS",
        "ABFSM_TARGET_GROUPS")
PRINT_VARS = f"import os; [print(k + '=' + os.environ[k]) for k in {VARS!r} + ('EXTRA',)]"


def hook_run(tmp_path, clock, command, plan=None, **params):
    from abfsm import runner
    from abfsm.context import Settings

    spec = runner.load(Settings("qa"))
    spec = with_params(spec, "bake", {"command": command, "env": {}, "timeout": None, **params})
    return gate_run(tmp_path, clock, "bake", spec=spec, plan=plan)  # any state name will do


def lines(logs):
    return [e["line"] for e in logs if e["event"] == "hook.output"]


def test_exit_zero_passes_and_the_run_is_described_in_the_environment(tmp_path, clock):
    """Exit 0 -> passed; every ABFSM_* variable is set (lists comma-separated) plus `env`."""
    plan = Plan(active="qa-a", target="qa-b", target_count=2, instance_ids=["i-1", "i-2"],
                load_balancers=["qa-public"])
    run = hook_run(tmp_path, clock, [sys.executable, "-c", PRINT_VARS], plan=plan,
                   env={"EXTRA": "yes"})
    with capture_logs() as logs:
        assert hook(run) == "passed"
    assert lines(logs) == [
        f"ABFSM_RUN_ID={run.record.run_id}", "ABFSM_ENVIRONMENT=qa", "ABFSM_STATE=bake",
        "ABFSM_ACTIVE_ASG=qa-a", "ABFSM_TARGET_ASG=qa-b", "ABFSM_TARGET_COUNT=2",
        "ABFSM_INSTANCE_IDS=i-1,i-2", "ABFSM_LOAD_BALANCERS=qa-public", "ABFSM_TARGET_GROUPS=",
        "EXTRA=yes"]


def test_unknown_values_are_set_empty(tmp_path, clock):
    """Before inspect decided anything the variables exist, empty."""
    run = hook_run(tmp_path, clock, [sys.executable, "-c", PRINT_VARS], env={"EXTRA": ""})
    with capture_logs() as logs:
        hook(run)
    assert "ABFSM_TARGET_ASG=" in lines(logs) and "ABFSM_TARGET_COUNT=" in lines(logs)


def test_non_zero_exit_is_failed_with_its_code(tmp_path, clock):
    """Exit 3 -> `failed` (the spec routes it), hook.failed names the exit code."""
    run = hook_run(tmp_path, clock, [sys.executable, "-c",
                                     "import sys; print('smoke: 2 of 5 checks failed'); sys.exit(3)"])
    with capture_logs() as logs:
        assert hook(run) == "failed"
    failed = [e for e in logs if e["event"] == "hook.failed"]
    assert failed[0]["exit_code"] == 3 and lines(logs) == ["smoke: 2 of 5 checks failed"]


def test_no_shell_unless_asked(tmp_path, clock):
    """argv runs as is: `$HOME` stays literal; `sh -c` asks for a shell and expands it."""
    run = hook_run(tmp_path, clock, ["echo", "$HOME"])
    with capture_logs() as logs:
        hook(run)
    assert lines(logs) == ["$HOME"]
    run = hook_run(tmp_path / "2", clock, ["sh", "-c", "echo $ABFSM_ENVIRONMENT"])
    with capture_logs() as logs:
        hook(run)
    assert lines(logs) == ["qa"]


def test_stderr_lines_are_logged_too(tmp_path, clock):
    """What the command writes to stderr is logged like stdout."""
    run = hook_run(tmp_path, clock, ["sh", "-c", "echo out; echo err >&2"])
    with capture_logs() as logs:
        hook(run)
    assert sorted(lines(logs)) == ["err", "out"]


def test_timeout_kills_the_process_group_and_fails_the_state(tmp_path, clock):
    """Past its timeout the hook's group (a grandchild too) is killed and the state fails."""
    pidfile = tmp_path / "grandchild.pid"
    run = hook_run(tmp_path, clock, ["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"],
                   timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StateFailed, match=r"did not finish within 0.5 s; its process group was killed"):
        hook(run)
    assert time.monotonic() - started < 5
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5  # SIGKILL is delivered asynchronously
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a killed process not yet reaped by its new parent is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_command_that_cannot_start_fails_the_state(tmp_path, clock):
    """A command not on PATH is a failure of the state (not `failed`), naming it."""
    run = hook_run(tmp_path, clock, ["./no-such-smoke-test.sh"])
    with pytest.raises(StateFailed, match="hook ./no-such-smoke-test.sh could not be started"):
        hook(run)
