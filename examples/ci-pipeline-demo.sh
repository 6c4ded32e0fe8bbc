#!/usr/bin/env bash
# Runs examples/ci-deploy.sh against the demo emulator: one deployment that succeeds, one
# that is refused because the environment is locked by a manual freeze.
source "$(dirname "$0")/_lib.sh"
start_emulator qa
export ABFSM LOCK_BUCKET=example-locks
cd "$WORK"
say ci-deploy.sh qa --elb-name qa-public --instance-count 4
"$HERE/ci-deploy.sh" qa --elb-name qa-public --instance-count 4 --update-timeout 0.5 || true
say "freeze qa by hand (an empty lock object), then deploy again"
"$PY" -c "import boto3; boto3.client('s3').put_object(Bucket='example-locks', Key='qa.lock', Body=b'')"
"$HERE/ci-deploy.sh" qa --elb-name qa-public --instance-count 4 --update-timeout 0.5 || echo "(exit $? as expected)"
