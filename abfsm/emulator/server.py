"""The emulator's HTTP server: moto's WSGI app with the corrections (and optionally the world
model) applied, a record of every AWS call, and test-only control endpoints.

    python -m abfsm.emulator.server PORT [--world] [--scale X] [--boot S]

In-process: `with serve(world=World(...)) as emulator: emulator.endpoint`.

Endpoints besides AWS's own:
- `GET /_abfsm/calls`: the recorded calls as JSON ([{service, action, method, path, mutating}]);
  `POST /_abfsm/calls/reset` clears them.
- `GET /_abfsm/world`: {"enabled": bool, "now", "scale", "per_call", "boot_s", "instances"}.
  `POST /_abfsm/world` with a JSON object changes it: "enabled" (switch the world model on
  with a fresh world, or off), "scale", "per_call", "boot_s", "advance" (world seconds),
  "reset" (forget every tracked instance). Answers like the GET.
- `POST /moto-api/reset` (moto's own) resets all AWS state, and the world's instances.

The server runs Step Functions executions (in a process and in a thread alike): moto's
`execute_state_machine` is on, as `POST /moto-api/config {"stepfunctions":
{"execute_state_machine": true}}` would set it, and `MOTO_PORT` is this server's port, so the
ASL interpreter's aws-sdk tasks call this same server (with the corrections of fixes.py,
among them the load balancer service names and AWS's error names).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from abfsm.emulator import fixes, world as world_model

__all__ = ["Emulator", "make_app", "main", "serve"]

READ_PREFIXES = ("Describe", "List", "Get", "Head")


class _App:
    """WSGI middleware: control endpoints, the call record, then moto."""

    def __init__(self, moto_app: Any) -> None:
        self.moto_app = moto_app
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path.startswith("/_abfsm/calls"):
            with self.lock:
                if method == "POST":
                    self.calls.clear()
                body = json.dumps(self.calls).encode()
            return _json(start_response, body)
        if path == "/_abfsm/world":
            try:
                answer = _control(_read_json(environ) if method == "POST" else {})
            except (TypeError, ValueError) as exc:
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [f"bad world control request: {exc}\n".encode()]
            return _json(start_response, json.dumps(answer).encode())
        if path.startswith("/moto-api"):
            current = world_model.current()
            if path == "/moto-api/reset" and current is not None:
                current.reset()
        else:
            self._record(environ, path, method)
        return self.moto_app(environ, start_response)

    def _record(self, environ: dict[str, Any], path: str, method: str) -> None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        service = auth.split("Credential=")[1].split("/")[3] if "Credential=" in auth else "?"
        if method == "POST" and service != "s3":
            raw = _read_body(environ)
            action = parse_qs(raw.decode("utf-8", "replace")).get("Action", [""])[0]
            if not action:
                action = environ.get("HTTP_X_AMZ_TARGET", "").split(".")[-1]
            mutating = not action.startswith(READ_PREFIXES)
        else:
            action = f"{method} {path}"
            mutating = method in ("PUT", "POST", "DELETE")
        with self.lock:
            self.calls.append({"service": service, "action": action, "method": method,
                               "path": path, "mutating": mutating})


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw: bytes = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    return raw


def _read_json(environ: dict[str, Any]) -> dict[str, Any]:
    raw = _read_body(environ)
    body = json.loads(raw) if raw.strip() else {}
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _json(start_response: Any, body: bytes) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


_KNOWN = {"enabled", "scale", "per_call", "boot_s", "advance", "reset"}


def _control(request: dict[str, Any]) -> dict[str, Any]:
    unknown = set(request) - _KNOWN
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} (known: {sorted(_KNOWN)})")
    if "enabled" in request:
        if request["enabled"]:
            world_model.activate(world_model.World(world_model.WorldClock(scale=0.0)))
        else:
            world_model.deactivate()
    current = world_model.current()
    if current is None:
        if set(request) - {"enabled"}:
            raise ValueError("the world model is off: send {\"enabled\": true} first")
        return {"enabled": False}
    with current.lock:
        if "scale" in request:
            current.clock.set_scale(float(request["scale"]))
        if "per_call" in request:
            current.clock.per_call = float(request["per_call"])
        if "boot_s" in request:
            current.boot_s = float(request["boot_s"])
        if request.get("reset"):
            current.reset()
        if "advance" in request:
            current.advance(float(request["advance"]))
        return {"enabled": True, **current.snapshot()}


def make_app() -> _App:
    """moto's multi-service WSGI app behind the control endpoints, corrections applied."""
    fixes.apply()
    world_model.install()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return _App(DomainDispatcherApplication(create_backend_app))


@dataclass
class Emulator:
    endpoint: str
    app: _App
    world: world_model.World | None


@contextlib.contextmanager
def serve(*, port: int = 0, world: world_model.World | None = None) -> Iterator[Emulator]:
    """The emulator on 127.0.0.1 in a thread of this process; `world` switches the model on."""
    from werkzeug.serving import make_server

    _quiet()
    app = make_app()
    if world is not None:
        world_model.activate(world)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="abfsm-emulator", daemon=True)
    thread.start()
    restore = _run_executions(server.server_port)
    try:
        yield Emulator(f"http://127.0.0.1:{server.server_port}", app, world)
    finally:
        restore()
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        if world is not None and world_model.current() is world:
            world_model.deactivate()


def _quiet() -> None:
    """No request log on the console, and none of the ERROR lines moto's ASL interpreter logs
    for what an execution handles itself (an IsPresent test on a missing path, a caught
    task failure, a Fail state): the execution's history says what happened."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)


def _run_executions(port: int) -> Callable[[], None]:
    """Step Functions executions on, their aws-sdk tasks calling this server on `port`;
    returns what puts the process's previous settings back (for a server in a thread)."""
    import os

    from moto.core.config import default_user_config
    from moto.moto_api._internal.models import moto_api_backend

    saved_port, saved = os.environ.get("MOTO_PORT"), dict(default_user_config["stepfunctions"])
    os.environ["MOTO_PORT"] = str(port)  # read by moto's interpreter for each task's client
    moto_api_backend.set_config({"stepfunctions": {"execute_state_machine": True}})

    def restore() -> None:
        if saved_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = saved_port
        moto_api_backend.set_config({"stepfunctions": saved})
    return restore


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m abfsm.emulator.server",
                                     description="moto with abfsm's corrections on 127.0.0.1")
    parser.add_argument("port", type=int)
    parser.add_argument("--world", action="store_true", help="switch the world model on")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="world seconds per real second (default: 1)")
    parser.add_argument("--boot", type=float, default=40.0, help="instance boot time, world s")
    args = parser.parse_args(argv)
    from werkzeug.serving import run_simple

    _quiet()
    app = make_app()
    _run_executions(args.port)
    if args.world:
        world_model.activate(world_model.World(world_model.WorldClock(scale=args.scale),
                                               boot_s=args.boot))
    run_simple("127.0.0.1", args.port, app, threaded=True)


if __name__ == "__main__":
    main()
