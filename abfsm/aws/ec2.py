"""EC2: the addresses of a set of instances (what an HTTP check needs to reach them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from abfsm.aws._call import call


@dataclass(frozen=True)
class Address:
    instance_id: str
    private_ip: str
    private_dns: str


class Ec2:
    def __init__(self, client: Any) -> None:
        self._client = client

    def addresses(self, ids: Sequence[str]) -> dict[str, Address]:
        """instance id -> its private IP and DNS name, in one DescribeInstances call."""
        if not ids:
            return {}
        out: dict[str, Address] = {}
        params: dict[str, Any] = {"InstanceIds": list(ids)}
        while True:
            resp = call(self._client, "ec2", "DescribeInstances", **params)
            for reservation in resp.get("Reservations", []):
                for i in reservation.get("Instances", []):
                    out[i["InstanceId"]] = Address(i["InstanceId"],
                                                   i.get("PrivateIpAddress", "") or "",
                                                   i.get("PrivateDnsName", "") or "")
            if not resp.get("NextToken"):
                return out
            params["NextToken"] = resp["NextToken"]
