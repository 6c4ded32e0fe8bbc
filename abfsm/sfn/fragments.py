"""Each built-in action's form in Amazon States Language (JSONPath, aws-sdk integrations only).

A fragment is a function of a `Ctx` (the spec state's name, its params and where each of
its outcomes leads) returning the ASL states that make it up: the first is named after the
spec state, the others `STATE.part`. Errors go to `STATE.error` (built by the compiler,
routed to `rollback` or `fail` as the spec and the execution input say); `ctx.to(trigger)`
is the state an outcome leads to. An action without a fragment has no ASL form and the
compiler refuses a spec that uses it.

The execution's document: `$.settings` (the deploy flags, Settings.to_dict()), `$.run_id`,
`$.started_at`, `$.limits` (`interval` and `polls`: the waits' Wait seconds and poll count,
computed by `sfn start` from --update-timeout and --health-check-timeout; `bake`: --bake-time
in whole seconds, given by `sfn start` only), then what the states add: `$.lock` (the lock's
current ETag), `$.plan` (what inspect decided: context.Plan's fields, the load balancers to
wait for included), `$.count` (the target count `n`, the `step` and this step's `desired`),
`$.procs` (for the ASG to fill, `target`, and the one to drain, `old`: the suspended
processes to resume for the run with --resume-processes, as `names` and their count `n`),
`$.move` (the last transition), `$.hist` (the history: `list`, and `text`, the same entries
as JSON each followed by a comma, which is how an entry is appended without JSONata),
`$.record` (the run record last built), `$.error`, and the scratch of the gates: `$.named`,
`$.watch` (alarms read this poll), `$.bake` (seconds, elapsed). The compiler builds the entries of the spec states
(abfsm/sfn/compiler.py); `record()` and `save()` are what they and the waits' heartbeats use.

What this preview does not compile yet is refused by `sfn start` before any AWS call
(abfsm/sfn/engine.py UNSUPPORTED) rather than being approximated here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from abfsm.actions.approval import APPROVED, KIND, PENDING, REJECTED, REJECTED_ERROR, TOKEN, what

State = dict[str, Any]
States = dict[str, State]

# The error names AWS gives throttled aws-sdk calls: ServiceName.CodeException, the service
# name in PascalCase and the error code (Throttling, RequestLimitExceeded, SlowDown) with an
# Exception suffix. Plain moto names every unmodelled ClientError `service.serviceException`;
# the emulator corrects that (abfsm/emulator/fixes.py, correction 8) and the tests throttle
# calls on purpose (tests/aws/test_sfn_execution.py).
THROTTLING = {
    "autoscaling": ["AutoScaling.ThrottlingException", "AutoScaling.RequestLimitExceededException"],
    "elasticloadbalancing": ["ElasticLoadBalancing.ThrottlingException"],
    "elasticloadbalancingv2": ["ElasticLoadBalancingV2.ThrottlingException"],
    "s3": ["S3.SlowDownException", "S3.ThrottlingException"],
    "cloudwatch": ["CloudWatch.ThrottlingException", "CloudWatch.RequestLimitExceededException"],
}
# Each aws-sdk task's throttling Retry: up to 6 retries after 2, 4, 8, 16, 32 and 64 s (126 s
# in all); a seventh throttled attempt fails the task (its Catch: the state's error route).
# Module constants so that tests can compile a machine with smaller ones (moto really sleeps
# Retry intervals); the golden file keeps these.
RETRY_INTERVAL_S = 2
RETRY_MAX_ATTEMPTS = 6
RETRY_BACKOFF_RATE = 2.0


@dataclass(frozen=True)
class Ctx:
    state: str
    params: Mapping[str, Any]
    routes: Mapping[str, str]  # outcome -> the ASL state it leads to
    timeout: float | str | None = None  # the spec state's `timeout:` (seconds or a setting)
    dests: Mapping[str, str] = field(default_factory=dict)  # outcome -> the spec state it leads to

    def name(self, part: str = "") -> str:
        return f"{self.state}.{part}" if part else self.state

    def to(self, trigger: str) -> str:
        return self.routes[trigger]

    @property
    def on_error(self) -> str:
        return self.name("error")

    @property
    def lock_lost(self) -> str:
        """Where a save whose IfMatch failed goes (built by the compiler): the run stops."""
        return self.name("lock-lost")


class NoAslForm(Exception):
    """A state the compiler cannot turn into ASL (the message says why)."""


def task(ctx: Ctx, service: str, api: str, parameters: Mapping[str, Any], next_: str, *,
         result_path: str | None = None, selector: Mapping[str, Any] | None = None,
         catch: str | None = None) -> State:
    """One aws-sdk call: throttling retried, everything else caught into `$.error`."""
    state: State = {
        "Type": "Task", "Resource": f"arn:aws:states:::aws-sdk:{service}:{api}",
        "Parameters": dict(parameters),
    }
    if selector is not None:
        state["ResultSelector"] = dict(selector)
    state["ResultPath"] = result_path
    state["Retry"] = [{"ErrorEquals": THROTTLING[service], "IntervalSeconds": RETRY_INTERVAL_S,
                       "MaxAttempts": RETRY_MAX_ATTEMPTS, "BackoffRate": RETRY_BACKOFF_RATE}]
    state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                       "Next": catch or ctx.on_error}]
    state["Next"] = next_
    return state


def lock_key() -> str:
    return "States.Format('{}.lock', $.settings.environment)"


# The time a state was entered, to the second, as records hold it (clock.utc_iso). AWS gives
# `2026-12-01T10:15:00.123Z`, moto `2026-12-01T10:15:00.123456+00:00`: cut at . + or Z.
NOW = ("States.Format('{}Z', States.ArrayGetItem(States.StringSplit($$.State.EnteredTime, "
       "'.+Z'), 0))")


def record(state: str, status: str, *, error: bool = False, exit_code: int | None = None) -> State:
    """Parameters of a Pass state building the run record (abfsm/record.py's schema).

    `state` is a state's name, or a path to one (`$.resume.from`). The heartbeat is the time
    the building state was entered; the history is `$.hist.list`; the context is the plan
    with the count at the state's entry (`$.hist.ctx`). `error`: the record of a failure
    (last_error, and failed_state: the source of the move into it); `exit_code`: of a
    final state (finished_at set too).
    """
    doc: State = {
        "kind": "abfsm.run", "schema": 1, "spec_version": 1, "engine": "stepfunctions",
        "run_id.$": "$.run_id", "environment.$": "$.settings.environment",
        ("state.$" if state.startswith("$.") else "state"): state, "status": status,
        "started_at.$": "$.started_at", "heartbeat.$": NOW, "settings.$": "$.settings",
        "context.$": "States.JsonMerge($.plan, $.hist.ctx, false)",
        "history.$": "$.hist.list",
        "execution_arn.$": "$$.Execution.Id",
        "started_by": {"user": "stepfunctions", "host": "states.amazonaws.com"},
    }
    if error:
        doc["last_error.$"] = "$.error.Cause"
        doc["failed_state.$"] = "$.move.src"
    if exit_code is not None:
        doc["exit_code"] = exit_code
        doc["finished_at.$"] = NOW
    return doc


def save(ctx: Ctx, next_: str, *, catch: str | None = None, etag: str = "$.lock.etag") -> State:
    """PutObject of `$.record` to ENV.lock with IfMatch on the ETag at `etag`; the new ETag
    goes to `$.lock`. A failed condition (the lock removed or replaced) goes to `catch`, by
    default `STATE.lock-lost`: the run stops."""
    return task(ctx, "s3", "putObject", {
        "Bucket.$": "$.settings.lock_bucket_name", "Key.$": lock_key(),
        "Body.$": "States.JsonToString($.record)", "IfMatch.$": etag,
        "ContentType": "application/json"}, next_,
        selector={"etag.$": "$.ETag"}, result_path="$.lock", catch=catch or ctx.lock_lost)


def _pass(next_: str, parameters: Mapping[str, Any] | None = None,
          result_path: str | None = None) -> State:
    state: State = {"Type": "Pass"}
    if parameters is not None:
        state["Parameters"] = dict(parameters)
        state["ResultPath"] = result_path
    state["Next"] = next_
    return state


def _refuse(cause: str, next_: str) -> State:
    """A Pass putting an abfsm.Refused error (cause: an intrinsic or plain text) in $.error."""
    key = "Cause.$" if cause.startswith("States.") else "Cause"
    return _pass(next_, {"Error": "abfsm.Refused", key: cause}, "$.error")


def _describe(ctx: Ctx, names: str, next_: str, result_path: str) -> State:
    return task(ctx, "autoscaling", "describeAutoScalingGroups",
                {"AutoScalingGroupNames.$": names}, next_,
                selector={"groups.$": "$.AutoScalingGroups"}, result_path=result_path)


def _poll_loop(ctx: Ctx, first: str, what: str) -> States:
    """`STATE.count` (poll +1), `STATE.timeout?`, `STATE.sleep` and `STATE.beat` /
    `STATE.beat-save`: the wait's tail.

    A poll that did not see it done goes to `STATE.count`; after `$.limits.polls` polls the
    state fails with abfsm.WaitTimeout naming what it waited for. After each sleep the run
    record is saved with a fresh heartbeat (one PutObject per poll, as the local engine
    does), so `abfsm status` sees the execution alive; a lost lock stops it there.
    """
    return {
        ctx.name("count"): _pass(ctx.name("timeout?"),
                                 {"n.$": "States.MathAdd($.poll.n, 1)"}, "$.poll"),
        ctx.name("timeout?"): {
            "Type": "Choice",
            "Choices": [{"Variable": "$.poll.n", "NumericGreaterThanEqualsPath": "$.limits.polls",
                         "Next": ctx.name("timed-out")}],
            "Default": ctx.name("sleep")},
        ctx.name("timed-out"): _pass(ctx.on_error, {
            "Error": "abfsm.WaitTimeout",
            "Cause.$": f"States.Format('{what} not reached after {{}} polls', "
                       "$.poll.n)"}, "$.error"),
        ctx.name("sleep"): {"Type": "Wait", "SecondsPath": "$.limits.interval",
                            "Next": ctx.name("beat")},
        ctx.name("beat"): _pass(ctx.name("beat-save"), record(ctx.state, "running"), "$.record"),
        ctx.name("beat-save"): save(ctx, first),
    }


# --- the actions ---------------------------------------------------------------------------

def acquire_lock(ctx: Ctx) -> States:
    return {
        ctx.name(): _pass(ctx.name("put"), record(ctx.state, "running"), "$.record"),
        ctx.name("put"): task(ctx, "s3", "putObject", {
            "Bucket.$": "$.settings.lock_bucket_name", "Key.$": lock_key(),
            "Body.$": "States.JsonToString($.record)", "IfNoneMatch": "*",
            "ContentType": "application/json"}, ctx.to("acquired"),
            selector={"etag.$": "$.ETag"}, result_path="$.lock", catch=ctx.name("held")),
        ctx.name("held"): _refuse(
            "States.Format('lock: {}.lock could not be taken (held by another run?): {}', "
            "$.settings.environment, $.error.Cause)", ctx.to("refuse")),
    }


def inspect(ctx: Ctx) -> States:
    """actions/inspect.decide() for the same world. The pair ENV-a / ENV-b (or, with
    --single-asg, the ASG named ENV) described, one call each; one populated ASG or none;
    both populated refused, or with --clean-up the one serving fewer healthy instances in
    the load balancers emptied first (a tie refused); --zero; --instance-count(-match, -step);
    then a suspended Launch (target) or Terminate (ASG to empty or drain) refused, or with
    --resume-processes recorded in `$.procs` for scale, empty and drain to resume. Each
    decision writes `$.d` (the plan, the outcome, each role's suspended processes); the
    tail is shared."""
    s = ctx.name
    return {
        s(): {"Type": "Choice", "Choices": [
            {"Variable": "$.settings.single_asg", "BooleanEquals": True, "Next": s("single")}],
            "Default": s("a")},
        **_inspect_pair(ctx), **_inspect_single(ctx), **_clean_up(ctx), **_inspect_tail(ctx),
    }


def _decided(ctx: Ctx, trigger: str, mode: str, *, target: str | None = None,
             active: str | None = None, count_of: str | None = None,
             empty_first: bool = False) -> State:
    """A Pass writing `$.d` from the described groups `$.g.<letter>`: the plan (the fields
    of context.Plan the later states read), the outcome and the suspended processes of the
    ASG to fill (`target`) and of the one to drain (`old`)."""
    def of(letter: str | None, key: str) -> dict[str, Any]:
        return {f"{key}.$": f"$.g.{letter}.AutoScalingGroupName"} if letter else {key: None}

    plan: State = {"mode": mode, **of(target, "target"), **of(active, "active"),
                   **of(target if empty_first else None, "empty_first")}
    count_of = count_of or active
    plan |= {"active_count.$": f"$.g.{count_of}.DesiredCapacity"} if count_of else {"active_count": 0}
    if target:
        plan |= {"target_min.$": f"$.g.{target}.MinSize", "target_max.$": f"$.g.{target}.MaxSize",
                 "target_groups.$": f"$.g.{target}.TargetGroupARNs",
                 "load_balancers.$": f"$.g.{target}.LoadBalancerNames"}
    suspended: dict[str, State] = {role: {f"{role}.$": f"$.g.{letter}.SuspendedProcesses"} if letter else {role: []}
                 for role, letter in (("target", target), ("old", active))}
    return _pass(ctx.name("decided"), {"plan": plan, "trigger": trigger,
                                       "sp": suspended["target"] | suspended["old"]}, "$.d")


def _populated(letter: str) -> dict[str, Any]:
    """aws/autoscaling.Group.populated: a desired capacity above 0 or instances left (the
    count of `$.g.<letter>.Instances` is in `$.n.<letter>`)."""
    return {"Or": [{"Variable": f"$.g.{letter}.DesiredCapacity", "NumericGreaterThan": 0},
                   {"Variable": f"$.n.{letter}", "NumericGreaterThan": 0}]}


def _inspect_pair(ctx: Ctx) -> States:
    s = ctx.name
    a, b = "States.Format('{}-a', $.settings.environment)", "States.Format('{}-b', $.settings.environment)"
    populated_a, populated_b = _populated("a"), _populated("b")
    zero = {"Variable": "$.settings.zero", "BooleanEquals": True}
    clean_up = {"Variable": "$.settings.clean_up", "BooleanEquals": True}
    both = ("States.Format('both {} (desired {}) and {} (desired {}) have instances; nothing "
            "was changed. Zero one by hand, or pass --clean-up to zero the one serving fewer "
            "healthy instances in the load balancer first', $.g.a.AutoScalingGroupName, "
            "$.g.a.DesiredCapacity, $.g.b.AutoScalingGroupName, $.g.b.DesiredCapacity)")
    zero_both = ("States.Format('both {} (desired {}) and {} (desired {}) have instances; "
                 "--zero will not guess which one to zero', $.g.a.AutoScalingGroupName, "
                 "$.g.a.DesiredCapacity, $.g.b.AutoScalingGroupName, $.g.b.DesiredCapacity)")
    return {
        s("a"): _describe(ctx, f"States.Array({a})", s("b"), "$.a"),
        s("b"): _describe(ctx, f"States.Array({b})", s("found"), "$.b"),
        s("found"): _pass(s("exist?"), {"a.$": "States.ArrayLength($.a.groups)",
                                        "b.$": "States.ArrayLength($.b.groups)"}, "$.n"),
        s("exist?"): {"Type": "Choice", "Choices": [
            {"Or": [{"Variable": "$.n.a", "NumericEquals": 0},
                    {"Variable": "$.n.b", "NumericEquals": 0}], "Next": s("missing")}],
            "Default": s("pick")},
        s("missing"): _refuse(
            "States.Format('inspect: Auto Scaling group {}-a or {}-b not found (abfsm deploys "
            "the pair ENV-a / ENV-b; check --environment and the region)', "
            "$.settings.environment, $.settings.environment)", ctx.to("refuse")),
        s("pick"): _pass(s("instances"), {"a.$": "States.ArrayGetItem($.a.groups, 0)",
                                          "b.$": "States.ArrayGetItem($.b.groups, 0)"}, "$.g"),
        s("instances"): _pass(s("decide"), {"a.$": "States.ArrayLength($.g.a.Instances)",
                                            "b.$": "States.ArrayLength($.g.b.Instances)"},
                              "$.n"),
        s("decide"): {"Type": "Choice", "Choices": [
            {"And": [zero, populated_a, populated_b], "Next": s("zero-both")},
            {"And": [zero, populated_a], "Next": s("zero-a")},
            {"And": [zero, populated_b], "Next": s("zero-b")},
            {**zero, "Next": s("zero-none")},
            {"And": [populated_a, populated_b, clean_up], "Next": s("serving")},
            {"And": [populated_a, populated_b], "Next": s("both")},
            {**populated_a, "Next": s("ab-a")},
            {**populated_b, "Next": s("ab-b")}],
            "Default": s("ab-none")},
        s("zero-both"): _refuse(zero_both, ctx.to("refuse")),
        s("both"): _refuse(both, ctx.to("refuse")),
        s("zero-a"): _decided(ctx, "zero", "zero", active="a"),
        s("zero-b"): _decided(ctx, "zero", "zero", active="b"),
        s("zero-none"): _decided(ctx, "nothing_to_do", "zero"),
        s("ab-a"): _decided(ctx, "deploy", "ab", target="b", active="a"),
        s("ab-b"): _decided(ctx, "deploy", "ab", target="a", active="b"),
        s("ab-none"): _decided(ctx, "deploy", "ab", target="a"),
    }


def _inspect_single(ctx: Ctx) -> States:
    """--single-asg: the ASG named ENV is the target; populated, it is emptied first
    (--zero: drained, if populated)."""
    s = ctx.name
    populated = _populated("s")
    zero = {"Variable": "$.settings.zero", "BooleanEquals": True}
    return {
        s("single"): _describe(ctx, "States.Array($.settings.environment)", s("single-found"),
                               "$.a"),
        s("single-found"): _pass(s("single-exist?"), {"n.$": "States.ArrayLength($.a.groups)"},
                                 "$.n"),
        s("single-exist?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.n.n", "NumericEquals": 0, "Next": s("single-missing")}],
            "Default": s("single-pick")},
        s("single-missing"): _refuse(
            "States.Format('inspect: Auto Scaling group {} not found (--single-asg uses the ASG "
            "named ENV; check --environment and the region)', $.settings.environment)",
            ctx.to("refuse")),
        s("single-pick"): _pass(s("single-instances"),
                                {"s.$": "States.ArrayGetItem($.a.groups, 0)"}, "$.g"),
        s("single-instances"): _pass(s("single-decide"),
                                     {"s.$": "States.ArrayLength($.g.s.Instances)"}, "$.n"),
        s("single-decide"): {"Type": "Choice", "Choices": [
            {"And": [zero, populated], "Next": s("single-zero")},
            {**zero, "Next": s("zero-none")},
            {**populated, "Next": s("single-refill")}],
            "Default": s("single-fill")},
        s("single-zero"): _decided(ctx, "zero", "zero", active="s"),
        s("single-refill"): _decided(ctx, "empty_first", "single", target="s", count_of="s",
                                     empty_first=True),
        s("single-fill"): _decided(ctx, "deploy", "single", target="s", count_of="s"),
    }


def _lb_verdict(sets: str) -> State:
    """An inline Map's processor for one instance (`$.id`): its id when it is healthy in
    every target group and InService in every classic ELB of each of `sets` (a list of
    {tgs, lbs}), else "-" (actions/health.lb_progress)."""
    return {"StartAt": "sets", "States": {
        "sets": {"Type": "Map", "ItemsPath": sets,
                 "ItemSelector": {"id.$": "$.id", "tgs.$": "$$.Map.Item.Value.tgs",
                                  "lbs.$": "$$.Map.Item.Value.lbs"},
                 "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **_lb_health()},
                 "ResultPath": "$.marks", "Next": "any-bad"},
        "any-bad": {"Type": "Pass", "Parameters": {
            "id.$": "$.id", "bad.$": "States.ArrayContains($.marks, '-')"}, "Next": "mark"},
        "mark": {"Type": "Choice", "Choices": [
            {"Variable": "$.bad", "BooleanEquals": True, "Next": "not-serving"}],
            "Default": "serving"},
        "serving": {"Type": "Pass", "Parameters": {"m.$": "$.id"}, "OutputPath": "$.m",
                    "End": True},
        "not-serving": {"Type": "Pass", "Result": "-", "End": True}}}


def _clean_up(ctx: Ctx) -> States:
    """--clean-up with both ASGs populated: count each one's instances healthy in every load
    balancer either ASG is attached to (none attached: 0 each); the one serving more stays
    active, the other is emptied first and filled; a tie is refused."""
    s = ctx.name

    def serving(letter: str, next_: str) -> State:
        return {"Type": "Map", "ItemsPath": f"$.g.{letter}.Instances",
                "ItemSelector": {"id.$": "$$.Map.Item.Value.InstanceId", "sets.$": "$.lbsets.all"},
                "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"},
                                  **_lb_verdict("$.sets")},
                "ResultPath": f"$.sv.{letter}",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                           "Next": ctx.on_error}], "Next": next_}

    def count(letter: str, next_: str) -> States:
        # distinct marks = the serving ids, plus "-" when some instance is not serving
        n = f"$.sc.{letter}"
        return {
            s(f"serving-{letter}?"): {"Type": "Choice", "Choices": [
                {"Variable": f"{n}_no", "BooleanEquals": True, "Next": s(f"serving-{letter}-1")}],
                "Default": next_},
            s(f"serving-{letter}-1"): _pass(next_, {"n.$": f"States.MathAdd({n}, -1)"},
                                            f"$.sc.fix_{letter}"),
        }

    tie = ("States.Format('--clean-up: {} and {} both serve {} healthy instance(s) in the load "
           "balancer; refusing to pick one to zero', $.g.a.AutoScalingGroupName, "
           "$.g.b.AutoScalingGroupName, $.sc.a)")
    none_attached = {"And": [{"Variable": f"$.lbsets.n.{k}", "NumericEquals": 0}
                             for k in ("a_tgs", "a_lbs", "b_tgs", "b_lbs")]}
    return {
        s("serving"): _pass(s("lb-count"), {
            "a": {"tgs.$": "$.g.a.TargetGroupARNs", "lbs.$": "$.g.a.LoadBalancerNames"},
            "b": {"tgs.$": "$.g.b.TargetGroupARNs", "lbs.$": "$.g.b.LoadBalancerNames"},
            "n": {"a_tgs.$": "States.ArrayLength($.g.a.TargetGroupARNs)",
                  "a_lbs.$": "States.ArrayLength($.g.a.LoadBalancerNames)",
                  "b_tgs.$": "States.ArrayLength($.g.b.TargetGroupARNs)",
                  "b_lbs.$": "States.ArrayLength($.g.b.LoadBalancerNames)"}}, "$.lbsets"),
        s("lb-count"): {"Type": "Choice", "Choices": [{**none_attached, "Next": s("no-lbs")}],
                        "Default": s("lb-sets")},
        s("no-lbs"): _pass(s("tie"), {"a": 0}, "$.sc"),
        s("lb-sets"): _pass(s("serving-a"), {"all.$": "States.Array($.lbsets.a, $.lbsets.b)"},
                            "$.lbsets"),
        s("serving-a"): serving("a", s("serving-b")),
        s("serving-b"): serving("b", s("tally")),
        s("tally"): _pass(s("tally2"), {"a.$": "States.ArrayUnique($.sv.a)",
                                        "b.$": "States.ArrayUnique($.sv.b)"}, "$.sv"),
        s("tally2"): _pass(s("serving-a?"), {
            "a.$": "States.ArrayLength($.sv.a)", "b.$": "States.ArrayLength($.sv.b)",
            "a_no.$": "States.ArrayContains($.sv.a, '-')",
            "b_no.$": "States.ArrayContains($.sv.b, '-')",
            "fix_a": {"n.$": "States.ArrayLength($.sv.a)"},
            "fix_b": {"n.$": "States.ArrayLength($.sv.b)"}}, "$.sc"),
        **count("a", s("serving-b?")),
        **count("b", s("counted")),
        s("counted"): _pass(s("more?"), {"a.$": "$.sc.fix_a.n", "b.$": "$.sc.fix_b.n"}, "$.sc"),
        s("more?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.sc.a", "NumericEqualsPath": "$.sc.b", "Next": s("tie")},
            {"Variable": "$.sc.a", "NumericGreaterThanPath": "$.sc.b", "Next": s("clean-b")}],
            "Default": s("clean-a")},
        s("tie"): _refuse(tie, ctx.to("refuse")),
        s("clean-b"): _decided(ctx, "empty_first", "ab", target="b", active="a", empty_first=True),
        s("clean-a"): _decided(ctx, "empty_first", "ab", target="a", active="b", empty_first=True),
    }


def _names(items: str, field: str, result_path: str, next_: str) -> State:
    """An inline Map turning a list of objects into the list of their `field`."""
    return {"Type": "Map", "ItemsPath": items,
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "name",
                              "States": {"name": {"Type": "Pass",
                                                  "Parameters": {"v.$": f"$.{field}"},
                                                  "OutputPath": "$.v", "End": True}}},
            "ResultPath": result_path, "Next": next_}


def _procs(next_: str, names: list[str]) -> State:
    """`$.procs.<role>`: the processes to resume on that ASG for the run, as a list, a count
    and the words of the refusal."""
    return _pass(next_, {"names": names, "n": len(names), "words": " and ".join(names),
                         "args": " ".join(names)}, None)


def _inspect_tail(ctx: Ctx) -> States:
    """The plan of `$.d` kept; counts and steps when the ASG is filled; the suspended
    processes (actions/processes.decide); then the decided outcome."""
    s = ctx.name
    match = {"Variable": "$.settings.instance_count_match", "BooleanEquals": True}
    nothing = {"Variable": "$.plan.active_count", "NumericEquals": 0}
    single = {"Variable": "$.plan.mode", "StringEquals": "single"}
    keep = {"Variable": "$.settings.resume_processes", "BooleanEquals": False}
    empties = {"Variable": "$.plan.empty_first", "IsString": True}
    launch = {"Variable": "$.sp.launch", "BooleanEquals": True}
    terminate = {"Variable": "$.sp.terminate", "BooleanEquals": True}
    stuck = ("inspect: {} has the {} process suspended, so the deployment would stall; "
             "nothing was changed. Resume it first: aws autoscaling resume-processes "
             "--auto-scaling-group-name {} --scaling-processes {}, or pass --resume-processes "
             "to resume it for this run only")
    outcomes = [t for t in ("empty_first", "zero", "nothing_to_do") if t in ctx.routes]
    target = {k: _procs(s("old-procs?"), names) | {"ResultPath": "$.procs.target"} for k, names in
              (("t-both", ["Launch", "Terminate"]), ("t-launch", ["Launch"]),
               ("t-terminate", ["Terminate"]), ("t-none", []))}
    for k in target:
        target[k]["Parameters"] |= {"launch": k in ("t-both", "t-launch"),
                                    "terminate": k in ("t-both", "t-terminate")}
    return {
        s("decided"): {"Type": "Pass", "InputPath": "$.d.plan", "ResultPath": "$.plan",
                       "Next": s("filling?")},
        s("filling?"): {"Type": "Choice", "Choices": [
            {"Or": [{"Variable": "$.d.trigger", "StringEquals": "deploy"},
                    {"Variable": "$.d.trigger", "StringEquals": "empty_first"}],
             "Next": s("count")}], "Default": s("suspended")},
        s("count"): {"Type": "Choice", "Choices": [
            {"And": [match, nothing, single], "Next": s("single-nothing-to-match")},
            {"And": [match, nothing], "Next": s("nothing-to-match")},
            {**match, "Next": s("match")}],
            "Default": s("given")},
        s("nothing-to-match"): _refuse(
            "States.Format('--instance-count-match: neither {}-a nor {}-b has instances to "
            "match; pass --instance-count instead', $.settings.environment, "
            "$.settings.environment)", ctx.to("refuse")),
        s("single-nothing-to-match"): _refuse(
            "States.Format('--instance-count-match: {} has no instances to match; pass "
            "--instance-count instead', $.settings.environment)", ctx.to("refuse")),
        s("match"): _pass(s("step?"), {"n.$": "$.plan.active_count"}, "$.count"),
        s("given"): _pass(s("step?"), {"n.$": "$.settings.instance_count"}, "$.count"),
        # steps: desired = min(step, count), then +step each time, capped at count
        s("step?"): {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.settings.instance_count_step", "IsNumeric": True},
                     {"Variable": "$.settings.instance_count_step",
                      "NumericLessThanPath": "$.count.n"}], "Next": s("stepped")}],
            "Default": s("one-step")},
        s("stepped"): _pass(s("suspended"), {"n.$": "$.count.n",
                                             "step.$": "$.settings.instance_count_step",
                                             "desired.$": "$.settings.instance_count_step"},
                            "$.count"),
        s("one-step"): _pass(s("suspended"), {"n.$": "$.count.n", "step.$": "$.count.n",
                                              "desired.$": "$.count.n"}, "$.count"),
        # a Launch suspended on the target, Terminate on the ASG to empty or to drain
        s("suspended"): _names("$.d.sp.target", "ProcessName", "$.sp.target",
                               s("suspended-old")),
        s("suspended-old"): _names("$.d.sp.old", "ProcessName", "$.sp.old", s("needs")),
        s("needs"): _pass(s("target-procs?"), {
            "launch.$": "States.ArrayContains($.sp.target, 'Launch')",
            "terminate.$": "States.ArrayContains($.sp.target, 'Terminate')",
            "old.$": "States.ArrayContains($.sp.old, 'Terminate')"}, "$.sp"),
        s("target-procs?"): {"Type": "Choice", "Choices": [
            {"And": [launch, terminate, empties], "Next": s("t-both")},
            {**launch, "Next": s("t-launch")},
            {"And": [terminate, empties], "Next": s("t-terminate")}],
            "Default": s("t-none")},
        **{s(k): st for k, st in target.items()},
        s("old-procs?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.sp.old", "BooleanEquals": True, "Next": s("o-terminate")}],
            "Default": s("o-none")},
        s("o-terminate"): _procs(s("stuck?"), ["Terminate"]) | {"ResultPath": "$.procs.old"},
        s("o-none"): _procs(s("stuck?"), []) | {"ResultPath": "$.procs.old"},
        s("stuck?"): {"Type": "Choice", "Choices": [
            {"And": [keep, {"Variable": "$.procs.target.n", "NumericGreaterThan": 0}],
             "Next": s("stuck-target")},
            {"And": [keep, {"Variable": "$.procs.old.n", "NumericGreaterThan": 0}],
             "Next": s("stuck-old")}],
            "Default": s("gates?")},
        # the gates before anything changes, when an ASG is to be filled: the load
        # balancers to wait for, the alarms, the launch template version
        s("gates?"): {"Type": "Choice", "Choices": [
            {"Or": [{"Variable": "$.d.trigger", "StringEquals": "deploy"},
                    {"Variable": "$.d.trigger", "StringEquals": "empty_first"}],
             "Next": s("lbs")}], "Default": s("outcome")},
        **wait_for_lbs(ctx, s("alarms")),
        **_alarm_watch(ctx, s("version"), before_deploy=True),
        **launch_template_version(ctx, s("outcome")),
        s("stuck-target"): _refuse(
            f"States.Format('{stuck}', $.plan.target, $.procs.target.words, $.plan.target, "
            "$.procs.target.args)", ctx.to("refuse")),
        s("stuck-old"): _refuse(
            f"States.Format('{stuck}', $.plan.active, $.procs.old.words, $.plan.active, "
            "$.procs.old.args)", ctx.to("refuse")),
        s("outcome"): {"Type": "Choice", "Choices": [
            {"Variable": "$.d.trigger", "StringEquals": t, "Next": ctx.to(t)} for t in outcomes],
            "Default": ctx.to("deploy")},
    }


def _resumed(role: str, flag: str) -> dict[str, Any]:
    """The Choice condition: --resume-processes and `$.procs.<role>.<flag>`."""
    return {"And": [{"Variable": "$.settings.resume_processes", "BooleanEquals": True},
                    {"Variable": f"$.procs.{role}.{flag}", **(
                        {"NumericGreaterThan": 0} if flag == "n" else {"BooleanEquals": True})}]}


def _resume_task(ctx: Ctx, asg: str, processes: list[str], next_: str) -> State:
    return task(ctx, "autoscaling", "resumeProcesses", {
        "AutoScalingGroupName.$": asg, "ScalingProcesses": processes}, next_)


def scale_step(ctx: Ctx) -> States:
    """UpdateAutoScalingGroup to the step's absolute desired capacity, as actions/scale_step:
    MaxSize raised to the target count in the same call when the count needs it; MinSize
    min(the MinSize inspect saw, the step), so a target emptied first gets its MinSize back.
    Before the first step, the target's suspended Launch resumed (--resume-processes)."""
    s = ctx.name
    first = {"Variable": "$.count.desired", "NumericEqualsPath": "$.count.step"}
    update = {"AutoScalingGroupName.$": "$.plan.target", "DesiredCapacity.$": "$.count.desired",
              "MinSize.$": "$.min.n"}
    return {
        s(): {"Type": "Choice", "Choices": [
            {"And": [*_resumed("target", "launch")["And"], first], "Next": s("resume")}],
            "Default": s("min?")},
        s("resume"): _resume_task(ctx, "$.plan.target", ["Launch"], s("min?")),
        s("min?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.plan.target_min", "NumericLessThanPath": "$.count.desired",
             "Next": s("min-kept")}], "Default": s("min-step")},
        s("min-kept"): _pass(s("max?"), {"n.$": "$.plan.target_min"}, "$.min"),
        s("min-step"): _pass(s("max?"), {"n.$": "$.count.desired"}, "$.min"),
        s("max?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.count.n", "NumericGreaterThanPath": "$.plan.target_max",
             "Next": s("raise")}], "Default": s("update")},
        s("raise"): task(ctx, "autoscaling", "updateAutoScalingGroup",
                         {**update, "MaxSize.$": "$.count.n"}, ctx.to("scaled")),
        s("update"): task(ctx, "autoscaling", "updateAutoScalingGroup", update, ctx.to("scaled")),
    }


def wait_instances(ctx: Ctx) -> States:
    """Poll the target ASG until the step's count is InService and Healthy; next_step while
    steps remain. Ready instances are counted without JSONPath filters: a Map marks each
    instance with its id or "-", and the distinct marks are counted. Each poll reads the
    watched alarms first (`_alarm_watch`)."""
    s = ctx.name
    ready = {"And": [{"Variable": "$.InstanceId", "IsPresent": True},
                     {"Variable": "$.LifecycleState", "StringEquals": "InService"},
                     {"Variable": "$.HealthStatus", "StringEquals": "Healthy"}]}
    marker: State = {"StartAt": "mark", "States": {
        "mark": {"Type": "Choice", "Choices": [{**ready, "Next": "ready"}], "Default": "not-ready"},
        "ready": {"Type": "Pass", "Parameters": {"m.$": "$.InstanceId"}, "OutputPath": "$.m",
                  "End": True},
        "not-ready": {"Type": "Pass", "Result": "-", "End": True}}}
    return {
        s(): _pass(s("alarms"), {"n": 0}, "$.poll"),
        **_alarm_watch(ctx, s("describe")),
        s("describe"): _describe(ctx, "States.Array($.plan.target)", s("group"), "$.w"),
        s("group"): _pass(s("mark"), {"g.$": "States.ArrayGetItem($.w.groups, 0)"}, "$.w"),
        s("mark"): {"Type": "Map", "ItemsPath": "$.w.g.Instances",
                    "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **marker},
                    "ResultPath": "$.w.marks", "Next": s("tally")},
        s("tally"): _pass(s("tally2"), {"marks.$": "States.ArrayUnique($.w.marks)"}, "$.w"),
        s("tally2"): _pass(s("ready?"), {"n.$": "States.ArrayLength($.w.marks)",
                                         "no.$": "States.ArrayContains($.w.marks, '-')"},
                           "$.w"),
        s("ready?"): {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.w.no", "BooleanEquals": True},
                     {"Variable": "$.w.n", "NumericGreaterThanPath": "$.count.desired"}],
             "Next": s("next?")},
            {"And": [{"Variable": "$.w.no", "BooleanEquals": False},
                     {"Variable": "$.w.n", "NumericGreaterThanEqualsPath": "$.count.desired"}],
             "Next": s("next?")}],
            "Default": s("count")},
        s("next?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.count.desired", "NumericLessThanPath": "$.count.n",
             "Next": s("advance")}], "Default": ctx.to("instances_ready")},
        s("advance"): _pass(s("cap"), {"n.$": "$.count.n", "step.$": "$.count.step",
                                       "desired.$": "States.MathAdd($.count.desired, $.count.step)"},
                            "$.count"),
        s("cap"): {"Type": "Choice", "Choices": [
            {"Variable": "$.count.desired", "NumericGreaterThanPath": "$.count.n",
             "Next": s("last")}], "Default": ctx.to("next_step")},
        s("last"): _pass(ctx.to("next_step"), {"n.$": "$.count.n", "step.$": "$.count.step",
                                               "desired.$": "$.count.n"}, "$.count"),
        **_poll_loop(ctx, s("alarms"), "the step instances InService and Healthy"),
    }


def _health_marks(kind: str) -> State:
    """An inline Map over one instance's load balancers of `kind` ("tg" or "elb"): each
    answers "ok" when the instance is healthy / InService there, else "-"."""
    if kind == "tg":
        call: State = {
            "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:elasticloadbalancingv2:describeTargetHealth",
            "Parameters": {"TargetGroupArn.$": "$.lb", "Targets": [{"Id.$": "$.id"}]},
            "ResultSelector": {"h.$": "States.ArrayGetItem($.TargetHealthDescriptions, 0)"},
            "Retry": [{"ErrorEquals": THROTTLING["elasticloadbalancingv2"], "IntervalSeconds": 2,
                       "MaxAttempts": 6, "BackoffRate": 2.0}],
            "Next": "state"}
        state: State = {"Type": "Pass", "Parameters": {"s.$": "$.h.TargetHealth.State"},
                        "Next": "mark"}
        healthy = "healthy"
    else:
        call = {
            "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:elasticloadbalancing:describeInstanceHealth",
            "Parameters": {"LoadBalancerName.$": "$.lb", "Instances": [{"InstanceId.$": "$.id"}]},
            "ResultSelector": {"h.$": "States.ArrayGetItem($.InstanceStates, 0)"},
            "Retry": [{"ErrorEquals": THROTTLING["elasticloadbalancing"], "IntervalSeconds": 2,
                       "MaxAttempts": 6, "BackoffRate": 2.0}],
            "Next": "state"}
        state = {"Type": "Pass", "Parameters": {"s.$": "$.h.State"}, "Next": "mark"}
        healthy = "InService"
    return {
        "Type": "Map", "ItemsPath": "$.tgs" if kind == "tg" else "$.lbs",
        "ItemSelector": {"lb.$": "$$.Map.Item.Value", "id.$": "$.id"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "call", "States": {
            "call": call, "state": state,
            "mark": {"Type": "Choice", "Choices": [
                {"Variable": "$.s", "StringEquals": healthy, "Next": "ok"}], "Default": "no"},
            "ok": {"Type": "Pass", "Result": "ok", "End": True},
            "no": {"Type": "Pass", "Result": "-", "End": True}}},
        "ResultPath": f"$.{kind}_marks", "Next": "elb" if kind == "tg" else "sum"}


def _lb_health() -> State:
    """An inline Map's processor for one instance and its load balancers ({id, tgs, lbs}):
    "ok" when it is healthy in every target group and InService in every classic ELB."""
    return {"StartAt": "tg", "States": {
        "tg": _health_marks("tg"), "elb": _health_marks("elb"),
        "sum": {"Type": "Pass", "Parameters": {
            "bad_tg.$": "States.ArrayContains($.tg_marks, '-')",
            "bad_elb.$": "States.ArrayContains($.elb_marks, '-')"}, "Next": "verdict"},
        "verdict": {"Type": "Choice", "Choices": [
            {"Or": [{"Variable": "$.bad_tg", "BooleanEquals": True},
                    {"Variable": "$.bad_elb", "BooleanEquals": True}], "Next": "not-yet"}],
            "Default": "serving"},
        "serving": {"Type": "Pass", "Result": "ok", "End": True},
        "not-yet": {"Type": "Pass", "Result": "-", "End": True}}}


def _serving(ctx: Ctx, next_: str, *, in_asg: bool = False) -> State:
    """An inline Map over the target ASG's instances (`$.w.g.Instances`) marking each "ok"
    when it is healthy in every target group and InService in every classic ELB of the plan
    (and, `in_asg`, InService and Healthy in the ASG), else "-"; marks in `$.w.marks`."""
    per_instance = _lb_health()
    selector = {"id.$": "$$.Map.Item.Value.InstanceId", "tgs.$": "$.plan.target_groups",
                "lbs.$": "$.plan.load_balancers"}
    if in_asg:
        selector |= {"lifecycle.$": "$$.Map.Item.Value.LifecycleState",
                     "health.$": "$$.Map.Item.Value.HealthStatus"}
        per_instance = {"StartAt": "asg", "States": {
            "asg": {"Type": "Choice", "Choices": [{"And": [
                {"Variable": "$.lifecycle", "StringEquals": "InService"},
                {"Variable": "$.health", "StringEquals": "Healthy"}], "Next": "tg"}],
                "Default": "not-yet"}, **per_instance["States"]}}
    return {"Type": "Map", "ItemsPath": "$.w.g.Instances", "ItemSelector": selector,
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **per_instance},
            "ResultPath": "$.w.marks",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                       "Next": ctx.on_error}],
            "Next": next_}


def _serving_poll(ctx: Ctx, serving: str, not_yet: str, *, in_asg: bool = False) -> States:
    """`STATE.describe` to `STATE.serving?`: the target ASG read, each instance checked
    (`_serving`), then `serving` when none is "-" and there are at least the target count
    (never with fewer), else `not_yet`."""
    s = ctx.name
    return {
        s("describe"): _describe(ctx, "States.Array($.plan.target)", s("group"), "$.w"),
        s("group"): _pass(s("check"), {"g.$": "States.ArrayGetItem($.w.groups, 0)"}, "$.w"),
        s("check"): _serving(ctx, s("tally"), in_asg=in_asg),
        s("tally"): _pass(s("serving?"), {"no.$": "States.ArrayContains($.w.marks, '-')",
                                          "n.$": "States.ArrayLength($.w.marks)"}, "$.w"),
        s("serving?"): {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.w.no", "BooleanEquals": False},
                     {"Variable": "$.w.n", "NumericGreaterThanEqualsPath": "$.count.n"}],
             "Next": serving}],
            "Default": not_yet},
    }


def wait_elb(ctx: Ctx) -> States:
    """Poll until every InService instance of the target ASG is healthy in each of its
    target groups (DescribeTargetHealth) and InService in each classic ELB
    (DescribeInstanceHealth), one call per instance and load balancer per poll; the old
    ASG's instances never count. The load balancers are the plan's (named by --elb-name /
    --target-group-arn, else discovered: see `wait_for_lbs`); none (or --no-elb-check):
    skipped. Each poll reads the watched alarms first (`_alarm_watch`)."""
    s = ctx.name
    return {
        s(): {"Type": "Choice", "Choices": [
            {"Variable": "$.settings.no_elb_check", "BooleanEquals": True,
             "Next": ctx.to("healthy")}], "Default": s("attached")},
        s("attached"): _pass(s("any?"), {"tgs.$": "States.ArrayLength($.plan.target_groups)",
                                         "lbs.$": "States.ArrayLength($.plan.load_balancers)"},
                             "$.w"),
        s("any?"): {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.w.tgs", "NumericEquals": 0},
                     {"Variable": "$.w.lbs", "NumericEquals": 0}], "Next": ctx.to("healthy")}],
            "Default": s("start")},
        s("start"): _pass(s("alarms"), {"n": 0}, "$.poll"),
        **_alarm_watch(ctx, s("describe")),
        **_serving_poll(ctx, ctx.to("healthy"), s("count")),
        **_poll_loop(ctx, s("alarms"), "every new instance healthy in its load balancers"),
    }


def bake(ctx: Ctx) -> States:
    """For `seconds` (param, else --bake-time: the input's `limits.bake`, whole seconds, or
    without it settings.bake_time rounded to the nearest second) re-check, at once and every
    `limits.interval`, that every instance of the target ASG is still InService and Healthy
    there and serving in every load balancer of the plan, and that no watched alarm is in
    ALARM; the first poll that sees otherwise fails the state.
    The last sleep is what is left of `seconds` (5 s at 2 s: polls at 0, 2, 4, 5 s); after
    each sleep the record is saved with a fresh heartbeat. 0 seconds: baked at once, no API
    call."""
    seconds = ctx.params.get("seconds")
    if seconds is not None and float(seconds) <= 0:
        return {ctx.name(): _pass(ctx.to("baked"))}
    s = ctx.name
    keep = {"seconds.$": "$.bake.seconds"}
    if seconds is None:  # --bake-time: limits.bake from `sfn start`, else rounded here
        length: States = {
            s(): {"Type": "Choice", "Choices": [
                {"Variable": "$.limits.bake", "IsPresent": True, "Next": s("given")}],
                "Default": s("rounded")},
            s("given"): _pass(s("bake?"), {"seconds.$": "$.limits.bake", "elapsed": 0},
                              "$.bake"),
            s("rounded"): _pass(s("bake?"), {
                "seconds.$": "States.MathAdd($.settings.bake_time, 0)", "elapsed": 0}, "$.bake")}
    else:
        length = {s(): _pass(s("bake?"), {"seconds": math.ceil(float(seconds)), "elapsed": 0},
                             "$.bake")}
    return {
        **length,
        s("bake?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.bake.seconds", "NumericLessThanEquals": 0, "Next": ctx.to("baked")}],
            "Default": s("alarms")},
        **_alarm_watch(ctx, s("describe")),
        **_serving_poll(ctx, s("over?"), s("dropped"), in_asg=True),
        s("dropped"): _pass(ctx.on_error, {
            "Error": "abfsm.StateFailed",
            "Cause.$": "States.Format('an instance of {} dropped out after {} s of {} s ({} "
                       "seen, {} expected, each InService and Healthy in the ASG and serving in "
                       "every load balancer)', $.plan.target, $.bake.elapsed, $.bake.seconds, "
                       "$.w.n, $.count.n)"}, "$.error"),
        s("over?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.bake.elapsed", "NumericGreaterThanEqualsPath": "$.bake.seconds",
             "Next": ctx.to("baked")}], "Default": s("left")},
        s("left"): _pass(s("short?"), {**keep, "elapsed.$": "$.bake.elapsed", "left.$": (
            "States.MathAdd($.bake.seconds, "
            "States.StringToJson(States.Format('-{}', $.bake.elapsed)))")}, "$.bake"),
        s("short?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.bake.left", "NumericLessThanPath": "$.limits.interval",
             "Next": s("sleep-left")}], "Default": s("sleep")},
        s("sleep-left"): {"Type": "Wait", "SecondsPath": "$.bake.left", "Next": s("end")},
        s("end"): _pass(s("beat"), {**keep, "elapsed.$": "$.bake.seconds"}, "$.bake"),
        s("sleep"): {"Type": "Wait", "SecondsPath": "$.limits.interval", "Next": s("tick")},
        s("tick"): _pass(s("beat"), {**keep, "elapsed.$": (
            "States.MathAdd($.bake.elapsed, $.limits.interval)")}, "$.bake"),
        # after each sleep the record is saved with a fresh heartbeat, as the waits do
        s("beat"): _pass(s("beat-save"), record(ctx.state, "running"), "$.record"),
        s("beat-save"): save(ctx, s("alarms")),
    }


def drain(ctx: Ctx) -> States:
    """actions/drain: the old ASG (the active one, when it is not the target) to MinSize
    and desired 0, its suspended Terminate resumed first (--resume-processes). With
    --wait-for-scale-down, until it has no instances and none of its instances (those it had
    before, and any seen since) is registered in a load balancer of the plan; with Terminate
    resumed, until it is empty. (--no-elb-check: the plan has no load balancers.) Then what
    the run resumed is suspended again."""
    s = ctx.name
    wait = {"Variable": "$.settings.wait_for_scale_down", "BooleanEquals": True}
    lbs = {"Or": [{"Variable": "$.w.lbs", "NumericGreaterThan": 0},
                  {"Variable": "$.w.tgs", "NumericGreaterThan": 0}]}
    return {
        s(): {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.plan.active", "IsPresent": True},
                     {"Variable": "$.plan.active", "IsNull": False}], "Next": s("old")}],
            "Default": s("suspend")},
        s("old"): {"Type": "Choice", "Choices": [{**_resumed("old", "n"), "Next": s("resume")}],
                   "Default": s("ids?")},
        s("resume"): _resume_task(ctx, "$.plan.active", ["Terminate"], s("ids?")),
        s("ids?"): {"Type": "Choice", "Choices": [{**wait, "Next": s("before")}],
                    "Default": s("zero")},
        # before zeroing: once terminated, the group no longer names its instances
        s("before"): _describe(ctx, "States.Array($.plan.active)", s("before-group"), "$.w"),
        s("before-group"): _pass(s("ids"), {"g.$": "States.ArrayGetItem($.w.groups, 0)"},
                                 "$.w"),
        s("ids"): _names("$.w.g.Instances", "InstanceId", "$.old_ids", s("zero")),
        s("zero"): task(ctx, "autoscaling", "updateAutoScalingGroup", {
            "AutoScalingGroupName.$": "$.plan.active", "MinSize": 0, "DesiredCapacity": 0},
            s("wait?")),
        s("wait?"): {"Type": "Choice", "Choices": [
            {"Or": [wait, _resumed("old", "n")], "Next": s("start")}],
            "Default": s("suspend")},
        s("start"): _pass(s("describe"), {"n": 0}, "$.poll"),
        s("describe"): _describe(ctx, "States.Array($.plan.active)", s("group"), "$.w"),
        s("group"): _pass(s("left"), {"g.$": "States.ArrayGetItem($.w.groups, 0)"}, "$.w"),
        s("left"): _pass(s("empty?"), {
            "n.$": "States.ArrayLength($.w.g.Instances)",
            "tgs.$": "States.ArrayLength($.plan.target_groups)",
            "lbs.$": "States.ArrayLength($.plan.load_balancers)"}, "$.w"),
        s("empty?"): {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.w.n", "NumericEquals": 0}, wait, lbs,
                     {"Variable": "$.settings.no_elb_check", "BooleanEquals": False}],
             "Next": s("registered")},
            {"Variable": "$.w.n", "NumericEquals": 0, "Next": s("suspend")}],
            "Default": s("count")},
        s("registered"): _still_registered(ctx, "tg", s("registered-elb")),
        s("registered-elb"): _still_registered(ctx, "elb", s("gone?")),
        s("gone?"): _pass(s("gone"), {
            "tg.$": "States.ArrayContains($.w.tg_marks, '-')",
            "elb.$": "States.ArrayContains($.w.elb_marks, '-')"}, "$.w"),
        s("gone"): {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.w.tg", "BooleanEquals": False},
                     {"Variable": "$.w.elb", "BooleanEquals": False}], "Next": s("suspend")}],
            "Default": s("count")},
        **_poll_loop(ctx, s("describe"), "the old ASG empty and deregistered"),
        s("suspend"): {"Type": "Choice", "Choices": [
            {**_resumed("target", "n"), "Next": s("suspend-target")}],
            "Default": s("suspend-old?")},
        s("suspend-target"): task(ctx, "autoscaling", "suspendProcesses", {
            "AutoScalingGroupName.$": "$.plan.target", "ScalingProcesses.$": "$.procs.target.names"},
            s("suspend-old?")),
        s("suspend-old?"): {"Type": "Choice", "Choices": [
            {**_resumed("old", "n"), "Next": s("suspend-old")}],
            "Default": ctx.to("drained")},
        s("suspend-old"): task(ctx, "autoscaling", "suspendProcesses", {
            "AutoScalingGroupName.$": "$.plan.active", "ScalingProcesses.$": "$.procs.old.names"},
            ctx.to("drained")),
    }


def _still_registered(ctx: Ctx, kind: str, next_: str) -> State:
    """An inline Map over the plan's target groups ("tg") or classic ELBs ("elb"): each
    answers "-" while one of `$.old_ids` is still registered there (a target group lists
    it, draining included; a classic ELB lists it), else "ok" (actions/health.gone)."""
    if kind == "tg":
        api, service, param = "describeTargetHealth", "elasticloadbalancingv2", "TargetGroupArn"
        listed, field = "$.TargetHealthDescriptions", "Target.Id"
    else:
        api, service, param = "describeInstanceHealth", "elasticloadbalancing", "LoadBalancerName"
        listed, field = "$.InstanceStates", "InstanceId"
    per_id: State = {"StartAt": "listed?", "States": {
        "listed?": {"Type": "Pass", "Parameters": {
            "in.$": "States.ArrayContains($.registered, $.id)"}, "Next": "mark"},
        "mark": {"Type": "Choice", "Choices": [
            {"Variable": "$.in", "BooleanEquals": True, "Next": "still"}], "Default": "gone"},
        "still": {"Type": "Pass", "Result": "-", "End": True},
        "gone": {"Type": "Pass", "Result": "ok", "End": True}}}
    per_lb: State = {"StartAt": "call", "States": {
        "call": {"Type": "Task", "Resource": f"arn:aws:states:::aws-sdk:{service}:{api}",
                 "Parameters": {f"{param}.$": "$.lb"},
                 "ResultSelector": {"listed.$": listed}, "ResultPath": "$.r",
                 "Retry": [{"ErrorEquals": THROTTLING[service], "IntervalSeconds": 2,
                            "MaxAttempts": 6, "BackoffRate": 2.0}],
                 "Next": "ids"},
        "ids": _names("$.r.listed", field, "$.registered", "each"),
        "each": {"Type": "Map", "ItemsPath": "$.old_ids",
                 "ItemSelector": {"id.$": "$$.Map.Item.Value", "registered.$": "$.registered"},
                 "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **per_id},
                 "ResultPath": "$.marks", "Next": "any?"},
        "any?": {"Type": "Pass", "Parameters": {"no.$": "States.ArrayContains($.marks, '-')"},
                 "Next": "clear?"},
        "clear?": {"Type": "Choice", "Choices": [
            {"Variable": "$.no", "BooleanEquals": True, "Next": "registered"}],
            "Default": "clear"},
        "registered": {"Type": "Pass", "Result": "-", "End": True},
        "clear": {"Type": "Pass", "Result": "ok", "End": True}}}
    return {"Type": "Map", "ItemsPath": "$.plan.target_groups" if kind == "tg"
            else "$.plan.load_balancers",
            "ItemSelector": {"lb.$": "$$.Map.Item.Value", "old_ids.$": "$.old_ids"},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **per_lb},
            "ResultPath": f"$.w.{kind}_marks",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                       "Next": ctx.on_error}], "Next": next_}


def rollback(ctx: Ctx) -> States:
    """actions/rollback: the new ASG back to MinSize and desired 0; what --resume-processes
    resumed on it suspended again (with Terminate among them, once it is empty); then its
    launch template version back to the one it had when this run set it
    (`launch_template_version`), if it did."""
    s = ctx.name
    return {
        s(): task(ctx, "autoscaling", "updateAutoScalingGroup", {
            "AutoScalingGroupName.$": "$.plan.target", "MinSize": 0, "DesiredCapacity": 0},
            s("resumed?")),
        s("resumed?"): {"Type": "Choice", "Choices": [
            {**_resumed("target", "n"), "Next": s("terminate?")}],
            "Default": s("version?")},
        s("terminate?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.procs.target.terminate", "BooleanEquals": True, "Next": s("start")}],
            "Default": s("suspend")},
        s("start"): _pass(s("describe"), {"n": 0}, "$.poll"),
        s("describe"): _describe(ctx, "States.Array($.plan.target)", s("group"), "$.w"),
        s("group"): _pass(s("left"), {"g.$": "States.ArrayGetItem($.w.groups, 0)"}, "$.w"),
        s("left"): _pass(s("empty?"), {"n.$": "States.ArrayLength($.w.g.Instances)"}, "$.w"),
        s("empty?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.w.n", "NumericEquals": 0, "Next": s("suspend")}],
            "Default": s("count")},
        **_poll_loop(ctx, s("describe"), "the new ASG empty"),
        s("suspend"): task(ctx, "autoscaling", "suspendProcesses", {
            "AutoScalingGroupName.$": "$.plan.target", "ScalingProcesses.$": "$.procs.target.names"},
            s("version?")),
        s("version?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.plan.version.set", "IsPresent": True, "Next": s("version")}],
            "Default": ctx.to("rolled_back")},
        s("version"): _set_version(ctx, "$.plan.version.from", ctx.to("rolled_back")),
    }


def empty_target(ctx: Ctx) -> States:
    """Zero the ASG to empty first (its suspended Terminate resumed first, with
    --resume-processes) and poll until it has no instances left."""
    s = ctx.name
    return {
        s(): {"Type": "Choice", "Choices": [
            {**_resumed("target", "terminate"), "Next": s("resume")}], "Default": s("zero")},
        s("resume"): _resume_task(ctx, "$.plan.empty_first", ["Terminate"], s("zero")),
        s("zero"): task(ctx, "autoscaling", "updateAutoScalingGroup", {
            "AutoScalingGroupName.$": "$.plan.empty_first", "MinSize": 0, "DesiredCapacity": 0},
            s("start")),
        s("start"): _pass(s("describe"), {"n": 0}, "$.poll"),
        s("describe"): _describe(ctx, "States.Array($.plan.empty_first)", s("group"), "$.w"),
        s("group"): _pass(s("left"), {"g.$": "States.ArrayGetItem($.w.groups, 0)"}, "$.w"),
        s("left"): _pass(s("empty?"), {"n.$": "States.ArrayLength($.w.g.Instances)"}, "$.w"),
        s("empty?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.w.n", "NumericEquals": 0, "Next": ctx.to("emptied")}],
            "Default": s("count")},
        **_poll_loop(ctx, s("describe"), "an empty ASG"),
    }


APPROVAL_TASK = "arn:aws:states:::aws-sdk:s3:putObject.waitForTaskToken"


def approval(ctx: Ctx) -> States:
    """The lock record rewritten (IfMatch) with an `approval` object holding the task token,
    then the execution waits (.waitForTaskToken) up to the state's timeout.

    `abfsm approve` answers SendTaskSuccess with who decided and the lock's ETag (the
    execution never sees its own PutObject's answer), which becomes `$.lock.etag`. `abfsm
    reject` answers SendTaskFailure abfsm.Rejected (-> `rejected`); a timeout is the state's
    failure (abfsm.WaitTimeout), as on the local engine. On those paths the lock is read back
    to learn its ETag: still this run's record -> tracked; anything else -> the lock is lost
    (`STATE.lock-lost`: the run stops, nothing more changed).
    """
    s = ctx.name
    seconds, path = _timeout_of(ctx)
    def command(verb: str) -> str:  # actions/approval.approve_command's words
        return (f"States.Format('abfsm {verb} --environment {{}} --lock-bucket-name {{}}', "
                "$.settings.environment, $.settings.lock_bucket_name)")

    body = {**record(ctx.state, "running"),
            "approval": {
                "kind": KIND, "run_id.$": "$.run_id",
                "environment.$": "$.settings.environment", "state": ctx.state,
                "status": PENDING, "requested_at.$": NOW,
                "what": what(ctx.state, ctx.dests.get(APPROVED), ctx.dests.get(REJECTED)),
                "command.$": command("approve"), "reject.$": command("reject"),
                f"{TOKEN}.$": "$$.Task.Token"}}
    wait: State = {
        "Type": "Task", "Resource": APPROVAL_TASK,
        "Parameters": {"Bucket.$": "$.settings.lock_bucket_name", "Key.$": lock_key(),
                       "Body": body, "IfMatch.$": "$.lock.etag",
                       "ContentType": "application/json"},
        **({"TimeoutSecondsPath": path} if path else {"TimeoutSeconds": seconds}),
        "ResultSelector": {"etag.$": "$.etag", "decided_by.$": "$.decided_by",
                           "decided_at.$": "$.decided_at"},
        "ResultPath": "$.approval",
        "Retry": [{"ErrorEquals": THROTTLING["s3"], "IntervalSeconds": RETRY_INTERVAL_S,
                   "MaxAttempts": RETRY_MAX_ATTEMPTS, "BackoffRate": RETRY_BACKOFF_RATE}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": s("resync")}],
        "Next": s("approved")}
    resync = task(ctx, "s3", "getObject", {"Bucket.$": "$.settings.lock_bucket_name",
                                           "Key.$": lock_key()}, s("ours?"),
                  selector={"etag.$": "$.ETag", "body.$": "States.StringToJson($.Body)"},
                  result_path="$.found", catch=s("lost"))
    resync["Catch"][0]["ResultPath"] = "$.found"  # keep $.error: why the wait ended
    ours = {"And": [{"Variable": "$.found.body.run_id", "IsPresent": True},
                    {"Variable": "$.found.body.run_id", "StringEqualsPath": "$.run_id"}]}
    return {
        s(): wait,
        s("approved"): _pass(ctx.to(APPROVED), {"etag.$": "$.approval.etag"}, "$.lock"),
        s("resync"): resync,
        s("ours?"): {"Type": "Choice", "Choices": [{**ours, "Next": s("track")}],
                     "Default": s("lost")},
        s("track"): _pass(s("why?"), {"etag.$": "$.found.etag"}, "$.lock"),
        s("lost"): _pass(ctx.lock_lost, {
            "Error": "abfsm.LockLost",
            "Cause.$": "States.Format('{}.lock is no longer the record of this run (removed or "
                       "replaced while it waited for approval)', $.settings.environment)"},
            "$.error"),
        s("why?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.error.Error", "StringEquals": REJECTED_ERROR,
             "Next": ctx.routes.get(REJECTED, ctx.on_error)},
            {"Variable": "$.error.Error", "StringEquals": "States.Timeout",
             "Next": s("timed-out")}],
            "Default": ctx.on_error},
        s("timed-out"): _pass(ctx.on_error, {
            "Error": "abfsm.WaitTimeout",
            **({"Cause.$": f"States.Format('no decision after {{}} s', {path})"} if path
               else {"Cause": f"no decision after {seconds} s"})}, "$.error"),
    }


def _timeout_of(ctx: Ctx) -> tuple[int, str | None]:
    """(seconds, None) for a timeout in seconds; (0, path) for one naming a setting (the
    execution input's `$.limits.seconds`, whole seconds). None: --health-check-timeout."""
    value = "health_check_timeout" if ctx.timeout is None else ctx.timeout
    if isinstance(value, str):
        return 0, f"$.limits.seconds.{value}"
    return max(1, math.ceil(value)), None

# --- the gates: named load balancers, alarms (used by inspect and the waits) ---------------

def wait_for_lbs(ctx: Ctx, next_: str) -> States:
    """inspect's choice of the load balancers to wait for (actions/inspect.resolve_lbs), into
    `$.plan.load_balancers` / `$.plan.target_groups`: none with --no-elb-check; the ones
    named by --elb-name / --target-group-arn (only those), each verified attached to the
    target ASG or refused, nothing changed; else the target's attached ones (discovered)."""
    s = ctx.name
    count = "States.ArrayLength($.settings.{})"
    return {
        s("lbs"): {"Type": "Choice", "Choices": [
            {"Variable": "$.settings.no_elb_check", "BooleanEquals": True,
             "Next": s("lbs-none")}], "Default": s("lbs-named")},
        s("lbs-none"): {"Type": "Pass", "Result": [], "ResultPath": "$.plan.load_balancers",
                        "Next": s("lbs-none-tg")},
        s("lbs-none-tg"): {"Type": "Pass", "Result": [], "ResultPath": "$.plan.target_groups",
                           "Next": next_},
        s("lbs-named"): _pass(s("lbs-named?"), {"elb.$": count.format("elb_names"),
                                                "tg.$": count.format("target_group_arns")},
                              "$.named"),
        s("lbs-named?"): {"Type": "Choice", "Choices": [
            {"Or": [{"Variable": "$.named.elb", "NumericGreaterThan": 0},
                    {"Variable": "$.named.tg", "NumericGreaterThan": 0}],
             "Next": s("lbs-elb")}], "Default": next_},
        s("lbs-elb"): _attached(ctx, "$.settings.elb_names", "$.plan.load_balancers",
                                s("lbs-tg")),
        s("lbs-tg"): _attached(ctx, "$.settings.target_group_arns", "$.plan.target_groups",
                               s("lbs-use")),
        s("lbs-not-attached"): _refuse(
            "States.Format('inspect: {}; it is attached to classic ELB(s) {} and target "
            "group(s) {}. Nothing was changed', $.error.Cause, $.plan.load_balancers, "
            "$.plan.target_groups)", ctx.to("refuse")),
        s("lbs-use"): {"Type": "Pass", "InputPath": "$.settings.elb_names",
                       "ResultPath": "$.plan.load_balancers", "Next": s("lbs-use-tg")},
        s("lbs-use-tg"): {"Type": "Pass", "InputPath": "$.settings.target_group_arns",
                          "ResultPath": "$.plan.target_groups", "Next": next_},
    }


def _attached(ctx: Ctx, names: str, attached: str, next_: str) -> State:
    """A Map failing with abfsm.NotAttached at the first of `names` not in `attached`."""
    return {
        "Type": "Map", "ItemsPath": names, "MaxConcurrency": 1,
        "ItemSelector": {"name.$": "$$.Map.Item.Value", "attached.$": attached,
                         "asg.$": "$.plan.target"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "in", "States": {
            "in": {"Type": "Pass", "Parameters": {
                "in.$": "States.ArrayContains($.attached, $.name)",
                "cause.$": "States.Format('{} is not attached to {}', $.asg, $.name)"},
                "Next": "attached?"},
            "attached?": {"Type": "Choice", "Choices": [
                {"Variable": "$.in", "BooleanEquals": True, "Next": "yes"}], "Default": "no"},
            "yes": {"Type": "Pass", "End": True},
            "no": {"Type": "Fail", "Error": "abfsm.NotAttached", "CausePath": "$.cause"}}},
        "ResultPath": None,
        "Catch": [{"ErrorEquals": ["abfsm.NotAttached"], "ResultPath": "$.error",
                   "Next": ctx.name("lbs-not-attached")},
                  {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": ctx.on_error}],
        "Next": next_}


_ALARM_READ = {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"], "MaxRecords": 100}
_ALARMS_FOUND = {"metric.$": "$.MetricAlarms", "composite.$": "$.CompositeAlarms"}


def _alarm_watch(ctx: Ctx, next_: str, *, before_deploy: bool = False) -> States:
    """`STATE.alarms`: the watched alarms read, then `next_` (actions/alarms.py): one
    DescribeAlarms for the --alarm names (skipped without any: an empty AlarmNames would
    read every alarm) and one for --alarm-prefix. An alarm in ALARM, or a named one not
    found, fails the state (abfsm.AlarmFired); `before_deploy` (inspect) refuses instead,
    and a prefix that matches no alarm is refused too."""
    if ctx.params.get("alarms"):
        raise NoAslForm(f"params.alarms of {ctx.state!r} has no Step Functions form yet (pass "
                        "the alarms as --alarm flags)")
    s = ctx.name
    fired = s("alarm-refused") if before_deploy else ctx.on_error
    found = "States.MathAdd(States.ArrayLength($.watch.read.metric), " \
            "States.ArrayLength($.watch.read.composite))"
    out: States = {
        s("alarms"): _pass(s("alarms?"), {"names.$": "States.ArrayLength($.settings.alarms)"},
                           "$.watch"),
        s("alarms?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.watch.names", "NumericGreaterThan": 0, "Next": s("alarms-read")}],
            "Default": s("prefix?")},
        s("alarms-read"): task(ctx, "cloudwatch", "describeAlarms", {
            "AlarmNames.$": "$.settings.alarms", **_ALARM_READ}, s("alarms-firing"),
            selector=_ALARMS_FOUND, result_path="$.watch.read"),
        s("alarms-firing"): _firing(ctx, "$.watch.read.metric", s("alarms-firing-c"), fired),
        s("alarms-firing-c"): _firing(ctx, "$.watch.read.composite", s("alarms-found"), fired),
        s("alarms-found"): _pass(s("alarms-all?"), {"names.$": "$.watch.names",
                                                    "found.$": found}, "$.watch"),
        s("alarms-all?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.watch.found", "NumericLessThanPath": "$.watch.names",
             "Next": s("alarms-missing")}], "Default": s("prefix?")},
        s("prefix?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.settings.alarm_prefix", "IsString": True,
             "Next": s("prefix-read")}], "Default": next_},
        s("prefix-read"): task(ctx, "cloudwatch", "describeAlarms", {
            "AlarmNamePrefix.$": "$.settings.alarm_prefix", **_ALARM_READ},
            s("prefix-firing"), selector=_ALARMS_FOUND, result_path="$.watch.read"),
        s("prefix-firing"): _firing(ctx, "$.watch.read.metric", s("prefix-firing-c"), fired),
    }
    if not before_deploy:
        out[s("prefix-firing-c")] = _firing(ctx, "$.watch.read.composite", next_, fired)
        out[s("alarms-missing")] = _pass(ctx.on_error, {
            "Error": "abfsm.AlarmFired",
            "Cause.$": "States.Format('of the watched CloudWatch alarms {} only {} exist; the "
                       "gate cannot say yes', $.settings.alarms, $.watch.found)"}, "$.error")
        return out
    out |= {
        s("prefix-firing-c"): _firing(ctx, "$.watch.read.composite", s("prefix-found"), fired),
        s("prefix-found"): _pass(s("prefix-any?"), {"found.$": found}, "$.watch"),
        s("prefix-any?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.watch.found", "NumericEquals": 0, "Next": s("prefix-none")}],
            "Default": next_},
        s("prefix-none"): _refuse(
            "States.Format('inspect: no CloudWatch alarm starts with {} (--alarm-prefix)', "
            "$.settings.alarm_prefix)", ctx.to("refuse")),
        s("alarms-missing"): _refuse(
            "States.Format('inspect: of the CloudWatch alarms {} only {} exist (--alarm names "
            "an existing alarm; check the name and the region)', $.settings.alarms, "
            "$.watch.found)", ctx.to("refuse")),
        s("alarm-refused"): _refuse(
            "States.Format('inspect: {}; nothing was changed (deploying into a firing alarm "
            "is refused)', $.error.Cause)", ctx.to("refuse")),
    }
    return out


def launch_template_version(ctx: Ctx, next_: str) -> States:
    """--launch-template-version V (inspect, last, right before the first scale step): the
    target ASG re-read; one launching from a launch configuration or from no template is
    refused, as is a MixedInstancesPolicy (not compiled yet); else one UpdateAutoScalingGroup
    sets its LaunchTemplate to V, and `$.plan.version` keeps the version it had (`from`) for
    rollback. V is sent as given: no ec2 call resolves `$Latest` / `$Default` to a number or
    checks that V exists (`deploy` does, with ec2:DescribeLaunchTemplateVersions)."""
    s = ctx.name
    lt = "$.v.g.LaunchTemplate"
    return {
        s("version"): {"Type": "Choice", "Choices": [
            {"Variable": "$.settings.launch_template_version", "IsString": True,
             "Next": s("version-read")}], "Default": next_},
        s("version-read"): _describe(ctx, "States.Array($.plan.target)", s("version-group"),
                                     "$.v"),
        s("version-group"): _pass(s("version-from?"),
                                  {"g.$": "States.ArrayGetItem($.v.groups, 0)"}, "$.v"),
        s("version-from?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.v.g.MixedInstancesPolicy", "IsPresent": True,
             "Next": s("version-mixed")},
            {"Variable": lt, "IsPresent": True, "Next": s("version-plan")},
            {"Variable": "$.v.g.LaunchConfigurationName", "IsPresent": True,
             "Next": s("version-lc")}], "Default": s("version-none")},
        s("version-mixed"): _refuse(
            "States.Format('inspect: {} launches through a MixedInstancesPolicy, which "
            "--launch-template-version does not set on the Step Functions engine yet; nothing "
            "was changed (use abfsm deploy)', $.plan.target)", ctx.to("refuse")),
        s("version-lc"): _refuse(
            "States.Format('inspect: {} launches from launch configuration {}; "
            "--launch-template-version needs a launch template. Nothing was changed. Migrate "
            "the group to a launch template first', $.plan.target, "
            "$.v.g.LaunchConfigurationName)", ctx.to("refuse")),
        s("version-none"): _refuse(
            "States.Format('inspect: {} names no launch template; nothing was changed', "
            "$.plan.target)", ctx.to("refuse")),
        s("version-plan"): _pass(s("version-set"), {
            "template_id.$": f"{lt}.LaunchTemplateId",
            "template_name.$": f"{lt}.LaunchTemplateName", "from.$": f"{lt}.Version",
            "to.$": "$.settings.launch_template_version"}, "$.plan.version"),
        s("version-set"): _set_version(ctx, "$.plan.version.to", s("version-done")),
        s("version-done"): {"Type": "Pass", "Result": True, "ResultPath": "$.plan.version.set",
                            "Next": next_},
    }


def _set_version(ctx: Ctx, version: str, next_: str) -> State:
    """One UpdateAutoScalingGroup setting the target's launch template to `version` (a path)."""
    return task(ctx, "autoscaling", "updateAutoScalingGroup", {
        "AutoScalingGroupName.$": "$.plan.target",
        "LaunchTemplate": {"LaunchTemplateId.$": "$.plan.version.template_id",
                           "Version.$": version}}, next_)


def _firing(ctx: Ctx, alarms: str, next_: str, fired: str) -> State:
    """A Map failing with abfsm.AlarmFired (naming the alarm and its StateReason) at the
    first of `alarms` (DescribeAlarms answers) in ALARM; caught into `$.error` -> `fired`."""
    return {
        "Type": "Map", "ItemsPath": alarms, "MaxConcurrency": 1,
        "ItemSelector": {"a.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "firing?", "States": {
            "firing?": {"Type": "Choice", "Choices": [
                {"Variable": "$.a.StateValue", "StringEquals": "ALARM", "Next": "why"}],
                "Default": "ok"},
            "why": {"Type": "Pass", "Parameters": {
                "cause.$": "States.Format('alarm {} is in ALARM: {}', $.a.AlarmName, "
                           "$.a.StateReason)"}, "Next": "fired"},
            "fired": {"Type": "Fail", "Error": "abfsm.AlarmFired", "CausePath": "$.cause"},
            "ok": {"Type": "Pass", "End": True}}},
        "ResultPath": None,
        "Catch": [{"ErrorEquals": ["abfsm.AlarmFired"], "ResultPath": "$.error", "Next": fired},
                  {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": ctx.on_error}],
        "Next": next_}


FRAGMENTS: dict[str, Callable[[Ctx], States]] = {
    "acquire_lock": acquire_lock, "inspect": inspect, "empty_target": empty_target,
    "scale_step": scale_step, "wait_instances": wait_instances, "wait_elb": wait_elb,
    "bake": bake, "drain": drain, "rollback": rollback, "approval": approval,
}
