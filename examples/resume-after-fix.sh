#!/usr/bin/env bash
# "The deployment failed in wait-elb; I fixed it by hand; I resumed."
#
# A walk-through against the demo emulator (moto on 127.0.0.1, no credentials):
#   1. `abfsm deploy` moves qa from qa-a to qa-b, but the new instances never become
#      InService in the ELB: wait-elb times out, exit 1. Nothing is cleaned up and the lock
#      (holding the run record) is kept, so nobody deploys over the broken environment.
#   2. `abfsm status` shows the failed state, its error and the history.
#   3. The fix, by hand (here: start the instances).
#   4. `abfsm resume` re-enters wait-elb with the saved plan, same run id, same lock, and
#      finishes: qa-b serving, qa-a drained, lock released, record archived.
#   5. `abfsm status` shows the environment free and the run among the recent ones.
source "$(dirname "$0")/_lib.sh"

# The emulator of the other examples with one twist: the instances qa-b launches come up
# stopped, so the classic ELB reports them OutOfService. That is the emulator's stand-in for a
# release that fails its health check (a security group that does not let the ELB reach
# port 8080, a bad config, ...). Against real AWS no twist is needed, sadly.
"$PY" - "$HERE/emulator.py" "$WORK/endpoint" qa <<'PY' &
import runpy, sys
from moto.autoscaling.models import FakeAutoScalingGroup

launch = FakeAutoScalingGroup.replace_autoscaling_group_instances

def broken_release(self, count_needed, propagated_tags):
    launch(self, count_needed, propagated_tags)
    if self.name == "qa-b":
        for state in self.instance_states:
            state.instance.stop()

FakeAutoScalingGroup.replace_autoscaling_group_instances = broken_release
sys.argv = sys.argv[1:]  # emulator.py ENDPOINT_FILE ENV
runpy.run_path(sys.argv[0], run_name="__main__")
PY
EMULATOR_PID=$!
trap 'kill $EMULATOR_PID 2>/dev/null; wait $EMULATOR_PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do [ -s "$WORK/endpoint" ] && break; sleep 0.1; done
export AWS_ENDPOINT_URL="$(cat "$WORK/endpoint")" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=example AWS_SECRET_ACCESS_KEY=example
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
echo "emulator at $AWS_ENDPOINT_URL"
cd "$WORK"

ENV_ARGS=(--environment qa --lock-bucket-name example-locks)

say abfsm deploy "${ENV_ARGS[@]}" --elb-name qa-public --instance-count 4 \
    --update-timeout 1 --health-check-timeout 5
rc=0
$ABFSM deploy "${ENV_ARGS[@]}" --elb-name qa-public --instance-count 4 \
    --update-timeout 1 --health-check-timeout 5 --log-format console || rc=$?
echo "(deploy exited $rc: a state failed; the lock and the run record are kept)"
[ "$rc" -eq 1 ]

say abfsm status "${ENV_ARGS[@]}"
$ABFSM status "${ENV_ARGS[@]}"

say "the fix, by hand: start qa-b's instances (in real life: the security group, the config...)"
"$PY" - <<'PY'
import boto3
groups = boto3.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["qa-b"])
ids = [i["InstanceId"] for g in groups["AutoScalingGroups"] for i in g["Instances"]]
boto3.client("ec2").start_instances(InstanceIds=ids)
print("started", " ".join(ids))
PY

say abfsm resume "${ENV_ARGS[@]}"
$ABFSM resume "${ENV_ARGS[@]}" --log-format console

say abfsm status "${ENV_ARGS[@]}"
$ABFSM status "${ENV_ARGS[@]}"
