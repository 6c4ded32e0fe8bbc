"""Recorded execution histories of the compiled packaged machine, for the history mapper's
unit tests (tests/unit/test_sfn_history.py): `python -m tests.support.sfn_history --write`
runs each case on moto's ASL interpreter and writes tests/golden/sfn_history/CASE.json.

To keep the files small, a recorded event keeps its data (input, output, parameters) only
where the mapper reads it: the execution's input, the input of the spec states (names
without a dot; only its `plan`, `count`, `lock` and `error`) and the parameters of each
task (the lock record's Body left out).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from abfsm.aws.stepfunctions import HistoryEvent, history_event
from tests.support.aws_env import REGION, build_env
from tests.support.sfn_moto import BUCKET, ROLE, cli, executing_moto, settings_for, start_argv

_READ = ("plan", "count", "lock", "error")  # of a spec state's input
DIR = Path(__file__).resolve().parents[1] / "golden" / "sfn_history"

# case -> (deploy flags, frozen world: instances never leave Pending, lock held by hand)
CASES: dict[str, tuple[dict[str, Any], bool, bool]] = {
    "ab-stepped": ({"instance_count": 2, "instance_count_step": 1}, False, False),
    "lock-held": ({"instance_count": 2}, False, True),
    "wait-timeout": ({"instance_count": 2}, True, False),
    "rollback": ({"instance_count": 2, "rollback_on_failure": True}, True, False),
}


def load(case: str) -> list[HistoryEvent]:
    raw = json.loads((DIR / f"{case}.json").read_text(encoding="utf-8"))
    return [history_event(e) for e in raw["events"]]


def execution_arn(case: str) -> str:
    return str(json.loads((DIR / f"{case}.json").read_text(encoding="utf-8"))["execution_arn"])


@contextmanager
def _frozen(on: bool) -> Iterator[None]:
    if not on:
        yield
        return
    from abfsm.emulator import world as world_model

    world_model.activate(world_model.World(world_model.WorldClock(scale=0.0)))
    try:
        yield
    finally:
        world_model.deactivate()


def record(case: str) -> dict[str, Any]:
    flags, frozen, held = CASES[case]
    with executing_moto() as make, _frozen(frozen):
        return _run(make, flags, held)


def _run(make: Callable[[str], Any], flags: dict[str, Any], held: bool) -> dict[str, Any]:
    build_env(make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    if held:
        make("s3").put_object(Bucket=BUCKET, Key="qa.lock", Body=b"held by hand\n")
    _, arn = cli("sfn", "deploy", "--name", "abfsm", "--role-arn", ROLE, "--region", REGION)
    _, out = cli("sfn", "start", "--state-machine-arn", arn, *start_argv(settings_for(**flags)),
                 "--region", REGION, "--wait", "--log-format", "json")
    execution = out.splitlines()[0]
    events = make("stepfunctions").get_execution_history(executionArn=execution,
                                                         maxResults=1000)["events"]
    return {"execution_arn": execution, "events": [_kept(e) for e in events]}


def _kept(event: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in event.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        if key.endswith("EventDetails") and isinstance(value, dict):
            value = dict(value)
            name = str(value.get("name") or "")
            spec_state = key == "stateEnteredEventDetails" and "." not in name
            for data in ("input", "output"):
                if data in value and not (spec_state or key == "executionStartedEventDetails"):
                    del value[data]
            if spec_state and "input" in value:
                doc = json.loads(value["input"])
                value["input"] = json.dumps({k: doc[k] for k in _READ if k in doc})
            if "parameters" in value:
                params = json.loads(value["parameters"])
                params.pop("Body", None)
                value["parameters"] = json.dumps(params)
        out[key] = value
    return out


def main(argv: list[str]) -> int:
    if argv != ["--write"]:
        sys.stderr.write("usage: python -m tests.support.sfn_history --write\n")
        return 2
    DIR.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        doc = record(case)
        lines = ",\n".join(json.dumps(e) for e in doc["events"])  # one event a line
        (DIR / f"{case}.json").write_text(
            f'{{"execution_arn": {json.dumps(doc["execution_arn"])}, "events": [\n{lines}\n]}}\n',
            encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
