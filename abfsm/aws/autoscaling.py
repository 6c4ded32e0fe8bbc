"""Auto Scaling: describe groups (one call for all names), update capacity, set the launch
template version, resume and suspend scaling processes."""

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
class TemplateRef:
    """The launch template a group launches from, as the group names it."""

    id: str
    name: str
    version: str  # as configured: "3", "$Latest", "$Default" ("" when unspecified: $Default)

    @property
    def shown(self) -> str:
        return f"{self.name or self.id} {_shown_version(self.version)}"


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
    launch_template: TemplateRef | None = None  # also the mixed policy's template
    mixed_policy: dict[str, Any] | None = None  # MixedInstancesPolicy as described
    launch_configuration: str | None = None
    warm_pool: bool = False  # a warm pool is configured

    @property
    def runs(self) -> str:
        """What the group launches, for `abfsm status` and the plan: `qa-lt v3`, ..."""
        if self.launch_template:
            return self.launch_template.shown + (" (mixed instances policy)" if self.mixed_policy else "")
        if self.launch_configuration:
            return f"launch configuration {self.launch_configuration}"
        return "nothing known"

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

    def set_launch_template(self, name: str, template_id: str, version: int, *,
                            mixed_policy: dict[str, Any] | None = None) -> None:
        """One UpdateAutoScalingGroup setting a numeric launch template version: in
        LaunchTemplate, or (a group with a MixedInstancesPolicy) in the policy's launch
        template and in every override naming the same template. Capacity is not touched."""
        spec = {"LaunchTemplateId": template_id, "Version": str(version)}
        params: dict[str, Any] = {"AutoScalingGroupName": name}
        if mixed_policy is None:
            params["LaunchTemplate"] = spec
        else:
            params["MixedInstancesPolicy"] = _with_version(mixed_policy, template_id, spec)
        call(self._client, "autoscaling", "UpdateAutoScalingGroup", mutating=True,
             log_params=launch_template_params(name, template_id, version,
                                               mixed=mixed_policy is not None),
             **params)

    def resume_processes(self, name: str, processes: list[str]) -> None:
        params: dict[str, Any] = {"AutoScalingGroupName": name, "ScalingProcesses": list(processes)}
        call(self._client, "autoscaling", "ResumeProcesses", mutating=True, log_params=params,
             **params)

    def suspend_processes(self, name: str, processes: list[str]) -> None:
        params: dict[str, Any] = {"AutoScalingGroupName": name, "ScalingProcesses": list(processes)}
        call(self._client, "autoscaling", "SuspendProcesses", mutating=True, log_params=params,
             **params)


def launch_template_params(name: str, template_id: str, version: int | str, *,
                           mixed: bool = False) -> dict[str, Any]:
    """How `set_launch_template` is logged (and shown in the dry-run plan): one line each."""
    where = "MixedInstancesPolicy" if mixed else "LaunchTemplate"
    return {"AutoScalingGroupName": name, where: f"{template_id}:{version}"}


def _shown_version(version: str) -> str:
    if not version:
        return "$Default (unspecified)"
    return f"v{version}" if version.isdigit() else version


def _with_version(policy: dict[str, Any], template_id: str, spec: dict[str, str]) -> dict[str, Any]:
    """The policy as described, re-sent with `spec` as its launch template (AWS takes an id
    *or* a name, not both as DescribeAutoScalingGroups answers)."""
    import copy

    out = copy.deepcopy(policy)
    lt = out.setdefault("LaunchTemplate", {})
    lt["LaunchTemplateSpecification"] = dict(spec)
    for override in lt.get("Overrides", []) or []:
        own = override.get("LaunchTemplateSpecification")
        if own and own.get("LaunchTemplateId") == template_id:
            override["LaunchTemplateSpecification"] = dict(spec)
        elif own:  # another template: send back as one reference, version untouched
            key = "LaunchTemplateId" if own.get("LaunchTemplateId") else "LaunchTemplateName"
            override["LaunchTemplateSpecification"] = {
                key: own[key], **({"Version": own["Version"]} if own.get("Version") else {})}
    return out


def _template(g: dict[str, Any]) -> TemplateRef | None:
    lt = g.get("LaunchTemplate")
    if not lt and g.get("MixedInstancesPolicy"):
        lt = (g["MixedInstancesPolicy"].get("LaunchTemplate") or {}).get("LaunchTemplateSpecification")
    if not lt:
        return None
    return TemplateRef(lt.get("LaunchTemplateId", ""), lt.get("LaunchTemplateName", ""),
                       str(lt.get("Version") or ""))


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
        launch_template=_template(g),
        mixed_policy=g.get("MixedInstancesPolicy") or None,
        launch_configuration=g.get("LaunchConfigurationName") or None,
        warm_pool=bool(g.get("WarmPoolConfiguration")),
    )
