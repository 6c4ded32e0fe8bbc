"""EC2 launch templates: describe versions, create a version from another with a new image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from abfsm.aws._call import call


@dataclass(frozen=True)
class TemplateVersion:
    template_id: str
    template_name: str
    number: int
    description: str
    image_id: str | None
    default: bool


class LaunchTemplates:
    def __init__(self, client: Any) -> None:
        self._client = client

    def versions(self, template_id: str, versions: list[str]) -> dict[str, TemplateVersion]:
        """The named versions (numbers, `$Latest`, `$Default`) in one call, keyed by the names
        asked for. An unknown version number is an AwsError naming it."""
        asked = list(dict.fromkeys(versions))
        resp = call(self._client, "ec2", "DescribeLaunchTemplateVersions",
                    LaunchTemplateId=template_id, Versions=asked)
        found = [_version(v) for v in resp.get("LaunchTemplateVersions", [])]
        out: dict[str, TemplateVersion] = {}
        for name in asked:
            if name == "$Latest":  # no number asked for can be higher than the latest
                match = max(found, key=lambda v: v.number, default=None)
            elif name == "$Default":
                match = next((v for v in found if v.default), None)
            else:
                match = next((v for v in found if str(v.number) == name), None)
            if match is not None:
                out[name] = match
        return out

    def versions_after(self, template_id: str, number: int) -> list[TemplateVersion]:
        """Every version newer than `number` (paginated): where a version this run created is."""
        out: list[TemplateVersion] = []
        token: str | None = None
        while True:
            extra: dict[str, Any] = {"NextToken": token} if token else {}
            resp = call(self._client, "ec2", "DescribeLaunchTemplateVersions",
                        LaunchTemplateId=template_id, MinVersion=str(number + 1),
                        MaxResults=200, **extra)
            out += [_version(v) for v in resp.get("LaunchTemplateVersions", [])]
            token = resp.get("NextToken")
            if not token:
                return [v for v in out if v.number > number]

    def create_version(self, template_id: str, *, source_version: int, image_id: str,
                       description: str) -> TemplateVersion:
        """One CreateLaunchTemplateVersion: a copy of `source_version` with another ImageId.
        The template's default version is not changed."""
        params: dict[str, Any] = {"LaunchTemplateId": template_id,
                                  "SourceVersion": str(source_version),
                                  "VersionDescription": description,
                                  "LaunchTemplateData": {"ImageId": image_id}}
        resp = call(self._client, "ec2", "CreateLaunchTemplateVersion", mutating=True,
                    log_params=params, **params)
        return _version(resp["LaunchTemplateVersion"])


def _version(v: dict[str, Any]) -> TemplateVersion:
    data = v.get("LaunchTemplateData") or {}
    return TemplateVersion(template_id=v["LaunchTemplateId"],
                           template_name=v.get("LaunchTemplateName", ""),
                           number=int(v["VersionNumber"]),
                           description=v.get("VersionDescription") or "",
                           image_id=data.get("ImageId"), default=bool(v.get("DefaultVersion")))
