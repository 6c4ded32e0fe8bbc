"""An execution's history as abfsm's log events: what `abfsm sfn watch` and `sfn status` show.

The compiled machine names each spec state exactly as states.yaml does and its inner states
`STATE.part` (abfsm/sfn/compiler.py), so a state entered outside any Map iteration whose name
is a spec state's (in the packaged spec: a name without a dot) is that spec state: entering
one is a move of the machine, and the spec's transitions (source, dest) name its trigger.
Everything else (inner states, the Map processors' own states, entry states such as
`abfsm.input`) is read only for what it says (the lock taken, the mutating calls, the
failure) or ignored.

`HistoryMapper.feed(events)` turns history events (abfsm.aws.stepfunctions.HistoryEvent, in
id order, as many at a time as a poll brings) into the event dicts of abfsm/log_schema.py that
a local `abfsm deploy` logs for the same run: `run.started`, `lock.acquired`, `aws.call` (the
mutating calls), `inspect.decided`, `scale.step`, `drain.started`, the skipped states'
`wait_elb.skipped` / `bake.skipped` / `drain.nothing`, `rollback.done`, `state.failed` then
the `transition` it caused, and `run.finished` with the exit code `abfsm deploy` would have.
Each dict holds `event`, `level` and the event's keys; `run_id` and `env` are the mapper's
(bound by whoever logs them), `ts` is the logger's. No I/O here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from abfsm import __version__
from abfsm.aws.stepfunctions import HistoryEvent
from abfsm.clock import utc_iso
from abfsm.context import Settings
from abfsm.runner import NextStep, RenderNext, plain_next
from abfsm.sfn.compiler import ERROR_INPUT, ERROR_REFUSED, ERRORS
from abfsm.spec import Spec

FAILURE_TRIGGERS = ("refuse", "rollback", "fail")  # what the runner fires when an action raises
RELEASE_FAILED = "abfsm.release-failed"  # the compiler's Fail state for a lock write that failed
ENDINGS = {"ExecutionSucceeded": "SUCCEEDED", "ExecutionFailed": "FAILED",
           "ExecutionTimedOut": "TIMED_OUT", "ExecutionAborted": "ABORTED"}
_NESTED_START = ("MapIterationStarted", "ParallelStateStarted")
_NESTED_END = ("MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted",
               "ParallelStateSucceeded", "ParallelStateFailed", "ParallelStateAborted")
_BOTO_SERVICE = {"elasticloadbalancing": "elb", "elasticloadbalancingv2": "elbv2"}
_READS = ("describe", "get", "list")


def exit_code(status: str, error: str | None) -> int:
    """The exit code of `abfsm deploy` for an execution that ended so (engine.outcome()):
    the compiler's error names (abfsm.Refused 3, abfsm.InvalidInput 2, ...), else 1."""
    if status == "SUCCEEDED":
        return 0
    return ERRORS.get(error or "", 1) if status == "FAILED" else 1


@dataclass
class Move:
    src: str
    dst: str
    trigger: str
    at: datetime
    elapsed_s: float


@dataclass
class HistoryMapper:
    """Feed it an execution's history, in order; it returns the log events of each part.

    `render_next` writes the next steps of run.finished as command lines; `connection`
    (region, endpoint_url, profile) is how the follower reaches AWS, which those commands
    must carry.
    """

    spec: Spec
    execution_arn: str = ""
    render_next: RenderNext = plain_next
    connection: Mapping[str, Any] = field(default_factory=dict)
    run_id: str = ""
    env: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    status: str = "RUNNING"  # the execution's, as far as the history has told
    state: str | None = None  # the spec state the execution is in (or ended in)
    moves: list[Move] = field(default_factory=list)
    error: str | None = None  # the execution's error name (abfsm.Refused, ...), once ended
    cause: str | None = None
    failed_state: str | None = None
    finished: dict[str, Any] | None = None  # the run.finished event, once ended
    _started: datetime | None = None
    _entered: datetime | None = None
    _depth: int = 0
    _doc: dict[str, Any] = field(default_factory=dict)  # the document at the last spec state
    _last_error: Any = None
    _lock_put: bool = False
    _lock_taken: bool = False
    _release_failed: bool = False
    _changed: set[str] = field(default_factory=set)
    _last_id: int = 0
    _calls: int = 0  # tasks the current spec state has scheduled (but the record's saves)
    _scaled: int = 0  # scale steps so far
    _steps: int = 0  # steps inspect decided
    _lb_source: str = ""

    @property
    def ended(self) -> bool:
        return self.finished is not None

    @property
    def lock_where(self) -> str:
        bucket = self.settings.get("lock_bucket_name") or "?"
        return f"s3://{bucket}/{self.env}.lock"

    def feed(self, events: Iterable[HistoryEvent]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in events:
            if event.id <= self._last_id:
                continue  # seen already (a poll that overlaps the last one)
            self._last_id = event.id
            out += self._one(event)
        return out

    # -- one history event ------------------------------------------------------------------
    def _one(self, e: HistoryEvent) -> list[dict[str, Any]]:
        if e.type == "ExecutionStarted":
            return self._execution_started(e)
        if e.type in ENDINGS:
            return self._execution_ended(e)
        if e.type in _NESTED_START:
            self._depth += 1
        elif e.type in _NESTED_END:
            self._depth = max(0, self._depth - 1)
        if self._depth:
            return []  # inside a Map iteration: its states are not the spec's
        if e.type.endswith("StateEntered") and e.name:
            return self._entered_state(e)
        if e.type == "TaskScheduled":
            return self._task_scheduled(e)
        if e.type == "TaskSucceeded" and self._lock_put:
            self._lock_put, self._lock_taken = False, True
            return [_event("lock.acquired", lock=self.lock_where)]
        if e.type in ("TaskFailed", "TaskTimedOut"):
            self._lock_put = False
        return []

    def _execution_started(self, e: HistoryEvent) -> list[dict[str, Any]]:
        doc = _json(e.data)
        self._started = self._entered = e.timestamp
        self.settings = dict(doc.get("settings") or {})
        self.run_id = str(doc.get("run_id") or self.execution_arn.rsplit(":", 1)[-1])
        self.env = str(self.settings.get("environment") or "?")
        resume = doc.get("resume") if isinstance(doc.get("resume"), Mapping) else None
        extra = {"from_state": str(resume.get("state"))} if resume and resume.get("state") else {}
        return [_event("run.started", command="sfn start --resume" if resume else "sfn start",
                       version=__version__, spec=self.spec.path, spec_version=self.spec.version,
                       lock=self.lock_where, settings=self.settings,
                       started_by={"user": "stepfunctions", "host": "states.amazonaws.com",
                                   "execution_arn": self.execution_arn}, **extra)]

    def _entered_state(self, e: HistoryEvent) -> list[dict[str, Any]]:
        name = e.name or ""
        if name == RELEASE_FAILED:
            self._release_failed = True
            return []
        if name not in self.spec.states:
            return []  # an inner state (STATE.part) or one of the compiler's own (abfsm.*)
        doc = _json(e.data)
        if (doc.get("lock") or {}).get("etag"):  # held (taken here, or by the run resumed)
            self._lock_taken = True
        if self.state is None:  # the first spec state: where the run starts, no move yet
            self.state, self._entered, self._doc = name, e.timestamp, doc
            return []
        src = self.state
        error = doc.get("error")
        failing = error is not None and error != self._last_error
        trigger = self._trigger(src, name, failing)
        if trigger is None:
            return []  # re-entering its own first state: a loop inside the state
        out: list[dict[str, Any]] = []
        action = self.spec.states[src].action
        if trigger in FAILURE_TRIGGERS:
            out.append(self._state_failed(src, trigger, error))
        elif action == "inspect":
            out.append(self._inspect_decided(doc, trigger))
        else:
            out += self._left(src, action, doc)
        elapsed = round((e.timestamp - (self._entered or e.timestamp)).total_seconds(), 3)
        out.append(_event("transition", src=src, dst=name, trigger=trigger, elapsed_s=elapsed))
        self.moves.append(Move(src, name, trigger, e.timestamp, elapsed))
        self.state, self._entered, self._doc, self._last_error = name, e.timestamp, doc, error
        self._calls = 0
        return out

    def _left(self, state: str, action: str | None, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        """What a local run logs of a state that made no call (skipped) or rolled back."""
        plan = doc.get("plan") or {}
        if action == "rollback":
            return [_event("rollback.done", asg=str(plan.get("target") or "?"),
                           kept=plan.get("active"))]
        if self._calls:
            return []
        if action == "wait_elb":
            return [_event("wait_elb.skipped", reason=self._lb_source or "no load balancer")]
        if action == "bake":
            return [_event("bake.skipped", state=state, reason="bake time 0 (--bake-time)")]
        if action == "drain":
            return [_event("drain.nothing", reason="no old ASG to drain")]
        return []

    def _trigger(self, src: str, dst: str, failing: bool) -> str | None:
        """The spec's trigger of the move src -> dst: the failure trigger when the document
        carries a new error, else the other one; "unknown" when the spec declares none (the
        execution runs another spec's machine), None for re-entering src itself."""
        triggers = [t.trigger for t in self.spec.transitions if t.source == src and t.dest == dst]
        if not triggers:
            return None if src == dst else "unknown"
        preferred = [t for t in triggers if (t in FAILURE_TRIGGERS) == failing]
        return (preferred or triggers)[0]

    def _state_failed(self, state: str, trigger: str, error: Any) -> dict[str, Any]:
        err = error if isinstance(error, Mapping) else {}
        name = str(err.get("Error") or "States.ALL")
        cause = str(err.get("Cause") or name)
        self.failed_state = state
        return _event("state.failed", state=state, error=cause,
                      exit_code=3 if name == ERROR_REFUSED else 1, next=trigger,
                      error_type=name.removeprefix("abfsm."))

    def _inspect_decided(self, doc: Mapping[str, Any], trigger: str) -> dict[str, Any]:
        plan, count = doc.get("plan") or {}, doc.get("count") or {}
        n = int(count.get("n") or 0) if plan.get("target") else 0
        step = int(count.get("step") or n or 1)
        steps = [min(step * k, n) for k in range(1, math.ceil(n / step) + 1)] if n else []
        lbs, tgs = list(plan.get("load_balancers") or []), list(plan.get("target_groups") or [])
        if self.settings.get("no_elb_check"):
            source = "skipped (--no-elb-check)"
        else:
            source = "discovered" if lbs or tgs else "none attached"
        self._lb_source, self._steps = source, len(steps)
        return _event("inspect.decided", trigger=trigger, mode=plan.get("mode"),
                      active=plan.get("active"), target=plan.get("target"),
                      active_count=int(plan.get("active_count") or 0), target_count=n,
                      steps=steps, empty_first=plan.get("empty_first"), load_balancers=lbs,
                      target_groups=tgs, lb_source=source, serving=None)

    def _task_scheduled(self, e: HistoryEvent) -> list[dict[str, Any]]:
        _, service, api = (e.resource or "::").rsplit(":", 2)
        params = _json(e.data)
        if service == "s3" and api == "putObject" and params.get("IfNoneMatch") == "*":
            self._lock_put = not self._lock_taken
        if not (service == "s3" and "IfMatch" in params):  # the record's own saves do not count
            self._calls += 1
        if api.startswith(_READS):
            return []
        shown = {k: v.strip('"') if k == "IfMatch" and isinstance(v, str) else v
                 for k, v in params.items() if k not in ("Body", "ContentType")}
        out = [_event("aws.call", service=_BOTO_SERVICE.get(service, service),
                      action=api[:1].upper() + api[1:], params=shown)]
        if service == "autoscaling" and api == "updateAutoScalingGroup":
            out += self._asg_updated(params)
        return out

    def _asg_updated(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A scale step or the drain, as a local run logs them."""
        plan = self._doc.get("plan") or {}
        group = params.get("AutoScalingGroupName")
        self._changed |= {f"asg:{role}" for role in ("active", "target")
                          if group and plan.get(role) == group}
        action = self.spec.states[self.state].action if self.state else None
        desired = params.get("DesiredCapacity")
        if action == "scale_step" and isinstance(desired, int):
            self._scaled += 1
            return [_event("scale.step", asg=str(group), desired=desired, step=self._scaled,
                           steps=max(self._steps, self._scaled))]
        if action == "drain" and group == plan.get("active"):
            return [_event("drain.started", asg=str(group), status="draining",
                           instances=int(plan.get("active_count") or 0), instance_ids=[],
                           load_balancers=[], deregistration_delays={}, wait=False)]
        return []

    def _execution_ended(self, e: HistoryEvent) -> list[dict[str, Any]]:
        self.status = ENDINGS[e.type]
        self.error, self.cause = e.error, e.cause
        code = exit_code(self.status, e.error)
        final = self.state if self.state and self.spec.states[self.state].final else None
        if final is not None:
            st = self.spec.states[final]
            outcome, description = final, st.description or final
            keeps = st.keeps_lock
        elif self.state is None and e.error in (ERROR_INPUT, ERROR_REFUSED):
            # refused in the machine's entry (its input, or a resume it cannot take over)
            outcome, keeps = ("invalid-input" if e.error == ERROR_INPUT else "refused"), False
            description = ("refused its input" if e.error == ERROR_INPUT
                           else "was refused") + " (nothing changed)"
            self.state = "abfsm.input" if e.error == ERROR_INPUT else "abfsm.resume"
        else:
            outcome = self.status.lower().replace("_", "-")
            description = {"ABORTED": "execution ABORTED (stopped in Step Functions)"}.get(
                self.status, f"execution {self.status}")
            keeps = True  # no final state ran: the lock stays where it was
        if self._release_failed:
            description += ", but its lock could not be released"
            lock = f"could not be released: still at {self.lock_where}"
        elif not self._lock_taken:
            lock = "not taken"
        elif final is None:
            lock = f"may still be held: {self.lock_where}"
        else:
            lock = "held by this run: " + self.lock_where if keeps else "released"
        holds = self._lock_taken and (keeps or self._release_failed)
        if code and self.failed_state is None and self.state in self.spec.states and final is None:
            self.failed_state = self.state
        error = None
        if self.status != "SUCCEEDED":
            why = e.cause or e.error
            error = why or self.status
            if final is None and outcome not in ("invalid-input", "refused"):
                error = f"execution {self.status}" + (f": {why}" if why else "")
        plan, count = self._doc.get("plan") or {}, self._doc.get("count") or {}
        duration = (e.timestamp - (self._started or e.timestamp)).total_seconds()
        self.finished = _event(
            "run.finished", outcome=outcome, description=description, exit_code=code,
            duration_s=round(duration, 3),
            path=[{"state": m.src, "elapsed_s": m.elapsed_s} for m in self.moves],
            final_state=self.state or "?", failed_state=self.failed_state if code else None,
            error=error, active=plan.get("active"), target=plan.get("target"),
            active_count=int(plan.get("active_count") or 0),
            target_count=int(count.get("n") or 0) if plan.get("target") else 0,
            lock=lock, next=self._next(holds, final is None or self.spec.states[final].resumable),
            dry_run=False,
            changed=sorted(self._changed))
        return [self.finished]

    def _next(self, holds: bool, resumable: bool) -> list[str]:
        if not self.settings.get("environment"):  # not an abfsm input: no command to offer
            return []
        settings = Settings.from_dict({**self.settings, **{k: v for k, v in self.connection.items()
                                                         if v is not None}})
        run_id = {"run_id": self.run_id}
        if holds:
            steps = [NextStep("status", "inspect it"),
                     NextStep("unlock", "or give up and free the environment", run_id)]
            if resumable:  # a new execution carries the run on: sfn start --resume
                machine = (self.execution_arn.rsplit(":", 1)[0]
                           .replace(":execution:", ":stateMachine:"))
                steps.insert(0, NextStep("sfn start", "fix the cause, then", {
                    "resume": True, "state_machine_arn": machine, "wait": True},
                    note=f"re-enters {self.failed_state or self.state}"))
        elif not self._lock_taken and self.error == ERROR_REFUSED:  # the lock was held
            steps = [NextStep("status", "see who holds it")]
        else:
            steps = []
        return [self.render_next(step, settings) for step in steps]

    # -- what `sfn status` shows ------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """Where the execution is: its status, spec state, the path so far, error/cause."""
        return {"execution_arn": self.execution_arn, "run_id": self.run_id,
                "environment": self.env, "status": self.status, "state": self.state,
                "failed_state": self.failed_state, "error": self.error, "cause": self.cause,
                "exit_code": exit_code(self.status, self.error) if self.ended else None,
                "lock": self._lock_now(),
                "started_at": utc_iso(self._started) if self._started else None,
                "path": [{"src": m.src, "dst": m.dst, "trigger": m.trigger,
                          "at": utc_iso(m.at), "elapsed_s": m.elapsed_s}
                         for m in self.moves]}


    def _lock_now(self) -> str:
        if self.finished is not None:
            return str(self.finished["lock"])
        return "held by this run: " + self.lock_where if self._lock_taken else "not taken (yet)"


def map_history(events: Iterable[HistoryEvent], spec: Spec, **kwargs: Any) -> list[dict[str, Any]]:
    """A whole history's log events (see HistoryMapper)."""
    return HistoryMapper(spec, **kwargs).feed(events)


def _event(name: str, **keys: Any) -> dict[str, Any]:
    from abfsm.log_schema import EVENTS

    return {"event": name, "level": EVENTS[name]["level"], **keys}


def _json(text: str | None) -> dict[str, Any]:
    """A state's input/output document; {} when absent, truncated or not an object."""
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
