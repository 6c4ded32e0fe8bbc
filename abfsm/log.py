"""structlog configuration: JSON lines for machines, a readable console for people.

Every event has a fixed snake_case name and fixed keys (see the README's log schema).
`--log-format auto` picks console on a terminal and JSON otherwise. On a terminal,
`wait.progress` events redraw one live status line instead of scrolling.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from typing import IO, Any

import structlog

SCHEMA_VERSION = 1


def configure(fmt: str = "auto", *, verbose: bool = False, stream: IO[str] | None = None) -> str:
    """Configure structlog for one process; returns the effective format."""
    stream = stream or sys.stdout
    tty = bool(getattr(stream, "isatty", lambda: False)())
    if fmt == "auto":
        fmt = "console" if tty else "json"
    renderer: Any = _json_renderer if fmt == "json" else ConsoleRenderer(verbose=verbose)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if verbose else logging.INFO),
        logger_factory=lambda *_: Sink(stream, live=tty and fmt == "console" and not verbose),
        cache_logger_on_first_use=False,
    )
    return fmt


def bind(**values: Any) -> None:
    """Bind keys (run_id, env) to every later event of this process."""
    structlog.contextvars.bind_contextvars(**values)


def reset() -> None:
    Sink._pending.clear()
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def _json_renderer(_: Any, __: str, event: dict[str, Any]) -> str:
    ordered = {"ts": event.pop("ts", None), "level": event.pop("level", None),
               "event": event.pop("event", None)}
    ordered.update(event)
    return json.dumps(ordered, default=str, separators=(",", ":"))


class Sink:
    """Writes rendered lines; a `live=True` line on a terminal overwrites the previous one."""

    _pending: dict[int, bool] = {}  # per stream: a live line is on screen, not yet ended

    def __init__(self, stream: IO[str], *, live: bool) -> None:
        self._stream = stream
        self._live = live

    def msg(self, text: str, live: bool = False) -> None:
        key = id(self._stream)
        if live and self._live:
            # One row only: a wrapped line could not be redrawn in place.
            width = shutil.get_terminal_size((120, 24)).columns - 1
            self._stream.write("\r\x1b[K" + (text if len(text) <= width else text[:width - 1] + "…"))
            Sink._pending[key] = True
        else:
            if Sink._pending.pop(key, False):
                self._stream.write("\n")
            self._stream.write(text + "\n")
        self._stream.flush()

    debug = info = warning = warn = error = critical = exception = log = msg


class ConsoleRenderer:
    """A short human line per event; known events get their own wording."""

    def __init__(self, *, verbose: bool) -> None:
        self._verbose = verbose

    def __call__(self, _: Any, __: str, event: dict[str, Any]) -> Any:
        name = event.get("event", "")
        if (name == "aws.call" and event.get("service") == "s3" and not self._verbose
                and "IfMatch" in (event.get("params") or {})):
            raise structlog.DropEvent  # run-record saves: JSON and --verbose show them
        fmt = getattr(self, "_" + str(name).replace(".", "_"), None)
        text = fmt(event) if fmt else self._generic(event)
        if name == "wait.progress":
            return (text,), {"live": True}
        return text

    @staticmethod
    def _generic(event: dict[str, Any]) -> str:
        skip = {"event", "ts", "level", "run_id", "env"}
        rest = " ".join(f"{k}={_short(v)}" for k, v in event.items() if k not in skip)
        level = event.get("level", "info")
        prefix = "" if level == "info" else f"{level.upper()}: "
        return f"{prefix}{event.get('event')}" + (f"  {rest}" if rest else "")

    @staticmethod
    def _run_started(e: dict[str, Any]) -> str:
        s = e.get("settings", {})
        flags = []
        for key in ("dry_run", "zero", "single_asg", "clean_up", "rollback_on_failure"):
            if s.get(key):
                flags.append("--" + key.replace("_", "-"))
        return (f"abfsm {e.get('command', 'deploy')} {e.get('env')} · run {e.get('run_id')}"
                + (f" · {' '.join(flags)}" if flags else "")
                + f" · lock {e.get('lock')}")

    @staticmethod
    def _transition(e: dict[str, Any]) -> str:
        return f"  {e['src']:<15} → {e['dst']:<15} ({e['trigger']}, {e['elapsed_s']:.2f} s)"

    @staticmethod
    def _wait_progress(e: dict[str, Any]) -> str:
        waiting = e.get("not_ready") or []
        shown = ", ".join(f"{w['id']} {w['state']}" for w in waiting[:4])
        if len(waiting) > 4:
            shown += f", +{len(waiting) - 4} more"
        return (f"  {e['state']}: {e['ready']}/{e['total']} {e.get('what', 'ready')}"
                f" · {e['elapsed_s']:.0f} s elapsed, {e['remaining_s']:.0f} s left"
                + (f" · waiting for {shown}" if shown else ""))

    @staticmethod
    def _lock_acquired(e: dict[str, Any]) -> str:
        return f"  lock: acquired {e['lock']}"

    @staticmethod
    def _lock_free(e: dict[str, Any]) -> str:
        return f"  lock: {e['lock']} is free (dry run: not taken)"

    @staticmethod
    def _scale_step(e: dict[str, Any]) -> str:
        return f"  scale: {e['asg']} desired capacity {e['desired']} (step {e['step']}/{e['steps']})"

    @staticmethod
    def _drain_started(e: dict[str, Any]) -> str:
        lbs = ", ".join(e.get("load_balancers") or []) or "no load balancer"
        tail = "; waiting until they are gone" if e.get("wait") else ""
        return (f"  drain: {e['asg']} set to MinSize 0 / desired 0; its {e.get('instances')} "
                f"instance(s) are draining from {lbs}{tail}")

    @staticmethod
    def _state_failed(e: dict[str, Any]) -> str:
        error = str(e["error"])
        shown = error if error.startswith(f"{e['state']}:") else f"{e['state']}: {error}"
        trace = f"\n{e['exception']}" if e.get("exception") else ""
        return f"  ✗ {shown}  (→ {e['next']}, exit {e['exit_code']}){trace}"

    @staticmethod
    def _run_crashed(e: dict[str, Any]) -> str:
        trace = f"\n{e['exception']}" if e.get("exception") else ""
        return f"  ✗ internal error: {e['error']}{trace}"

    @staticmethod
    def _inspect_decided(e: dict[str, Any]) -> str:
        lbs = (e.get("load_balancers") or []) + (e.get("target_groups") or [])
        if not e.get("target"):
            return f"  inspect: {e.get('trigger')} (active {e.get('active') or 'none'})"
        return (f"  inspect: {e.get('active') or 'no active ASG'} → {e['target']}, "
                f"{e.get('target_count')} instance(s) in steps {e.get('steps')}, "
                f"load balancers: {', '.join(lbs) if lbs else 'none'} ({e.get('lb_source')})")

    @staticmethod
    def _aws_call(e: dict[str, Any]) -> str:
        params = " ".join(f"{k}={_short(v)}" for k, v in (e.get("params") or {}).items())
        return f"    aws {e['service']} {e['action']} {params}"

    @staticmethod
    def _aws_read(e: dict[str, Any]) -> str:
        params = " ".join(f"{k}={_short(v)}" for k, v in (e.get("params") or {}).items())
        return f"    aws {e['service']} {e['action']} {params} (read)"

    @staticmethod
    def _demo_ready(e: dict[str, Any]) -> str:
        made = e.get("created") or {}
        groups = ", ".join(f"{name} ({c['desired']} instance(s))"
                           for name, c in (e.get("before") or {}).items())
        return (f"demo: AWS emulator (moto) at {e.get('endpoint')}; created classic ELB "
                f"{made.get('elb')}, lock bucket {made.get('bucket')}, ASGs {groups}")

    @staticmethod
    def _demo_after(e: dict[str, Any]) -> str:
        groups = ", ".join(f"{name} desired {c['desired']} with {c['instances']} instance(s)"
                           for name, c in (e.get("after") or {}).items())
        lock = "still held" if e.get("lock_left") else "released"
        return f"demo: AWS now shows {groups}; lock {lock}. Stopping the emulator."

    @staticmethod
    def _plan(e: dict[str, Any]) -> str:
        return "\n".join(["dry run: the plan (nothing was changed)"]
                         + [f"  {line}" for line in e.get("lines", [])])

    @staticmethod
    def _version_decided(e: dict[str, Any]) -> str:
        before = f"{e.get('template')} {e.get('version_from')} (v{e.get('version_from_number')})"
        if e.get("image_id"):
            to = f"a new version from v{e.get('source_version')} with ImageId {e['image_id']}"
        else:
            to = f"v{e.get('version')}"
        return f"  version: {e['asg']} runs {before} → {to}"

    @staticmethod
    def _version_created(e: dict[str, Any]) -> str:
        how = "found (created before the resume)" if e.get("reused") else "created"
        return (f"  version: {e.get('template')} v{e['version']} {how}, a copy of "
                f"v{e.get('source_version')} with ImageId {e.get('image_id')}")

    @staticmethod
    def _version_set(e: dict[str, Any]) -> str:
        what = "back to" if e.get("reason") == "rollback" else "set to"
        return f"  version: {e['asg']} {what} {e.get('template')} v{e['version']}"

    @staticmethod
    def _processes_resumed(e: dict[str, Any]) -> str:
        return f"  processes: {' '.join(e['processes'])} resumed on {e['asg']} for this run"

    @staticmethod
    def _processes_suspended(e: dict[str, Any]) -> str:
        return f"  processes: {' '.join(e['processes'])} suspended again on {e['asg']}"

    @staticmethod
    def _wait_instance_lost(e: dict[str, Any]) -> str:
        return (f"  WARNING: {e['instance_id']} left {e['asg']} before it was ready "
                f"({e['last_state']}, then {e['state']}); waiting for its replacement")

    @staticmethod
    def _run_finished(e: dict[str, Any]) -> str:
        return "\n".join(summary_lines(e))


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def summary_lines(e: dict[str, Any]) -> list[str]:
    """The end-of-run summary a person reads (from the `run.finished` event's keys)."""
    outcome, code = e.get("outcome"), e.get("exit_code")
    verdict = e.get("description") or str(outcome)  # the final state's wording, from the spec
    where = f" in {e['failed_state']}" if e.get("failed_state") and code else ""
    lines = [f"abfsm: {e.get('env')} {verdict}{where} after {e.get('duration_s', 0):.1f} s "
             f"(exit {code})"]
    lines.append(f"  run       {e.get('run_id')}")
    path = e.get("path") or []
    if path:
        steps = " → ".join(f"{p['state']} {p['elapsed_s']:.1f}s" for p in path)
        lines.append(f"  path      {steps} → {e.get('final_state')}")
    if e.get("error"):
        lines.append(f"  error     {e['error']}")
    changed = set(e.get("changed") or [])  # what the states run declare changing
    if e.get("active"):
        if "asg:active" in changed and code == 0:
            state = "drained to 0"
        elif "asg:active" in changed:
            state = "being set to 0 (MinSize/DesiredCapacity 0 may already be set)"
        else:
            state = f"left as it was ({e.get('active_count')} desired)"
        lines.append(f"  old ASG   {e['active']}: {state}")
    if e.get("target"):
        lines.append(f"  new ASG   {e['target']}: target {e.get('target_count')} instance(s)")
    lines.append(f"  lock      {e.get('lock')}")
    for i, step in enumerate(e.get("next") or []):
        lines.append(("  next      " if i == 0 else "            ") + step)
    return lines
