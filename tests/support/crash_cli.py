"""The abfsm CLI in a background process, with test hooks for crashes and unhealthy instances.

Run as a script, it is `python -m abfsm ARGS` plus hooks chosen by environment variables.
The hooks change nothing in abfsm's code path; they model what a real run meets:

    ABFSM_TEST_SIGKILL_IN=STATE[:before|:after][:N]
        the process SIGKILLs itself in STATE (on its N-th entry, default 1), before or after
        (default) the state's action ran: a CI job killed at that moment. Used for the states
        a process passes through too quickly to be caught from outside.
    ABFSM_TEST_NEW_INSTANCES=stopped|unhealthy
        after each `scale` step, the target ASG's instances are made to come up broken:
        `stopped` (OutOfService in a classic ELB, so wait-elb holds) or `unhealthy`
        (HealthStatus Unhealthy in the ASG, so wait-instances holds). The test repairs them.

Imported, it offers `Background` (a CLI process whose JSON events can be awaited) and
helpers to read and age the run record a killed process left behind.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
_STARTED: list[Background] = []


def _install_hooks() -> None:
    import dataclasses

    from abfsm.actions import ACTIONS
    from abfsm.spec import load_spec

    spec = load_spec(None, ACTIONS)
    kill = os.environ.get("ABFSM_TEST_SIGKILL_IN")
    if kill:
        state, *rest = kill.split(":")
        when = rest[0] if rest else "after"
        nth = int(rest[1]) if len(rest) > 1 else 1
        name = spec.states[state].action
        real = ACTIONS[name]  # type: ignore[index]
        entries = [0]

        def crashing(run: Any) -> str:
            entries[0] += 1
            if entries[0] == nth and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            trigger = real.fn(run)
            if entries[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)
            return trigger

        ACTIONS[name] = dataclasses.replace(real, fn=crashing)  # type: ignore[index]

    broken = os.environ.get("ABFSM_TEST_NEW_INSTANCES")
    if broken:
        real_scale = ACTIONS["scale_step"]

        def scale_then_break(run: Any) -> str:
            trigger = real_scale.fn(run)
            break_instances(run.plan.target, broken)
            return trigger

        ACTIONS["scale_step"] = dataclasses.replace(real_scale, fn=scale_then_break)


def break_instances(asg: str, how: str, *, make: Callable[[str], Any] | None = None) -> list[str]:
    """Stop the ASG's instances (`stopped`) or mark them Unhealthy (`unhealthy`); `running` /
    `healthy` repair them. Returns the instance ids."""
    import boto3

    make = make or boto3.client
    ids = [i["InstanceId"] for g in make("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[asg])["AutoScalingGroups"] for i in g["Instances"]]
    if not ids:
        return ids
    if how == "stopped":
        make("ec2").stop_instances(InstanceIds=ids)
    elif how == "running":
        make("ec2").start_instances(InstanceIds=ids)
    else:
        status = "Unhealthy" if how == "unhealthy" else "Healthy"
        for iid in ids:
            make("autoscaling").set_instance_health(InstanceId=iid, HealthStatus=status)
    return ids


class Background:
    """`crash_cli.py ARGS` running in the background; its JSON log lines are read as they come."""

    def __init__(self, args: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""
        _STARTED.append(self)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("{"):
                event = json.loads(line)
                self.events.append(event)
                self._queue.put(event)
        self._queue.put(None)

    def wait_for(self, match: Callable[[dict[str, Any]], bool],
                 timeout: float = 30) -> dict[str, Any]:
        """Block until an event matches (raises if the process ends or time runs out first)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching event within {timeout} s; saw "
                                     f"{[e.get('event') for e in self.events]}") from None
            if event is None:
                self.finish()
                raise AssertionError(f"process ended (exit {self.proc.returncode}) before a "
                                     f"matching event; stderr: {self.stderr[-2000:]}")
            if match(event):
                return event

    def finish(self, timeout: float = 60) -> int:
        """Wait for the process to end; returns its exit code (negative: killed by a signal)."""
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        if not self._stderr.closed:
            self._stderr.seek(0)
            self.stderr = self._stderr.read()
            self._stderr.close()
            self.proc.stdout.close()  # type: ignore[union-attr]
        return self.proc.returncode

    def kill(self) -> int:
        self.proc.send_signal(signal.SIGKILL)
        return self.finish()

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]


def reap() -> None:
    """SIGKILL every background CLI still running (a test that failed half-way)."""
    while _STARTED:
        run = _STARTED.pop()
        if run.proc.poll() is None:
            run.kill()
        else:
            run.finish()


def start(env: dict[str, str], tmp_path: Path, *args: str,
          extra_env: dict[str, str] | None = None) -> Background:
    """Like the `cli` fixture (JSON logs, state dir tmp_path/state), but in the background."""
    argv = list(args)
    if args[0] in ("deploy", "resume"):
        argv += ["--log-format", "json"]
    if "--state-dir" not in args:
        argv += ["--state-dir", str(tmp_path / "state")]
    return Background(argv, env={**env, **(extra_env or {})}, cwd=tmp_path)


class Records:
    """The lock (with the current run record) and the archived records of one environment,
    read straight from the bucket or the state dir, the way an operator would look."""

    def __init__(self, make: Callable[[str], Any], env: str, *, bucket: str | None = None,
                 state_dir: Path | None = None) -> None:
        self.make, self.env, self.bucket, self.state_dir = make, env, bucket, state_dir

    def lock(self) -> dict[str, Any] | None:
        """The lock's run record, or None when there is no lock."""
        raw = self.lock_bytes()
        return None if raw is None else json.loads(raw)

    def lock_bytes(self) -> bytes | None:
        if self.bucket:
            s3 = self.make("s3")
            try:
                return s3.get_object(Bucket=self.bucket, Key=f"{self.env}.lock")["Body"].read()
            except s3.exceptions.NoSuchKey:
                return None
        path = self.state_dir / f"{self.env}.lock"  # type: ignore[operator]
        return path.read_bytes() if path.exists() else None

    def write_lock(self, body: bytes) -> None:
        """Overwrite the lock unconditionally (a test standing in for time or a person)."""
        if self.bucket:
            self.make("s3").put_object(Bucket=self.bucket, Key=f"{self.env}.lock", Body=body)
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            (self.state_dir / f"{self.env}.lock").write_bytes(body)  # type: ignore[operator]

    def age_heartbeat(self, seconds: float) -> dict[str, Any]:
        """Move the record's heartbeat `seconds` into the past: as if its process had died
        that long ago. Returns the rewritten record."""
        from datetime import datetime, timedelta, timezone

        record = self.lock()
        assert record is not None, "no lock to age"
        then = datetime.now(timezone.utc) - timedelta(seconds=seconds)
        record["heartbeat"] = then.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.write_lock((json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
        return record

    def archived(self) -> dict[str, dict[str, Any]]:
        """run_id -> final record, from ENV/runs/."""
        out = {}
        if self.bucket:
            s3 = self.make("s3")
            resp = s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{self.env}/runs/")
            for obj in resp.get("Contents", []):
                data = json.loads(s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read())
                out[obj["Key"].rsplit("/", 1)[1].removesuffix(".json")] = data
        else:
            runs = self.state_dir / self.env / "runs"  # type: ignore[operator]
            for path in sorted(runs.glob("*.json")) if runs.is_dir() else []:
                out[path.stem] = json.loads(path.read_text())
        return out


def waiting_in(state: str) -> Callable[[dict[str, Any]], bool]:
    """Matches a poll in `state` that found it not done: the run is held there (and its
    record, written before the state's action, says `state`)."""
    return lambda e: (e.get("event") == "wait.progress" and e.get("state") == state
                      and e["ready"] < e["total"])


if __name__ == "__main__":
    _install_hooks()
    from abfsm.cli import main

    sys.exit(main(sys.argv[1:]))
