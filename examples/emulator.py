"""Start the demo AWS emulator (abfsm.emulator: moto with abfsm's AWS-fidelity corrections,
on 127.0.0.1) for the example scripts. Its world is moto's instant one, as `abfsm demo --fast`.

    python examples/emulator.py ENDPOINT_FILE [ENV ...]

Creates, for each ENV, what `abfsm demo` creates for `demo` (launch template, classic ELB
ENV-public, ENV-a serving 4 instances, empty ENV-b), plus a single ASG `selenium` and the
lock bucket `example-locks`; writes the endpoint URL to ENDPOINT_FILE and serves until it
is terminated. No credentials, nothing beyond loopback.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from abfsm.demo import client, create_environment, emulator


def main() -> None:
    endpoint_file, envs = Path(sys.argv[1]), sys.argv[2:] or ["qa"]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with emulator() as endpoint:
        for i, env in enumerate(envs):
            create_environment(endpoint, env, serving=4,
                               bucket="example-locks" if i == 0 else f"example-locks-{i}")
        asg = client(endpoint, "autoscaling")
        asg.create_auto_scaling_group(
            AutoScalingGroupName="selenium", MinSize=0, MaxSize=10, DesiredCapacity=2,
            AvailabilityZones=["us-east-1a"],
            LaunchTemplate={"LaunchTemplateName": f"{envs[0]}-app", "Version": "$Latest"})
        endpoint_file.write_text(endpoint + "\n")
        stop.wait()


if __name__ == "__main__":
    main()
