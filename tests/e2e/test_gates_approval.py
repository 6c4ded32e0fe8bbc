"""examples/specs/manual-approval.yaml end to end: a run waiting in-process takes
`abfsm approve` at its next poll; with --pause-at-approval it exits 4 holding the lock and
`abfsm approve` / `abfsm reject` + `abfsm resume` carry it on (reject -> rollback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import cli_env
from tests.support.aws_env import build_env, capacities, elb_states, instance_ids
from tests.support.crash_cli import Records, reap, start

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "examples/specs/manual-approval.yaml")
BUCKET = "qa-locks"
DEPLOY = ("deploy", "--environment", "qa", "--elb-name", "qa-public", "--instance-count", "2",
          "--lock-bucket-name", BUCKET, "--spec", SPEC)
WHERE = ("--environment", "qa", "--lock-bucket-name", BUCKET)


@pytest.fixture(autouse=True)
def _no_stray_processes():
    """A background CLI a failed test left running is killed, not left polling."""
    yield
    reap()


def test_a_waiting_run_takes_the_approval_at_its_next_poll(make, server, tmp_path, cli):
    """The run waits in approval (1 s polls); `abfsm approve --reason` -> drain -> done, exit
    0; the archived record's history says who approved, when and why."""
    build_env(make, "qa", active="a", active_count=2, bucket=BUCKET)
    run = start(cli_env(server), tmp_path, *DEPLOY, "--update-timeout", "1")
    pending = run.wait_for(lambda e: e.get("event") == "approval.pending", timeout=60)
    assert pending["command"] == f"abfsm approve --environment qa --lock-bucket-name {BUCKET}"
    run.wait_for(lambda e: e.get("event") == "wait.progress" and e["state"] == "approval")
    approved = cli("approve", *WHERE, "--reason", "canary looks good")
    assert approved.returncode == 0, approved.stderr
    assert "approved run" in approved.stdout
    assert run.finish() == 0, run.stderr
    moves = [(e["src"], e["dst"], e["trigger"]) for e in run.named("transition")]
    assert ("approval", "drain", "approved") in moves and moves[-1] == ("drain", "done", "drained")
    run_id = run.named("run.started")[0]["run_id"]
    history = Records(make, "qa", bucket=BUCKET).archived()[run_id]["history"]
    decided = [h for h in history if h.get("approval")]
    assert len(decided) == 1 and decided[0]["approval"] == "approved"
    assert decided[0]["reason"] == "canary looks good" and decided[0]["state"] == "approval"
    assert decided[0]["by"] and decided[0]["at"]
    assert capacities(make, ["qa-a"])["qa-a"]["desired"] == 0


def test_pause_exits_4_then_approve_and_resume_finish(make, server, tmp_path, cli):
    """--pause-at-approval: exit 4, lock held with status paused; approve, then resume (no
    --force) takes `approved` and finishes: exit 0, lock released."""
    build_env(make, "qa", active="a", active_count=2, bucket=BUCKET)
    paused = cli(*DEPLOY, "--pause-at-approval")
    assert paused.returncode == 4, paused.stderr
    assert paused.transitions[-1] == ("approval", "paused", "paused")
    recs = Records(make, "qa", bucket=BUCKET)
    assert recs.lock()["status"] == "paused"
    assert paused.finished["next"][:3] == [
        f"decide: abfsm approve --environment qa --lock-bucket-name {BUCKET}",
        f"or: abfsm reject --environment qa --lock-bucket-name {BUCKET}  (add --reason TEXT)",
        f"then: abfsm resume --environment qa --lock-bucket-name {BUCKET} --spec {SPEC}"
        "  (re-enters approval)"]
    assert capacities(make, ["qa-a", "qa-b"])["qa-a"]["desired"] == 2  # the old ASG untouched
    assert cli("approve", *WHERE).returncode == 0
    resumed = cli("resume", *WHERE)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.transitions[0] == ("approval", "drain", "approved")
    assert resumed.named("approval.decided")[0]["decision"] == "approved"
    assert recs.lock() is None


def test_reject_after_a_pause_rolls_back_while_the_old_asg_serves(make, server, tmp_path, cli):
    """Paused, then `abfsm reject --reason`: resume takes `rejected` -> rollback -> rolled-back,
    exit 1; the new ASG back to 0, the old one serving; the reason in the history."""
    build_env(make, "qa", active="a", active_count=2, bucket=BUCKET)
    old_ids = instance_ids(make, "qa-a")
    assert cli(*DEPLOY, "--pause-at-approval").returncode == 4
    rejected = cli("reject", *WHERE, "--reason", "p99 latency doubled")
    assert rejected.returncode == 0, rejected.stderr
    again = cli("approve", *WHERE)
    assert again.returncode == 3 and "already rejected by" in again.stderr
    resumed = cli("resume", *WHERE)
    assert resumed.returncode == 1, resumed.stderr
    assert resumed.transitions == [("approval", "rollback", "rejected"),
                                   ("rollback", "rolled-back", "rolled_back")]
    assert resumed.finished["failed_state"] == "approval"
    assert resumed.finished["error"].endswith(": p99 latency doubled")
    caps = capacities(make, ["qa-a", "qa-b"])
    assert caps["qa-b"]["desired"] == 0 and caps["qa-a"]["desired"] == 2
    assert {i: s for i, s in elb_states(make, "qa-public").items() if i in old_ids} == {
        i: "InService" for i in old_ids}
    run_id = resumed.named("run.started")[0]["run_id"]
    history = Records(make, "qa", bucket=BUCKET).archived()[run_id]["history"]
    assert [h["reason"] for h in history if h.get("approval")] == ["p99 latency doubled"]


def test_approve_with_no_run_at_an_approval_is_refused(make, server, cli):
    """Nothing waits for a decision: `abfsm approve` exits 3 and says so."""
    build_env(make, "qa", active="a", active_count=2, bucket=BUCKET)
    result = cli("approve", *WHERE)
    assert result.returncode == 3
    assert "nothing to approve: no run holds s3://qa-locks/qa.lock" in result.stderr
