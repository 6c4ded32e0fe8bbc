"""inspect: one DescribeAutoScalingGroups for both ASGs, then decide everything.

`decide()` is pure (settings + groups + serving counts in, plan + trigger out) so every
decision is unit-tested without AWS: active/target choice, counts, steps, both populated,
clean-up, nothing to zero, single ASG, load balancer attachment, MaxSize.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abfsm.actions import alarms, processes, version
from abfsm.actions.base import AwsCall, Run, action, describe_asg
from abfsm.actions.health import lb_health_calls, lb_members, serving_counts, short_lb
from abfsm.actions.planning import Walk, declared_action, walk
from abfsm.aws.autoscaling import Group
from abfsm.context import Plan, Settings
from abfsm.errors import Refused, UsageError
from abfsm.log import lb_source_text


def asg_names(settings: Settings) -> list[str]:
    env = settings.environment
    return [env] if settings.single_asg else [f"{env}-a", f"{env}-b"]


def _calls(settings: Settings, params: Mapping[str, Any]) -> list[AwsCall]:
    calls = [describe_asg("asg:pair")]
    if not settings.single_asg and not settings.zero and settings.clean_up:
        calls += lb_health_calls(settings, even_unchecked=True)  # who serves more
    if not settings.no_elb_check and (settings.target_group_arns or not settings.elb_names):
        calls.append(AwsCall("elbv2", "DescribeTargetGroupAttributes", resource="target-group"))
    if version.wanted(settings):
        calls.append(AwsCall("ec2", "DescribeLaunchTemplateVersions", resource="launch-template"))
    return calls + alarms.alarm_calls(settings)  # the alarms exist and none fires


@action({"deploy", "empty_first", "zero", "nothing_to_do", "dry_run"}, before_plan=True,
        calls=_calls,
        doc="one DescribeAutoScalingGroups for both ASGs, then decide active/target, counts, "
            "steps and load balancers (or refuse)")
def inspect(run: Run) -> str:
    settings = run.settings
    names = asg_names(settings)
    groups = run.aws.autoscaling.describe(names)
    missing = [n for n in names if n not in groups]
    if missing:
        what = "--single-asg uses the ASG named ENV" if settings.single_asg else \
            "abfsm deploys the pair ENV-a / ENV-b"
        raise Refused(f"inspect: Auto Scaling group {' and '.join(missing)} not found "
                      f"({what}; check --environment and the region)")
    serving = None
    if needs_serving_counts(settings, groups):
        members = lb_members(run.aws, *_all_lbs(settings, groups))
        serving = serving_counts(members, {n: [i.id for i in g.instances] for n, g in groups.items()})
    plan, trigger = decide(settings, groups, serving)
    check_processes(plan, groups, resume=settings.resume_processes)
    version.decide(run, plan, groups)  # what the target launches (reads only; may refuse)
    if trigger in ("deploy", "empty_first"):
        alarms.check_before_deploy(run)  # a missing or firing alarm refuses (exit 3)
    if (plan.load_balancers or plan.target_groups) and not waits_for_load_balancers(run):
        plan.lb_source = f"not waited for: no state of {run.spec.path} waits for them"
    for arn in plan.target_groups:
        plan.deregistration_delays[arn] = run.aws.elbv2.deregistration_delay(arn)
    run.plan = plan
    run.log.info("inspect.decided", trigger=trigger, mode=plan.mode, active=plan.active,
                 target=plan.target, active_count=plan.active_count,
                 target_count=plan.target_count, steps=plan.steps,
                 empty_first=plan.empty_first, load_balancers=plan.load_balancers,
                 target_groups=plan.target_groups, lb_source=plan.lb_source,
                 serving=serving)
    if plan.raise_max_to:
        run.log.warning("inspect.raise_max", asg=plan.target, max_size=plan.target_max,
                        raise_to=plan.raise_max_to)
    if plan.target and plan.target_min > 0:
        run.log.warning("inspect.min_size", asg=plan.target, min_size=plan.target_min,
                        first_step=plan.steps[0],
                        restored_to=min(plan.target_min, plan.target_count))
    if settings.dry_run and trigger != "nothing_to_do":
        run.log.info("plan", lines=plan_lines(run, trigger, groups),
                     calls=planned_calls(run, trigger))
        return "dry_run"
    return trigger


def needs_serving_counts(settings: Settings, groups: dict[str, Group]) -> bool:
    return (not settings.single_asg and not settings.zero and settings.clean_up
            and all(g.populated for g in groups.values()))


def decide(settings: Settings, groups: dict[str, Group],
           serving: dict[str, int] | None = None) -> tuple[Plan, str]:
    """Pure: choose active/target, counts and steps, or refuse."""
    plan = Plan()
    if settings.single_asg:
        return _decide_single(settings, groups[settings.environment], plan)
    a, b = (groups[n] for n in asg_names(settings))
    populated = [g for g in (a, b) if g.populated]

    if settings.zero:
        plan.mode = "zero"
        if not populated:
            return plan, "nothing_to_do"
        if len(populated) == 2:
            raise Refused(f"both {a.name} ({_count(a)}) and {b.name} ({_count(b)}) have instances; "
                          "--zero will not guess which one to zero")
        plan.active, plan.active_count = populated[0].name, populated[0].desired
        return plan, "zero"

    plan.mode = "ab"
    trigger = "deploy"
    if len(populated) == 2:
        if not settings.clean_up:
            raise Refused(f"both {a.name} ({_count(a)}) and {b.name} ({_count(b)}) have instances; "
                          "nothing was changed. Zero one by hand, or pass --clean-up to zero the "
                          "one serving fewer healthy instances in the load balancer first")
        serving = serving or {}
        sa, sb = serving.get(a.name, 0), serving.get(b.name, 0)
        if sa == sb:
            raise Refused(f"--clean-up: {a.name} and {b.name} both serve {sa} healthy instance(s) "
                          "in the load balancer; refusing to pick one to zero")
        active, target = (a, b) if sa > sb else (b, a)
        plan.empty_first = target.name
        trigger = "empty_first"
    elif len(populated) == 1:
        active = populated[0]
        target = b if active is a else a
    else:
        active, target = None, a

    plan.active = active.name if active else None
    plan.active_count = active.desired if active else 0
    plan.target = target.name
    if settings.instance_count_match:
        if active is None:
            raise Refused(f"--instance-count-match: neither {a.name} nor {b.name} has instances "
                          "to match; pass --instance-count instead")
        count = active.desired
    else:
        count = settings.instance_count
    _fill(plan, settings, target, count)
    return plan, trigger


def check_processes(plan: Plan, groups: dict[str, Group], *, resume: bool = False) -> None:
    """Refuse a plan that a suspended scaling process would silently stall: a target that
    cannot Launch, or an ASG to drain or empty that cannot Terminate (see actions/processes:
    with `resume`, the processes to resume for the run are recorded instead)."""
    processes.decide(plan, groups, resume=resume)


def _decide_single(settings: Settings, group: Group, plan: Plan) -> tuple[Plan, str]:
    plan.mode = "zero" if settings.zero else "single"
    if settings.zero:
        if not group.populated:
            return plan, "nothing_to_do"
        plan.active, plan.active_count = group.name, group.desired
        return plan, "zero"
    plan.target = group.name
    plan.active_count = group.desired
    if settings.instance_count_match:
        if not group.populated:
            raise Refused(f"--instance-count-match: {group.name} has no instances to match; "
                          "pass --instance-count instead")
        count = group.desired
    else:
        count = settings.instance_count
    _fill(plan, settings, group, count)
    if group.populated:
        plan.empty_first = group.name
        return plan, "empty_first"
    return plan, "deploy"


def _fill(plan: Plan, settings: Settings, target: Group, count: int) -> None:
    if count < 1:
        raise UsageError(f"instance count must be at least 1, got {count}")
    step = min(settings.instance_count_step or count, count)
    plan.target_count = count
    plan.steps = list(range(step, count, step)) + [count]
    plan.step_index = 0
    plan.target_min, plan.target_max = target.min_size, target.max_size
    if count > target.max_size:
        plan.raise_max_to = count
    plan.load_balancers, plan.target_groups, plan.lb_source = resolve_lbs(settings, target)


def resolve_lbs(settings: Settings, target: Group) -> tuple[list[str], list[str], str]:
    """The load balancers to wait for: the named ones (verified attached) or the discovered."""
    if settings.no_elb_check:
        return [], [], "skipped (--no-elb-check)"
    if settings.elb_names or settings.target_group_arns:
        attached_lbs = set(target.load_balancer_names)
        attached_tgs = set(target.target_group_arns)
        wrong = [n for n in settings.elb_names if n not in attached_lbs]
        wrong += [short_lb(t) for t in settings.target_group_arns if t not in attached_tgs]
        if wrong:
            raise Refused(f"inspect: {target.name} is not attached to {', '.join(wrong)}; "
                          f"it is attached to {_attachments(target)}. Nothing was changed")
        return list(settings.elb_names), list(settings.target_group_arns), "flags"
    lbs, tgs = list(target.load_balancer_names), list(target.target_group_arns)
    return lbs, tgs, "discovered" if lbs or tgs else "none attached"


def _all_lbs(settings: Settings, groups: dict[str, Group]) -> tuple[list[str], list[str]]:
    if settings.elb_names or settings.target_group_arns:
        return list(settings.elb_names), list(settings.target_group_arns)
    lbs = sorted({n for g in groups.values() for n in g.load_balancer_names})
    tgs = sorted({t for g in groups.values() for t in g.target_group_arns})
    return lbs, tgs


def _attachments(group: Group) -> str:
    parts = [f"ELB {n}" for n in group.load_balancer_names]
    parts += [short_lb(t) for t in group.target_group_arns]
    return ", ".join(parts) if parts else "no load balancer"


def _count(group: Group) -> str:
    return f"desired {group.desired}, {len(group.instances)} instance(s)"


def plan_lines(run: Run, trigger: str, groups: dict[str, Group]) -> list[str]:
    settings, plan = run.settings, run.plan
    walked = walk(run, trigger)
    lines = [f"environment   {settings.environment} (mode {plan.mode})"]
    if plan.active:
        fate = ("drained to 0" if _changes(run, walked.path, "asg:active")
                else f"left as it is (no state of {run.spec.path} changes it)")
        lines.append(f"active ASG    {plan.active} ({_count(groups[plan.active])}) -> {fate}")
    if plan.target:
        lines.append(f"target ASG    {plan.target} ({_count(groups[plan.target])}) -> "
                     f"{plan.target_count} instance(s)")
        lines.append(f"steps         desired capacity {' -> '.join(map(str, plan.steps))}")
    if plan.empty_first:
        lines.append(f"empty first   {plan.empty_first} (zeroed and waited for before filling)")
    if plan.raise_max_to:
        lines.append(f"max size      {plan.target} MaxSize {plan.target_max} -> {plan.raise_max_to}")
    if plan.target and plan.target_min > 0:
        lines.append(f"min size      {plan.target} MinSize {plan.target_min}: set to each step's "
                     f"capacity up to {min(plan.target_min, plan.target_count)} (restored)")
    if plan.target:
        lbs = plan.load_balancers + [short_lb(t) for t in plan.target_groups]
        shown = ", ".join(lbs) if lbs else "no load balancer"
        lines.append(f"wait for      {shown} ({lb_source_text(plan.lb_source, plan.target)})")
    waits = ("drain waits for it, --wait-for-scale-down" if settings.wait_for_scale_down
             else "drain does not wait; pass --wait-for-scale-down to wait")
    for arn, delay in plan.deregistration_delays.items():
        lines.append(f"draining      {short_lb(arn)} deregistration delay {delay} s ({waits})")
    lines += version.plan_lines(plan) + processes.plan_lines(plan)
    lines.append(f"path          {' -> '.join([run.state, *walked.path, walked.final])}")
    lines.append("would call:")
    lines += [f"  {c}" for c in planned_calls(run, trigger, walked)]
    return lines


def planned_calls(run: Run, trigger: str, walked: Walk | None = None) -> list[str]:
    """The mutating calls a real run would make, in order: the lock, then each state's on the
    spec's path from inspect's decision, then what the final state does with the lock."""
    settings = run.settings
    walked = walked or walk(run, trigger)
    if settings.lock_bucket_name:
        lock = f"s3 PutObject {settings.lock_bucket_name}/{settings.environment}.lock (If-None-Match: *)"
    else:
        lock = f"local lock file {settings.state_dir}/{settings.environment}.lock"
    final = run.spec.states[walked.final]
    if final.keeps_lock:
        end = f"keep the lock ({walked.final} keeps it)"
    else:
        end = "release the lock" + (" (s3 PutObject run record, DeleteObject lock)"
                                    if settings.lock_bucket_name else "")
    return [lock, *walked.calls, end]


def _changes(run: Run, states: list[str], resource: str) -> bool:
    """Whether any of `states` declares a mutating call on `resource` (e.g. asg:active)."""
    for state in states:
        calls = declared_action(run, state).aws_calls(run.settings, run.spec.states[state].params)
        if any(c.mutating and c.resource == resource for c in calls):
            return True
    return False


def waits_for_load_balancers(run: Run) -> bool:
    """Whether a later state of the spec reads load balancer health (wait-elb does)."""
    for name, st in run.spec.states.items():
        if st.final or name == run.state:
            continue
        calls = declared_action(run, name).aws_calls(run.settings, st.params)
        if any(not c.mutating and c.resource in ("elb", "target-group") for c in calls):
            return True
    return False
