"""moto with IAM enforced, in process: abfsm runs as a user holding exactly one policy.

    python -m tests.support.iam_moto          # print the minimality table (mode x action)

moto enforces IAM on every request once `INITIAL_NO_AUTH_ACTION_COUNT` is 0 (what
`set_initial_no_auth_action_count(0)` does in process). What it checks, and what the
harness does about what it does not:
- actions: checked for every service; S3 object and bucket ARNs: checked;
- Auto Scaling and ELB resources: moto matches every request against `Resource: "*"`, so an
  ARN-scoped statement is denied although AWS allows it; conditions are not evaluated
  (moto has no request context to match them against). `widened()` turns those statements
  into `Resource: "*"` without conditions: the action-level check still runs. The scoped
  ARNs themselves are pinned against the AWS documentation in tests/unit/test_iam.py.
- S3 answers a GetObject of an absent key with 403 unless the caller may s3:ListBucket the
  bucket (404 then). moto answers 404 to everyone; `absent_key_needs_list_bucket()` makes it
  answer as S3 does, so the policy's s3:ListBucket is proven, not assumed.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from abfsm import admin, iam, runner
from abfsm.aws import Services, connect
from abfsm.context import Settings
from abfsm.errors import AbfsmError
from tests.fakes import FakeClock
from tests.support.aws_env import REGION, build_env

USER = "abfsm-deployer"
_UNSCOPED_IN_MOTO = ("autoscaling:", "elasticloadbalancing:", "cloudwatch:", "monitoring:")
ADMIN_POLICY = {"Version": iam.VERSION,
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def widened(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as moto can check it: Auto Scaling / ELB statements on "*", no conditions;
    moto names CloudWatch's actions by its signing name (monitoring:X, IAM says cloudwatch:X)."""
    out = copy.deepcopy(doc)
    for stmt in out["Statement"]:
        stmt.pop("Condition", None)
        actions = [stmt["Action"]] if isinstance(stmt["Action"], str) else stmt["Action"]
        actions = actions + [a.replace("cloudwatch:", "monitoring:", 1) for a in actions
                             if a.startswith("cloudwatch:")]
        stmt["Action"] = actions
        if all(a.startswith(_UNSCOPED_IN_MOTO) for a in actions):
            stmt["Resource"] = "*"
    return out


def without(doc: dict[str, Any], action: str) -> dict[str, Any]:
    """The document with one action removed from every statement (empty statements dropped)."""
    out = copy.deepcopy(doc)
    kept = []
    for stmt in out["Statement"]:
        actions = [stmt["Action"]] if isinstance(stmt["Action"], str) else stmt["Action"]
        stmt["Action"] = [a for a in actions if a != action]
        if stmt["Action"]:
            kept.append(stmt)
    out["Statement"] = kept
    return out


def _keys(iam_client: Any, user: str, document: dict[str, Any] | None) -> dict[str, str]:
    iam_client.create_user(UserName=user)
    if document:
        iam_client.put_user_policy(UserName=user, PolicyName=user,
                                   PolicyDocument=json.dumps(document))
    key = iam_client.create_access_key(UserName=user)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


class Enforced:
    """Inside mock_aws: an admin user for the test's own calls and USER holding one policy."""

    def __init__(self, make: Callable[[str], Any]) -> None:
        import boto3

        self._admin_keys = _keys(make("iam"), "test-admin", ADMIN_POLICY)
        self._user_keys = _keys(make("iam"), USER, None)
        self.document: dict[str, Any] = {}
        # Clients are made once: building one costs more than a run's calls.
        self._admin_session = boto3.Session(region_name=REGION, **self._admin_keys)
        self._admin: dict[str, Any] = {}
        self._services = connect(region=REGION, session=boto3.Session(region_name=REGION,
                                                                       **self._user_keys))

    def admin(self, service: str) -> Any:
        if service not in self._admin:
            self._admin[service] = self._admin_session.client(service)
        return self._admin[service]

    def set_policy(self, document: dict[str, Any]) -> None:
        """USER's only policy becomes `document` as moto can check it (see widened)."""
        self.document = widened(document)
        client = self.admin("iam")
        if not self.document["Statement"]:  # IAM refuses an empty policy: hold none
            if client.list_user_policies(UserName=USER)["PolicyNames"]:
                client.delete_user_policy(UserName=USER, PolicyName=USER)
            return
        client.put_user_policy(UserName=USER, PolicyName=USER,
                               PolicyDocument=json.dumps(self.document))

    def services(self) -> Services:
        """abfsm's adapters with USER's keys (one set for every run: they keep no state)."""
        return self._services


@contextmanager
def enforced() -> Iterator[None]:
    """Every request to moto from here on is authenticated and authorized."""
    from moto import settings

    saved = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    try:
        yield
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = saved


_PATCHED: list[bool] = []


def absent_key_needs_list_bucket() -> None:
    """GetObject of an absent key: 404 only if the caller may s3:ListBucket, else 403 (S3's rule)."""
    if _PATCHED:
        return
    from moto.s3.exceptions import MissingKey
    from moto.s3.responses import S3Response

    original = S3Response.get_object

    def get_object(self: Any) -> Any:
        try:
            return original(self)
        except MissingKey:
            self.data["Action"] = "ListBucket"  # authorize as a listing of the bucket
            self._authenticate_and_authorize_s3_action(bucket_name=self.bucket_name)
            raise

    S3Response.get_object = get_object  # type: ignore[method-assign]
    _PATCHED.append(True)


# -- the modes and their scenarios ------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    exit_code: int
    status: str
    denied: tuple[str, str] | None = None  # (IAM action, resource) AWS refused

    def __str__(self) -> str:
        tail = f", refused {self.denied[0]} on {self.denied[1]}" if self.denied else ""
        return f"exit {self.exit_code} ({self.status}{tail})"


def _result(outcome: Any) -> Result:
    denied = iam.denial(outcome.error)
    return Result(outcome.exit_code, outcome.status,
                  iam.refused(denied, REGION) if denied else None)


def _raised(fn: Callable[[], Any]) -> Result:
    """What `fn` ended with: an Outcome's result, or the error that escaped it (as the CLI
    would report it: its exit code)."""
    try:
        got = fn()
    except AbfsmError as exc:
        denied = iam.denial(exc)
        return Result(exc.exit_code, "error" if denied else type(exc).__name__,
                      iam.refused(denied, REGION) if denied else None)
    return _result(got) if isinstance(got, runner.Outcome) else Result(0, "ok")


def _deploy(h: Enforced, s: Settings) -> Result:
    return _raised(lambda: runner.deploy(s, services=h.services(), clock=FakeClock()))


@dataclass(frozen=True)
class Scenario:
    """One run of a mode: `prepare` (auth off, as the admin), then `run` as USER."""

    name: str
    expect: tuple[int, str]  # (exit code, status) with the full policy
    prepare: Callable[[Enforced, Settings], None] = lambda h, s: None
    run: Callable[[Enforced, Settings], Result] = lambda h, s: _deploy(h, s)


@dataclass(frozen=True)
class Mode:
    name: str
    settings: dict[str, Any]
    scenarios: tuple[Scenario, ...]
    command: str = "deploy"
    env: dict[str, Any] = field(default_factory=dict)

    def settings_in(self, tmp: Path) -> Settings:
        base: dict[str, Any] = {"environment": "qa", "instance_count": 2, "update_timeout": 5.0,
                                "health_check_timeout": 30.0, "region": REGION,
                                "state_dir": str(tmp / "state")}
        return Settings(**{**base, **self.settings})

    def policy(self, settings: Settings) -> dict[str, Any]:
        return iam.policy(settings, self.command)


BUCKET = "qa-locks"


def _foreign_lock(h: Enforced, s: Settings) -> None:
    h.admin("s3").put_object(Bucket=BUCKET, Key=f"{s.environment}.lock", Body=b"")


_BROKEN: set[str] = set()  # ASGs whose instances come up stopped (see _new_instances_stopped)


def _new_instances_stopped() -> None:
    """Once: an ASG named in _BROKEN has its instances stopped after every capacity update
    (OutOfService in its classic ELB), as an instance that never passes its health check."""
    if _PATCHED_UPDATE:
        return
    from moto.autoscaling.models import AutoScalingBackend

    original = AutoScalingBackend.update_auto_scaling_group

    def update(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        out = original(self, name, *args, **kwargs)
        if name in _BROKEN:
            group = self.autoscaling_groups[name]
            self.ec2_backend.stop_instances([i.instance.id for i in group.instance_states])
        return out

    AutoScalingBackend.update_auto_scaling_group = update  # type: ignore[method-assign]
    _PATCHED_UPDATE.append(True)


_PATCHED_UPDATE: list[bool] = []


def _stop_after_scale(h: Enforced, s: Settings) -> None:
    """The new ASG's instances come up stopped (OutOfService): wait-elb runs out of time."""
    _new_instances_stopped()
    _BROKEN.add(f"{s.environment}-b")


def _fail_in_scale(h: Enforced, s: Settings) -> None:
    """A run that failed in scale (its policy lacked UpdateAutoScalingGroup): lock kept."""
    doc = without(iam.policy(s, "deploy"), "autoscaling:UpdateAutoScalingGroup")
    h.set_policy(doc)
    with enforced():
        outcome = runner.deploy(s, services=h.services(), clock=FakeClock())
    assert (outcome.exit_code, outcome.status) == (1, "failed"), outcome


def _resume(h: Enforced, s: Settings) -> Result:
    return _raised(lambda: runner.resume(s, services=h.services(), clock=FakeClock()))


def _finished_run(h: Enforced, s: Settings) -> None:
    outcome = runner.deploy(s, services=Services(h.admin), clock=FakeClock())
    assert outcome.exit_code == 0, outcome


def _status(h: Enforced, s: Settings) -> Result:
    return _raised(lambda: admin.status_data(s, services=h.services(), clock=FakeClock()))


def _unlock(h: Enforced, s: Settings) -> Result:
    return _raised(lambda: admin.unlock(s, run_id=None, force=True, services=h.services(),
                                        clock=FakeClock()))


def _populate_b_stopped(h: Enforced, s: Settings) -> None:
    """Both ASGs populated; ENV-b's instances stopped, so it serves fewer (clean-up empties it)."""
    from tests.support.crash_cli import break_instances

    b = f"{s.environment}-b"
    h.admin("autoscaling").update_auto_scaling_group(AutoScalingGroupName=b, DesiredCapacity=2)
    break_instances(b, "stopped", make=h.admin)


def _paused_run(h: Enforced, s: Settings) -> None:
    """A run paused at its approval state (manual-approval.yaml, --pause-at-approval)."""
    outcome = runner.deploy(s, services=Services(h.admin), clock=FakeClock())
    assert (outcome.exit_code, outcome.status) == (4, "paused"), outcome


def _both_populated(h: Enforced, s: Settings) -> None:
    h.admin("autoscaling").update_auto_scaling_group(AutoScalingGroupName=f"{s.environment}-b",
                                                     DesiredCapacity=1)


def _approve(h: Enforced, s: Settings) -> Result:
    from abfsm.actions.approval import decide

    clock = FakeClock()
    lock = runner.make_lock(s, h.services(), clock)
    return _raised(lambda: decide(lock, clock, "approved", "ok"))


_APPROVAL_SPEC = str(Path(__file__).resolve().parents[2] / "examples/specs/manual-approval.yaml")
_DEPLOY = Scenario("deploy", (0, "done"))
_LOCKED = Scenario("lock held by another", (3, "refused"), prepare=_foreign_lock)
_LB = {"elb_names": ["qa-public"]}
_BUCKET = {"lock_bucket_name": BUCKET}

# A deploy with a lock bucket reads the lock only when it is taken (to say by whom): the
# second scenario is what needs s3:GetObject.
_D = (_DEPLOY, _LOCKED)
MODES: tuple[Mode, ...] = (
    Mode("A/B, lock bucket", {**_LB, **_BUCKET}, _D),
    Mode("A/B, local lock", {**_LB}, (_DEPLOY,)),
    Mode("stepping", {**_LB, **_BUCKET, "instance_count": 4, "instance_count_step": 2},
         _D),
    Mode("--zero", {**_LB, **_BUCKET, "zero": True}, _D),
    Mode("--single-asg", {**_LB, **_BUCKET, "single_asg": True}, _D,
         env={"single": True}),
    Mode("--dry-run", {**_LB, **_BUCKET, "dry_run": True}, (Scenario("dry run", (0, "planned")),)),
    Mode("--clean-up", {**_LB, **_BUCKET, "clean_up": True},
         (Scenario("both populated, ENV-b serves fewer", (0, "done"),
                   prepare=_populate_b_stopped), _LOCKED)),
    Mode("--wait-for-scale-down", {**_LB, **_BUCKET, "wait_for_scale_down": True}, _D),
    Mode("--rollback-on-failure", {**_LB, **_BUCKET, "rollback_on_failure": True},
         (Scenario("new instances never healthy", (1, "rolled-back"),
                   prepare=_stop_after_scale), _LOCKED)),
    Mode("resume after a failure", {**_LB, **_BUCKET},
         (Scenario("failed in scale, resumed", (0, "done"), prepare=_fail_in_scale, run=_resume),
          Scenario("nothing to resume", (3, "Refused"), run=_resume)),
         command="resume"),
    Mode("status", {**_LB, **_BUCKET},
         (Scenario("free, one run in the history", (0, "ok"), prepare=_finished_run,
                   run=_status),), command="status"),
    Mode("unlock", {**_LB, **_BUCKET},
         (Scenario("a lock to remove", (0, "ok"), prepare=_foreign_lock, run=_unlock),
          Scenario("no lock", (3, "Refused"), run=_unlock)), command="unlock"),
    Mode("ALB target groups", {**_BUCKET, "target_group_arns": ["TG0"]}, _D,
         env={"classic_elb": False, "target_groups": 1}),
    Mode("load balancers discovered", {**_BUCKET}, _D, env={"target_groups": 1}),
    Mode("alarm gate and bake", {**_LB, **_BUCKET, "alarms": ["ALARM"], "bake_time": 20.0}, _D),
    Mode("approval (paused)", {**_LB, **_BUCKET, "spec": _APPROVAL_SPEC,
                               "pause_at_approval": True},
         (Scenario("paused at the approval", (4, "paused")), _LOCKED,
          Scenario("both ASGs populated: refused after the lock", (3, "refused"),
                   prepare=_both_populated))),
    Mode("approve", {**_LB, **_BUCKET, "spec": _APPROVAL_SPEC, "pause_at_approval": True},
         (Scenario("a paused run approved", (0, "ok"), prepare=_paused_run, run=_approve),
          Scenario("nothing to approve", (3, "Refused"), run=_approve)), command="approve"),
)


class Lab:
    """One in-process moto (auth off unless `enforced()`), USER, and a fresh environment per run.

    Each run gets an environment of its own (e1, e2, ...) instead of a new moto: restarting
    moto costs about a second, building an environment a few milliseconds.
    """

    def __init__(self, make: Callable[[str], Any], tmp: Path) -> None:
        self.make, self.tmp = make, tmp
        self.h = Enforced(make)
        self._n = 0

    def settings(self, mode: Mode) -> Settings:
        """Build a fresh environment for one run of `mode`; its settings."""
        self._n += 1
        env = f"e{self._n}"
        built = build_env(self.make, env, active="a", active_count=2, **mode.env)
        settings = replace(mode.settings_in(self.tmp), environment=env)
        if settings.elb_names:
            settings = replace(settings, elb_names=[f"{env}-public"])
        if settings.target_group_arns:
            settings = replace(settings, target_group_arns=list(built["target_groups"]))
        if settings.alarms:
            from tests.support.gates import put_alarm

            put_alarm(self.make, f"{env}-5xx")
            settings = replace(settings, alarms=[f"{env}-5xx"])
        return settings

    def run(self, mode: Mode, scenario: Scenario,
            policy: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d) -> Result:
        """The scenario as USER holding policy(the mode's generated policy)."""
        settings = self.settings(mode)
        scenario.prepare(self.h, settings)
        self.h.set_policy(policy(mode.policy(settings)))
        with enforced():
            return scenario.run(self.h, settings)

    def minimality(self, mode: Mode) -> list[tuple[str, str, Result]]:
        """For each action of the mode's policy: (action, the first scenario refused, result)."""
        actions = iam.actions_of(mode.policy(mode.settings_in(self.tmp)))
        rows = []
        for action in actions:
            result = Result(0, "not run")
            for scenario in mode.scenarios:
                result = self.run(mode, scenario, lambda d, a=action: without(d, a))  # type: ignore[misc]
                if result.denied:
                    rows.append((action, scenario.name, result))
                    break
            else:
                rows.append((action, "(no scenario refused)", result))
        return rows


@contextmanager
def lab(tmp: Path) -> Iterator[Lab]:
    """A fresh in-process moto with the lock bucket and USER (see Lab)."""
    from moto import mock_aws

    absent_key_needs_list_bucket()
    with mock_aws():
        import boto3

        session = boto3.Session(region_name=REGION)
        clients: dict[str, Any] = {}

        def make(service: str) -> Any:
            if service not in clients:
                clients[service] = session.client(service)
            return clients[service]

        make("s3").create_bucket(Bucket=BUCKET)
        yield Lab(make, tmp)


def main() -> int:
    import logging
    import tempfile

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))

    print("| mode | action removed | scenario | refused call → result |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp, lab(Path(tmp)) as the_lab:
        for mode in MODES:
            for action, scenario, result in the_lab.minimality(mode):
                print(f"| {mode.name} | `{action}` | {scenario} | {result} |")
    return 0


if __name__ == "__main__":
    import os

    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": os.devnull,
                       "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    from abfsm.emulator import fixes

    fixes.apply()
    sys.exit(main())
