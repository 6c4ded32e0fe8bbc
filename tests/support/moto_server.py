"""A moto_server for the end-to-end tests: moto's own WSGI app on 127.0.0.1, with the
corrections of tests/moto_fixes.py applied and a record of every request it served.

    python tests/support/moto_server.py PORT

Extra endpoints (test-only): GET /_abfsm/calls returns the recorded calls as JSON
([{service, action, method, path, mutating}]); POST /_abfsm/calls/reset clears them.
`POST /moto-api/reset` (moto's own) resets all AWS state.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

READ_PREFIXES = ("Describe", "List", "Get", "Head")


class Recorder:
    """WSGI middleware recording (service, action, mutating) of every AWS request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path.startswith("/_abfsm/calls"):
            if method == "POST":
                with self.lock:
                    self.calls.clear()
                body = b"[]"
            else:
                with self.lock:
                    body = json.dumps(self.calls).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if not path.startswith("/moto-api"):
            self._record(environ, path, method)
        return self.app(environ, start_response)

    def _record(self, environ: dict[str, Any], path: str, method: str) -> None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        service = auth.split("Credential=")[1].split("/")[3] if "Credential=" in auth else "?"
        action = ""
        if method == "POST" and service != "s3":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            import io

            environ["wsgi.input"] = io.BytesIO(raw)
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


def main() -> None:
    from tests import moto_fixes

    moto_fixes.apply()
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", int(sys.argv[1]), Recorder(app), threaded=True)


if __name__ == "__main__":
    main()
