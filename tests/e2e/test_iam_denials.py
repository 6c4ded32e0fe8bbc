"""A refused AWS call, end to end: the CLI names the IAM action, the resource and the
`abfsm iam-policy` command printing what is needed (moto_server with IAM enforced)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.aws_env import build_env, capacities
from tests.support.iam_moto import USER, widened, without

ASGS = ["qa-a", "qa-b"]
BUCKET = "qa-locks"
FLAGS = ("--environment", "qa", "--elb-name", "qa-public", "--lock-bucket-name", BUCKET)


def _policy(*extra: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "abfsm", "iam-policy", *extra],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _user(make: Callable[[str], Any], document: dict[str, Any]) -> dict[str, str]:
    iam = make("iam")
    iam.create_user(UserName=USER)
    iam.put_user_policy(UserName=USER, PolicyName=USER, PolicyDocument=json.dumps(widened(document)))
    key = iam.create_access_key(UserName=USER)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


@contextmanager
def _enforced(server: Any) -> Iterator[None]:
    """moto_server authenticates and authorizes every request until the block ends."""
    def reset_auth(count: str) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{server.endpoint}/moto-api/reset-auth",
                                                      data=count.encode(), method="POST",
                                                      headers={"Content-Type": "text/plain"}),
                               timeout=10).read()

    reset_auth("0")
    try:
        yield
    finally:
        reset_auth("inf")


def test_a_refused_scale_names_the_action_the_asg_and_the_command(cli, make, server):
    """Policy without UpdateAutoScalingGroup: exit 1 in scale; stderr names the refused action
    on qa-b's ARN and the iam-policy command, whose policy then lets `resume` finish."""
    build_env(make, "qa", active="a", active_count=2, bucket=BUCKET)
    full = _policy(*FLAGS)
    keys = _user(make, without(full, "autoscaling:UpdateAutoScalingGroup"))
    with _enforced(server):
        result = cli("deploy", *FLAGS, "--instance-count", "2", extra_env=keys)
    assert result.returncode == 1, result.stderr
    assert result.finished["failed_state"] == "scale"
    hint = [line for line in result.stderr.splitlines() if "AWS refused" in line]
    assert hint == ["abfsm: AWS refused autoscaling:UpdateAutoScalingGroup on "
                    "arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/qa-b; the "
                    "policy this needs: abfsm iam-policy --environment qa --elb-name qa-public "
                    "--lock-bucket-name qa-locks"]
    command = hint[0].split("the policy this needs: ", 1)[1].split()
    assert _policy(*command[2:]) == full
    make("iam").put_user_policy(UserName=USER, PolicyName=USER,
                                PolicyDocument=json.dumps(widened(full)))
    with _enforced(server):
        resumed = cli("resume", "--environment", "qa", "--lock-bucket-name", BUCKET,
                      extra_env=keys)
    assert resumed.returncode == 0, resumed.stderr
    assert capacities(make, ASGS)["qa-b"]["desired"] == 2


def test_a_lock_it_could_not_take_changes_nothing(cli, make, server):
    """Policy without s3:PutObject: exit 1 in locked naming PutObject on qa.lock; no ASG
    changed, no lock left behind."""
    build_env(make, "qa", active="a", active_count=2, bucket=BUCKET)
    before = capacities(make, ASGS)
    keys = _user(make, without(_policy(*FLAGS), "s3:PutObject"))
    with _enforced(server):
        result = cli("deploy", *FLAGS, "--instance-count", "2", extra_env=keys)
    assert result.returncode == 1, result.stderr
    assert result.finished["failed_state"] == "locked"
    assert "AWS refused s3:PutObject on arn:aws:s3:::qa-locks/qa.lock" in result.stderr
    assert capacities(make, ASGS) == before
    assert "Contents" not in make("s3").list_objects_v2(Bucket=BUCKET)
