"""Alarm gates: CloudWatch alarms watched while the new instances come up and bake.

The alarms come from `--alarm NAME` (repeatable), `--alarm-prefix PREFIX` and a state's
`params: {alarms: [...]}`. inspect checks once, before anything changes, that every named
alarm exists and none is in ALARM (refused, exit 3). The waits of wait-instances, wait-elb
and bake then read them once per poll: one DescribeAlarms for all the named alarms, one
for the prefix. An alarm in ALARM fails the state, naming the alarm and its StateReason,
so --rollback-on-failure rolls back while the old ASG still serves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from abfsm.actions.base import AwsCall
from abfsm.aws import Services
from abfsm.aws.cloudwatch import Alarm
from abfsm.context import Settings
from abfsm.errors import AlarmFired, Refused

# The actions whose waits watch the alarms (by the name states.yaml uses).
WATCHING_ACTIONS = ("wait_instances", "wait_elb", "bake")


@dataclass(frozen=True)
class AlarmSet:
    """What to watch: alarm names (one DescribeAlarms) and/or a prefix (one more)."""

    names: tuple[str, ...] = ()
    prefix: str | None = None

    def __bool__(self) -> bool:
        return bool(self.names or self.prefix)

    @property
    def shown(self) -> list[str]:
        return list(self.names) + ([f"{self.prefix}*"] if self.prefix else [])

    def calls_per_poll(self) -> int:
        return int(bool(self.names)) + int(bool(self.prefix))


def alarm_calls(settings: Settings, params: Any = None) -> list[AwsCall]:
    """The DescribeAlarms a wait makes per poll (declared by the watching actions)."""
    n = alarm_set(settings, state_alarms(params)).calls_per_poll()
    return [AwsCall("cloudwatch", "DescribeAlarms", resource="alarm")] if n else []


def alarm_set(settings: Settings, extra: Iterable[str] = ()) -> AlarmSet:
    names = tuple(dict.fromkeys([*settings.alarms, *extra]))
    return AlarmSet(names, settings.alarm_prefix or None)


def state_alarms(params: Any) -> list[str]:
    """The `alarms` param of a state (a list of names), or none."""
    value = params.get("alarms") if isinstance(params, Mapping) else None
    return [str(v) for v in value] if isinstance(value, list) else []


def spec_alarms(spec: Any) -> list[str]:
    """Every alarm named in a `params: {alarms: [...]}` of the spec's states."""
    out: list[str] = []
    for st in spec.states.values():
        if st.action in WATCHING_ACTIONS:
            out.extend(state_alarms(st.params))
    return out


def read(aws: Services, alarms: AlarmSet) -> list[Alarm]:
    """The watched alarms as CloudWatch reports them now: one call per part of the set."""
    seen: dict[str, Alarm] = {}
    if alarms.names:
        for a in aws.cloudwatch.alarms(names=alarms.names):
            seen[a.name] = a
    if alarms.prefix:
        for a in aws.cloudwatch.alarms(prefix=alarms.prefix):
            seen[a.name] = a
    return list(seen.values())


def check_before_deploy(run: Any) -> AlarmSet:
    """inspect: refuse (exit 3) a missing alarm, a prefix matching none, or one in ALARM."""
    alarms = alarm_set(run.settings, spec_alarms(run.spec))
    if not alarms:
        return alarms
    found = read(run.aws, alarms)
    by_name = {a.name: a for a in found}
    missing = [n for n in alarms.names if n not in by_name]
    if missing:
        raise Refused(f"inspect: CloudWatch alarm {', '.join(missing)} not found "
                      "(--alarm names an existing alarm; check the name and the region)")
    if alarms.prefix and not any(a.name.startswith(alarms.prefix) for a in found):
        raise Refused(f"inspect: no CloudWatch alarm starts with {alarms.prefix!r} (--alarm-prefix)")
    firing = [a for a in found if a.firing]
    if firing:
        raise Refused("inspect: " + "; ".join(_firing(a) for a in firing)
                      + "; nothing was changed (deploying into a firing alarm is refused)")
    run.log.info("alarms.checked", alarms=sorted(by_name), states={a.name: a.state for a in found})
    return alarms


def watch_for(run: Any) -> AlarmSet:
    """The alarms the current state's wait watches (flags plus its own `alarms` param)."""
    return alarm_set(run.settings, state_alarms(run.params))


def check_during_wait(run: Any, alarms: AlarmSet) -> None:
    """One poll: raise AlarmFired if a watched alarm is in ALARM (or has vanished)."""
    found = read(run.aws, alarms)
    by_name = {a.name: a for a in found}
    firing = [a for a in found if a.firing]
    gone = [n for n in alarms.names if n not in by_name]
    for a in firing:
        run.log.error("alarm.fired", state=run.state, alarm=a.name, reason=a.reason,
                      since=a.since)
    if firing:
        raise AlarmFired(f"{run.state}: " + "; ".join(_firing(a) for a in firing))
    if gone:
        raise AlarmFired(f"{run.state}: watched CloudWatch alarm {', '.join(gone)} no longer "
                         "exists; the gate cannot say yes")


def _firing(a: Alarm) -> str:
    return f"alarm {a.name} is in ALARM: {a.reason or 'no reason given'}"
