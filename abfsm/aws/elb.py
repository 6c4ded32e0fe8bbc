"""Load balancer health: classic ELB instance health and ALB/NLB target group health."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from abfsm.aws._call import call


@dataclass(frozen=True)
class Member:
    """One instance as a load balancer sees it."""

    id: str
    state: str  # classic: InService/OutOfService/Unknown; elbv2: healthy/unhealthy/initial/draining/unused
    reason: str = ""

    @property
    def healthy(self) -> bool:
        return self.state in ("InService", "healthy")


class ClassicElb:
    def __init__(self, client: Any) -> None:
        self._client = client

    def members(self, name: str) -> list[Member]:
        """Every registered instance in one DescribeInstanceHealth call."""
        resp = call(self._client, "elb", "DescribeInstanceHealth", LoadBalancerName=name)
        return [
            Member(s["InstanceId"], s.get("State", "Unknown"),
                   s.get("ReasonCode", "") if s.get("ReasonCode") not in (None, "N/A") else "")
            for s in resp.get("InstanceStates", [])
        ]

    def dns_name(self, name: str) -> str:
        """The load balancer's DNS name (one DescribeLoadBalancers)."""
        resp = call(self._client, "elb", "DescribeLoadBalancers", LoadBalancerNames=[name])
        return str(resp["LoadBalancerDescriptions"][0]["DNSName"])


class TargetGroups:
    def __init__(self, client: Any) -> None:
        self._client = client

    def members(self, arn: str) -> list[Member]:
        """Every registered target in one DescribeTargetHealth call."""
        resp = call(self._client, "elbv2", "DescribeTargetHealth", TargetGroupArn=arn)
        return [
            Member(d["Target"]["Id"], d.get("TargetHealth", {}).get("State", "unknown"),
                   d.get("TargetHealth", {}).get("Reason", ""))
            for d in resp.get("TargetHealthDescriptions", [])
        ]

    def deregistration_delay(self, arn: str) -> int:
        resp = call(self._client, "elbv2", "DescribeTargetGroupAttributes", TargetGroupArn=arn)
        for attr in resp.get("Attributes", []):
            if attr.get("Key") == "deregistration_delay.timeout_seconds":
                return int(attr.get("Value", 300))
        return 300

    def dns_name(self, arn: str) -> str:
        """The DNS name of the (first) load balancer forwarding to the target group."""
        resp = call(self._client, "elbv2", "DescribeTargetGroups", TargetGroupArns=[arn])
        lbs = resp["TargetGroups"][0].get("LoadBalancerArns") or []
        if not lbs:
            return ""
        resp = call(self._client, "elbv2", "DescribeLoadBalancers", LoadBalancerArns=lbs[:1])
        return str(resp["LoadBalancers"][0]["DNSName"])
