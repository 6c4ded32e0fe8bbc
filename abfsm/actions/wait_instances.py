"""wait-instances: the step's full count InService *and* Healthy in the target ASG.

Never passes with zero instances; gives up at the state's timeout. Loops back to scale
while steps remain.
"""

from __future__ import annotations

from abfsm.actions.alarms import alarm_calls
from abfsm.actions.base import Run, action, describe_asg
from abfsm.actions.waiting import Progress, wait_until


def _planned(run: Run) -> tuple[str, list[str]]:
    return _next(run), []


def _next(run: Run) -> str:
    plan = run.plan
    if plan.step_index < len(plan.steps) - 1:
        plan.step_index += 1
        return "next_step"
    return "instances_ready"


@action({"next_step", "instances_ready"}, requires=("target", "steps"),
        calls=lambda settings, params: [describe_asg("asg:target"),
                                        *alarm_calls(settings)],
        planner=_planned,
        doc="poll until the step's instances are InService and Healthy in the target ASG; "
            "next_step while steps remain")
def wait_instances(run: Run) -> str:
    plan = run.plan
    asg: str = plan.target  # type: ignore[assignment]
    want = plan.step_desired

    def check() -> Progress:
        group = run.aws.autoscaling.describe([asg]).get(asg)
        instances = group.instances if group else ()
        ready = sorted(i.id for i in instances if i.ready)
        not_ready = [{"id": i.id, "state": i.status} for i in instances if not i.ready]
        if len(instances) < want:
            not_ready.append({"id": f"{want - len(instances)} more", "state": "not launched yet"})
        return Progress(ready=len(ready), total=want, done=want > 0 and len(ready) >= want,
                        summary=f"{len(ready)}/{want} InService and Healthy in {asg}",
                        not_ready=not_ready, what="InService+Healthy", ids=ready)

    progress = wait_until(run, check, alarms=True)
    plan.instance_ids = progress.ids
    return _next(run)
