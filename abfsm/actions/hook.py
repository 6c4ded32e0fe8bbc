"""hook: run a command; exit 0 -> `passed`, non-zero -> `failed`.

`params: {command: [argv...], timeout: S, env: {NAME: value}}`. The argv is executed as is,
without a shell (write `[sh, -c, "..."]` to ask for one). It runs in abfsm's working
directory, finds `command[0]` on abfsm's PATH (a name with a `/` is a path, relative to
that directory), inherits abfsm's environment plus `env` and the run's description:

    ABFSM_RUN_ID ABFSM_ENVIRONMENT ABFSM_STATE ABFSM_ACTIVE_ASG ABFSM_TARGET_ASG
    ABFSM_TARGET_COUNT ABFSM_INSTANCE_IDS ABFSM_LOAD_BALANCERS ABFSM_TARGET_GROUPS

always set (empty when unknown; lists comma-separated). Each line it writes (stdout and
stderr together) is logged as a `hook.output` event. Past `timeout` seconds (default: the
state's timeout) its whole process group is killed and the state fails; a command that
cannot be started fails the state too. Resuming the state runs the hook again.
The timeout is the command's own wall clock (a child process does not run on abfsm's
virtual clock); abfsm's stop requests (SIGINT/SIGTERM) are checked while it runs.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

from abfsm.actions.base import Param, Run, action
from abfsm.errors import Interrupted, StateFailed

_READ_SLICE_S = 0.1  # how often a running hook checks for a stop request


def hook_env(run: Run, extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """abfsm's environment, the hook's `env` param, and the run described in ABFSM_*."""
    plan = run.plan
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    env.update({
        "ABFSM_RUN_ID": run.record.run_id,
        "ABFSM_ENVIRONMENT": run.settings.environment,
        "ABFSM_STATE": run.state,
        "ABFSM_ACTIVE_ASG": plan.active or "",
        "ABFSM_TARGET_ASG": plan.target or "",
        "ABFSM_TARGET_COUNT": str(plan.target_count) if plan.target else "",
        "ABFSM_INSTANCE_IDS": ",".join(plan.instance_ids),
        "ABFSM_LOAD_BALANCERS": ",".join(plan.load_balancers),
        "ABFSM_TARGET_GROUPS": ",".join(plan.target_groups),
    })
    return env


PARAMS = {
    "command": Param("list[str]", required=True,
                     doc="argv to run, no shell (e.g. [./smoke.sh, --quick] or [sh, -c, \"...\"])"),
    "timeout": Param("number", doc="seconds before its process group is killed and the state "
                                   "fails (default: the state's timeout)"),
    "env": Param("map[str,str]", default={}, doc="extra environment variables"),
}


def _planned(run: Run) -> tuple[str, list[str]]:
    command = " ".join(str(a) for a in run.params.get("command") or [])
    return "passed", [f"run {command} (hook in {run.state}; not run in a dry run)"]


@action({"passed", "failed"}, params=PARAMS, planner=_planned,
        doc="run a command with the run in ABFSM_* variables; exit 0 -> passed, else failed")
def hook(run: Run) -> str:
    params = run.params
    command = [str(a) for a in params["command"]]
    timeout = float(params.get("timeout") or run.timeout())
    run.log.info("hook.started", state=run.state, command=command, cwd=os.getcwd(),
                 timeout_s=timeout)
    started = time.monotonic()
    code = run_command(run, command, hook_env(run, params.get("env")), timeout)
    duration = round(time.monotonic() - started, 3)
    if code is None:
        raise StateFailed(f"{run.state}: hook {_shown(command)} did not finish within "
                          f"{timeout:g} s; its process group was killed")
    if code == 0:
        run.log.info("hook.passed", state=run.state, command=command, duration_s=duration)
        return "passed"
    run.log.error("hook.failed", state=run.state, command=command, exit_code=code,
                  duration_s=duration)
    run.said_no(f"{run.state}: hook {_shown(command)} exited {code}")
    return "failed"


def run_command(run: Run, command: list[str], env: dict[str, str], timeout: float) -> int | None:
    """Run `command`, logging each output line; its exit code, or None if it timed out."""
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                text=True, errors="replace", bufsize=1)
    except OSError as exc:
        raise StateFailed(f"{run.state}: hook {_shown(command)} could not be started: "
                          f"{exc.strerror or exc}") from None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            run.clock.check_stop()
            left = deadline - time.monotonic()
            if left <= 0:
                _kill_group(proc)
                _drain(run, lines)
                return None
            try:
                line = lines.get(timeout=min(_READ_SLICE_S, left))
            except queue.Empty:
                continue
            if line is None:  # end of output: the command is finishing
                break
            run.log.info("hook.output", state=run.state, line=line)
        try:
            return proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return None
    except (Interrupted, KeyboardInterrupt):
        _kill_group(proc)
        raise
    finally:
        reader.join(timeout=1)


def _pump(stream: IO[str] | None, lines: queue.Queue[str | None]) -> None:
    if stream is not None:
        for line in stream:
            lines.put(line.rstrip("\r\n"))
        stream.close()
    lines.put(None)


def _drain(run: Run, lines: queue.Queue[str | None]) -> None:
    """Log what the killed command had written but was not logged yet."""
    while True:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            return
        if line is None:
            return
        run.log.info("hook.output", state=run.state, line=line)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _shown(command: list[str]) -> str:
    return " ".join(command)
