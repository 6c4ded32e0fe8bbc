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
current ETag), `$.plan` (what inspect decided, the load balancers to wait for included),
`$.count` (the target count and the current step), `$.move` (the last transition), `$.hist`
(the history: `list`, and `text`, the same entries as JSON each followed by a comma, which is
how an entry is appended without JSONata), `$.record` (the run record last built), `$.error`,
and the scratch of the gates: `$.named`, `$.watch` (alarms read this poll), `$.bake`
(seconds, elapsed). The compiler builds the entries of the spec states
(abfsm/sfn/compiler.py); `record()` and `save()` are what they and the waits' heartbeats use.

What this preview does not compile yet is refused by `sfn start` before any AWS call
(abfsm/sfn/engine.py UNSUPPORTED) rather than being approximated here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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
    """Both ASGs described (one call each), then the A/B decision of actions/inspect.decide()
    for one or no populated ASG, --zero and --instance-count(-match, -step)."""
    s = ctx.name
    a, b = "States.Format('{}-a', $.settings.environment)", "States.Format('{}-b', $.settings.environment)"
    populated_a = {"Variable": "$.g.a.DesiredCapacity", "NumericGreaterThan": 0}
    populated_b = {"Variable": "$.g.b.DesiredCapacity", "NumericGreaterThan": 0}
    zero = {"Variable": "$.settings.zero", "BooleanEquals": True}

    def ab(active: str | None, target: str) -> State:
        plan: State = {"mode": "ab", "target.$": f"$.g.{target}.AutoScalingGroupName",
                       "target_max.$": f"$.g.{target}.MaxSize",
                       "target_groups.$": f"$.g.{target}.TargetGroupARNs",
                       "load_balancers.$": f"$.g.{target}.LoadBalancerNames"}
        if active:
            plan |= {"active.$": f"$.g.{active}.AutoScalingGroupName",
                     "active_count.$": f"$.g.{active}.DesiredCapacity"}
        else:
            plan |= {"active": None, "active_count": 0}
        return _pass(s("count"), plan, "$.plan")

    def zero_plan(active: str | None, next_: str) -> State:
        plan: State = {"mode": "zero", "target": None}
        plan |= ({"active.$": f"$.g.{active}.AutoScalingGroupName",
                  "active_count.$": f"$.g.{active}.DesiredCapacity"} if active
                 else {"active": None, "active_count": 0})
        return _pass(next_, plan, "$.plan")

    both = ("States.Format('both {} (desired {}) and {} (desired {}) have instances; nothing "
            "was changed. Zero one by hand', $.g.a.AutoScalingGroupName, $.g.a.DesiredCapacity, "
            "$.g.b.AutoScalingGroupName, $.g.b.DesiredCapacity)")
    return {
        s(): _describe(ctx, f"States.Array({a})", s("b"), "$.a"),
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
        s("pick"): _pass(s("decide"), {"a.$": "States.ArrayGetItem($.a.groups, 0)",
                                       "b.$": "States.ArrayGetItem($.b.groups, 0)"}, "$.g"),
        s("decide"): {"Type": "Choice", "Choices": [
            {"And": [zero, populated_a, populated_b], "Next": s("both")},
            {"And": [zero, populated_a], "Next": s("zero-a")},
            {"And": [zero, populated_b], "Next": s("zero-b")},
            {**zero, "Next": s("zero-none")},
            {"And": [populated_a, populated_b], "Next": s("both")},
            {**populated_a, "Next": s("ab-a")},
            {**populated_b, "Next": s("ab-b")}],
            "Default": s("ab-none")},
        s("both"): _refuse(both, ctx.to("refuse")),
        s("zero-a"): zero_plan("a", ctx.to("zero")),
        s("zero-b"): zero_plan("b", ctx.to("zero")),
        s("zero-none"): zero_plan(None, ctx.to("nothing_to_do")),
        s("ab-a"): ab("a", "b"),
        s("ab-b"): ab("b", "a"),
        s("ab-none"): ab(None, "a"),
        s("count"): {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.settings.instance_count_match", "BooleanEquals": True},
                     {"Variable": "$.plan.active_count", "NumericEquals": 0}],
             "Next": s("nothing-to-match")},
            {"Variable": "$.settings.instance_count_match", "BooleanEquals": True,
             "Next": s("match")}],
            "Default": s("given")},
        s("nothing-to-match"): _refuse(
            "--instance-count-match: neither ASG has instances to match; pass "
            "--instance-count instead", ctx.to("refuse")),
        s("match"): _pass(s("step?"), {"n.$": "$.plan.active_count"}, "$.count"),
        s("given"): _pass(s("step?"), {"n.$": "$.settings.instance_count"}, "$.count"),
        # steps: desired = min(step, count), then +step each time, capped at count
        s("step?"): {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.settings.instance_count_step", "IsNumeric": True},
                     {"Variable": "$.settings.instance_count_step",
                      "NumericLessThanPath": "$.count.n"}], "Next": s("stepped")}],
            "Default": s("one-step")},
        s("stepped"): _pass(s("lbs"), {"n.$": "$.count.n",
                                       "step.$": "$.settings.instance_count_step",
                                       "desired.$": "$.settings.instance_count_step"},
                            "$.count"),
        s("one-step"): _pass(s("lbs"), {"n.$": "$.count.n", "step.$": "$.count.n",
                                        "desired.$": "$.count.n"}, "$.count"),
        # the gates before anything changes: the load balancers to wait for, the alarms
        **wait_for_lbs(ctx, s("alarms")),
        **_alarm_watch(ctx, s("version"), before_deploy=True),
        **launch_template_version(ctx, ctx.to("deploy")),
    }


def scale_step(ctx: Ctx) -> States:
    """UpdateAutoScalingGroup to the step's absolute desired capacity (MaxSize raised to the
    target count in the same call when the count needs it)."""
    s = ctx.name
    return {
        s(): {"Type": "Choice", "Choices": [
            {"Variable": "$.count.n", "NumericGreaterThanPath": "$.plan.target_max",
             "Next": s("raise")}], "Default": s("update")},
        s("raise"): task(ctx, "autoscaling", "updateAutoScalingGroup", {
            "AutoScalingGroupName.$": "$.plan.target", "DesiredCapacity.$": "$.count.desired",
            "MaxSize.$": "$.count.n"}, ctx.to("scaled")),
        s("update"): task(ctx, "autoscaling", "updateAutoScalingGroup", {
            "AutoScalingGroupName.$": "$.plan.target", "DesiredCapacity.$": "$.count.desired"},
            ctx.to("scaled")),
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


def _serving(ctx: Ctx, next_: str, *, in_asg: bool = False) -> State:
    """An inline Map over the target ASG's instances (`$.w.g.Instances`) marking each "ok"
    when it is healthy in every target group and InService in every classic ELB of the plan
    (and, `in_asg`, InService and Healthy in the ASG), else "-"; marks in `$.w.marks`."""
    per_instance: State = {"StartAt": "tg", "States": {
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
    """The old ASG (the active one, when it is not the target) to MinSize and desired 0."""
    s = ctx.name
    return {
        s(): {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.plan.active", "IsPresent": True},
                     {"Variable": "$.plan.active", "IsNull": False}], "Next": s("zero")}],
            "Default": ctx.to("drained")},
        s("zero"): task(ctx, "autoscaling", "updateAutoScalingGroup", {
            "AutoScalingGroupName.$": "$.plan.active", "MinSize": 0, "DesiredCapacity": 0},
            ctx.to("drained")),
    }


def rollback(ctx: Ctx) -> States:
    """The new ASG to MinSize and desired 0, then its launch template version back to the
    one it had when this run set it (`launch_template_version`), if it did."""
    s = ctx.name
    return {
        s(): task(ctx, "autoscaling", "updateAutoScalingGroup", {
            "AutoScalingGroupName.$": "$.plan.target", "MinSize": 0, "DesiredCapacity": 0},
            s("version?")),
        s("version?"): {"Type": "Choice", "Choices": [
            {"Variable": "$.plan.version.set", "IsPresent": True, "Next": s("version")}],
            "Default": ctx.to("rolled_back")},
        s("version"): _set_version(ctx, "$.plan.version.from", ctx.to("rolled_back")),
    }


def empty_target(ctx: Ctx) -> States:
    """Zero the ASG to empty first and poll until it has no instances left."""
    s = ctx.name
    return {
        s(): task(ctx, "autoscaling", "updateAutoScalingGroup", {
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
    "bake": bake, "drain": drain, "rollback": rollback,
}
