"""What gets deployed: the target ASG's launch template version.

`--launch-template-version V` (a number, `$Latest` or `$Default`) or `--image-id AMI` (a new
version of the target's template: a copy of the version it uses now with that ImageId).

- inspect (`decide`): one DescribeLaunchTemplateVersions resolves the target's current
  version, `$Latest` and the asked one to numbers. A launch configuration is refused; so is
  `--image-id` while the active ASG tracks `$Latest` of the same template (the new version
  would change what the active ASG launches on its next scale-out). Nothing is written.
- the first scale step (`apply`, through actions/ship.py): with --image-id, find the version
  this run created (its VersionDescription names the run) among the versions newer than the
  latest at inspect, or create it; then set the target to that number. A resume after a kill
  while CreateLaunchTemplateVersion was in flight finds it and creates no second one.
- rollback (`restore`): the target back to the number it ran before (a number, never
  `$Latest`: that would now be the new version).

The active ASG's version and the template's default version are never changed.
"""

from __future__ import annotations

from abfsm.actions.base import Run
from abfsm.aws.autoscaling import Group, TemplateRef, describe_update, launch_template_params
from abfsm.context import Plan, Settings
from abfsm.errors import AwsError, Refused

MIGRATE = ("https://docs.aws.amazon.com/autoscaling/ec2/userguide/"
           "migrate-launch-configurations.html")


def wanted(settings: Settings) -> bool:
    return bool(settings.launch_template_version or settings.image_id)


def description(env: str, run_id: str, image_id: str, source: int) -> str:
    """The new version's VersionDescription: names the run, so a resume finds it."""
    return f"abfsm {env} run {run_id}: ImageId {image_id} from version {source}"[:255]


def template_of(group: Group) -> TemplateRef:
    """The group's launch template, or Refused (a launch configuration names the migration)."""
    if group.launch_template and group.launch_template.id:
        return group.launch_template
    if group.launch_configuration:
        raise Refused(
            f"inspect: {group.name} launches from launch configuration "
            f"{group.launch_configuration}; --launch-template-version / --image-id need a "
            f"launch template. Nothing was changed. Migrate the group to a launch template "
            f"first (console: Launch configurations > Copy to launch template; see {MIGRATE}), "
            f"then: aws autoscaling update-auto-scaling-group --auto-scaling-group-name "
            f"{group.name} --launch-template LaunchTemplateName=NAME,Version=N")
    raise Refused(f"inspect: {group.name} names no launch template; nothing was changed")


def decide(run: Run, plan: Plan, groups: dict[str, Group]) -> None:
    """Resolve what the target will launch (inspect). Reads only; refuses before any change."""
    plan.versions = {name: g.runs for name, g in groups.items()}
    settings = run.settings
    if not wanted(settings) or not plan.target:
        return
    target = groups[plan.target]
    ref = template_of(target)
    current = ref.version or "$Default"
    asked = [current, "$Latest"]
    if settings.launch_template_version:
        asked.append(settings.launch_template_version)
    try:
        found = run.aws.launch_templates.versions(ref.id, asked)
    except AwsError as exc:
        if "NotFound" not in str(exc):
            raise
        raise Refused(f"inspect: launch template {ref.name or ref.id} has no version "
                      f"{settings.launch_template_version or current} ({exc}); nothing was "
                      "changed") from None
    missing = [v for v in asked if v not in found]
    if missing:
        raise Refused(f"inspect: launch template {ref.name or ref.id} has no version "
                      f"{', '.join(missing)}; nothing was changed")
    plan.template_id = ref.id
    plan.template_name = found["$Latest"].template_name or ref.name
    plan.version_from, plan.version_from_number = current, found[current].number
    plan.latest_version = found["$Latest"].number
    plan.mixed_policy = target.mixed_policy is not None
    chosen = found[settings.launch_template_version].number if settings.launch_template_version \
        else None
    if settings.image_id:
        _refuse_active_on_latest(plan, groups, ref)
        plan.image_id = settings.image_id
        plan.source_version = chosen if chosen is not None else plan.version_from_number
        plan.version_description = description(settings.environment, run.record.run_id,
                                               settings.image_id, plan.source_version)
    else:
        plan.version = chosen
    run.log.info("version.decided", asg=plan.target, template=plan.template_name,
                 version_from=plan.version_from, version_from_number=plan.version_from_number,
                 version=plan.version, image_id=plan.image_id, source_version=plan.source_version,
                 latest_version=plan.latest_version, mixed_policy=plan.mixed_policy)


def _refuse_active_on_latest(plan: Plan, groups: dict[str, Group], ref: TemplateRef) -> None:
    active = groups.get(plan.active) if plan.active and plan.active != plan.target else None
    theirs = active.launch_template if active else None
    if active is None or theirs is None or theirs.id != ref.id or theirs.version != "$Latest":
        return
    if active.mixed_policy:
        how = (f"set Version to {plan.latest_version} in its MixedInstancesPolicy's "
               "LaunchTemplateSpecification (aws autoscaling update-auto-scaling-group "
               f"--auto-scaling-group-name {active.name} --mixed-instances-policy file://policy.json)")
    else:
        how = (f"aws autoscaling update-auto-scaling-group --auto-scaling-group-name "
               f"{active.name} --launch-template LaunchTemplateId={ref.id},"
               f"Version={plan.latest_version}")
    raise Refused(f"inspect: {active.name} (active) tracks $Latest of launch template "
                  f"{plan.template_name}, so the version --image-id would create is what it "
                  f"launches on its next scale-out; nothing was changed. Pin it to the version "
                  f"it runs first: {how}")


def ensure_version(run: Run) -> int:
    """The number to set; with --image-id the version this run created, found or created."""
    plan = run.plan
    if plan.version is not None:
        return plan.version
    assert plan.template_id and plan.image_id and plan.source_version is not None
    newer = run.aws.launch_templates.versions_after(plan.template_id, plan.latest_version or 0)
    mine = [v for v in newer if v.description == plan.version_description]
    if mine:
        made, reused = mine[0], True
    else:
        made = run.aws.launch_templates.create_version(plan.template_id, source_version=plan.source_version,
                                          image_id=plan.image_id,
                                          description=plan.version_description or "")
        reused = False
    plan.version = made.number
    run.heartbeat()  # on record before anything else happens
    run.log.info("version.created", template=plan.template_name, version=made.number,
                 source_version=plan.source_version, image_id=plan.image_id, reused=reused)
    return made.number


def apply(run: Run) -> None:
    """Set the target to the decided version (before the first scale step)."""
    plan = run.plan
    number = ensure_version(run)
    plan.version_set = True  # before the call: a rollback after a crash restores anyway
    run.heartbeat()
    _set(run, number, reason="deploy")


def restore(run: Run) -> None:
    """Set the target back to the version it ran before this run (rollback)."""
    plan = run.plan
    if not plan.version_set or plan.version_from_number is None:
        return
    _set(run, plan.version_from_number, reason="rollback")
    plan.version_set = False


def _set(run: Run, number: int, *, reason: str) -> None:
    plan = run.plan
    target: str = plan.target  # type: ignore[assignment]
    policy = None
    if plan.mixed_policy:  # re-sent whole, as the group has it now
        group = run.aws.autoscaling.describe([target]).get(target)
        policy = group.mixed_policy if group else None
    run.aws.autoscaling.set_launch_template(target, plan.template_id or "", number,
                                            mixed_policy=policy)
    plan.versions[target] = f"{plan.template_name} v{number}"
    run.log.info("version.set", asg=target, template=plan.template_name, version=number,
                 reason=reason)


def planned_restore(plan: Plan) -> list[str]:
    """What a rollback would call to restore the version (only if the run sets one)."""
    if not plan.template_id or plan.version_from_number is None:
        return []
    return [_planned_set(plan, plan.version_from_number)]


def _planned_set(plan: Plan, number: int | str) -> str:
    """The set call as the plan shows it: the line the real call is logged as."""
    return describe_update(launch_template_params(plan.target or "", plan.template_id or "",
                                                  number, mixed=plan.mixed_policy))


def plan_lines(plan: Plan) -> list[str]:
    if not plan.template_id:
        return []
    before = plan.version_from or ""
    shown = f"v{before}" if before.isdigit() else f"{before} (v{plan.version_from_number})"
    if plan.image_id:
        to = (f"a new version: copy of v{plan.source_version} with ImageId {plan.image_id} "
              f"(description \"{plan.version_description}\")")
    else:
        to = f"v{plan.version}"
    via = " through its MixedInstancesPolicy" if plan.mixed_policy else ""
    return [f"version       {plan.target} launch template {plan.template_name}: {shown} -> "
            f"{to}{via}; rollback restores v{plan.version_from_number}"]


def planned_calls(plan: Plan) -> list[str]:
    calls = []
    if plan.image_id:
        calls.append(f"ec2 CreateLaunchTemplateVersion {plan.template_name} "
                     f"SourceVersion={plan.source_version} ImageId={plan.image_id} "
                     "(unless this run already created it)")
    if plan.template_id:
        calls.append(_planned_set(plan, plan.version if plan.version is not None else "NEW"))
    return calls
