"""One environment, many deployers: the lock lets exactly one through, and a run whose lock is
taken away stops at its next record write. CLI processes against moto_server.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import cli_env
from tests.support.aws_env import build_env, capacities
from tests.support.crash_cli import Records, break_instances, reap, start, waiting_in

BUCKET = "qa-locks"
DEPLOY = ("deploy", "--environment", "qa", "--elb-name", "qa-public", "--instance-count", "4",
          "--update-timeout", "0.2", "--health-check-timeout", "120")


@pytest.fixture(autouse=True)
def _no_stray_processes():
    """A background CLI a failed test left running is killed, not left polling."""
    yield
    reap()


def test_ten_deploys_at_once_one_proceeds_nine_are_refused(make, server, tmp_path):
    """10 deploys of qa at once: one exits 0; nine exit 3 after only a lock attempt."""
    build_env(make, "qa", active="a", active_count=4, bucket=BUCKET)
    server.reset_calls()
    # The new instances come up stopped, so the winner holds the lock in wait-elb until
    # every loser has tried and gone; then the test starts them and the winner finishes.
    runs = [start(cli_env(server), tmp_path, *DEPLOY, "--lock-bucket-name", BUCKET,
                  extra_env={"ABFSM_TEST_NEW_INSTANCES": "stopped"}) for _ in range(10)]
    deadline = time.monotonic() + 60
    while sum(r.proc.poll() is not None for r in runs) < 9 and time.monotonic() < deadline:
        time.sleep(0.05)
    losers = [r for r in runs if r.proc.poll() is not None]
    (winner,) = [r for r in runs if r.proc.poll() is None]
    winner.wait_for(waiting_in("wait-elb"))
    break_instances("qa-b", "running", make=make)

    assert winner.finish() == 0, winner.stderr
    assert [r.finish() for r in losers] == [3] * 9
    for loser in losers:
        assert loser.named("run.finished")[0]["outcome"] == "refused"
        assert "is held: run " + winner.named("run.started")[0]["run_id"] in loser.stderr
        assert [(c["service"], c["action"], c["params"]) for c in loser.named("aws.call")] == [
            ("s3", "PutObject", {"Bucket": BUCKET, "Key": "qa.lock", "IfNoneMatch": "*"})]
    mutating = server.mutating_calls()
    assert [c["action"] for c in mutating if c["service"] == "autoscaling"] == [
        "UpdateAutoScalingGroup", "UpdateAutoScalingGroup"]  # the winner's scale and drain
    assert {c["service"] for c in mutating} == {"s3", "autoscaling", "ec2"}  # ec2: the hook
    assert all(c["path"] == f"/{BUCKET}/qa.lock" or c["path"].startswith(f"/{BUCKET}/qa/runs/")
               for c in mutating if c["service"] == "s3")
    caps = capacities(make, ["qa-a", "qa-b"])
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (0, 4)


@pytest.mark.parametrize("store", ["bucket", "local"])
def test_a_run_force_unlocked_mid_wait_stops_at_its_next_write(cli, make, server, tmp_path,
                                                               store):
    """`unlock --force` while a run waits in wait-elb: it exits 3 and changes nothing more."""
    build_env(make, "qa", active="a", active_count=4, bucket=BUCKET if store == "bucket" else None)
    conn = ("--lock-bucket-name", BUCKET) if store == "bucket" else ()
    recs = Records(make, "qa", bucket=BUCKET if store == "bucket" else None,
                   state_dir=tmp_path / "state")
    run = start(cli_env(server), tmp_path, *DEPLOY, *conn,
                extra_env={"ABFSM_TEST_NEW_INSTANCES": "stopped"})
    run.wait_for(waiting_in("wait-elb"))
    before = capacities(make, ["qa-a", "qa-b"])
    seen = len(run.events)

    unlocked = cli("unlock", "--environment", "qa", *conn, "--force")
    server.reset_calls()
    code = run.finish()

    assert unlocked.returncode == 0, unlocked.stderr
    assert code == 3, run.stderr
    finished = run.named("run.finished")[0]
    assert finished["outcome"] == "lock-lost" and finished["exit_code"] == 3
    assert "was removed or replaced while run" in finished["error"]
    after = [e for e in run.events[seen:] if e["event"] == "aws.call"]
    assert all(e["service"] == "s3" and "IfMatch" in e["params"] for e in after)
    assert [c for c in server.mutating_calls() if c["service"] != "s3"] == []
    assert capacities(make, ["qa-a", "qa-b"]) == before  # qa-a never drained
    assert before["qa-a"]["desired"] == 4
    assert recs.lock() is None
    # The only record kept is the one unlock archived (issue 8 #7), not the fenced run's.
    archived = recs.archived()
    assert [r["status"] for r in archived.values()] == ["unlocked"]
    assert archived[finished["run_id"]]["unlocked"]["force"] is True
