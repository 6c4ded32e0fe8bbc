"""How the load balancers see a set of instances: one call per load balancer per poll."""

from __future__ import annotations

from abfsm.actions.waiting import Progress
from abfsm.aws import Services
from abfsm.aws.elb import Member


def lb_members(aws: Services, load_balancers: list[str],
               target_groups: list[str]) -> dict[str, dict[str, Member]]:
    """For each classic ELB and target group: instance id -> Member."""
    out: dict[str, dict[str, Member]] = {}
    for name in load_balancers:
        out[name] = {m.id: m for m in aws.elb.members(name)}
    for arn in target_groups:
        out[arn] = {m.id: m for m in aws.elbv2.members(arn)}
    return out


def lb_progress(members: dict[str, dict[str, Member]], ids: list[str]) -> Progress:
    """Ready = healthy in every load balancer. Unregistered ids count as not ready."""
    not_ready = []
    ready_ids = []
    summaries = []
    for lb, seen in members.items():
        ok = 0
        for iid in ids:
            m = seen.get(iid) or Member(iid, "NotRegistered", "not registered yet")
            if m.healthy:
                ok += 1
            else:
                not_ready.append({"id": iid, "lb": short_lb(lb), "state": m.state,
                                  **({"reason": m.reason} if m.reason else {})})
        word = "InService" if not lb.startswith("arn:") else "healthy"
        summaries.append(f"{ok}/{len(ids)} {word} in {short_lb(lb)}")
    bad = {item["id"] for item in not_ready}
    ready_ids = [i for i in ids if i not in bad]
    return Progress(ready=len(ready_ids), total=len(ids), done=bool(ids) and not bad,
                    summary="; ".join(summaries), not_ready=not_ready,
                    what="healthy in every load balancer", ids=ready_ids)


def serving_counts(members: dict[str, dict[str, Member]], groups: dict[str, list[str]]) -> dict[str, int]:
    """How many of each group's instances are healthy in every load balancer."""
    return {name: lb_progress(members, ids).ready if ids and members else 0
            for name, ids in groups.items()}


def short_lb(name: str) -> str:
    """A target group ARN shown as `targetgroup/NAME`; a classic ELB name as itself."""
    if ":targetgroup/" in name:
        return "targetgroup/" + name.split(":targetgroup/", 1)[1].split("/", 1)[0]
    return name
