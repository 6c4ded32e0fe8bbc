"""Setting an ASG to zero (MinSize too) and, optionally, waiting until it has no instances."""

from __future__ import annotations

from abfsm.actions.base import Run
from abfsm.actions.waiting import Progress, wait_until


def zero_asg(run: Run, asg: str) -> None:
    run.aws.autoscaling.update_capacity(asg, desired=0, min_size=0)


def wait_empty(run: Run, asg: str, old_ids: list[str] | None = None) -> None:
    """Until `asg` has no instances and none of `old_ids` is still a target-group member."""

    def check() -> Progress:
        group = run.aws.autoscaling.describe([asg]).get(asg)
        left = [{"id": i.id, "state": i.lifecycle} for i in (group.instances if group else ())]
        for arn in run.plan.target_groups if old_ids else []:
            for m in run.aws.elbv2.members(arn):
                if m.id in old_ids and m.state != "unused":  # type: ignore[operator]
                    left.append({"id": m.id, "state": m.state, "lb": arn.split(":")[-1]})
        return Progress(ready=0, total=len(left), done=not left,
                        summary=f"{len(left)} instance(s) of {asg} not yet gone",
                        not_ready=left, what="left to drain")

    wait_until(run, check)
