"""wait-instances: the step's full count InService *and* Healthy in the target ASG.

Never passes with zero instances; gives up at the state's timeout. Loops back to scale
while steps remain.

Only `InService` + `Healthy` counts (actions/lifecycle.py): instances held by a launch
lifecycle hook are shown as `Pending:Wait` / `Pending:Proceed`, never ready; warm pool
instances (`Warmed:*`) count once they are InService in the group, never twice; an instance
that leaves the group before it is ready (a hook's ABANDON) is named, and the wait goes on
for its replacement rather than passing with fewer than the count.
"""

from __future__ import annotations

from abfsm.actions import lifecycle
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

    launches = lifecycle.Launches()

    def check() -> Progress:
        group = run.aws.autoscaling.describe([asg]).get(asg)
        instances = group.instances if group else ()
        for iid, before, after in launches.observe(instances):
            run.log.warning("wait.instance_lost", asg=asg, instance_id=iid, last_state=before,
                            state=after)
        live = [i for i in instances if lifecycle.launching(i)]
        ready = sorted(i.id for i in live if i.ready)
        not_ready = [lifecycle.row(i) for i in live if not i.ready]
        if len(live) < want:
            not_ready.append({"id": f"{want - len(live)} more", "state": "not launched yet"})
        not_ready += launches.rows()
        summary = f"{len(ready)}/{want} InService and Healthy in {asg}"
        if launches.lost:
            summary += f" ({len(launches.lost)} replaced: {', '.join(launches.lost)})"
        return Progress(ready=len(ready), total=want, done=want > 0 and len(ready) >= want,
                        summary=summary, not_ready=not_ready, what="InService+Healthy",
                        ids=ready)

    progress = wait_until(run, check, alarms=True)
    plan.instance_ids = progress.ids
    return _next(run)
