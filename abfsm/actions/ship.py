"""What the target launches, made right before it is first scaled (called by scale).

At the first scale step, before the capacity call: resume the target's suspended Launch
process (--resume-processes, see actions/processes.py) and set its launch template version
(--launch-template-version / --image-id, see actions/version.py). No state of its own: the
spec is unchanged, and a spec without these flags' states still runs them. Idempotent: a
resumed run re-entering the first step finds the version it created instead of creating
another, and setting the same version or resuming a resumed process changes nothing.
"""

from __future__ import annotations

from abfsm.actions import processes, version
from abfsm.actions.base import AwsCall, Run, describe_asg, update_asg
from abfsm.context import Plan, Settings


def calls(settings: Settings) -> list[AwsCall]:
    """The calls `prepare_target` can make under `settings` (for scale's declaration)."""
    out: list[AwsCall] = []
    if settings.image_id:
        out += [AwsCall("ec2", "DescribeLaunchTemplateVersions", resource="launch-template"),
                AwsCall("ec2", "CreateLaunchTemplateVersion", mutating=True,
                        resource="launch-template")]
    if version.wanted(settings):
        out += [describe_asg("asg:target"), update_asg("asg:target")]
    if settings.resume_processes:
        out.append(AwsCall("autoscaling", "ResumeProcesses", mutating=True,
                           resource="asg:target"))
    return out


def prepare_target(run: Run) -> None:
    """Before the first scale step's capacity call; nothing to do at later steps."""
    plan = run.plan
    if plan.step_index:
        return
    processes.resume(run, plan.target, only=("Launch",))
    if plan.template_id:
        version.apply(run)


def plan_calls(plan: Plan) -> list[str]:
    """The dry run's lines for `prepare_target`, in call order."""
    return processes.planned_calls(plan, plan.target or "", only=("Launch",)) + \
        version.planned_calls(plan)
