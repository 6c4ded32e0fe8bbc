"""Suspended scaling processes that would stall the run, and --resume-processes.

A target that cannot `Launch` never fills; an ASG to drain or empty that cannot `Terminate`
keeps serving. inspect refuses such a plan, unless --resume-processes: then it records which
processes to resume (`Plan.resume_processes`). The state that first needs one resumes it (the
first scale step the target's Launch, empty and drain Terminate) and records it in
`Plan.resumed` *before* the call, so a crash still re-suspends it; drain (and rollback)
suspends them again at the end: on an ASG being emptied only once it is empty, so the drain
is never stalled by it.
"""

from __future__ import annotations

from abfsm.actions.asg_empty import wait_empty
from abfsm.actions.base import AwsCall, Run
from abfsm.aws.autoscaling import Group
from abfsm.context import Plan
from abfsm.errors import Refused


def calls() -> list[AwsCall]:
    return [AwsCall("autoscaling", "ResumeProcesses", mutating=True, resource="asg:pair"),
            AwsCall("autoscaling", "SuspendProcesses", mutating=True, resource="asg:pair")]


def blocked(plan: Plan, groups: dict[str, Group]) -> dict[str, list[str]]:
    """The suspended processes that would stall `plan`, per ASG."""
    needs: dict[str, set[str]] = {}
    if plan.target:
        needs.setdefault(plan.target, set()).add("Launch")
    for name in (plan.empty_first, plan.active if plan.active != plan.target else None):
        if name:
            needs.setdefault(name, set()).add("Terminate")
    out = {}
    for name, processes in needs.items():
        stuck = sorted(processes & set(groups[name].suspended))
        if stuck:
            out[name] = stuck
    return out


def decide(plan: Plan, groups: dict[str, Group], *, resume: bool) -> None:
    """Refuse a plan a suspended process would stall, or (with `resume`) record what to resume."""
    stuck = blocked(plan, groups)
    if stuck and not resume:
        name, names = next(iter(stuck.items()))
        raise Refused(
            f"inspect: {name} has the {' and '.join(names)} process suspended, so the "
            f"deployment would stall; nothing was changed. Resume it first: aws autoscaling "
            f"resume-processes --auto-scaling-group-name {name} --scaling-processes "
            f"{' '.join(names)}, or pass --resume-processes to resume it for this run only")
    plan.resume_processes = stuck


def resume(run: Run, asg: str | None, *, only: tuple[str, ...] = ("Launch", "Terminate")) -> None:
    """Resume what the plan needs resumed on `asg`, of `only` (Launch for the target's first
    scale step, Terminate before emptying or draining). Idempotent: a re-entered state calls
    again."""
    plan = run.plan
    names = [p for p in plan.resume_processes.get(asg or "", []) if p in only]
    if not asg or not names:
        return
    plan.resumed[asg] = sorted(set(plan.resumed.get(asg, [])) | set(names))
    run.heartbeat()  # recorded before the call: whatever happens next, it is re-suspended
    run.aws.autoscaling.resume_processes(asg, names)
    run.log.info("processes.resumed", asg=asg, processes=names)


def resuspend(run: Run, asg: str | None, *, emptying: bool) -> None:
    """Suspend again what this run resumed on `asg`. `emptying`: the ASG is being set to 0;
    if Terminate was resumed on it, wait until it is empty first."""
    plan = run.plan
    names = plan.resumed.get(asg or "")
    if not asg or not names:
        return
    if emptying and "Terminate" in names:
        wait_empty(run, asg)
    run.aws.autoscaling.suspend_processes(asg, names)
    del plan.resumed[asg]
    run.heartbeat()
    run.log.info("processes.suspended", asg=asg, processes=names)


def resuspend_all(run: Run, *, emptying: tuple[str, ...] = ()) -> None:
    for asg in list(run.plan.resumed):
        resuspend(run, asg, emptying=asg in emptying)


def plan_lines(plan: Plan) -> list[str]:
    return [f"processes     {asg}: resume {' '.join(names)} for the run, suspend again at the end"
            for asg, names in plan.resume_processes.items()]


def planned_calls(plan: Plan, asg: str, *, only: tuple[str, ...] = ("Launch", "Terminate")) -> list[str]:
    names = [p for p in plan.resume_processes.get(asg, []) if p in only]
    return [f"autoscaling ResumeProcesses {asg} {' '.join(names)}"] if names else []


def planned_suspends(plan: Plan) -> list[str]:
    return [f"autoscaling SuspendProcesses {asg} {' '.join(names)}"
            for asg, names in plan.resume_processes.items()]
