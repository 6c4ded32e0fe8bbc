"""approval: a pending request next to the run record, `abfsm approve` / `abfsm reject`
deciding it (first decision wins), the waiting run taking it at its next poll, pausing
with --pause-at-approval, and who/when/why in the run record's history."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from abfsm.actions.approval import approval, decide, doc_name, read
from abfsm.errors import EXIT_REFUSED, Refused, WaitTimeout
from abfsm.lock import Lock, S3Store
from tests.support.gates import gate_run

WHO = {"user": "alice", "host": "ci-7", "ci_job_url": None}


def approval_run(tmp_path, clock, **settings):
    return gate_run(tmp_path, clock, "bake", update_timeout=30, health_check_timeout=600,
                    **settings)


def decide_at_sleep(run, clock, n, decision, reason=None):
    def later() -> None:
        if len(clock.sleeps) == n:
            decide(run.lock, clock, decision, reason, who=WHO)
    clock.on_sleep(later)


def test_a_waiting_run_takes_an_approval_at_its_next_poll(tmp_path, clock):
    """Approved during the second sleep: `approved` at the third poll, 60 s in."""
    run = approval_run(tmp_path, clock)
    decide_at_sleep(run, clock, 2, "approved", "smoke tests green")
    with capture_logs() as logs:
        assert approval(run) == "approved"
    assert clock.sleeps == [30.0, 30.0]
    pending = [e for e in logs if e["event"] == "approval.pending"][0]
    assert pending["command"] == f"abfsm approve --environment qa --state-dir {tmp_path}/state"
    polls = [e for e in logs if e["event"] == "wait.progress"]
    assert polls[0]["not_ready"] == [{"id": f"approval: {pending['command']}",
                                      "state": "(no decision yet)"}]


def test_the_decision_is_in_the_run_history_with_who_when_and_why(tmp_path, clock):
    """The history entry names the decision, the state, who decided, when and the reason."""
    run = approval_run(tmp_path, clock)
    decide_at_sleep(run, clock, 1, "rejected", "p99 latency doubled")
    assert approval(run) == "rejected"
    assert run.record.history[-1] == {"at": "2026-01-01T12:00:30Z", "approval": "rejected",
                                      "state": "bake", "by": "alice@ci-7",
                                      "reason": "p99 latency doubled"}


def test_pause_at_approval_returns_paused_at_once(tmp_path, clock):
    """--pause-at-approval: `paused` without a sleep; the pending request is written."""
    run = approval_run(tmp_path, clock, pause_at_approval=True)
    assert approval(run) == "paused"
    assert clock.sleeps == []
    doc, _ = read(run.lock.store, doc_name(run.record.run_id, "bake"))
    assert doc is not None and doc["status"] == "pending"


def test_re_entering_after_a_decision_takes_it_without_waiting(tmp_path, clock):
    """Paused, approved, then resumed (the state re-entered): `approved` at once, one entry."""
    run = approval_run(tmp_path, clock, pause_at_approval=True)
    assert approval(run) == "paused"
    decide(run.lock, clock, "approved", None, who=WHO)
    assert approval(run) == "approved" and approval(run) == "approved"
    assert clock.sleeps == []
    assert sum(1 for h in run.record.history if h.get("approval")) == 1


def test_no_decision_within_the_timeout_fails_the_state(tmp_path, clock):
    """Nobody decides within the state's timeout: the wait times out (the state fails)."""
    run = approval_run(tmp_path, clock)
    with pytest.raises(WaitTimeout, match="bake: no decision after 600 s"):
        approval(run)


def test_deciding_without_a_pending_approval_is_refused(tmp_path, clock):
    """A run that is not at an approval state cannot be approved (exit 3)."""
    run = approval_run(tmp_path, clock)
    with pytest.raises(Refused, match="is not waiting for an approval") as caught:
        decide(run.lock, clock, "approved", None, who=WHO)
    assert caught.value.exit_code == EXIT_REFUSED


def test_the_first_decision_wins(tmp_path, clock):
    """After an approval, a reject is refused, naming who approved and when."""
    run = approval_run(tmp_path, clock, pause_at_approval=True)
    approval(run)
    decide(run.lock, clock, "approved", None, who=WHO)
    with pytest.raises(Refused, match="already approved by alice@ci-7 at 2026-01-01T12:00:00Z"):
        decide(run.lock, clock, "rejected", "too late", who=WHO)


def test_deciding_with_no_run_is_refused(tmp_path, clock):
    """No lock at all: refused, saying the environment is free."""
    run = approval_run(tmp_path, clock)
    run.lock.release(run.record)
    with pytest.raises(Refused, match="nothing to approve: no run holds"):
        decide(run.lock, clock, "approved", None, who=WHO)


def test_the_request_lives_in_the_lock_bucket(tmp_path, clock, aws, services):
    """With a lock bucket the request is ENV/approvals/<run_id>-<state>.json in it."""
    aws("s3").create_bucket(Bucket="qa-locks")
    run = approval_run(tmp_path, clock, pause_at_approval=True, lock_bucket_name="qa-locks")
    run.lock = Lock(S3Store(services.s3, "qa-locks", "qa"), clock)
    run.lock.acquire(run.record)
    approval(run)
    decide(run.lock, clock, "approved", "ok", who=WHO)
    key = f"qa/approvals/{run.record.run_id}-bake.json"
    body = aws("s3").get_object(Bucket="qa-locks", Key=key)["Body"].read()
    assert b'"status": "approved"' in body
    assert approval(run) == "approved"
