"""abfsm iam-policy: the policy is the union of the declared calls, mapped and scoped as AWS allows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from abfsm import cli, iam
from abfsm.context import Settings
from abfsm.errors import AccessDenied

BUCKET = "qa-locks"
MUTATING = {"autoscaling:UpdateAutoScalingGroup", "s3:PutObject", "s3:DeleteObject"}


def _settings(**kw: Any) -> Settings:
    return Settings(**{"environment": "qa", **kw})


def _actions(**kw: Any) -> list[str]:
    command = kw.pop("command", "deploy")
    return iam.actions_of(iam.policy(_settings(**kw), command))


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


STANDARD = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "NoResourceLevelPermissions", "Effect": "Allow",
         "Action": ["autoscaling:DescribeAutoScalingGroups",
                    "elasticloadbalancing:DescribeInstanceHealth"],
         "Resource": "*"},
        {"Sid": "EnvironmentAsgs", "Effect": "Allow",
         "Action": ["autoscaling:UpdateAutoScalingGroup"],
         "Resource": ["arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/qa-a",
                      "arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/qa-b"]},
        {"Sid": "EnvironmentLock", "Effect": "Allow",
         "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
         "Resource": "arn:aws:s3:::qa-locks/qa.lock"},
        {"Sid": "RunRecords", "Effect": "Allow", "Action": ["s3:PutObject"],
         "Resource": "arn:aws:s3:::qa-locks/qa/runs/*"},
    ],
}


def test_standard_ab_deploy_with_a_lock_bucket_gets_exactly_this_policy() -> None:
    """A/B deploy, --elb-name, --lock-bucket-name: six actions, writes scoped to qa's ASGs and lock."""
    assert iam.policy(_settings(elb_names=["qa-public"], lock_bucket_name=BUCKET)) == STANDARD


def test_a_dry_run_policy_allows_no_write() -> None:
    """--dry-run: reads only; s3:ListBucket so that a free lock reads as 404, not 403."""
    actions = _actions(elb_names=["qa-public"], lock_bucket_name=BUCKET, dry_run=True)
    assert actions == ["autoscaling:DescribeAutoScalingGroups", "s3:GetObject", "s3:ListBucket"]
    assert not MUTATING & set(actions)


def test_a_local_lock_needs_no_s3() -> None:
    """Without --lock-bucket-name the lock is a local file: no s3 action at all."""
    assert not [a for a in _actions(elb_names=["qa-public"]) if a.startswith("s3:")]


def test_load_balancer_flags_choose_the_health_reads() -> None:
    """--target-group-arn: target group reads only; none named: both kinds (discovered)."""
    tg = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/qa/abc"
    elb = "elasticloadbalancing:"
    assert [a for a in _actions(target_group_arns=[tg]) if a.startswith(elb)] == [
        elb + "DescribeTargetGroupAttributes", elb + "DescribeTargetHealth"]
    assert [a for a in _actions() if a.startswith(elb)] == [
        elb + "DescribeInstanceHealth", elb + "DescribeTargetGroupAttributes",
        elb + "DescribeTargetHealth"]
    assert not [a for a in _actions(no_elb_check=True) if a.startswith(elb)]


def test_reachable_states_follow_the_flags() -> None:
    """dry-run stops after inspect; --zero skips scaling; rollback only with its flag."""
    spec = iam.load(_settings())

    def states(**kw: Any) -> list[str]:
        return iam.reachable_states(spec, _settings(**kw))

    assert states(dry_run=True) == ["locked", "inspect"]
    assert states(zero=True) == ["locked", "inspect", "drain"]
    assert "rollback" not in states() and "rollback" in states(rollback_on_failure=True)
    assert "empty" not in states() and "empty" in states(clean_up=True)


def test_single_asg_scopes_writes_to_the_one_asg() -> None:
    """--single-asg: UpdateAutoScalingGroup on autoScalingGroupName/qa only."""
    doc = iam.policy(_settings(single_asg=True))
    writes = [r for a, r in iam.resources_of(doc) if a == "autoscaling:UpdateAutoScalingGroup"]
    assert writes == ["arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/qa"]


def test_an_environment_pattern_covers_several_environments() -> None:
    """--environment 'qa-*': ASG ARNs qa-*-a / qa-*-b, lock qa-*.lock, records qa-*/runs/*."""
    doc = iam.policy(_settings(environment="qa-*", lock_bucket_name=BUCKET))
    resources = {r for _, r in iam.resources_of(doc)}
    assert {"arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/qa-*-a",
            "arn:aws:s3:::qa-locks/qa-*.lock", "arn:aws:s3:::qa-locks/qa-*/runs/*"} <= resources


def test_account_and_region_go_into_the_arns() -> None:
    """--account-id and --region replace the `*` of the ASG ARNs."""
    doc = iam.policy(_settings(region="eu-west-1"), account_id="123456789012")
    writes = [r for a, r in iam.resources_of(doc) if a == "autoscaling:UpdateAutoScalingGroup"]
    assert writes[0] == ("arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:"
                         "autoScalingGroupName/qa-a")


def test_each_command_gets_only_the_lock_calls_it_makes() -> None:
    """status reads and lists; unlock deletes the lock; all is the union of every command."""
    kw = {"elb_names": ["qa-public"], "lock_bucket_name": BUCKET}
    assert _actions(command="status", **kw) == ["s3:GetObject", "s3:ListBucket"]
    assert _actions(command="unlock", **kw) == ["s3:DeleteObject", "s3:GetObject", "s3:ListBucket"]
    approve = iam.policy(_settings(**kw), "approve")
    assert sorted(iam.resources_of(approve)) == [
        ("s3:GetObject", "arn:aws:s3:::qa-locks/qa.lock"),
        ("s3:GetObject", "arn:aws:s3:::qa-locks/qa/approvals/*"),
        ("s3:ListBucket", "arn:aws:s3:::qa-locks"),
        ("s3:PutObject", "arn:aws:s3:::qa-locks/qa/approvals/*")]
    union = set()
    for command in ("deploy", "resume", "status", "unlock", "approve"):
        union |= set(_actions(command=command, **kw))
    assert _actions(command="all", **kw) == sorted(union)


# -- scopes pinned against the Service Authorization Reference --------------------------------

# Copied from the pages named (Actions table: "Resource types" column; Resource types table:
# "ARN" column). A change here must be checked against the page.
FROM_THE_DOCS = {
    "autoscaling:DescribeAutoScalingGroups": ("list_amazonec2autoscaling.html", None, ""),
    "autoscaling:UpdateAutoScalingGroup": (
        "list_amazonec2autoscaling.html", "autoScalingGroup",
        "arn:${Partition}:autoscaling:${Region}:${Account}:autoScalingGroup:${GroupId}:"
        "autoScalingGroupName/${GroupFriendlyName}"),
    "elasticloadbalancing:DescribeInstanceHealth": ("list_elasticloadbalancing.html", None, ""),
    "elasticloadbalancing:DescribeTargetHealth": ("list_elasticloadbalancingv2.html", None, ""),
    "elasticloadbalancing:DescribeTargetGroupAttributes": (
        "list_elasticloadbalancingv2.html", None, ""),
    "s3:GetObject": ("list_amazons3.html", "object", "arn:${Partition}:s3:::${BucketName}/${ObjectName}"),
    "s3:PutObject": ("list_amazons3.html", "object", "arn:${Partition}:s3:::${BucketName}/${ObjectName}"),
    "s3:DeleteObject": ("list_amazons3.html", "object",
                        "arn:${Partition}:s3:::${BucketName}/${ObjectName}"),
    "s3:ListBucket": ("list_amazons3.html", "bucket", "arn:${Partition}:s3:::${BucketName}"),
    "cloudwatch:DescribeAlarms": ("list_amazoncloudwatch.html", "alarm",
                                  "arn:${Partition}:cloudwatch:${Region}:${Account}:alarm:${AlarmName}"),
    "autoscaling:ResumeProcesses": (
        "list_amazonec2autoscaling.html", "autoScalingGroup",
        "arn:${Partition}:autoscaling:${Region}:${Account}:autoScalingGroup:${GroupId}:"
        "autoScalingGroupName/${GroupFriendlyName}"),
    "autoscaling:SuspendProcesses": (
        "list_amazonec2autoscaling.html", "autoScalingGroup",
        "arn:${Partition}:autoscaling:${Region}:${Account}:autoScalingGroup:${GroupId}:"
        "autoScalingGroupName/${GroupFriendlyName}"),
    "ec2:DescribeInstances": ("list_amazonec2.html", None, ""),
    "ec2:DescribeLaunchTemplateVersions": ("list_amazonec2.html", None, ""),
    "ec2:CreateLaunchTemplateVersion": (
        "list_amazonec2.html", "launch-template",
        "arn:${Partition}:ec2:${Region}:${Account}:launch-template/${LaunchTemplateId}"),
    "elasticloadbalancing:DescribeLoadBalancers": ("list_elasticloadbalancingv2.html", None, ""),
    "elasticloadbalancing:DescribeTargetGroups": ("list_elasticloadbalancingv2.html", None, ""),
    "sns:Publish": ("list_amazonsns.html", "topic",
                    "arn:${Partition}:sns:${Region}:${Account}:${TopicName}"),
    "events:PutEvents": ("list_amazoneventbridge.html", "event-bus",
                         "arn:${Partition}:events:${Region}:${Account}:event-bus/${EventBusName}"),
    "logs:CreateLogGroup": ("list_amazoncloudwatchlogs.html", "log-group",
                            "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}"),
    "logs:CreateLogStream": ("list_amazoncloudwatchlogs.html", "log-group",
                             "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}"),
    "logs:PutLogEvents": ("list_amazoncloudwatchlogs.html", "log-stream",
                          "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}:"
                          "log-stream:${LogStreamName}"),
    "iam:PassRole": ("list_awsidentityandaccessmanagementiam.html", "role",
                     "arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}"),
}


def test_the_scope_table_is_the_documentation_s() -> None:
    """iam.SCOPES says, per action, what the Service Authorization Reference page says."""
    got = {a: (s.doc.rsplit("/", 1)[1], s.resource_type, s.arn) for a, s in iam.SCOPES.items()}
    assert got == FROM_THE_DOCS


SINKS = ["sns:arn:aws:sns:us-east-1:123456789012:deploys", "events:deploys",
         "logs:/abfsm/qa:runs"]

CONFIGS = [
    {"elb_names": ["qa-public"], "lock_bucket_name": BUCKET},
    {"lock_bucket_name": BUCKET, "notify": SINKS, "notify_create": True, "alarms": ["qa-5xx"],
     "bake_time": 60.0},
    {"lock_bucket_name": BUCKET, "single_asg": True, "clean_up": True, "rollback_on_failure": True,
     "wait_for_scale_down": True},
    {"environment": "qa-*", "lock_bucket_name": BUCKET, "dry_run": True},
    {"zero": True, "region": "eu-west-1"},
]


def _arn_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\$\{\w+\})", template)
    free = ("${ObjectName}", "${LogGroupName}", "${LogStreamName}")  # may hold : or / or a * tail
    rx = "".join(".*" if p in free else r"[^:]*" if p.startswith("${") else re.escape(p)
                 for p in parts)
    return re.compile(rx + r"\Z")


@pytest.mark.parametrize("command", iam.COMMANDS)
@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_every_resource_is_of_the_type_aws_documents_for_its_action(
        config: dict[str, Any], command: str) -> None:
    """Each scoped ARN has its action's documented ARN format; `*` only where AWS has no
    resource type; each condition key is one the page lists for the action."""
    for stmt in iam.policy(_settings(**config), command, account_id="123456789012")["Statement"]:
        for action in stmt["Action"]:
            scope = iam.SCOPES[action]  # every action abfsm can call is in the table
            resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
            for resource in resources:
                if scope.resource_type is None or scope.star_because:
                    assert resource == "*", (action, resource)
                else:
                    assert _arn_pattern(scope.arn).match(resource), (action, resource, scope.arn)
            for keys in stmt.get("Condition", {}).values():
                assert set(keys) <= set(scope.condition_keys), (action, keys)


def test_notification_sinks_get_their_topic_bus_and_log_group_only() -> None:
    """--notify sns/events/logs: Publish on the topic, PutEvents on the bus, the log group's
    streams; a dry run sends nothing, so needs none of them."""
    doc = iam.policy(_settings(notify=SINKS, region="us-east-1"), account_id="123456789012")
    pairs = {(a, r) for a, r in iam.resources_of(doc) if a.split(":")[0] in ("sns", "events", "logs")}
    group = "arn:aws:logs:us-east-1:123456789012:log-group:/abfsm/qa"
    assert pairs == {("sns:Publish", "arn:aws:sns:us-east-1:123456789012:deploys"),
                     ("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/deploys"),
                     ("logs:CreateLogStream", group), ("logs:CreateLogStream", group + ":*"),
                     ("logs:PutLogEvents", group + ":log-stream:*")}
    dry = iam.actions_of(iam.policy(_settings(notify=SINKS, dry_run=True)))
    assert not [a for a in dry if a.split(":")[0] in ("sns", "events", "logs")]


def test_the_alarm_gate_reads_alarms_on_star_and_says_why() -> None:
    """--alarm: cloudwatch:DescribeAlarms on * (composite alarms need it), annotated with the page."""
    gs = iam.grants(iam.load(_settings(alarms=["qa-5xx"])), _settings(alarms=["qa-5xx"]))
    alarm = [g for g in gs if g.action == "cloudwatch:DescribeAlarms"]
    assert [(g.resources, g.sid) for g in alarm] == [(("*",), "AllResourcesRequired")]
    assert "composite alarms" in alarm[0].why and "API_DescribeAlarms" in alarm[0].why


def test_an_approval_state_needs_its_documents_and_list_bucket(tmp_path: Path) -> None:
    """The manual-approval spec: Get/PutObject under ENV/ and ListBucket (the request is absent
    until written, and S3 answers 403 for an absent key without it)."""
    spec = Path(__file__).resolve().parents[2] / "examples/specs/manual-approval.yaml"
    doc = iam.policy(_settings(lock_bucket_name=BUCKET, spec=str(spec)))
    pairs = set(iam.resources_of(doc))
    assert {("s3:GetObject", "arn:aws:s3:::qa-locks/qa/*"),
            ("s3:PutObject", "arn:aws:s3:::qa-locks/qa/*"),
            ("s3:ListBucket", "arn:aws:s3:::qa-locks")} <= pairs


def test_every_declared_call_of_every_action_is_in_the_scope_table() -> None:
    """A new AwsCall in any action fails here until its scope is looked up and added."""
    from abfsm.actions import ACTIONS

    everything = _settings(lock_bucket_name=BUCKET, clean_up=True, rollback_on_failure=True,
                           wait_for_scale_down=True)
    calls = [c for a in ACTIONS.values() for c in a.aws_calls(everything, {})]
    calls += [c for step in iam.LOCK_STEPS.values() for c in step.calls]
    assert {iam.iam_action(c.service, c.api) for c in calls} <= set(iam.SCOPES)


# -- the command ------------------------------------------------------------------------------

def test_iam_policy_prints_only_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    """stdout is the JSON document (nothing else), stderr is empty, exit 0."""
    code, out, err = _main(capsys, "iam-policy", "--environment", "qa", "--elb-name", "qa-public",
                           "--lock-bucket-name", BUCKET)
    assert (code, err) == (0, "")
    assert json.loads(out) == STANDARD


def test_annotated_output_says_why_each_unscoped_action_is_on_star(
        capsys: pytest.CaptureFixture[str]) -> None:
    """--format annotated: every `*` action has a comment naming the page saying AWS cannot scope it."""
    code, out, _ = _main(capsys, "iam-policy", "--environment", "qa", "--elb-name", "qa-public",
                         "--format", "annotated")
    assert code == 0
    for action in ("autoscaling:DescribeAutoScalingGroups",
                   "elasticloadbalancing:DescribeInstanceHealth"):
        assert f"    //   resource: AWS supports no resource-level permissions for {action} (" \
               f"{iam.SCOPES[action].doc})" in out
    assert "// autoscaling:UpdateAutoScalingGroup: state scale, state drain" in out
    uncommented = "\n".join(line for line in out.splitlines() if not line.lstrip().startswith("//"))
    assert json.loads(uncommented) == iam.policy(_settings(elb_names=["qa-public"]))


@pytest.mark.parametrize("argv", [
    ["--no-elb-check", "--elb-name", "qa-public"],
    ["--instance-count", "2", "--instance-count-step", "3"],
    ["--zero", "--clean-up"],
    ["--account-id", "12345"],
    ["--command", "destroy"],
    ["--environment", "qa prod"],
])
def test_iam_policy_refuses_what_deploy_refuses(argv: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Invalid deploy flags: exit 2 and one line on stderr, no document."""
    args = ["iam-policy", *argv] if "--environment" in argv else \
        ["iam-policy", "--environment", "qa", *argv]
    try:
        code, out, err = _main(capsys, *args)
    except SystemExit as exc:  # argparse's own refusals
        code, (out, err) = int(str(exc.code)), capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1, err


def test_iam_policy_refuses_a_bad_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--spec naming an unknown action: exit 2 naming the file, as deploy does."""
    bad = tmp_path / "states.yaml"
    bad.write_text("version: 1\ninitial: a\nstates:\n  a: {action: nope}\n  done: {final: true}\n"
                   "transitions:\n  - {trigger: fail, source: a, dest: done}\n")
    code, out, err = _main(capsys, "iam-policy", "--environment", "qa", "--spec", str(bad))
    assert code == 2 and out == "" and str(bad) in err


def test_a_deploy_refuses_an_environment_pattern() -> None:
    """Only iam-policy takes `qa-*`: deploy exits 2 on it."""
    with pytest.raises(SystemExit) as caught:
        cli.main(["deploy", "--environment", "qa-*"])
    assert caught.value.code == 2


def test_iam_policy_makes_no_aws_call() -> None:
    """In a fresh interpreter, iam-policy never imports botocore (so it cannot call AWS), even
    with no region or credentials configured."""
    code = ("import sys; from abfsm.cli import main; rc = main(['iam-policy', '--environment', "
            "'qa', '--lock-bucket-name', 'qa-locks', '--command', 'all']); "
            "assert 'botocore' not in sys.modules, 'botocore imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Version"] == "2012-10-17"


# -- what a denial names ----------------------------------------------------------------------

def test_a_refused_s3_call_names_the_object_arn() -> None:
    """AccessDenied on PutObject: s3:PutObject on arn:aws:s3:::BUCKET/KEY."""
    exc = AccessDenied("x", service="s3", api="PutObject", params={"Bucket": "b", "Key": "qa.lock"})
    assert iam.refused(exc) == ("s3:PutObject", "arn:aws:s3:::b/qa.lock")


def test_a_refused_asg_write_names_the_asg_arn() -> None:
    """AccessDenied on UpdateAutoScalingGroup: the group's ARN (region when known)."""
    exc = AccessDenied("x", service="autoscaling", api="UpdateAutoScalingGroup",
                       params={"AutoScalingGroupName": "qa-b", "DesiredCapacity": 2})
    assert iam.refused(exc, "eu-west-1") == (
        "autoscaling:UpdateAutoScalingGroup",
        "arn:aws:autoscaling:eu-west-1:*:autoScalingGroup:*:autoScalingGroupName/qa-b")


def test_the_hint_command_prints_the_policy_of_the_run() -> None:
    """The `abfsm iam-policy ...` line a denial names, run, prints that run's policy."""
    settings = _settings(elb_names=["qa-public", "qa-internal"], lock_bucket_name=BUCKET,
                         rollback_on_failure=True, region="eu-west-1", instance_count=4)
    line = cli.iam_policy_command(settings, "resume")
    assert line == ("abfsm iam-policy --environment qa --elb-name qa-public --elb-name "
                    "qa-internal --rollback-on-failure --lock-bucket-name qa-locks "
                    "--region eu-west-1 --command resume")
    args = cli.build_parser().parse_args(line.split()[1:])
    assert iam.policy(cli.settings_from(args), args.iam_command) == iam.policy(settings, "resume")


def test_a_refusal_outside_a_run_names_the_command_s_policy(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`abfsm status` refused its GetObject: exit 1, the hint names `--command status`."""
    from abfsm import admin

    def refused(*_: Any, **__: Any) -> str:
        raise AccessDenied("s3 GetObject failed: AccessDenied: Access Denied", service="s3",
                           api="GetObject", params={"Bucket": BUCKET, "Key": "qa.lock"})

    monkeypatch.setattr(admin, "status", refused)
    code, out, err = _main(capsys, "status", "--environment", "qa", "--lock-bucket-name", BUCKET)
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == (
        "abfsm: AWS refused s3:GetObject on arn:aws:s3:::qa-locks/qa.lock; the policy this "
        "needs: abfsm iam-policy --environment qa --lock-bucket-name qa-locks --command status")


def test_other_errors_get_no_iam_hint(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A plain AWS error (throttled, 500) is not a permission problem: no iam-policy line."""
    from abfsm import admin
    from abfsm.errors import AwsError

    def failed(*_: Any, **__: Any) -> str:
        raise AwsError("s3 GetObject failed: InternalError: boom")

    monkeypatch.setattr(admin, "status", failed)
    code, _, err = _main(capsys, "status", "--environment", "qa", "--lock-bucket-name", BUCKET)
    assert code == 1 and "iam-policy" not in err


@pytest.mark.parametrize("code", ["AccessDenied", "UnauthorizedOperation", "AccessDeniedException"])
def test_a_permission_error_is_raised_as_access_denied_naming_the_call(code: str) -> None:
    """call(): AccessDenied / UnauthorizedOperation become errors.AccessDenied (exit 1) with the
    service, API and parameters of the refused call (no Body)."""
    from botocore.exceptions import ClientError

    from abfsm.aws._call import call

    class Client:
        def put_object(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": code, "Message": "no"}}, "PutObject")

    with pytest.raises(AccessDenied) as caught:
        call(Client(), "s3", "PutObject", mutating=True, Bucket="b", Key="k", Body=b"x")
    exc = caught.value
    assert (exc.service, exc.api, exc.params, exc.exit_code) == (
        "s3", "PutObject", {"Bucket": "b", "Key": "k"}, 1)
    assert str(exc) == f"s3 PutObject failed: {code}: no"


def test_the_hint_command_keeps_what_changes_the_policy_only() -> None:
    """--spec, --bake-time and AWS sinks are kept; a Slack sink (no AWS call, maybe a secret)
    and --notify-on are left out."""
    settings = _settings(spec="my.yaml", bake_time=30.0, notify_on=["run.finished"],
                         notify=["slack:https://hooks.slack.com/…", "sns:arn:aws:sns:us-east-1:"
                                 "123456789012:deploys"])
    assert cli.iam_policy_command(settings) == (
        "abfsm iam-policy --environment qa --bake-time 30.0 "
        "--notify sns:arn:aws:sns:us-east-1:123456789012:deploys --spec my.yaml")
