#!/usr/bin/env bash
# The Step Functions engine against the example emulator (moto on 127.0.0.1, executions on,
# no credentials):
#   1. `abfsm sfn deploy` installs the compiled machine and prints its ARN.
#   2. `abfsm sfn start` starts an execution (prints its ARN) and returns at once: the
#      deployment runs in "Step Functions", not in this shell.
#   3. `abfsm sfn watch` follows it to its end as abfsm's log lines, exit 0.
#   4. A CLI run holds the lock (a manual freeze): `sfn start --wait` is refused, exit 3.
#   5. `abfsm sfn status` reports an execution in one screen; `abfsm status` the environment.
source "$(dirname "$0")/../_lib.sh"
start_emulator qa
ROLE=arn:aws:iam::123456789012:role/abfsm-sfn

say abfsm sfn deploy --name abfsm --role-arn $ROLE
MACHINE=$($ABFSM sfn deploy --name abfsm --role-arn $ROLE)
echo "$MACHINE"

say abfsm sfn start --state-machine-arn "$MACHINE" --environment qa --lock-bucket-name example-locks --instance-count 4 --update-timeout 1
EXECUTION=$($ABFSM sfn start --state-machine-arn "$MACHINE" --environment qa \
    --lock-bucket-name example-locks --instance-count 4 --update-timeout 1)
echo "$EXECUTION"

say abfsm sfn watch --execution-arn "$EXECUTION"
$ABFSM sfn watch --execution-arn "$EXECUTION" --log-format console

say "freeze qa by hand (an empty lock object), then start again and follow it"
"$PY" -c "import boto3; boto3.client('s3').put_object(Bucket='example-locks', Key='qa.lock', Body=b'')"
code=0
$ABFSM sfn start --state-machine-arn "$MACHINE" --environment qa --lock-bucket-name example-locks \
    --instance-count 4 --update-timeout 1 --wait --log-format console > "$WORK/refused.log" || code=$?
echo "(exit $code as expected: refused)"
REFUSED=$(head -n 1 "$WORK/refused.log")
tail -n +2 "$WORK/refused.log"

say abfsm sfn status --execution-arn "$REFUSED"
$ABFSM sfn status --execution-arn "$REFUSED"

say abfsm status --environment qa --lock-bucket-name example-locks
$ABFSM status --environment qa --lock-bucket-name example-locks
