"""The Step Functions engine end to end: the CLI in a subprocess deploys the state machine and
runs an execution to the end on the emulator's moto_server, whose interpreter calls the same
server for every aws-sdk task. The server turns executions on itself (abfsm/emulator/server.py:
moto's execute_state_machine, as POST /moto-api/config sets it, and MOTO_PORT its own port)."""

from __future__ import annotations

from abfsm.record import parse
from tests.support.aws_env import build_env, capacities, elb_states, instance_ids
from tests.support.sfn_moto import ASGS, BUCKET, ROLE


def test_sfn_deploy_and_start_wait_switch_the_asgs_on_moto_server(cli, make, server):
    """`abfsm sfn deploy` then `abfsm sfn start --wait` (classic ELB): exit 0, qa-b's 2
    instances InService in the ELB, qa-a at 0, the lock released and the run archived done,
    every ASG/ELB/S3 call of the run made by the execution inside the server."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=True, bucket=BUCKET)
    server.reset_calls()
    deployed = cli("sfn", "deploy", "--name", "abfsm", "--role-arn", ROLE)
    assert deployed.returncode == 0, deployed.stderr
    arn = deployed.stdout.strip()
    assert arn.startswith("arn:aws:states:") and arn.endswith(":stateMachine:abfsm")
    started = cli("sfn", "start", "--state-machine-arn", arn, "--environment", "qa",
                  "--lock-bucket-name", BUCKET, "--instance-count", "2", "--update-timeout", "1",
                  "--health-check-timeout", "5", "--wait", timeout=180)
    assert started.returncode == 0, started.stderr
    assert ":execution:abfsm:" in started.stdout
    caps = capacities(make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"], caps["qa-b"]["instances"]) == (0, 2, 2)
    assert elb_states(make, "qa-public") == {i: "InService" for i in instance_ids(make, "qa-b")}
    s3 = make("s3")
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="qa.lock").get("KeyCount") == 0
    [archived] = s3.list_objects_v2(Bucket=BUCKET, Prefix="qa/runs/")["Contents"]
    saved = parse(s3.get_object(Bucket=BUCKET, Key=archived["Key"])["Body"].read())[0]
    assert saved is not None and (saved.status, saved.engine) == ("done", "stepfunctions")
    actions = {c["action"] for c in server.calls()}
    assert {"UpdateAutoScalingGroup", "DescribeInstanceHealth"} <= actions  # the execution's
