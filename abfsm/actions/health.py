"""How the load balancers see a set of instances: one call per load balancer per poll.

Vocabulary (what AWS answers):
- classic ELB DescribeInstanceHealth: InService / OutOfService / Unknown, ReasonCode ELB or
  Instance; a deregistered instance is no longer listed.
- target group DescribeTargetHealth (no Targets filter): every *registered* target with
  healthy / initial (Elb.RegistrationInProgress, Elb.InitialHealthChecking) / unhealthy
  (Target.FailedHealthChecks, Target.Timeout, ...) / unused (Target.NotInUse,
  Target.InvalidState for a stopped instance) / draining (Target.DeregistrationInProgress).
  Once deregistration completes the target is no longer listed at all; only a query naming
  an unregistered target answers `unused` with Target.NotRegistered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from abfsm.actions.base import AwsCall
from abfsm.actions.lifecycle import hint
from abfsm.actions.waiting import Progress
from abfsm.aws import Services
from abfsm.aws.autoscaling import Instance
from abfsm.aws.elb import Member
from abfsm.context import Settings

NOT_REGISTERED = "Target.NotRegistered"


def lb_health_calls(settings: Settings, *, even_unchecked: bool = False) -> list[AwsCall]:
    """The health reads `lb_members` can make under `settings`: one per classic ELB
    (DescribeInstanceHealth) and per target group (DescribeTargetHealth), either named by
    flags or discovered from the ASGs' attachments."""
    if settings.no_elb_check and not even_unchecked:
        return []
    calls = []
    if settings.elb_names or not settings.target_group_arns:
        calls.append(AwsCall("elb", "DescribeInstanceHealth", resource="elb"))
    if settings.target_group_arns or not settings.elb_names:
        calls.append(AwsCall("elbv2", "DescribeTargetHealth", resource="target-group"))
    return calls


def lb_members(aws: Services, load_balancers: Sequence[str],
               target_groups: Sequence[str]) -> dict[str, dict[str, Member]]:
    """For each classic ELB and target group: instance id -> Member (registered ones only)."""
    out: dict[str, dict[str, Member]] = {}
    for name in load_balancers:
        out[name] = {m.id: m for m in aws.elb.members(name)}
    for arn in target_groups:
        out[arn] = {m.id: m for m in aws.elbv2.members(arn)}
    return out


def not_registered(lb: str, iid: str) -> Member:
    """How an instance missing from a load balancer's answer is reported."""
    if is_target_group(lb):
        return Member(iid, "unused", NOT_REGISTERED)  # what AWS answers when asked about it
    return Member(iid, "NotRegistered")


def lb_progress(members: dict[str, dict[str, Member]], ids: list[str]) -> Progress:
    """Ready = healthy in every load balancer. Unregistered ids count as not ready.

    Only `ids` are counted (wait-elb passes the new ASG's instances): whatever else is
    registered, the old ASG's instances included, never counts as serving the deployment.
    Not-ready entries are ordered instance by instance, so a truncated failure message still
    names every load balancer an instance is missing from.
    """
    bad: set[str] = set()
    not_ready = []
    for iid in ids:
        for lb, seen in members.items():
            m = seen.get(iid) or not_registered(lb, iid)
            if not m.healthy:
                bad.add(iid)
                not_ready.append({"id": iid, "lb": short_lb(lb), "state": m.state,
                                  **({"reason": m.reason} if m.reason else {})})
    summaries = []
    for lb, seen in members.items():
        ok = sum(1 for iid in ids if iid in seen and seen[iid].healthy)
        word = "healthy" if is_target_group(lb) else "InService"
        summaries.append(f"{ok}/{len(ids)} {word} in {short_lb(lb)}")
    ready_ids = [i for i in ids if i not in bad]
    return Progress(ready=len(ready_ids), total=len(ids), done=bool(ids) and not bad,
                    summary="; ".join(summaries), not_ready=not_ready,
                    what="healthy in every load balancer", ids=ready_ids)


def gone(member: Member | None) -> bool:
    """Deregistration finished: absent from the answer (or reported as not registered).

    `draining` is not gone: the load balancer still finishes in-flight requests. Any other
    state of a listed target (healthy, unused/Target.InvalidState, ...) is still registered.
    """
    return member is None or (member.state == "unused" and member.reason == NOT_REGISTERED)


def drain_progress(asg: str, instances: Iterable[Instance],
                   members: dict[str, dict[str, Member]], ids: Sequence[str]) -> Progress:
    """How far draining `asg` is: its instances must leave the group and every load balancer.

    `ids` are the old instances being drained (those the group had when the drain began, plus
    any seen since); `members` is what each load balancer reports now.
    """
    in_group = list(instances)
    not_ready: list[dict[str, str]] = [
        {"id": i.id, "state": f"{i.lifecycle} in {asg}",
         **({"reason": why} if (why := hint(i.lifecycle)) else {})}  # Terminating:Wait, ...
        for i in in_group]
    left = {i.id for i in in_group}
    summaries = [f"{len(in_group)} instance(s) left in {asg}"]
    for lb, seen in members.items():
        registered = [seen[iid] for iid in ids if not gone(seen.get(iid))]
        for m in registered:
            left.add(m.id)
            not_ready.append({"id": m.id, "lb": short_lb(lb), "state": m.state,
                              **({"reason": m.reason} if m.reason else {})})
        if registered:
            summaries.append(f"{len(registered)} still registered in {short_lb(lb)}")
    total = len(set(ids) | {i.id for i in in_group})
    return Progress(ready=total - len(left), total=total, done=not not_ready,
                    summary="; ".join(summaries), not_ready=not_ready,
                    what="gone from the ASG and every load balancer",
                    ids=sorted(set(ids) - left))


def serving_counts(members: dict[str, dict[str, Member]],
                   groups: dict[str, list[str]]) -> dict[str, int]:
    """How many of each group's instances are healthy in every load balancer."""
    return {name: lb_progress(members, ids).ready if ids and members else 0
            for name, ids in groups.items()}


def is_target_group(name: str) -> bool:
    return ":targetgroup/" in name


def short_lb(name: str) -> str:
    """A target group ARN shown as `targetgroup/NAME`; a classic ELB name as itself."""
    if is_target_group(name):
        return "targetgroup/" + name.split(":targetgroup/", 1)[1].split("/", 1)[0]
    return name
