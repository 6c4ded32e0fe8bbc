#!/usr/bin/env bash
# The original deploy.py README's "Common Uses", as abfsm commands, run against the demo
# emulator (no AWS account needed). Run from a clone after `make demo` or `make test`.
source "$(dirname "$0")/_lib.sh"
start_emulator qa development
cd "$WORK"
FAST=(--update-timeout 0.5)   # the emulator is instant; real runs keep the 30 s default

# python deploy.py --environment qa --elb-name qa-public --verbose
# "A standard eight node A/B deployment, printing out all messages"
say abfsm deploy --environment qa --elb-name qa-public --verbose
$ABFSM deploy --environment qa --elb-name qa-public --verbose --log-format console "${FAST[@]}"

# python deploy.py --environment qa --elb-name qa-public --instance-count 4
# "Quietly A/B QA, bringing up four nodes instead of the default eight"
say abfsm deploy --environment qa --elb-name qa-public --instance-count 4
$ABFSM deploy --environment qa --elb-name qa-public --instance-count 4 --log-format console "${FAST[@]}"

# python deploy.py --environment selenium --single-asg
# "Our jMeter ASG doesn't have a B counterpart": refresh the ASG named `selenium`
say abfsm deploy --environment selenium --single-asg --instance-count 2 --no-elb-check
$ABFSM deploy --environment selenium --single-asg --instance-count 2 --no-elb-check --log-format console "${FAST[@]}"

# python deploy.py --environment development --zero
# "Burn down the environment, reducing the active ASG to 0 instances"
say abfsm deploy --environment development --zero
$ABFSM deploy --environment development --zero --log-format console "${FAST[@]}"

# And the lock in S3, as the original --lock-bucket-name did (now atomic):
say abfsm deploy --environment qa --lock-bucket-name example-locks --dry-run
$ABFSM deploy --environment qa --lock-bucket-name example-locks --dry-run --log-format console
