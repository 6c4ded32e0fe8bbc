"""Auto Scaling: describe groups (one call for all names), update capacity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from abfsm.aws._call import call


@dataclass(frozen=True)
class Instance:
    id: str
    lifecycle: str  # Pending, InService, Terminating, ...
    health: str  # Healthy / Unhealthy

    @property
    def ready(self) -> bool:
        return self.lifecycle == "InService" and self.health == "Healthy"

    @property
    def status(self) -> str:
        return f"{self.lifecycle}/{self.health}"


@dataclass(frozen=True)
class Group:
    name: str
    min_size: int
    max_size: int
    desired: int
    instances: tuple[Instance, ...]
    load_balancer_names: tuple[str, ...] = ()
    target_group_arns: tuple[str, ...] = ()
    suspended: tuple[str, ...] = ()  # suspended scaling processes: Launch, Terminate, ...

    @property
    def populated(self) -> bool:
        return self.desired > 0 or bool(self.instances)

    @property
    def ready_ids(self) -> list[str]:
        return sorted(i.id for i in self.instances if i.ready)


class AutoScaling:
    def __init__(self, client: Any) -> None:
        self._client = client

    def describe(self, names: list[str]) -> dict[str, Group]:
        """All named groups in one DescribeAutoScalingGroups call (missing names are absent)."""
        resp = call(self._client, "autoscaling", "DescribeAutoScalingGroups",
                    AutoScalingGroupNames=names, MaxRecords=100)
        return {g["AutoScalingGroupName"]: _group(g) for g in resp.get("AutoScalingGroups", [])}

    def update_capacity(self, name: str, *, desired: int, min_size: int | None = None,
                        max_size: int | None = None) -> None:
        """One UpdateAutoScalingGroup call: MinSize/MaxSize move with the desired capacity."""
        params = update_params(name, desired=desired, min_size=min_size, max_size=max_size)
        call(self._client, "autoscaling", "UpdateAutoScalingGroup", mutating=True,
             log_params=params, **params)


def update_params(name: str, *, desired: int, min_size: int | None = None,
                  max_size: int | None = None) -> dict[str, Any]:
    """The UpdateAutoScalingGroup parameters `update_capacity` sends (the dry-run plan shows
    exactly these)."""
    params: dict[str, Any] = {"AutoScalingGroupName": name, "DesiredCapacity": desired}
    if min_size is not None:
        params["MinSize"] = min_size
    if max_size is not None:
        params["MaxSize"] = max_size
    return params


def describe_update(params: dict[str, Any]) -> str:
    """An UpdateAutoScalingGroup call as one plan line."""
    rest = " ".join(f"{k}={v}" for k, v in params.items() if k != "AutoScalingGroupName")
    return f"autoscaling UpdateAutoScalingGroup {params['AutoScalingGroupName']} {rest}"


def _group(g: dict[str, Any]) -> Group:
    lbs = list(g.get("LoadBalancerNames", []))
    tgs = list(g.get("TargetGroupARNs", []))
    # Newer "traffic source" attachments appear here too where the API returns them.
    for source in g.get("TrafficSources", []) or []:
        ident, kind = source.get("Identifier", ""), source.get("Type", "")
        if kind == "elbv2" or ident.startswith("arn:aws:elasticloadbalancing:") and ":targetgroup/" in ident:
            tgs.append(ident)
        elif kind == "elb" and ident:
            lbs.append(ident)
    return Group(
        name=g["AutoScalingGroupName"],
        min_size=int(g["MinSize"]),
        max_size=int(g["MaxSize"]),
        desired=int(g["DesiredCapacity"]),
        instances=tuple(
            Instance(i["InstanceId"], i.get("LifecycleState", "?"), i.get("HealthStatus", "?"))
            for i in g.get("Instances", [])
        ),
        load_balancer_names=tuple(dict.fromkeys(lbs)),
        target_group_arns=tuple(dict.fromkeys(tgs)),
        suspended=tuple(sorted(p["ProcessName"] for p in g.get("SuspendedProcesses", []) or [])),
    )
