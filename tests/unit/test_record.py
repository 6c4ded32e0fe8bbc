"""The run record: JSON round-trip, foreign bytes, timestamps and heartbeat staleness
(freezegun), and who/where from CI variables."""

from __future__ import annotations

import json
from typing import Any

import pytest
from freezegun import freeze_time

from abfsm import runner
from abfsm.clock import SystemClock
from abfsm.context import Plan, Settings
from abfsm.errors import Refused
from abfsm.lock import LocalStore, Lock
from abfsm.record import (KIND, RunRecord, add_history, ci_job_url, new_record, parse,
                          started_by)


def sample(clock: Any) -> RunRecord:
    rec = new_record("qa", 1, "locked", Settings(environment="qa").to_dict(), clock,
                     run_id="20260101T120000Z-abc123")
    rec.context = Plan(mode="ab", active="qa-a", target="qa-b", steps=[3, 6, 8]).to_dict()
    add_history(rec, "locked", "inspect", "acquired", clock.now(), 0.25)
    rec.last_error, rec.failed_state, rec.status, rec.exit_code = "boom", "wait-elb", "failed", 1
    return rec


def test_record_round_trips_through_json(clock):
    """to_json -> from_json gives back an equal record, every field included."""
    rec = sample(clock)
    assert RunRecord.from_json(rec.to_json()) == rec


def test_record_json_is_marked_as_abfsm_run(clock):
    """The JSON carries kind and schema so a foreign lock is told apart from a record."""
    data = json.loads(sample(clock).to_json())
    assert (data["kind"], data["schema"]) == (KIND, 1)
    assert data["context"]["steps"] == [3, 6, 8]


def test_record_ignores_unknown_keys_from_a_newer_version(clock):
    """Extra keys (a newer abfsm's) do not make a record unreadable."""
    data = json.loads(sample(clock).to_json())
    data["added_later"] = {"x": 1}
    rec = RunRecord.from_json(json.dumps(data).encode())
    assert rec is not None and rec.run_id == "20260101T120000Z-abc123"


@pytest.mark.parametrize("raw", [
    b"", b"frozen by ops", b"frozen by ops\n", b"{}", b"[1, 2]", b"null", b"\xff\xfe\x00",
    b'{"kind": "something.else", "run_id": "x"}', b'{"kind": "abfsm.run"}',
])
def test_foreign_bytes_parse_to_none(raw):
    """Bytes abfsm did not write (empty, a note, other JSON, a truncated record) parse to None."""
    assert RunRecord.from_json(raw) is None


def test_complete_record_of_another_kind_parses_to_none(clock):
    """A document with every record field but another `kind` is not taken for an abfsm run."""
    data = json.loads(sample(clock).to_json())
    data["kind"] = "someone.else"
    assert RunRecord.from_json(json.dumps(data).encode()) is None


def test_timestamps_are_utc_iso_at_second_precision():
    """started_at and heartbeat are written as UTC with a Z, from the clock (freezegun)."""
    with freeze_time("2026-03-01 10:00:00.750"):
        rec = new_record("qa", 1, "locked", {}, SystemClock())
    assert rec.started_at == rec.heartbeat == "2026-03-01T10:00:00Z"
    assert rec.run_id.startswith("20260301T100000Z-")


def test_history_entries_carry_utc_time_and_trigger():
    """Each history entry has the UTC time of the move, src, dst, trigger and elapsed_s."""
    with freeze_time("2026-03-01 10:00:00") as frozen:
        clock = SystemClock()
        rec = new_record("qa", 1, "locked", {}, clock)
        frozen.tick(12)
        add_history(rec, "scale", "wait-instances", "scaled", clock.now(), 0.1234)
    assert rec.history == [{"at": "2026-03-01T10:00:12Z", "src": "scale",
                            "dst": "wait-instances", "trigger": "scaled", "elapsed_s": 0.123}]


def test_heartbeat_age_follows_the_clock():
    """A record touched at T is 95 s old at T+95 and 0 s old after touching again."""
    with freeze_time("2026-03-01 10:00:00") as frozen:
        clock = SystemClock()
        rec = new_record("qa", 1, "locked", {}, clock)
        frozen.tick(95)
        assert rec.heartbeat_age(clock) == 95.0
        rec.touch(clock)
        assert rec.heartbeat_age(clock) == 0.0


def _running_record_at_t(tmp_path: Any) -> Settings:
    """A live-looking run (status running in wait-elb, update_timeout 30) holding the lock at T."""
    settings = Settings(environment="qa", state_dir=str(tmp_path), update_timeout=30)
    clock = SystemClock()
    rec = new_record("qa", 1, "locked", settings.to_dict(), clock)
    rec.state = "wait-elb"
    rec.context = Plan(mode="ab", active="qa-a", target="qa-b", target_count=4, steps=[4]).to_dict()
    Lock(LocalStore(tmp_path, "qa"), clock).acquire(rec)
    return settings


class _NoAws:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"touched AWS ({name})")


def test_heartbeat_60s_old_is_not_stale(tmp_path, monkeypatch):
    """update_timeout 30: a running record 60 s old (< 90 s) is alive; resume is refused."""
    monkeypatch.setattr(runner, "drive", lambda *a, **k: pytest.fail("resumed a live run"))
    with freeze_time("2026-03-01 10:00:00") as frozen:
        settings = _running_record_at_t(tmp_path)
        frozen.tick(60)
        with pytest.raises(Refused, match=r"heartbeat 60 s ago \(stale only after 90 s\)"):
            runner.resume(settings, services=_NoAws(), clock=SystemClock())  # type: ignore[arg-type]


def test_heartbeat_95s_old_is_stale(tmp_path, monkeypatch):
    """update_timeout 30: a running record 95 s old (> 3 polls) is stale; resume re-enters wait-elb."""
    entered: list[str] = []

    def fake_drive(run: Any, state: str, *a: Any, **k: Any) -> runner.Outcome:
        entered.append(state)
        return runner.Outcome(0, "done")

    monkeypatch.setattr(runner, "drive", fake_drive)
    with freeze_time("2026-03-01 10:00:00") as frozen:
        settings = _running_record_at_t(tmp_path)
        frozen.tick(95)
        outcome = runner.resume(settings, services=_NoAws(), clock=SystemClock())  # type: ignore[arg-type]
    assert entered == ["wait-elb"] and outcome.exit_code == 0


# --- who and where ---------------------------------------------------------------------------

def test_github_actions_job_url():
    """GitHub Actions: server/repository/actions/runs/run_id."""
    env = {"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.example.com",
           "GITHUB_REPOSITORY": "acme/shop", "GITHUB_RUN_ID": "123456"}
    assert ci_job_url(env) == "https://github.example.com/acme/shop/actions/runs/123456"


def test_github_actions_defaults_to_github_com():
    """Without GITHUB_SERVER_URL the URL is on github.com."""
    env = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/shop", "GITHUB_RUN_ID": "7"}
    assert ci_job_url(env) == "https://github.com/acme/shop/actions/runs/7"


@pytest.mark.parametrize(("var", "system"), [
    ("CI_JOB_URL", "GitLab"), ("BUILD_URL", "Jenkins"), ("bamboo_resultsUrl", "Bamboo"),
])
def test_ci_job_url_from_gitlab_jenkins_bamboo(var, system):
    """GitLab CI_JOB_URL, Jenkins BUILD_URL and Bamboo bamboo_resultsUrl are used as given."""
    url = f"https://ci.example.com/{system}/job/42"
    assert ci_job_url({var: url}) == url


def test_no_ci_variables_means_no_job_url():
    """Outside CI (or GITHUB_ACTIONS without a run id) there is no job URL."""
    assert ci_job_url({}) is None
    assert ci_job_url({"GITHUB_ACTIONS": "true"}) is None


def test_started_by_has_user_host_and_job_url():
    """started_by names the user and host and carries the CI job URL."""
    who = started_by({"CI_JOB_URL": "https://gitlab.example.com/acme/shop/-/jobs/9"})
    assert who["user"] and who["host"]
    assert who["ci_job_url"] == "https://gitlab.example.com/acme/shop/-/jobs/9"


def test_new_record_reads_ci_variables_from_the_environment(monkeypatch, clock):
    """A record started under Jenkins carries its BUILD_URL."""
    for var in ("GITHUB_ACTIONS", "CI_JOB_URL", "BUILDKITE_BUILD_URL", "CIRCLE_BUILD_URL",
                "bamboo_resultsUrl", "CODEBUILD_BUILD_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BUILD_URL", "https://jenkins.example.com/job/deploy/17/")
    rec = new_record("qa", 1, "locked", {}, clock)
    assert rec.started_by["ci_job_url"] == "https://jenkins.example.com/job/deploy/17/"


# --- schema validation on every read (corrupt records claiming to be abfsm's) ---------------

def _broken(clock: Any, **changes: Any) -> bytes:
    data = json.loads(sample(clock).to_json())
    for key, value in changes.items():
        if value is _DROP:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data).encode()


_DROP = object()


@pytest.mark.parametrize(("changes", "problem"), [
    ({"heartbeat": "yesterday"}, "heartbeat is not a timestamp"),
    ({"heartbeat": 17}, "heartbeat is not a timestamp"),
    ({"settings": "fast"}, "settings is not an object"),
    ({"run_id": _DROP}, "run_id is missing"),
    ({"run_id": ""}, "run_id is empty"),
    ({"history": "none"}, "history is not a list"),
    ({"history": [1, 2]}, "history holds an entry that is not an object"),
    ({"exit_code": "1"}, "exit_code is not a whole number"),
    ({"spec_version": True}, "spec_version is not a whole number"),
    ({"started_by": None}, "started_by is not an object"),
    ({"settings": {"update_timeout": "30"}}, "settings.update_timeout is not a number"),
], ids=["heartbeat-text", "heartbeat-number", "settings-string", "no-run-id", "empty-run-id",
        "history-string", "history-entries", "exit-code-string", "spec-version-bool",
        "started-by-null", "update-timeout-string"])
def test_a_record_with_wrong_types_is_not_a_record(clock, changes, problem):
    """kind abfsm.run but a field of the wrong type: from_json is None, parse names the field."""
    raw = _broken(clock, **changes)
    assert RunRecord.from_json(raw) is None
    record, why = parse(raw)
    assert record is None and why.startswith(problem)


def test_nullable_fields_may_be_null(clock):
    """A running record (last_error, failed_state, exit_code, finished_at null) is valid."""
    rec = new_record("qa", 1, "locked", {}, clock)
    assert parse(rec.to_json()) == (rec, "")


def test_bytes_that_do_not_claim_to_be_abfsm_have_no_problem():
    """A manual freeze (not kind abfsm.run) is foreign without a schema problem to report."""
    assert parse(b"frozen by ops") == (None, "")
    assert parse(b'{"kind": "other"}') == (None, "")
