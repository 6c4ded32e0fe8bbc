"""The version decision (actions/version.py) and --resume-processes (actions/processes.py),
with fake adapters answering as AWS does; the CLI's validation of the new flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from abfsm import cli, runner
from abfsm.actions import processes, version
from abfsm.actions.base import Run
from abfsm.aws.autoscaling import Group, Instance, TemplateRef
from abfsm.aws.launch_templates import TemplateVersion
from abfsm.context import Plan, Settings
from abfsm.errors import AwsError, Refused
from abfsm.lock import LocalStore, Lock
from abfsm.record import new_record
from tests.fakes import FakeClock

LT = "lt-0abc"
NEW_AMI = "ami-0123456789abcdef0"


class FakeEc2:
    """A launch template with versions 1..latest (default 1)."""

    def __init__(self, latest: int = 3) -> None:
        self.numbers = list(range(1, latest + 1))
        self.descriptions: dict[int, str] = {}
        self.reads = 0
        self.created: list[dict[str, Any]] = []

    def _v(self, n: int) -> TemplateVersion:
        return TemplateVersion(LT, "qa-lt", n, self.descriptions.get(n, ""), "ami-old", n == 1)

    def versions(self, template_id: str, names: list[str]) -> dict[str, TemplateVersion]:
        self.reads += 1
        out = {}
        for name in names:
            n = {"$Latest": self.numbers[-1], "$Default": 1}.get(name) or int(name)
            if n not in self.numbers:
                raise AwsError("ec2 DescribeLaunchTemplateVersions failed: "
                               "InvalidLaunchTemplateId.VersionNotFound: no such version")
            out[name] = self._v(n)
        return out

    def versions_after(self, template_id: str, number: int) -> list[TemplateVersion]:
        return [self._v(n) for n in self.numbers if n > number]

    def create_version(self, template_id: str, *, source_version: int, image_id: str,
                       description: str) -> TemplateVersion:
        self.numbers.append(self.numbers[-1] + 1)
        self.descriptions[self.numbers[-1]] = description
        self.created.append({"source": source_version, "image": image_id})
        return self._v(self.numbers[-1])


class FakeAutoScaling:
    def __init__(self, groups: dict[str, Group]) -> None:
        self.groups = groups
        self.calls: list[tuple[Any, ...]] = []

    def describe(self, names: list[str]) -> dict[str, Group]:
        return {n: self.groups[n] for n in names if n in self.groups}

    def set_launch_template(self, name: str, template_id: str, number: int, *,
                            mixed_policy: Any = None) -> None:
        self.calls.append(("set", name, number, mixed_policy is not None))

    def resume_processes(self, name: str, names: list[str]) -> None:
        self.calls.append(("resume", name, tuple(names)))

    def suspend_processes(self, name: str, names: list[str]) -> None:
        self.calls.append(("suspend", name, tuple(names)))


class FakeServices:
    def __init__(self, ec2: FakeEc2, autoscaling: FakeAutoScaling) -> None:
        self.launch_templates, self.autoscaling = ec2, autoscaling


def group(name: str, desired: int, version: str = "1", *, lt: str = LT,
          mixed: bool = False, lc: str | None = None, suspended: tuple[str, ...] = ()) -> Group:
    ref = None if lc else TemplateRef(lt, "qa-lt", version)
    policy = {"LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateId": lt,
                                                                 "Version": version}}} \
        if mixed else None
    insts = tuple(Instance(f"i-{name}{i}", "InService", "Healthy") for i in range(desired))
    return Group(name, 0, 10, desired, insts, suspended=suspended, launch_template=ref,
                 mixed_policy=policy, launch_configuration=lc)


def make_run(tmp_path: Path, groups: dict[str, Group], ec2: FakeEc2 | None = None,
             **flags: Any) -> Run:
    clock = FakeClock()
    settings = Settings(environment="qa", state_dir=str(tmp_path), no_elb_check=True, **flags)
    spec = runner.load(settings)
    run = Run(settings=settings, plan=Plan(), clock=clock,
              aws=FakeServices(ec2 or FakeEc2(), FakeAutoScaling(groups)),  # type: ignore[arg-type]
              lock=Lock(LocalStore(tmp_path, "qa"), clock),
              record=new_record("qa", 1, spec.initial, settings.to_dict(), clock), spec=spec)
    run.state = "scale"
    run.lock.acquire(run.record)
    return run


def ab_plan() -> Plan:
    return Plan(mode="ab", active="qa-a", target="qa-b", target_count=2, steps=[2])


def test_no_version_flag_reads_no_launch_template(tmp_path):
    """Without --launch-template-version / --image-id nothing is resolved (no ec2 call); the
    plan still records what each ASG launches, for `abfsm status`."""
    ec2 = FakeEc2()
    run = make_run(tmp_path, {"qa-a": group("qa-a", 2), "qa-b": group("qa-b", 0, "$Latest")}, ec2)
    plan = ab_plan()
    version.decide(run, plan, run.aws.autoscaling.groups)  # type: ignore[attr-defined]
    assert ec2.reads == 0 and plan.template_id is None
    assert plan.versions == {"qa-a": "qa-lt v1", "qa-b": "qa-lt $Latest"}


@pytest.mark.parametrize("asked, number", [("$Latest", 3), ("$Default", 1), ("2", 2)])
def test_launch_template_version_is_resolved_to_a_number(tmp_path, asked, number):
    """--launch-template-version $Latest / $Default / N: the plan holds the number, and the
    target's version before the run (as configured and as a number)."""
    groups = {"qa-a": group("qa-a", 2), "qa-b": group("qa-b", 0, "$Latest")}
    run = make_run(tmp_path, groups, launch_template_version=asked)
    plan = ab_plan()
    version.decide(run, plan, groups)
    assert plan.version == number
    assert (plan.version_from, plan.version_from_number, plan.latest_version) == ("$Latest", 3, 3)
    assert plan.template_id == LT and plan.image_id is None


def test_an_unknown_version_is_refused(tmp_path):
    """--launch-template-version 9 of a template with 3 versions: Refused (exit 3) naming it."""
    groups = {"qa-a": group("qa-a", 2), "qa-b": group("qa-b", 0)}
    run = make_run(tmp_path, groups, launch_template_version="9")
    with pytest.raises(Refused, match="launch template qa-lt has no version 9") as err:
        version.decide(run, ab_plan(), groups)
    assert err.value.exit_code == 3


def test_a_launch_configuration_target_is_refused_naming_the_migration(tmp_path):
    """A target on a launch configuration: Refused naming the configuration and the way to
    a launch template."""
    groups = {"qa-a": group("qa-a", 2), "qa-b": group("qa-b", 0, lc="qa-lc")}
    run = make_run(tmp_path, groups, image_id=NEW_AMI)
    with pytest.raises(Refused) as err:
        version.decide(run, ab_plan(), groups)
    assert "launch configuration qa-lc" in str(err.value)
    assert "migrate-launch-configurations" in str(err.value)


def test_image_id_with_the_active_on_latest_is_refused_with_the_pin_command(tmp_path):
    """The active ASG tracks $Latest of the same template: Refused naming the pin command
    with the version it runs now; nothing created."""
    ec2 = FakeEc2(latest=3)
    groups = {"qa-a": group("qa-a", 2, "$Latest"), "qa-b": group("qa-b", 0)}
    run = make_run(tmp_path, groups, ec2, image_id=NEW_AMI)
    with pytest.raises(Refused) as err:
        version.decide(run, ab_plan(), groups)
    assert ("--auto-scaling-group-name qa-a --launch-template LaunchTemplateId=lt-0abc,Version=3"
            in str(err.value))
    assert ec2.created == []


def test_image_id_with_the_active_on_latest_of_another_template_is_allowed(tmp_path):
    """$Latest of a different template is not changed by the new version: no refusal."""
    groups = {"qa-a": group("qa-a", 2, "$Latest", lt="lt-other"), "qa-b": group("qa-b", 0)}
    run = make_run(tmp_path, groups, image_id=NEW_AMI)
    plan = ab_plan()
    version.decide(run, plan, groups)
    assert (plan.image_id, plan.source_version, plan.version) == (NEW_AMI, 1, None)
    assert plan.version_description and run.record.run_id in plan.version_description


def test_launch_template_version_with_the_active_on_latest_is_allowed(tmp_path):
    """Setting an existing version creates nothing, so an active ASG on $Latest is fine."""
    groups = {"qa-a": group("qa-a", 2, "$Latest"), "qa-b": group("qa-b", 0)}
    run = make_run(tmp_path, groups, launch_template_version="2")
    plan = ab_plan()
    version.decide(run, plan, groups)
    assert plan.version == 2


def test_image_id_and_a_version_copies_that_version(tmp_path):
    """--image-id with --launch-template-version 2: the new version is a copy of v2."""
    groups = {"qa-a": group("qa-a", 2), "qa-b": group("qa-b", 0)}
    run = make_run(tmp_path, groups, image_id=NEW_AMI, launch_template_version="2")
    plan = ab_plan()
    version.decide(run, plan, groups)
    assert (plan.source_version, plan.version) == (2, None)


def test_a_mixed_policy_target_is_set_through_its_policy(tmp_path):
    """MixedInstancesPolicy target: decided like any other and set through the policy."""
    groups = {"qa-a": group("qa-a", 2), "qa-b": group("qa-b", 0, "1", mixed=True)}
    run = make_run(tmp_path, groups, launch_template_version="3")
    run.plan = ab_plan()
    version.decide(run, run.plan, groups)
    version.apply(run)
    assert run.plan.mixed_policy
    assert run.aws.autoscaling.calls == [("set", "qa-b", 3, True)]  # type: ignore[attr-defined]


def test_apply_finds_the_version_this_run_created_and_creates_no_second(tmp_path):
    """A version described with this run's description exists (the create call's answer was
    lost): apply sets it and creates nothing."""
    ec2 = FakeEc2(latest=3)
    groups = {"qa-a": group("qa-a", 2), "qa-b": group("qa-b", 0)}
    run = make_run(tmp_path, groups, ec2, image_id=NEW_AMI)
    plan = ab_plan()
    version.decide(run, plan, groups)
    run.plan = plan
    ec2.numbers.append(4)
    ec2.descriptions[4] = plan.version_description or ""
    with capture_logs() as logs:
        version.apply(run)
    assert ec2.created == [] and plan.version == 4
    assert [e["reused"] for e in logs if e["event"] == "version.created"] == [True]
    assert run.aws.autoscaling.calls == [("set", "qa-b", 4, False)]  # type: ignore[attr-defined]


def test_apply_then_restore_puts_back_the_number_the_target_ran(tmp_path):
    """--image-id on a target tracking $Latest (v3): apply creates v4 from v3 and sets it;
    restore sets 3 (a number: $Latest would now be v4)."""
    ec2 = FakeEc2(latest=3)
    groups = {"qa-a": group("qa-a", 2), "qa-b": group("qa-b", 0, "$Latest")}
    run = make_run(tmp_path, groups, ec2, image_id=NEW_AMI)
    run.plan = ab_plan()
    version.decide(run, run.plan, groups)
    version.apply(run)
    version.restore(run)
    assert ec2.created == [{"source": 3, "image": NEW_AMI}]
    assert run.aws.autoscaling.calls == [("set", "qa-b", 4, False),  # type: ignore[attr-defined]
                                         ("set", "qa-b", 3, False)]
    assert not run.plan.version_set


def test_restore_without_a_version_set_changes_nothing(tmp_path):
    """A rollback of a run that set no version makes no launch template call."""
    run = make_run(tmp_path, {"qa-b": group("qa-b", 0)})
    run.plan = ab_plan()
    version.restore(run)
    assert run.aws.autoscaling.calls == []  # type: ignore[attr-defined]


def test_suspended_processes_are_refused_without_the_flag_naming_it(tmp_path):
    """Launch suspended on the target and no --resume-processes: Refused, naming the flag."""
    groups = {"qa-a": group("qa-a", 2), "qa-b": group("qa-b", 0, suspended=("Launch",))}
    with pytest.raises(Refused, match="pass --resume-processes"):
        processes.decide(ab_plan(), groups, resume=False)


def test_with_the_flag_the_processes_to_resume_are_recorded(tmp_path):
    """--resume-processes: the plan records Launch on the target and Terminate on the old ASG,
    and nothing else that is suspended."""
    groups = {"qa-a": group("qa-a", 2, suspended=("Launch", "Terminate")),
              "qa-b": group("qa-b", 0, suspended=("AZRebalance", "Launch"))}
    plan = ab_plan()
    processes.decide(plan, groups, resume=True)
    assert plan.resume_processes == {"qa-a": ["Terminate"], "qa-b": ["Launch"]}


def test_resumed_processes_are_recorded_before_the_call_and_suspended_again(tmp_path):
    """resume records the ASG's processes in the plan (so a crash still re-suspends them),
    resuspend suspends them and clears the record."""
    run = make_run(tmp_path, {"qa-b": group("qa-b", 0)})
    run.plan = ab_plan()
    run.plan.resume_processes = {"qa-b": ["Launch"]}
    processes.resume(run, "qa-b", only=("Launch",))
    assert run.plan.resumed == {"qa-b": ["Launch"]}
    saved = Plan.from_dict(run.lock.holder().record.context)  # type: ignore[union-attr]
    assert saved.resumed == {"qa-b": ["Launch"]}
    processes.resuspend_all(run)
    assert run.plan.resumed == {}
    assert run.aws.autoscaling.calls == [("resume", "qa-b", ("Launch",)),  # type: ignore[attr-defined]
                                         ("suspend", "qa-b", ("Launch",))]


@pytest.mark.parametrize("argv, message", [
    (["--launch-template-version", "0"], "must be a version number, $Latest or $Default"),
    (["--launch-template-version", "latest"], "must be a version number, $Latest or $Default"),
    (["--image-id", "ami-xyz"], "must be an AMI id"),
    (["--zero", "--image-id", NEW_AMI], "--zero deploys nothing"),
])
def test_bad_version_flags_exit_2_before_any_aws_call(argv, message, capsys):
    """Malformed --launch-template-version / --image-id, or with --zero: exit 2, one line."""
    with pytest.raises(SystemExit) as exit_:
        code = cli.main(["deploy", "--environment", "qa", *argv])
        raise SystemExit(code)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
