"""The run record: one JSON document per run, written before each state's action.

It holds everything needed to read or resume a run: settings, the plan decided in inspect,
the history of transitions, the last error, who started it and a heartbeat.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from abfsm.clock import Clock, parse_utc, utc_iso

KIND = "abfsm.run"
SCHEMA = 1

# Status values of a run that has not reached a final state, and of one whose lock was
# removed by `abfsm unlock`. A finished run's status is the name of the spec's final state it
# ended in (states.yaml says what each one means).
RUNNING, INTERRUPTED, UNLOCKED = "running", "interrupted", "unlocked"


@dataclass
class RunRecord:
    run_id: str
    environment: str
    spec_version: int
    state: str
    status: str
    started_at: str
    heartbeat: str
    settings: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    last_error: str | None = None
    error_type: str | None = None  # the exception class of last_error (e.g. KeyError)
    failed_state: str | None = None
    exit_code: int | None = None
    started_by: dict[str, Any] = field(default_factory=dict)
    finished_at: str | None = None
    spec: dict[str, Any] = field(default_factory=dict)  # path (null: packaged) and sha256
    write_seq: int = 0  # +1 on every write of the lock: each body this run sends is unique
    unlocked: dict[str, Any] | None = None  # who removed the lock with `abfsm unlock`, when
    engine: str = "local"  # which engine runs it: "local" (abfsm deploy) or "stepfunctions"
    execution_arn: str | None = None  # the Step Functions execution, for engine stepfunctions
    approval: dict[str, Any] | None = None  # the approval request the run waits on (sfn: + token)
    kind: str = KIND
    schema: int = SCHEMA

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RunRecord | None:
        """Parse a record; None if the bytes are not a valid abfsm record (a foreign lock)."""
        return parse(raw)[0]

    @property
    def who(self) -> str:
        """user@host of whoever started the run."""
        return f"{self.started_by.get('user', '?')}@{self.started_by.get('host', '?')}"

    def heartbeat_age(self, clock: Clock) -> float:
        return (clock.now() - parse_utc(self.heartbeat)).total_seconds()

    def touch(self, clock: Clock) -> None:
        self.heartbeat = utc_iso(clock.now())


def parse(raw: bytes) -> tuple[RunRecord | None, str]:
    """(record, "") for a valid abfsm record; (None, why) for anything else.

    `why` is "" for bytes that do not claim to be abfsm's (an empty object, a note), and
    names the first problem of a document that claims `kind: abfsm.run` but breaks the
    schema (a missing run_id, a heartbeat that is not a timestamp, settings that are a string).
    """
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, ""
    if not isinstance(data, dict) or data.get("kind") != KIND:
        return None, ""
    problem = schema_problem(data)
    if problem:
        return None, problem
    known = {f.name for f in fields(RunRecord)}
    return RunRecord(**{k: v for k, v in data.items() if k in known}), ""


_STR, _INT, _DICT, _LIST, _TIME = "a string", "a whole number", "an object", "a list", "a timestamp"
# Field -> (what it must be, required). Every field of RunRecord is listed.
_SCHEMA: dict[str, tuple[str, bool]] = {
    "run_id": (_STR, True), "environment": (_STR, True), "spec_version": (_INT, True),
    "state": (_STR, True), "status": (_STR, True), "started_at": (_TIME, True),
    "heartbeat": (_TIME, True), "settings": (_DICT, False), "context": (_DICT, False),
    "history": (_LIST, False), "last_error": (_STR, False), "error_type": (_STR, False),
    "failed_state": (_STR, False),
    "exit_code": (_INT, False), "started_by": (_DICT, False), "finished_at": (_TIME, False),
    "spec": (_DICT, False), "write_seq": (_INT, False), "unlocked": (_DICT, False),
    "engine": (_STR, False), "execution_arn": (_STR, False), "approval": (_DICT, False),
    "kind": (_STR, True),
    "schema": (_INT, True),
}
_NULLABLE = {"last_error", "error_type", "failed_state", "exit_code", "finished_at", "unlocked",
             "execution_arn", "approval"}


def schema_problem(data: dict[str, Any]) -> str:
    """The first way `data` breaks the record schema, or "" if it is a valid record."""
    for name, (kind, required) in _SCHEMA.items():
        if name not in data:
            if required:
                return f"{name} is missing"
            continue
        value = data[name]
        if value is None and name in _NULLABLE:
            continue
        if not _is(kind, value):
            return f"{name} is not {kind} ({_short(value)})"
    if not data["run_id"]:
        return "run_id is empty"
    if not isinstance(data.get("settings", {}).get("update_timeout", 30.0), (int, float)):
        return "settings.update_timeout is not a number"
    if any(not isinstance(h, dict) for h in data.get("history", [])):
        return "history holds an entry that is not an object"
    return ""


def _is(kind: str, value: Any) -> bool:
    if kind == _STR:
        return isinstance(value, str)
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _DICT:
        return isinstance(value, dict)
    if kind == _LIST:
        return isinstance(value, list)
    try:
        parse_utc(value)
    except (TypeError, ValueError):
        return False
    return True


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def new_run_id(clock: Clock) -> str:
    return clock.now().strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def new_record(environment: str, spec_version: int, initial: str, settings: dict[str, Any],
               clock: Clock, run_id: str | None = None) -> RunRecord:
    now = utc_iso(clock.now())
    return RunRecord(
        run_id=run_id or new_run_id(clock), environment=environment, spec_version=spec_version,
        state=initial, status=RUNNING, started_at=now, heartbeat=now, settings=settings,
        started_by=started_by(),
    )


def started_by(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Who and where: user, host, and the CI job URL when a CI system's variables say so."""
    env = dict(os.environ) if env is None else env
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"user": user, "host": socket.gethostname(), "ci_job_url": ci_job_url(env)}


def ci_job_url(env: dict[str, str]) -> str | None:
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
    for var in ("CI_JOB_URL", "BUILD_URL", "BUILDKITE_BUILD_URL", "CIRCLE_BUILD_URL",
                "bamboo_resultsUrl", "CODEBUILD_BUILD_URL"):
        if env.get(var):
            return env[var]
    return None


def add_history(record: RunRecord, src: str, dst: str, trigger: str, at: datetime,
                elapsed_s: float) -> None:
    record.history.append({"at": utc_iso(at), "src": src, "dst": dst, "trigger": trigger,
                           "elapsed_s": round(elapsed_s, 3)})
