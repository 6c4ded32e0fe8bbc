"""`abfsm iam-policy`: the least-privilege IAM policy of one configuration, made of declarations.

Every action declares the AWS calls it can make (`Action.aws_calls`, the declaration the
dry-run plan reads too); the lock store's S3 calls are declared here (`LOCK_STEPS`). A policy
is the union of the calls of every state reachable under the flags, plus the lock steps of
the command, each mapped to its IAM action name and scoped to the resources AWS lets a
policy name for that action (`SCOPES`, copied from the Service Authorization Reference).
Nothing here calls AWS: ARNs use `*` for the account unless one is given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from abfsm.actions import ACTIONS
from abfsm.actions.base import AwsCall
from abfsm.context import Settings
from abfsm.errors import AccessDenied
from abfsm.spec import Spec

VERSION = "2012-10-17"
COMMANDS = ("deploy", "resume", "status", "unlock", "approve", "all")

# boto3 service name -> IAM service prefix.
IAM_PREFIX = {"autoscaling": "autoscaling", "elb": "elasticloadbalancing",
              "elbv2": "elasticloadbalancing", "s3": "s3", "cloudwatch": "cloudwatch",
              "sns": "sns", "events": "events", "logs": "logs", "ec2": "ec2", "iam": "iam"}
# API operations whose IAM action has another name.
_RENAMED = {("s3", "ListObjectsV2"): "ListBucket", ("s3", "HeadObject"): "GetObject"}

_REF = "https://docs.aws.amazon.com/service-authorization/latest/reference/"
_AUTOSCALING = _REF + "list_amazonec2autoscaling.html"
_ELB = _REF + "list_elasticloadbalancing.html"
_ELBV2 = _REF + "list_elasticloadbalancingv2.html"
_S3 = _REF + "list_amazons3.html"
_CLOUDWATCH = _REF + "list_amazoncloudwatch.html"
_EC2 = _REF + "list_amazonec2.html"
_SNS = _REF + "list_amazonsns.html"
_EVENTS = _REF + "list_amazoneventbridge.html"
_LOGS = _REF + "list_amazoncloudwatchlogs.html"
_IAM = _REF + "list_awsidentityandaccessmanagementiam.html"


@dataclass(frozen=True)
class Scope:
    """What the Service Authorization Reference (`doc`) lets a policy name for one IAM action."""

    doc: str
    resource_type: str | None = None  # None: the action supports no resource-level permissions
    arn: str = ""  # that resource type's ARN format, as the page writes it
    condition_keys: tuple[str, ...] = ()  # the ones abfsm uses, each listed on the page
    star_because: str = ""  # why abfsm still grants "*" although a resource type exists


_ASG_ARN = ("arn:${Partition}:autoscaling:${Region}:${Account}:autoScalingGroup:${GroupId}:"
            "autoScalingGroupName/${GroupFriendlyName}")
_OBJECT_ARN = "arn:${Partition}:s3:::${BucketName}/${ObjectName}"
_BUCKET_ARN = "arn:${Partition}:s3:::${BucketName}"
_ALARM_ARN = "arn:${Partition}:cloudwatch:${Region}:${Account}:alarm:${AlarmName}"
_LAUNCH_TEMPLATE_ARN = "arn:${Partition}:ec2:${Region}:${Account}:launch-template/${LaunchTemplateId}"
_LOG_GROUP_ARN = "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}"

# IAM action -> what AWS allows to scope it to, with the page that says so.
SCOPES: dict[str, Scope] = {
    "autoscaling:DescribeAutoScalingGroups": Scope(_AUTOSCALING),
    "autoscaling:UpdateAutoScalingGroup": Scope(_AUTOSCALING, "autoScalingGroup", _ASG_ARN),
    "elasticloadbalancing:DescribeInstanceHealth": Scope(_ELB),
    "elasticloadbalancing:DescribeTargetHealth": Scope(_ELBV2),
    "elasticloadbalancing:DescribeTargetGroupAttributes": Scope(_ELBV2),
    "s3:GetObject": Scope(_S3, "object", _OBJECT_ARN),
    "s3:PutObject": Scope(_S3, "object", _OBJECT_ARN),
    "s3:DeleteObject": Scope(_S3, "object", _OBJECT_ARN),
    "s3:ListBucket": Scope(_S3, "bucket", _BUCKET_ARN, ("s3:prefix",)),
    "cloudwatch:DescribeAlarms": Scope(
        _CLOUDWATCH, "alarm", _ALARM_ARN,
        star_because="the alarm gate reads composite alarms too, and AWS returns those only "
                     "to a cloudwatch:DescribeAlarms permission scoped to * (API reference: "
                     "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/"
                     "API_DescribeAlarms.html)"),
    # Calls of features on their way (gates, launch template versions, suspended processes,
    # notification sinks): looked up now, so a new declaration finds its scope here.
    "autoscaling:ResumeProcesses": Scope(_AUTOSCALING, "autoScalingGroup", _ASG_ARN),
    "autoscaling:SuspendProcesses": Scope(_AUTOSCALING, "autoScalingGroup", _ASG_ARN),
    "ec2:DescribeInstances": Scope(_EC2),
    "ec2:DescribeLaunchTemplateVersions": Scope(_EC2),
    "ec2:CreateLaunchTemplateVersion": Scope(_EC2, "launch-template", _LAUNCH_TEMPLATE_ARN),
    "elasticloadbalancing:DescribeLoadBalancers": Scope(_ELBV2),
    "elasticloadbalancing:DescribeTargetGroups": Scope(_ELBV2),
    "sns:Publish": Scope(_SNS, "topic", "arn:${Partition}:sns:${Region}:${Account}:${TopicName}"),
    "events:PutEvents": Scope(_EVENTS, "event-bus",
                              "arn:${Partition}:events:${Region}:${Account}:event-bus/${EventBusName}"),
    "logs:CreateLogGroup": Scope(_LOGS, "log-group", _LOG_GROUP_ARN),
    "logs:CreateLogStream": Scope(_LOGS, "log-group", _LOG_GROUP_ARN),
    "logs:PutLogEvents": Scope(_LOGS, "log-stream",
                               _LOG_GROUP_ARN + ":log-stream:${LogStreamName}"),
    "iam:PassRole": Scope(_IAM, "role", "arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}"),
}


# The lock store's S3 calls (abfsm/lock.py S3Store over abfsm/aws/s3.py), by lock step.
# Resources: "lock" = BUCKET/ENV.lock, "runs" = BUCKET/ENV/runs/*, "bucket" = the bucket.
@dataclass(frozen=True)
class LockStep:
    calls: tuple[AwsCall, ...]
    why: str


_GET_LOCK = AwsCall("s3", "GetObject", resource="lock")
_PUT_LOCK = AwsCall("s3", "PutObject", mutating=True, resource="lock")
_DELETE_LOCK = AwsCall("s3", "DeleteObject", mutating=True, resource="lock")
# Not a call abfsm makes: S3 answers a GetObject of an absent key with 404 only to a caller
# allowed s3:ListBucket on the bucket, else 403. Reading a lock that may be absent needs it.
_ABSENT_IS_404 = AwsCall("s3", "ListObjectsV2", resource="bucket:404")
LOCK_STEPS: dict[str, LockStep] = {
    "acquire": LockStep((_PUT_LOCK, _GET_LOCK),
                        "take the lock (PutObject If-None-Match: *); read who holds it when taken"),
    "check": LockStep((_GET_LOCK, _ABSENT_IS_404), "dry run: check that the lock is free"),
    "save": LockStep((_PUT_LOCK,), "save the run record in the lock (PutObject If-Match)"),
    "release": LockStep((AwsCall("s3", "PutObject", mutating=True, resource="runs"), _DELETE_LOCK),
                        "archive the final record under ENV/runs/, then delete the lock (If-Match)"),
    "holder": LockStep((_GET_LOCK, _ABSENT_IS_404), "read the lock and the run record in it"),
    "history": LockStep((AwsCall("s3", "ListObjectsV2", resource="bucket:runs"),
                         AwsCall("s3", "GetObject", resource="runs")),
                        "list and read the recent runs under ENV/runs/"),
    "remove": LockStep((_DELETE_LOCK,), "delete the lock (If-Match its ETag)"),
    "approvals": LockStep((AwsCall("s3", "GetObject", resource="approvals"), _ABSENT_IS_404,
                           AwsCall("s3", "PutObject", mutating=True, resource="approvals")),
                          "read the run's pending approval request and write the decision"),
}
COMMAND_LOCK_STEPS: dict[str, tuple[str, ...]] = {
    "deploy": ("acquire", "save", "release"),
    "resume": ("holder", "save", "release"),
    "status": ("holder", "history"),
    "unlock": ("holder", "remove"),
    "approve": ("holder", "approvals"),  # and reject: the same calls
}
# Commands that run states of the machine (and so need the states' calls).
_RUNS_STATES = ("deploy", "resume")


@dataclass(frozen=True)
class Grant:
    """One IAM action on some resources, and who needs it."""

    action: str
    resources: tuple[str, ...]
    sid: str
    needed_by: tuple[str, ...]
    why: str  # why the resources are what they are
    condition: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (operator, key, values)


def iam_action(service: str, api: str) -> str:
    """The IAM action name of one API call (s3 ListObjectsV2 -> s3:ListBucket)."""
    prefix = IAM_PREFIX.get(service, service)
    return f"{prefix}:{_RENAMED.get((service, api), api)}"


def load(settings: Settings) -> Spec:
    """The spec and the flags checked against it exactly as deploy checks them (exit 2)."""
    from abfsm.runner import prepare

    return prepare(settings)


# -- which states a configuration can reach ---------------------------------------------------

def impossible_triggers(settings: Settings) -> set[str]:
    """Triggers the built-in actions never return (or the runner never fires) under `settings`."""
    out: set[str] = set()
    if not settings.rollback_on_failure:
        out.add("rollback")
    if settings.dry_run:
        out |= {"deploy", "empty_first", "zero"}  # inspect answers dry_run instead
    else:
        out.add("dry_run")
    if settings.zero:
        out |= {"deploy", "empty_first"}
    else:
        out.add("zero")
    if not (settings.clean_up or settings.single_asg):
        out.add("empty_first")
    return out


def reachable_states(spec: Spec, settings: Settings) -> list[str]:
    """Working states reachable from the initial state under `settings`, in spec order."""
    impossible = impossible_triggers(settings)
    seen: set[str] = set()
    todo = [spec.initial]
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        todo += [t.dest for t in spec.transitions
                 if t.trigger not in impossible and t.source == state]
    return [s for s in spec.working_states if s in seen]


def state_calls(spec: Spec, settings: Settings) -> list[tuple[str, AwsCall]]:
    """(state, call) for every call a reachable state's action declares."""
    out = []
    for state in reachable_states(spec, settings):
        st = spec.states[state]
        act = ACTIONS[st.action]  # type: ignore[index]
        params: Mapping[str, Any] = getattr(st, "params", {}) or {}
        for call in act.aws_calls(settings, params):
            if settings.dry_run and call.mutating:  # a dry run never mutates
                continue
            out.append((f"state {state}", call))
    return out


def lock_calls(settings: Settings, command: str) -> list[tuple[str, AwsCall]]:
    if not settings.lock_bucket_name:
        return []  # the local lock file: no AWS call
    steps = ("check",) if command == "deploy" and settings.dry_run else COMMAND_LOCK_STEPS[command]
    return [(f"lock {step}", call) for step in steps for call in LOCK_STEPS[step].calls]


def declared_calls(spec: Spec, settings: Settings, command: str) -> list[tuple[str, AwsCall]]:
    """Every (who, call) the command can make under `settings`."""
    commands = [c for c in COMMANDS if c != "all"] if command == "all" else [command]
    out: list[tuple[str, AwsCall]] = []
    for cmd in commands:
        cfg = settings if cmd == "deploy" else replace(settings, dry_run=False)
        if cmd in _RUNS_STATES:
            for who, call in state_calls(spec, cfg):
                out.append((who, call))
                if call.service == "s3" and call.api == "GetObject" and \
                        call.resource in _MAYBE_ABSENT:
                    out.append((who, _ABSENT_IS_404))
        out += lock_calls(cfg, cmd)
    return out


# -- from calls to grants ----------------------------------------------------------------------

@dataclass(frozen=True)
class Where:
    """What the ARNs are built from."""

    environment: str
    single_asg: bool
    bucket: str | None
    region: str
    account: str
    partition: str = "aws"

    @property
    def asg_names(self) -> list[str]:
        env = self.environment
        return [env] if self.single_asg else [f"{env}-a", f"{env}-b"]


def where_from(settings: Settings, account_id: str | None = None) -> Where:
    return Where(settings.environment, settings.single_asg, settings.lock_bucket_name,
                 settings.region or "*", account_id or "*")


def _fill(template: str, where: Where, **values: str) -> str:
    names = {"Partition": where.partition, "Region": where.region, "Account": where.account,
             **values}
    return re.sub(r"\$\{(\w+)\}", lambda m: names.get(m.group(1), "*"), template)


# Documents an action reads before they exist (an approval request not yet decided).
_MAYBE_ABSENT = ("lock-bucket", "approvals")
# S3 object symbols -> (statement, key under the lock bucket).
_OBJECT_KEYS = {"lock": ("EnvironmentLock", "ENV.lock"), "runs": ("RunRecords", "ENV/runs/*"),
                "approvals": ("Approvals", "ENV/approvals/*"),
                "lock-bucket": ("EnvironmentDocuments", "ENV/*")}


def grant_for(call: AwsCall, who: str, where: Where) -> Grant:
    action = iam_action(call.service, call.api)
    scope = SCOPES.get(action)
    if scope is None:
        return Grant(action, ("*",), "NotInScopeTable", (who,),
                     f"{action} is not in abfsm's scope table (abfsm.iam.SCOPES): review it")
    if scope.resource_type is None:
        return Grant(action, ("*",), "NoResourceLevelPermissions", (who,),
                     f"AWS supports no resource-level permissions for {action} ({scope.doc})")
    if scope.star_because:
        return Grant(action, ("*",), "AllResourcesRequired", (who,), scope.star_because)
    symbol = call.resource
    if symbol.startswith("asg:"):
        arns = tuple(_fill(scope.arn, where, GroupFriendlyName=n) for n in where.asg_names)
        return Grant(action, arns, "EnvironmentAsgs", (who,),
                     "the environment's ASGs only (resource type autoScalingGroup)")
    if symbol in _OBJECT_KEYS and where.bucket and scope.resource_type == "object":
        sid, key = _OBJECT_KEYS[symbol]
        key = key.replace("ENV", where.environment)
        arn = _fill(scope.arn, where, BucketName=where.bucket, ObjectName=key)
        return Grant(action, (arn,), sid, (who,), f"only {key} in the lock bucket")
    if symbol.startswith("bucket:") and where.bucket:
        arn = _fill(scope.arn, where, BucketName=where.bucket)
        why = ("S3 answers a GetObject of an absent lock or document with 404 (a free environment) "
               "only to a caller allowed s3:ListBucket on the bucket, else 403; granted on the "
               "bucket without an s3:prefix condition, as GetObject has no prefix to match it"
               ) if symbol == "bucket:404" else \
            f"list {where.environment}/runs/ (the run history)"
        return Grant(action, (arn,), "LockBucket", (who,), why)
    if symbol == "launch-template" and scope.resource_type == "launch-template":
        arn = _fill(scope.arn, where, LaunchTemplateId="*")
        return Grant(action, (arn,), "LaunchTemplates", (who,),
                     "launch templates are named by id, which only a call would find")
    return Grant(action, ("*",), "Unscoped", (who,),
                 f"abfsm cannot name the {symbol!r} resource before the run")


def sink_grants(settings: Settings, command: str, where: Where) -> list[Grant]:
    """The --notify sinks' calls (SNS topic, EventBridge bus, CloudWatch Logs group): deploy
    and resume start them; a dry run sends nothing."""
    if not settings.notify or settings.dry_run and command == "deploy":
        return []
    if command not in ("deploy", "resume", "all"):
        return []
    from abfsm.notify.parse import parse_sink

    out = []
    for text in settings.notify:
        sink = parse_sink(text)
        who = (f"--notify {sink.kind}",)
        target = sink.target
        for action in sink.aws_calls(create=settings.notify_create):
            if sink.kind == "sns":
                arns: tuple[str, ...] = (target,)
                why = "the named topic only"
            elif sink.kind == "events":
                arns = (target if target.startswith("arn:") else
                        f"arn:aws:events:{where.region}:{where.account}:event-bus/{target}",)
                why = "the named event bus only"
            else:
                group = (f"arn:aws:logs:{where.region}:{where.account}:log-group:"
                         f"{sink.log_group}")
                if action == "logs:PutLogEvents":  # resource type log-stream
                    arns = (f"{group}:log-stream:*",)
                else:  # log-group: its documented ARN, and the NAME:* form AWS also checks
                    arns = (group, f"{group}:*")
                why = f"the log group {sink.log_group} and its streams only"
            out.append(Grant(action, arns, "NotificationSinks", who, why))
    return out


def grants(spec: Spec, settings: Settings, command: str = "deploy",
           account_id: str | None = None) -> list[Grant]:
    """The grants of one configuration, merged per (action, resources), sorted."""
    where = where_from(settings, account_id)
    merged: dict[tuple[str, tuple[str, ...]], Grant] = {}
    found = [grant_for(call, who, where) for who, call in declared_calls(spec, settings, command)]
    for g in found + sink_grants(settings, command, where):
        key = (g.action, g.resources)
        if key in merged:
            old = merged[key]
            whys = old.why if g.why in old.why else f"{old.why}; {g.why}"
            g = replace(old, needed_by=tuple(dict.fromkeys(old.needed_by + g.needed_by)), why=whys)
        merged[key] = g
    return sorted(merged.values(), key=lambda g: (_sid_rank(g.sid), g.resources, g.action))


# -- the document ------------------------------------------------------------------------------

_SID_ORDER = ["NoResourceLevelPermissions", "AllResourcesRequired", "EnvironmentAsgs",
              "LaunchTemplates", "EnvironmentLock", "RunRecords", "Approvals",
              "EnvironmentDocuments", "LockBucket", "NotificationSinks", "Unscoped",
              "NotInScopeTable"]


def _sid_rank(sid: str) -> int:
    return _SID_ORDER.index(sid) if sid in _SID_ORDER else len(_SID_ORDER)


def statements(gs: Sequence[Grant]) -> list[tuple[dict[str, Any], list[Grant]]]:
    """Grants grouped into statements: one per (sid, resources, condition)."""
    groups: dict[tuple[str, tuple[str, ...], Any], list[Grant]] = {}
    for g in gs:
        groups.setdefault((g.sid, g.resources, g.condition), []).append(g)
    out = []
    used: dict[str, int] = {}
    order = sorted(groups, key=lambda k: (_sid_rank(k[0]), k[1]))
    for key in order:
        sid, resources, condition = key
        used[sid] = used.get(sid, 0) + 1
        members = sorted(groups[key], key=lambda g: g.action)
        stmt: dict[str, Any] = {
            "Sid": sid if used[sid] == 1 else f"{sid}{used[sid]}",
            "Effect": "Allow",
            "Action": sorted({g.action for g in members}),
            "Resource": list(resources) if len(resources) > 1 else resources[0],
        }
        if condition:
            cond: dict[str, dict[str, Any]] = {}
            for op, ckey, values in condition:
                cond.setdefault(op, {})[ckey] = list(values)
            stmt["Condition"] = cond
        out.append((stmt, members))
    return out


def document(gs: Sequence[Grant]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": [s for s, _ in statements(gs)]}


def policy(settings: Settings, command: str = "deploy", account_id: str | None = None,
           spec: Spec | None = None) -> dict[str, Any]:
    """The IAM policy document of one configuration."""
    return document(grants(spec or load(settings), settings, command, account_id))


def render(gs: Sequence[Grant], fmt: str = "json") -> str:
    """The document as JSON, or annotated: JSON with `//` comments saying who needs what, why."""
    if fmt == "json":
        return json.dumps(document(gs), indent=2) + "\n"
    lines = ["// abfsm iam-policy --format annotated: JSON with // comments (for reading;",
             "// --format json prints the document IAM accepts)",
             "{", f'  "Version": "{VERSION}",', '  "Statement": [']
    stmts = statements(gs)
    for i, (stmt, members) in enumerate(stmts):
        for g in members:
            lines.append(f"    // {g.action}: {', '.join(g.needed_by)}")
        for why in dict.fromkeys(g.why for g in members):
            lines.append(f"    //   resource: {why}")
        body = json.dumps(stmt, indent=2).splitlines()
        body[-1] += "," if i < len(stmts) - 1 else ""
        lines += ["    " + line for line in body]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def actions_of(doc: Mapping[str, Any]) -> list[str]:
    """Every action a document allows, sorted."""
    out: set[str] = set()
    for stmt in doc["Statement"]:
        acts = stmt["Action"]
        out |= {acts} if isinstance(acts, str) else set(acts)
    return sorted(out)


# -- what a refusal names ----------------------------------------------------------------------

def denial(exc: BaseException | None) -> AccessDenied | None:
    """The AccessDenied behind `exc`: itself, or what it was raised from or during (a lock
    that could not be released because its DeleteObject was refused)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, AccessDenied):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def refused(exc: AccessDenied, region: str | None = None, account: str | None = None) -> tuple[str, str]:
    """(IAM action, resource) AWS refused, from the call that was refused."""
    p = exc.params
    where = Where(str(p.get("AutoScalingGroupName", "")), False,
                  str(p["Bucket"]) if "Bucket" in p else None, region or "*", account or "*")
    action = iam_action(exc.service, exc.api)
    if "Bucket" in p:
        arn = f"arn:aws:s3:::{p['Bucket']}" + (f"/{p['Key']}" if "Key" in p else "")
    elif "AutoScalingGroupName" in p and action in SCOPES and SCOPES[action].resource_type:
        arn = _fill(_ASG_ARN, where, GroupFriendlyName=str(p["AutoScalingGroupName"]))
    elif "TargetGroupArn" in p:
        arn = str(p["TargetGroupArn"])
    elif "LoadBalancerName" in p:
        arn = f"arn:aws:elasticloadbalancing:{where.region}:{where.account}:loadbalancer/" \
              f"{p['LoadBalancerName']}"
    else:
        arn = "*"
    return action, arn


def resources_of(doc: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(action, resource) pairs of a document."""
    for stmt in doc["Statement"]:
        acts = [stmt["Action"]] if isinstance(stmt["Action"], str) else stmt["Action"]
        res = [stmt["Resource"]] if isinstance(stmt["Resource"], str) else stmt["Resource"]
        for a in acts:
            for r in res:
                yield a, r


# -- the README's IAM section ------------------------------------------------------------------

README_FLAGS = "--environment ENV --elb-name NAME --lock-bucket-name LOCK_BUCKET"


def readme_block() -> str:
    """Markdown for the README: the standard policy and every grant any command can need."""
    standard = Settings(environment="ENV", elb_names=["NAME"], lock_bucket_name="LOCK_BUCKET")
    spec = load(standard)
    every = replace(standard, elb_names=[], clean_up=True, rollback_on_failure=True,
                    wait_for_scale_down=True, alarms=["ALARM"], bake_time=60.0)
    lines = [f"`abfsm iam-policy {README_FLAGS}` (the standard A/B deploy with a lock bucket):",
             "", "```json", render(grants(spec, standard)).rstrip("\n"), "```", "",
             "Every action any command can need with the packaged spec (`--command all`, load "
             "balancers discovered, `--clean-up --rollback-on-failure --wait-for-scale-down "
             "--alarm ALARM --bake-time 60`):", "",
             "| action | resource | needed by | why this resource |", "|---|---|---|---|"]
    for g in grants(spec, every, "all"):
        resources = "<br>".join(f"`{r}`" for r in g.resources)
        lines.append(f"| `{g.action}` | {resources} | {', '.join(g.needed_by)} | {g.why} |")
    return "\n".join(lines) + "\n"
