"""structlog configuration: JSON lines for machines, a readable console for people.

Every event has a fixed snake_case name and fixed keys (see the README's log schema).
`--log-format auto` picks console on a terminal and JSON otherwise. On a terminal,
`wait.progress` events redraw one live status line instead of scrolling.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import IO, Any

SCHEMA_VERSION = 1

# Callables handed every event dict of the process (a copy, after run_id/env/level/ts are
# merged, before rendering): the notification sinks (abfsm/notify). See add_tap().
_taps: list[Callable[[dict[str, Any]], None]] = []


def configure(fmt: str = "auto", *, verbose: bool = False, stream: IO[str] | None = None,
              ticker: Ticker | None = None) -> str:
    """Configure structlog for one process; returns the effective format.

    `ticker` (tests inject a fake) redraws the live progress line every second between
    polls; it is used only for the console format on a terminal without --verbose.
    """
    stream = stream or sys.stdout
    tty = _isatty(stream)
    if fmt == "auto":
        fmt = "console" if tty else "json"
    renderer: Any = _json_renderer if fmt == "json" else ConsoleRenderer(verbose=verbose)
    live = tty and fmt == "console" and not verbose
    tick = (ticker or Ticker()) if live else None
    import structlog  # lazily: `abfsm graph` and the actions use this module's text helpers

    structlog.configure(
        processors=_processors(renderer),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if verbose else logging.INFO),
        logger_factory=lambda *_: Sink(stream, live=live, ticker=tick),
        cache_logger_on_first_use=False,
    )
    return fmt


def _processors(renderer: Any) -> list[Any]:
    """The chain every event goes through; the renderer is always last."""
    import structlog

    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.processors.format_exc_info,
        _tap,
        renderer,
    ]


def bind(**values: Any) -> None:
    """Bind keys (run_id, env) to every later event of this process."""
    import structlog

    structlog.contextvars.bind_contextvars(**values)


def add_tap(tap: Callable[[dict[str, Any]], None]) -> None:
    """Also hand every later event (a copy of its dict) to `tap`; it must not raise or block."""
    _taps.append(tap)


def remove_tap(tap: Callable[[dict[str, Any]], None]) -> None:
    if tap in _taps:
        _taps.remove(tap)


def _tap(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for tap in list(_taps):
        try:
            tap(dict(event))
        except Exception:  # noqa: BLE001 - a listener can never break logging
            pass
    return event


def json_line(event: dict[str, Any]) -> str:
    """An event as its `--log-format json` line (ts, level, event first), without a newline."""
    return _json_renderer(None, "", dict(event))


def reset() -> None:
    import structlog

    _taps.clear()
    for screen in list(_screens.values()):
        screen.stop_ticking()
    _screens.clear()
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def write_safely(stream: IO[str], text: str) -> bool:
    """Write and flush `text`; False (and nothing more is ever written there) if it is gone.

    Standard output or error can vanish under a running deployment (`| head`, a closed
    terminal, a full disk): the run must go on, so a failed write is never an error.
    """
    return _screen(stream).write(text)


def _json_renderer(_: Any, __: str, event: dict[str, Any]) -> str:
    ordered = {"ts": event.pop("ts", None), "level": event.pop("level", None),
               "event": event.pop("event", None)}
    ordered.update(event)
    return json.dumps(ordered, default=str, separators=(",", ":"))


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(getattr(stream, "isatty", lambda: False)())
    except (OSError, ValueError):  # closed already
        return False


class Ticker:
    """Calls a function every `interval` seconds on a daemon thread until cancelled.

    `now()` is the clock the ticks are measured with. Tests replace the whole object.
    """

    interval = 1.0

    def now(self) -> float:
        return time.monotonic()

    def start(self, tick: Callable[[], None]) -> Callable[[], None]:
        """Start ticking; returns the function that stops it."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.interval):
                tick()

        threading.Thread(target=loop, name="abfsm-live-line", daemon=True).start()
        return stop.set


class _Screen:
    """One output stream: whether a live line is on it, its ticker, and whether it is gone.

    Shared by every Sink writing to the stream (structlog builds a logger per call site).
    A write that fails (EPIPE, EIO, ENOSPC, a closed file) marks the stream dead: nothing is
    written to it again, and its file descriptor is pointed at /dev/null so that the
    interpreter's final flush cannot fail either.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.pending = False  # a live line is on screen, not yet ended by a newline
        self.dead = False
        self.lock = threading.RLock()
        self._stop: Callable[[], None] | None = None
        self._generation = 0  # which live line the ticker may redraw

    def write(self, text: str) -> bool:
        with self.lock:
            if self.dead:
                return False
            try:
                self.stream.write(text)
                self.stream.flush()
                return True
            except (OSError, ValueError):  # ValueError: I/O operation on a closed file
                self.dead = True
                self.stop_ticking()
                silence(self.stream)
                return False

    def line(self, text: str) -> None:
        """An ordinary line: ends a live line first and stops its ticker."""
        with self.lock:
            self.stop_ticking()
            if self.pending:
                self.pending = False
                text = "\n" + text
            self.write(text + "\n")

    def live(self, text: str, redraw: Callable[[float], str] | None,
             ticker: Ticker | None) -> None:
        """A live line: overwrites the previous live line; a ticker redraws it meanwhile."""
        with self.lock:
            self.stop_ticking()
            self.pending = True
            self.write(_one_row(text))
            if ticker is None or redraw is None or self.dead:
                return
            generation, drawn_at = self._generation, ticker.now()

            def tick() -> None:
                with self.lock:
                    if self._generation == generation and self.pending:
                        self.write(_one_row(redraw(ticker.now() - drawn_at)))

            self._stop = ticker.start(tick)

    def stop_ticking(self) -> None:
        with self.lock:
            self._generation += 1
            if self._stop is not None:
                self._stop()
                self._stop = None


_screens: dict[int, _Screen] = {}


def _screen(stream: IO[str]) -> _Screen:
    screen = _screens.get(id(stream))
    if screen is None or screen.stream is not stream:
        screen = _screens[id(stream)] = _Screen(stream)
    return screen


def _one_row(text: str) -> str:
    """Redraw in place: one terminal row only, since a wrapped line could not be redrawn."""
    width = shutil.get_terminal_size((120, 24)).columns - 1
    return "\r\x1b[K" + (text if len(text) <= width else text[:width - 1] + "…")


def silence(stream: IO[Any]) -> None:
    """Point a dead stream's file descriptor at /dev/null (what is still buffered goes there)."""
    try:
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass
    finally:
        os.close(devnull)


@atexit.register
def _stop_tickers() -> None:
    for screen in list(_screens.values()):
        screen.stop_ticking()


class Sink:
    """Writes rendered lines to a stream; a `live=True` line on a terminal redraws in place."""

    def __init__(self, stream: IO[str], *, live: bool, ticker: Ticker | None = None) -> None:
        self._screen = _screen(stream)
        self._live = live
        self._ticker = ticker

    def msg(self, text: str, live: bool = False,
            redraw: Callable[[float], str] | None = None) -> None:
        if live and self._live:
            self._screen.live(text, redraw, self._ticker)
        else:
            self._screen.line(text)

    debug = info = warning = warn = error = critical = exception = log = msg


class ConsoleRenderer:
    """One sentence per event, in the layout of the transition lines.

    Every event of abfsm.log_schema has its own `_<event_name>` method (a test checks it);
    `_generic`, the `name key=value` fallback, is only for an event nobody documented.
    """

    def __init__(self, *, verbose: bool) -> None:
        self._verbose = verbose

    def __call__(self, _: Any, __: str, event: dict[str, Any]) -> Any:
        name = event.get("event", "")
        if (name == "aws.call" and event.get("service") == "s3" and not self._verbose
                and event.get("action") == "PutObject" and "IfMatch" in (event.get("params") or {})):
            import structlog

            raise structlog.DropEvent  # run-record saves: JSON and --verbose show them
        fmt = self.method(str(name))
        text = fmt(event) if fmt else self._generic(event)
        if name == "wait.progress":
            return (text,), {"live": True, "redraw": lambda dt: self._wait_progress(
                {**event, "elapsed_s": event["elapsed_s"] + dt,
                 "remaining_s": max(0.0, event["remaining_s"] - dt)})}
        return text

    @classmethod
    def method(cls, name: str) -> Callable[[dict[str, Any]], str] | None:
        """The renderer of one event name, or None (then `_generic` renders it)."""
        return getattr(cls, "_" + name.replace(".", "_"), None)

    @staticmethod
    def _generic(event: dict[str, Any]) -> str:
        skip = {"event", "ts", "level", "run_id", "env"}
        rest = " ".join(f"{k}={_short(v)}" for k, v in event.items() if k not in skip)
        level = event.get("level", "info")
        prefix = "" if level == "info" else f"{level.upper()}: "
        return f"{prefix}{event.get('event')}" + (f"  {rest}" if rest else "")

    @staticmethod
    def _run_started(e: dict[str, Any]) -> str:
        s = e.get("settings") or {}
        flags = []
        for key in ("dry_run", "zero", "single_asg", "clean_up", "rollback_on_failure"):
            if s.get(key):
                flags.append("--" + key.replace("_", "-"))
        resumed = ""
        if e.get("from_state"):
            was = f" (was {e['previous_status']})" if e.get("previous_status") else ""
            resumed = f" · from {e['from_state']}{was}"
        return (f"abfsm {e.get('command', 'deploy')} {e.get('env')} · run {e.get('run_id')}"
                + resumed + (f" · {' '.join(flags)}" if flags else "")
                + f" · lock {e.get('lock')}")

    @staticmethod
    def _transition(e: dict[str, Any]) -> str:
        return (f"  {e['src']:<15} → {e['dst']:<15} ({trigger_words(e['trigger'])}, "
                f"{e['elapsed_s']:.2f} s)")

    @staticmethod
    def _wait_progress(e: dict[str, Any]) -> str:
        shown = not_ready_text(e.get("not_ready") or [], limit=2)  # one row: counts first
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
        lbs = ", ".join(e.get("load_balancers") or [])
        going = f"draining from {lbs}" if lbs else "terminating"
        tail = "; waiting until they are gone" if e.get("wait") else ""
        return (f"  drain: {e['asg']} set to MinSize 0 / desired 0; its {e.get('instances')} "
                f"instance(s) are {going}{tail}")

    @staticmethod
    def _drain_finished(e: dict[str, Any]) -> str:
        return (f"  drain: {e['asg']} is empty; its {e['instances']} instance(s) left the group "
                "and every load balancer")

    @staticmethod
    def _drain_nothing(e: dict[str, Any]) -> str:
        return f"  drain: nothing to drain{_because(e['reason'])}"

    @staticmethod
    def _wait_elb_skipped(e: dict[str, Any]) -> str:
        return f"  wait-elb: no load balancer to wait for{_because(_lb_source(e['reason']))}"

    @staticmethod
    def _asg_emptied(e: dict[str, Any]) -> str:
        return f"  empty: {e['asg']} has no instances left; it can be filled now"

    @staticmethod
    def _rollback_done(e: dict[str, Any]) -> str:
        kept = (f"{e['kept']} was not touched and still serves" if e.get("kept")
                else "there was no old ASG")
        return f"  rollback: {e['asg']} is back to MinSize 0 / desired 0; {kept}"

    @staticmethod
    def _state_failed(e: dict[str, Any]) -> str:
        error = str(e["error"])
        shown = error if error.startswith(f"{e['state']}:") else f"{e['state']}: {error}"
        return f"  ✗ {shown}  (→ {trigger_words(e['next'])}, exit {e['exit_code']})" + _traceback(e)

    @staticmethod
    def _run_crashed(e: dict[str, Any]) -> str:
        return f"  ✗ internal error: {e['error']}" + _traceback(e)

    @staticmethod
    def _inspect_decided(e: dict[str, Any]) -> str:
        if not e.get("target"):
            if e.get("trigger") == "zero":
                return (f"  inspect: --zero: {e.get('active')} ({e.get('active_count')} desired) "
                        "will be drained to 0")
            if e.get("trigger") == "nothing_to_do":
                return "  inspect: nothing to do: no ASG has instances to zero"
            return f"  inspect: {trigger_words(str(e.get('trigger')))}"
        steps = [str(s) for s in e.get("steps") or []]
        stepping = ("in one step" if len(steps) <= 1
                    else f"in {len(steps)} steps (desired {' → '.join(steps)})")
        text = (f"  inspect: {e.get('active') or 'no active ASG'} → {e['target']}, "
                f"{e.get('target_count')} instance(s) {stepping}; ")
        lbs = [_lb_name(n) for n in (e.get("load_balancers") or []) + (e.get("target_groups") or [])]
        source = lb_source_text(str(e.get("lb_source") or ""), str(e["target"]))
        if lbs and source.startswith("not waited for"):  # the spec has no state that waits
            text += f"{', '.join(lbs)} {source}"
        elif lbs:
            text += f"waits for {', '.join(lbs)}{_because(source)}"
        else:
            text += f"no load balancer to wait for{_because(source)}"
        if e.get("empty_first"):
            text += f"; empties {e['empty_first']} first"
        if e.get("serving"):
            text += "; healthy in the load balancers now: " + ", ".join(
                f"{name} {count}" for name, count in e["serving"].items())
        return text

    @staticmethod
    def _inspect_raise_max(e: dict[str, Any]) -> str:
        return (f"  ⚠ inspect: {e['asg']} has MaxSize {e['max_size']}, fewer than the "
                f"{e['raise_to']} instances wanted; the scale call raises MaxSize to {e['raise_to']}")

    @staticmethod
    def _inspect_min_size(e: dict[str, Any]) -> str:
        return (f"  note: {e['asg']} has MinSize {e['min_size']}; emptying it sets MinSize 0, "
                f"and each scale step sets MinSize to its capacity up to {e['restored_to']} "
                f"(first step {e['first_step']})")

    @staticmethod
    def _aws_call(e: dict[str, Any]) -> str:
        return _aws_line(e)

    @staticmethod
    def _aws_read(e: dict[str, Any]) -> str:
        return _aws_line(e) + " (read)"

    @staticmethod
    def _notify_failed(e: dict[str, Any]) -> str:
        return (f"  notify: {e['sink']} {e['target']} failed: {e['reason']} "
                "(the run goes on; no more reports of this sink)")

    @staticmethod
    def _demo_ready(e: dict[str, Any]) -> str:
        made = e.get("created") or {}
        groups = ", ".join(f"{name} ({c['desired']} instance(s))"
                           for name, c in (e.get("before") or {}).items())
        world = e.get("world")
        timing = (f"\ndemo: AWS time runs {world['scale']:g}x faster here: instances boot in "
                  f"{world['boot_s']:g} s, pass the ELB's health check after {world['health_check_s']:g} s "
                  f"and drain for {world['draining_s']:g} s" if world else
                  "\ndemo: --fast: moto's instant world (instances InService and healthy at once)")
        return (f"demo: AWS emulator (moto) at {e.get('endpoint')}; created classic ELB "
                f"{made.get('elb')}, lock bucket {made.get('bucket')}, ASGs {groups}" + timing)

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

    # Gates (bake, alarms, approval, hook, http_check).
    @staticmethod
    def _alarms_checked(e: dict[str, Any]) -> str:
        states = e.get("states") or {}
        shown = ", ".join(f"{name} {state}" for name, state in sorted(states.items()))
        return f"  alarms: {len(states)} watched, none in ALARM ({shown})"

    @staticmethod
    def _alarm_fired(e: dict[str, Any]) -> str:
        # the state.failed line that follows quotes the StateReason
        since = f" since {e['since']}" if e.get("since") else ""
        return f"  {e['state']}: CloudWatch alarm {e['alarm']} is in ALARM{since}"

    @staticmethod
    def _bake_skipped(e: dict[str, Any]) -> str:
        return f"  {e['state']}: skipped{_because(e['reason'])}"

    @staticmethod
    def _bake_started(e: dict[str, Any]) -> str:
        lbs = ", ".join(e.get("load_balancers") or []) or "no load balancer"
        return (f"  {e['state']}: {len(e.get('instance_ids') or [])} instance(s) of {e['asg']} "
                f"must keep serving ({lbs}) for {e['seconds']:g} s")

    @staticmethod
    def _bake_finished(e: dict[str, Any]) -> str:
        return (f"  {e['state']}: {e['instances']} instance(s) of {e['asg']} kept serving for "
                f"{e['seconds']:g} s")

    @staticmethod
    def _approval_pending(e: dict[str, Any]) -> str:
        if e.get("pause"):
            return (f"  {e['state']}: paused for approval; approve with: {e['command']}  "
                    f"(or: {e['reject']} --reason TEXT), then: abfsm resume")
        return (f"  {e['state']}: waiting for approval: {e['command']}  "
                f"(or: {e['reject']} --reason TEXT; up to {e.get('timeout_s') or 0:g} s)")

    @staticmethod
    def _approval_decided(e: dict[str, Any]) -> str:
        reason = f": {e['reason']}" if e.get("reason") else ""
        return f"  {e['state']}: {e['decision']} by {e['by']} at {e['at']}{reason}"

    @staticmethod
    def _hook_started(e: dict[str, Any]) -> str:
        return (f"  {e['state']}: running {' '.join(e['command'])} (in {e['cwd']}, "
                f"up to {e['timeout_s']:g} s)")

    @staticmethod
    def _hook_output(e: dict[str, Any]) -> str:
        return f"    {e['state']} │ {e['line']}"

    @staticmethod
    def _hook_passed(e: dict[str, Any]) -> str:
        return f"  {e['state']}: {' '.join(e['command'])} exited 0 after {e['duration_s']:.1f} s"

    @staticmethod
    def _hook_failed(e: dict[str, Any]) -> str:
        return (f"  ✗ {e['state']}: {' '.join(e['command'])} exited {e['exit_code']} after "
                f"{e['duration_s']:.1f} s (→ failed)")

    @staticmethod
    def _http_check_started(e: dict[str, Any]) -> str:
        urls = e.get("urls") or []
        more = f" (+{len(urls) - 1} more)" if len(urls) > 1 else ""
        return (f"  {e['state']}: GET {urls[0] if urls else '?'}{more} until HTTP "
                f"{e['expect_status']} {e['successes']} time(s) in a row")

    @staticmethod
    def _http_check_passed(e: dict[str, Any]) -> str:
        return (f"  {e['state']}: {len(e.get('urls') or [])} target(s) answered as expected "
                f"{e['successes']} time(s) in a row")

    @staticmethod
    def _http_check_failed(e: dict[str, Any]) -> str:
        lines = [f"  ✗ {e['state']}: no pass within {e['timeout_s']:g} s (→ failed):"]
        for t in e.get("targets") or []:
            lines.append(f"      {t['target']}: {t['answered']} at {t['at'] or '-'}")
        return "\n".join(lines)

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


def not_ready_text(not_ready: list[dict[str, Any]], limit: int = 8) -> str:
    """The instances not ready, grouped: `qa-public: 4 OutOfService (Instance: i-1, i-2, ...)`.

    One group per load balancer, state and reason, in the order first seen; at most `limit`
    ids per group, then `+N more`. An entry that is not an instance (`{"id": "2 more",
    "state": "not launched yet"}`) is shown as it is.
    """
    groups: dict[tuple[str, str, str], list[str]] = {}
    for item in not_ready:
        iid, state = str(item.get("id", "?")), str(item.get("state", "?"))
        if " " in iid:  # a count, not an instance id
            groups.setdefault(("", f"{iid} {state}", ""), [])
            continue
        key = (str(item.get("lb") or ""), state, str(item.get("reason") or ""))
        groups.setdefault(key, []).append(iid)
    parts = []
    for (lb, state, reason), ids in groups.items():
        if not ids:
            parts.append(state)
            continue
        shown = ", ".join(ids[:limit]) + (f", +{len(ids) - limit} more" if len(ids) > limit else "")
        parts.append(f"{lb + ': ' if lb else ''}{len(ids)} {state} "
                     f"({reason + ': ' if reason else ''}{shown})")
    return "; ".join(parts)


def _aws_line(e: dict[str, Any]) -> str:
    """`    aws SERVICE Action Param=value ...`: the call as the API (and CloudTrail) names it."""
    params = [f"{k}={_short(v)}" for k, v in (e.get("params") or {}).items()]
    return " ".join([f"    aws {e['service']} {e['action']}", *params])


def _because(reason: str) -> str:
    """A reason after a sentence: ` (reason)`, or `, reason` when it has parentheses of its own
    (never `(bake time 0 (--bake-time))`); "" for no reason."""
    if not reason:
        return ""
    return f", {reason}" if "(" in reason else f" ({reason})"


def trigger_words(trigger: str) -> str:
    """A trigger as a person reads it: `instances_ready` -> `instances ready`."""
    return trigger.replace("_", " ")


def lb_source_text(source: str, target: str) -> str:
    """inspect's `lb_source` as words: where the load balancers waited for come from."""
    return {"flags": "as given", "discovered": f"attached to {target}",
            "none attached": f"none attached to {target}"}.get(source, _lb_source(source))


def _lb_source(source: str) -> str:
    """inspect's `lb_source` as a reason: `skipped (--no-elb-check)` -> `--no-elb-check`."""
    if source.startswith("skipped (") and source.endswith(")"):
        return source[len("skipped ("):-1]
    return source


def _lb_name(name: str) -> str:
    """A target group ARN as `targetgroup/NAME`; a classic ELB name as it is."""
    if ":targetgroup/" in name:
        return "targetgroup/" + name.split(":targetgroup/", 1)[1].split("/", 1)[0]
    return name


def _traceback(e: dict[str, Any]) -> str:
    """An unexpected error's traceback, indented under its line (empty when there is none)."""
    trace = str(e.get("exception") or "")
    if not trace:
        return ""
    return "\n".join(["", "  traceback of the unexpected error:"]
                     + [f"    {line}" for line in trace.rstrip().splitlines()])


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
