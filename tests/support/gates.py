"""Helpers for the gate tests: a Run in a given state with given params, alarms in moto,
and a tiny HTTP server on 127.0.0.1 whose answers a test scripts."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from abfsm import runner
from abfsm.actions.base import Run
from abfsm.context import Plan, Settings
from abfsm.lock import LocalStore, Lock
from abfsm.record import new_record
from abfsm.spec import Spec


def with_params(spec: Spec, state: str, params: dict[str, Any]) -> Spec:
    """`spec` with `params` given to `state` (as a validated spec would carry them)."""
    states = dict(spec.states)
    states[state] = dataclasses.replace(states[state], params=params)
    return dataclasses.replace(spec, states=states)


def gate_run(tmp_path: Path, clock: Any, state: str, *, aws: Any = None, plan: Plan | None = None,
             params: dict[str, Any] | None = None, spec: Spec | None = None,
             **settings: Any) -> Run:
    """A Run in `state` over a local lock in tmp_path (taken), the packaged spec by default."""
    s = Settings(environment="qa", state_dir=str(tmp_path / "state"), **settings)
    spec = spec or runner.load(s)
    if params is not None:
        spec = with_params(spec, state, params)
    lock = Lock(LocalStore(s.state_dir, "qa"), clock)
    record = new_record("qa", 1, spec.initial, s.to_dict(), clock)
    record.state = state  # as the runner saves it before the state's action
    lock.acquire(record)
    run = Run(settings=s, plan=plan or Plan(), aws=aws, clock=clock, lock=lock, record=record,
              spec=spec)
    run.state = state
    return run


def put_alarm(make: Callable[[str], Any], name: str, state: str = "OK",
              reason: str = "Threshold Crossed: no datapoints were received") -> None:
    cw = make("cloudwatch")
    cw.put_metric_alarm(AlarmName=name, MetricName="HTTPCode_Target_5XX_Count",
                        Namespace="AWS/ApplicationELB", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=10, ComparisonOperator="GreaterThanThreshold")
    cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)


class Answers:
    """What the test server answers per path: a list of (status, body) consumed in order
    (the last one repeats); every request's path is recorded."""

    def __init__(self) -> None:
        self.by_path: dict[str, list[tuple[int, str]]] = {}
        self.default: tuple[int, str] = (200, "ok")
        self.seen: list[str] = []
        self.rule: Callable[[str], tuple[int, str]] | None = None  # overrides by_path
        self.lock = threading.Lock()

    def next(self, path: str) -> tuple[int, str]:
        with self.lock:
            self.seen.append(path)
            if self.rule is not None:
                return self.rule(path)
            queue = self.by_path.get(path)
            if not queue:
                return self.default
            return queue.pop(0) if len(queue) > 1 else queue[0]


@contextmanager
def http_server(answers: Answers) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 (an ephemeral port); yields http://127.0.0.1:PORT."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            status, body = answers.next(self.path)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
