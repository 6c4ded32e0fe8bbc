"""The lock and its run record end to end: corrupt records, unlock history, writes whose
answer was lost, and names and paths refused before any AWS call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from abfsm.clock import SystemClock
from abfsm.record import new_record
from tests.support.aws_env import build_env, capacities
from tests.support.crash_cli import Records
from tests.support.fault_proxy import FaultProxy, Match

BUCKET = "qa-locks"
DEPLOY = ("deploy", "--environment", "qa", "--elb-name", "qa-public", "--instance-count", "2")


def store_flags(kind: str) -> tuple[str, ...]:
    return ("--lock-bucket-name", BUCKET) if kind == "bucket" else ()


def records(make: Any, tmp_path: Path, kind: str) -> Records:
    if kind == "bucket":
        return Records(make, "qa", bucket=BUCKET)
    return Records(make, "qa", state_dir=tmp_path / "state")


def corrupt_record(**changes: Any) -> bytes:
    """A record that claims kind abfsm.run, with one field of the wrong type."""
    data = json.loads(new_record("qa", 1, "wait-elb", {"update_timeout": 30.0}, SystemClock(),
                                 run_id="20260101T000000Z-c0ffee").to_json())
    data.update(changes)
    return json.dumps(data).encode()


# --- corrupt records claiming to be abfsm's ---------------------------------------------------

@pytest.mark.parametrize("kind", ["bucket", "local"])
@pytest.mark.parametrize("changes", [{"heartbeat": "yesterday"}, {"settings": "fast"}],
                         ids=["heartbeat", "settings"])
def test_deploy_over_a_corrupt_lock_exits_3_naming_it_and_the_unlock_command(
        cli, make, server, tmp_path, kind, changes):
    """deploy: exit 3, 'unreadable abfsm lock record (<problem>; N bytes, S s old)', the unlock
    --force command in `next`; the lock bytes unchanged, nothing scaled."""
    build_env(make, "qa", active="a", active_count=2, bucket=BUCKET if kind == "bucket" else None)
    recs = records(make, tmp_path, kind)
    body = corrupt_record(**changes)
    recs.write_lock(body)
    before = capacities(make, ["qa-a", "qa-b"])
    result = cli(*DEPLOY, *store_flags(kind))
    assert result.returncode == 3, result.stderr + result.stdout
    problem = next(iter(changes))
    assert f"is held: an unreadable abfsm lock record ({problem} is not " in result.finished["error"]
    assert " bytes, " in result.finished["error"] and " s old)" in result.finished["error"]
    assert any(" unlock --environment qa" in step and step.endswith(" --force")
               for step in result.finished["next"]), result.finished["next"]
    assert "Traceback" not in result.stderr
    assert recs.lock_bytes() == body
    assert capacities(make, ["qa-a", "qa-b"]) == before


@pytest.mark.parametrize("kind", ["bucket", "local"])
def test_status_shows_a_corrupt_lock_as_unreadable(cli, make, server, tmp_path, kind):
    """status: exit 0, no traceback; text says LOCKED by an unreadable record, JSON says why."""
    if kind == "bucket":
        make("s3").create_bucket(Bucket=BUCKET)
    recs = records(make, tmp_path, kind)
    recs.write_lock(corrupt_record(run_id=None))
    text = cli("status", "--environment", "qa", *store_flags(kind))
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("qa: LOCKED by an unreadable abfsm lock record "
                                  "(run_id is not a string (null); ")
    assert "Traceback" not in text.stderr
    as_json = cli("status", "--environment", "qa", "--format", "json", *store_flags(kind))
    assert as_json.returncode == 0, as_json.stderr
    current = json.loads(as_json.stdout)["current"]
    assert (current["foreign"], current["unreadable"]) == (True, True)
    assert current["problem"] == "run_id is not a string (null)"
    assert current["lock_age_s"] >= 0


@pytest.mark.parametrize("kind", ["bucket", "local"])
def test_resume_of_a_corrupt_lock_exits_3_and_touches_nothing(cli, make, server, tmp_path, kind):
    """resume: exit 3 naming the unreadable record; the lock unchanged, no mutating call."""
    build_env(make, "qa", active="a", active_count=2, bucket=BUCKET if kind == "bucket" else None)
    recs = records(make, tmp_path, kind)
    body = corrupt_record(heartbeat=12)
    recs.write_lock(body)
    server.reset_calls()
    result = cli("resume", "--environment", "qa", "--force", *store_flags(kind))
    assert result.returncode == 3, result.stderr
    assert "unreadable abfsm lock record (heartbeat is not a timestamp" in result.stderr
    assert "Traceback" not in result.stderr
    assert recs.lock_bytes() == body
    assert server.mutating_calls() == []


# --- unlock keeps history -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["bucket", "local"])
def test_unlocked_run_is_archived_and_shown_in_status_history(cli, make, server, tmp_path, kind):
    """unlock --force of a run: ENV/runs/<id>.json says unlocked (by, at); status lists it."""
    if kind == "bucket":
        make("s3").create_bucket(Bucket=BUCKET)
    recs = records(make, tmp_path, kind)
    rec = new_record("qa", 1, "wait-elb", {"update_timeout": 30.0}, SystemClock(),
                     run_id="20260101T000000Z-dead00")
    recs.write_lock(rec.to_json())
    unlocked = cli("unlock", "--environment", "qa", "--force", *store_flags(kind))
    assert unlocked.returncode == 0, unlocked.stderr
    archived = recs.archived()[rec.run_id]
    assert archived["status"] == "unlocked"
    assert archived["unlocked"]["force"] is True and archived["unlocked"]["status"] == "running"
    assert archived["unlocked"]["by"]["user"] and archived["unlocked"]["at"].endswith("Z")

    text = cli("status", "--environment", "qa", *store_flags(kind))
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("qa: free (no lock)\nrecent runs:\n")
    line = text.stdout.splitlines()[2]
    assert line.startswith(f"  {rec.run_id}  unlocked     by ")
    assert f"at {archived['unlocked']['at']} (was running in wait-elb, --force)" in line
    as_json = json.loads(cli("status", "--environment", "qa", "--format", "json",
                             *store_flags(kind)).stdout)
    assert [(r["run_id"], r["status"]) for r in as_json["recent"]] == [(rec.run_id, "unlocked")]
    assert as_json["recent"][0]["unlocked"]["by"] == archived["unlocked"]["by"]


# --- a conditional write whose answer was lost ------------------------------------------------

@pytest.mark.parametrize("how", ["500", "reset"])
def test_lost_answers_to_the_lock_writes_do_not_stop_the_run(cli, make, server, tmp_path, how):
    """The acquire (If-None-Match) and the first heartbeat (If-Match) land but their answers
    are lost (500 / connection reset); botocore's retries get 412; the run still succeeds."""
    build_env(make, "qa", active="a", active_count=2, bucket=BUCKET)
    acquire = Match(method="PUT", header="If-None-Match")
    heartbeat = Match(method="PUT", header="If-Match")
    with FaultProxy(server.endpoint) as proxy:
        proxy.lose_answer(acquire, how=how)
        proxy.lose_answer(heartbeat, how=how)
        result = cli(*DEPLOY, "--lock-bucket-name", BUCKET,
                     extra_env={"AWS_ENDPOINT_URL": proxy.endpoint, "ABFSM_VIRTUAL_CLOCK": "1"})
        assert (proxy.seen(acquire), proxy.seen(heartbeat)) == (1, 1)
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.finished["outcome"] == "done"
    recs = Records(make, "qa", bucket=BUCKET)
    assert recs.lock() is None
    assert recs.archived()[result.finished["run_id"]]["status"] == "done"
    caps = capacities(make, ["qa-a", "qa-b"])
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (0, 2)


# --- names and paths refused before any AWS call ----------------------------------------------

@pytest.mark.parametrize("command", ["deploy", "resume", "status", "unlock"])
def test_an_environment_with_a_slash_is_refused_before_any_call(cli, server, tmp_path, command):
    """--environment team/qa: exit 2, one line, no AWS call at all, no state dir created."""
    extra = ("--force",) if command == "unlock" else ()
    result = cli(command, "--environment", "team/qa", *extra)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not a usable environment name" in result.stderr
    assert server.calls() == []
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("command", ["deploy", "resume", "status", "unlock"])
def test_a_state_dir_that_is_a_file_is_one_line_exit_2(cli, server, tmp_path, command):
    """--state-dir naming a regular file: exit 2, one line, no traceback, no AWS call."""
    path = tmp_path / "state.txt"
    path.write_text("a file")
    extra = ("--force",) if command == "unlock" else ()
    result = cli(command, "--environment", "qa", "--state-dir", str(path), *extra)
    assert result.returncode == 2
    assert result.stderr == (f"abfsm {command}: error: argument --state-dir: {str(path)!r} is "
                             f"not a directory (see `abfsm {command} --help`)\n")
    assert server.calls() == []
