"""The gates on both engines, same world, same outcome: load balancers named by --elb-name /
--target-group-arn, --bake-time and a spec `bake` with `seconds`, --alarm / --alarm-prefix
(`abfsm deploy` and an execution of the compiled machine on moto's ASL interpreter).

What changes mid-run (an alarm going into ALARM, an instance turning Unhealthy) is made to
happen at the Nth DescribeAlarms call, which both engines make at the same points: inspect's
check (1), one per poll of wait-instances (moto's instances are ready at once: 1), wait-elb
(skipped with --no-elb-check) and bake (at 0 s and after 1 s: 3 and 4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from abfsm.record import RunRecord, parse
from abfsm.spec import packaged_spec_path
from abfsm.context import Settings
from tests.support.aws_env import build_env, capacities
from tests.support.gates import put_alarm
from tests.support.sfn_moto import ASGS, BUCKET, archived_runs, lock_body, run_local, run_sfn, \
    settings_for

ALARM = "qa-5xx"


def gate_argv(settings: Settings) -> list[str]:
    """The gate flags of `settings`, as `sfn start` takes them (besides start_argv's)."""
    argv = [arg for name in settings.elb_names for arg in ("--elb-name", name)]
    argv += [arg for arn in settings.target_group_arns for arg in ("--target-group-arn", arn)]
    argv += [arg for name in settings.alarms for arg in ("--alarm", name)]
    if settings.alarm_prefix:
        argv += ["--alarm-prefix", settings.alarm_prefix]
    if settings.bake_time:
        argv += ["--bake-time", f"{settings.bake_time:g}"]
    if settings.launch_template_version:
        argv += ["--launch-template-version", settings.launch_template_version]
    return argv


ENGINES: dict[str, Callable[[Settings], int]] = {
    "local": run_local, "sfn": lambda settings: run_sfn(settings, gate_argv(settings))}


@pytest.fixture
def at_describe_alarms(monkeypatch: pytest.MonkeyPatch) -> Callable[[int, Callable[[], None]], None]:
    """`at_describe_alarms(n, change)`: `change()` runs right before moto answers the nth
    DescribeAlarms (of any client: the runner's or the execution's)."""
    from moto.cloudwatch.responses import CloudWatchResponse

    original = CloudWatchResponse.describe_alarms
    calls: list[int] = []

    def arm(n: int, change: Callable[[], None]) -> None:
        def describe_alarms(self: Any) -> Any:
            calls.append(1)
            if len(calls) == n:
                change()
            return original(self)

        monkeypatch.setattr(CloudWatchResponse, "describe_alarms", describe_alarms)

    return arm


@pytest.fixture
def broken_classic_elb(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every classic ELB reports every instance OutOfService (target groups stay healthy)."""
    from moto.elb.models import ELBBackend

    def describe_instance_health(self: Any, lb_name: str, instances: Any) -> list[dict[str, Any]]:
        ids = [i["InstanceId"] for i in instances] or self.get_load_balancer(lb_name).instance_ids
        return [{"InstanceId": i, "State": "OutOfService", "ReasonCode": "Instance",
                 "Description": "Instance has failed at least the UnhealthyThreshold"} for i in ids]

    monkeypatch.setattr(ELBBackend, "describe_instance_health", describe_instance_health)
    yield


def _final_record(make: Callable[[str], Any]) -> RunRecord:
    """The run's record: the lock's if kept, else the one archived under qa/runs/."""
    body = lock_body(make)
    if body is None:
        [key] = archived_runs(make)
        body = make("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    saved = parse(body)[0]
    assert saved is not None
    return saved


@pytest.mark.parametrize("engine_name", ENGINES)
def test_a_named_target_group_is_waited_for_and_nothing_else(sfn_make, broken_classic_elb,
                                                              engine_name):
    """--target-group-arn TG only, qa-b also behind a classic ELB that never says InService:
    the ELB is not waited for; qa-b 2, qa-a 0, lock released, exit 0."""
    env = build_env(sfn_make, "qa", active="a", active_count=2, target_groups=1, bucket=BUCKET)
    settings = settings_for(instance_count=2, no_elb_check=False,
                            target_group_arns=env["target_groups"])
    assert ENGINES[engine_name](settings) == 0
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (0, 2)
    assert lock_body(sfn_make) is None and _final_record(sfn_make).status == "done"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_a_named_elb_never_in_service_fails_wait_elb(sfn_make, broken_classic_elb, engine_name):
    """--elb-name qa-public (never InService), the target group left out: wait-elb times out,
    exit 1, qa-a still serving 2, the lock kept with a failed record naming wait-elb."""
    build_env(sfn_make, "qa", active="a", active_count=2, target_groups=1, bucket=BUCKET)
    settings = settings_for(instance_count=2, no_elb_check=False, elb_names=["qa-public"])
    assert ENGINES[engine_name](settings) == 1
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 2)
    saved = _final_record(sfn_make)
    assert lock_body(sfn_make) is not None and saved.status == "failed"
    assert "wait-elb" in (saved.last_error or "")


@pytest.mark.parametrize("engine_name", ENGINES)
def test_a_named_elb_not_attached_is_refused_before_any_change(sfn_make, engine_name):
    """--elb-name qa-other, which qa-b is not attached to: exit 3 naming it, nothing scaled,
    the lock released."""
    build_env(sfn_make, "qa", active="a", active_count=2, bucket=BUCKET)
    settings = settings_for(instance_count=2, no_elb_check=False, elb_names=["qa-other"])
    assert ENGINES[engine_name](settings) == 3
    assert capacities(sfn_make, ASGS)["qa-b"]["desired"] == 0
    saved = _final_record(sfn_make)
    assert lock_body(sfn_make) is None and "qa-other" in (saved.last_error or "")


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("flags, alarm_state, says", [
    ({"alarms": [ALARM]}, "ALARM", "is in ALARM"),
    ({"alarms": ["qa-nope"]}, "OK", "qa-nope"),
    ({"alarm_prefix": "qa-zzz"}, "OK", "qa-zzz"),
], ids=["firing", "missing", "prefix-matches-none"])
def test_alarms_refuse_before_any_change(sfn_make, engine_name, flags, alarm_state, says):
    """A watched alarm in ALARM, a named alarm that does not exist, a prefix matching no
    alarm: exit 3 in inspect naming it, nothing scaled, the lock released."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    put_alarm(sfn_make, ALARM, alarm_state, reason="Threshold Crossed: 12 5XX")
    assert ENGINES[engine_name](settings_for(instance_count=2, **flags)) == 3
    assert capacities(sfn_make, ASGS)["qa-b"]["desired"] == 0
    saved = _final_record(sfn_make)
    assert lock_body(sfn_make) is None and says in (saved.last_error or "")


@pytest.mark.parametrize("engine_name", ENGINES)
def test_bake_with_quiet_alarms_drains_the_old_asg(sfn_make, engine_name):
    """--bake-time 1 --alarm-prefix qa- with every alarm OK: baked, qa-a drained, exit 0."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    put_alarm(sfn_make, ALARM)
    settings = settings_for(instance_count=2, bake_time=1, alarm_prefix="qa-")
    assert ENGINES[engine_name](settings) == 0
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (0, 2)
    assert lock_body(sfn_make) is None and _final_record(sfn_make).status == "done"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_an_alarm_firing_during_bake_rolls_back(sfn_make, at_describe_alarms, engine_name):
    """--bake-time 1 --alarm qa-5xx --rollback-on-failure; the alarm goes into ALARM at the
    bake's second poll (after 1 s): rolled back, qa-b 0, qa-a still 2, lock released, the
    record naming bake and the alarm, exit 1."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    put_alarm(sfn_make, ALARM)
    at_describe_alarms(4, lambda: put_alarm(sfn_make, ALARM, "ALARM", reason="12 5XX"))
    settings = settings_for(instance_count=2, bake_time=1, alarms=[ALARM],
                            rollback_on_failure=True)
    assert ENGINES[engine_name](settings) == 1
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 0)
    saved = _final_record(sfn_make)
    assert lock_body(sfn_make) is None and saved.status == "rolled-back"
    assert "bake" in (saved.last_error or "") and "alarm qa-5xx is in ALARM: 12 5XX" in (
        saved.last_error or "")


@pytest.fixture
def bake_spec(tmp_path: Path) -> str:
    """The packaged spec with `bake: {action: bake, params: {seconds: 1}}`."""
    text = packaged_spec_path().read_text(encoding="utf-8")
    old = "  bake:           {action: bake}"
    assert old in text
    path = tmp_path / "states.yaml"
    path.write_text(text.replace(old, "  bake:           {action: bake, params: {seconds: 1}}"),
                    encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("engine_name", ENGINES)
def test_an_instance_unhealthy_during_a_spec_bake_fails_it(sfn_make, at_describe_alarms,
                                                           bake_spec, engine_name):
    """A spec bake of 1 s (no --bake-time); a new instance turns Unhealthy at the bake's
    second poll: bake fails, exit 1, qa-a still 2, the lock kept with a failed record
    naming bake."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    put_alarm(sfn_make, ALARM)

    def unhealthy() -> None:
        group = sfn_make("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=["qa-b"])["AutoScalingGroups"][0]
        sfn_make("autoscaling").set_instance_health(
            InstanceId=group["Instances"][0]["InstanceId"], HealthStatus="Unhealthy")

    at_describe_alarms(4, unhealthy)
    settings = settings_for(instance_count=2, alarms=[ALARM], spec=bake_spec)
    assert ENGINES[engine_name](settings) == 1
    assert capacities(sfn_make, ASGS)["qa-a"]["desired"] == 2
    saved = _final_record(sfn_make)
    assert lock_body(sfn_make) is not None and saved.status == "failed"
    assert "bake" in (saved.last_error or "")


def _pinned_with_version_2(make: Callable[[str], Any]) -> None:
    """Both ASGs launch version 1 of qa-lt (pinned, not $Latest); version 2 exists."""
    ec2, asg = make("ec2"), make("autoscaling")
    lt = ec2.describe_launch_templates(LaunchTemplateNames=["qa-lt"])["LaunchTemplates"][0]
    ec2.create_launch_template_version(LaunchTemplateId=lt["LaunchTemplateId"], SourceVersion="1",
                                       LaunchTemplateData={"InstanceType": "t3.small"})
    for name in ASGS:
        asg.update_auto_scaling_group(AutoScalingGroupName=name, LaunchTemplate={
            "LaunchTemplateId": lt["LaunchTemplateId"], "Version": "1"})


def _versions(make: Callable[[str], Any]) -> dict[str, str]:
    groups = make("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=ASGS)["AutoScalingGroups"]
    return {g["AutoScalingGroupName"]: g["LaunchTemplate"]["Version"] for g in groups}


@pytest.mark.parametrize("engine_name", ENGINES)
def test_launch_template_version_is_set_on_the_target_before_it_scales(sfn_make, engine_name):
    """--launch-template-version 2: qa-b launches version 2 and serves 2, qa-a (version 1)
    drained and left on version 1, lock released, exit 0."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    _pinned_with_version_2(sfn_make)
    assert ENGINES[engine_name](settings_for(instance_count=2, launch_template_version="2")) == 0
    assert _versions(sfn_make) == {"qa-a": "1", "qa-b": "2"}
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (0, 2)
    assert lock_body(sfn_make) is None and _final_record(sfn_make).status == "done"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_rollback_restores_the_launch_template_version(sfn_make, frozen_world, engine_name):
    """Instances never ready, --launch-template-version 2 --rollback-on-failure: qa-b back to
    0 and to version 1, qa-a still 2 on version 1, lock released, exit 1."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    _pinned_with_version_2(sfn_make)
    settings = settings_for(instance_count=2, launch_template_version="2",
                            rollback_on_failure=True)
    assert ENGINES[engine_name](settings) == 1
    assert _versions(sfn_make) == {"qa-a": "1", "qa-b": "1"}
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 0)
    assert lock_body(sfn_make) is None and _final_record(sfn_make).status == "rolled-back"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_launch_template_version_on_a_launch_configuration_is_refused(sfn_make, engine_name):
    """ASGs on launch configuration qa-lc, --launch-template-version 2: exit 3 naming qa-lc,
    nothing scaled, the lock released."""
    asg = sfn_make("autoscaling")
    asg.create_launch_configuration(LaunchConfigurationName="qa-lc", ImageId="ami-12c6146b",
                                    InstanceType="t3.micro")
    for name, desired in (("qa-a", 1), ("qa-b", 0)):
        asg.create_auto_scaling_group(AutoScalingGroupName=name, LaunchConfigurationName="qa-lc",
                                      MinSize=0, MaxSize=4, DesiredCapacity=desired,
                                      AvailabilityZones=["us-east-1a"])
    sfn_make("s3").create_bucket(Bucket=BUCKET)
    assert ENGINES[engine_name](settings_for(instance_count=2, launch_template_version="2")) == 3
    assert capacities(sfn_make, ASGS)["qa-b"]["desired"] == 0
    saved = _final_record(sfn_make)
    assert lock_body(sfn_make) is None and "launch configuration qa-lc" in (saved.last_error or "")


@pytest.mark.parametrize("engine_name", ENGINES)
def test_an_alarm_firing_during_wait_elb_fails_it(sfn_make, broken_classic_elb,
                                                  at_describe_alarms, engine_name):
    """--elb-name qa-public (never InService) --alarm qa-5xx; the alarm goes into ALARM at
    wait-elb's first poll: wait-elb fails at once on the alarm, not the timeout, exit 1,
    qa-a still 2, the lock kept with a failed record naming the alarm."""
    build_env(sfn_make, "qa", active="a", active_count=2, bucket=BUCKET)
    put_alarm(sfn_make, ALARM)
    at_describe_alarms(3, lambda: put_alarm(sfn_make, ALARM, "ALARM", reason="12 5XX"))
    settings = settings_for(instance_count=2, no_elb_check=False, elb_names=["qa-public"],
                            alarms=[ALARM])
    assert ENGINES[engine_name](settings) == 1
    assert capacities(sfn_make, ASGS)["qa-a"]["desired"] == 2
    saved = _final_record(sfn_make)
    assert lock_body(sfn_make) is not None and saved.status == "failed"
    assert "wait-elb: alarm qa-5xx is in ALARM: 12 5XX" in (saved.last_error or "")


def test_an_input_without_limits_bake_bakes_settings_bake_time_rounded(sfn_make,
                                                                      at_describe_alarms):
    """StartExecution by another starter: settings.bake_time 1.4 and no limits.bake bakes
    1 s (polls at 0 and 1 s): the alarm going into ALARM at the bake's second poll rolls
    back (FAILED abfsm.RolledBack), qa-b 0, qa-a still 2."""
    import json
    import time

    from tests.support.sfn_moto import ROLE, cli

    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    put_alarm(sfn_make, ALARM)
    at_describe_alarms(4, lambda: put_alarm(sfn_make, ALARM, "ALARM", reason="12 5XX"))
    code, machine = cli("sfn", "deploy", "--name", "abfsm", "--role-arn", ROLE,
                        "--region", "us-east-1")
    assert code == 0
    sfn = sfn_make("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine, name="rounded", input=json.dumps({
        "settings": {"environment": "qa", "lock_bucket_name": BUCKET, "instance_count": 2,
                     "no_elb_check": True, "bake_time": 1.4, "alarms": [ALARM],
                     "rollback_on_failure": True},
        "limits": {"interval": 1, "polls": 3}}))["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert (described["status"], described["error"]) == ("FAILED", "abfsm.RolledBack")
    assert "bake: alarm qa-5xx is in ALARM" in described["cause"]
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 0)
