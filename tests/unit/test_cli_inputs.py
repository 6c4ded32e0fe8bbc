"""Names and paths a user hands in, checked before any AWS call (exit 2, one line): environment
names every lock store can hold, S3 bucket names, and a --state-dir that is a file."""

from __future__ import annotations

from typing import Any

import pytest

from abfsm import admin, cli, runner
from abfsm.aws import session

COMMANDS: dict[str, list[str]] = {
    "deploy": [], "resume": [], "status": [], "unlock": ["--force"], "graph": [],
}


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to connect to AWS, read a lock or start a run fails the test."""
    def boom(*_: Any, **__: Any) -> Any:
        pytest.fail("an AWS connection, a lock read or a run was started")

    for module, name in ((session, "connect"), (runner, "connect"), (runner, "services_for"),
                         (runner, "deploy"), (runner, "resume"), (admin, "status"),
                         (admin, "unlock"), (runner, "make_lock")):
        monkeypatch.setattr(module, name, boom)


def refused(capsys: Any, *argv: str) -> str:
    """Run the CLI; assert exit 2 and exactly one stderr line; return that line."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(argv))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", ["team/qa", "qa:1", "qa b", "-qa", ".qa", "", "qa/", "ü"])
def test_an_environment_name_no_lock_store_can_hold_is_refused(capsys, command, name):
    """Every sub-command refuses a name with / : space or a leading - . (exit 2, no AWS call)."""
    err = refused(capsys, command, f"--environment={name}", *COMMANDS[command])
    assert "argument --environment:" in err and "is not a usable environment name" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_an_environment_name_that_is_too_long_has_its_own_message(capsys, command):
    """201 characters: refused saying the length and the limit, on every sub-command."""
    err = refused(capsys, command, "--environment", "q" * 201, *COMMANDS[command])
    assert f"is 201 characters long; an environment name has at most {cli.ENV_MAX}" in err


@pytest.mark.parametrize("name", ["qa", "QA_2", "team.qa-1", "a", "q" * cli.ENV_MAX])
def test_names_every_store_can_hold_are_accepted(name):
    """Letters, digits, '.', '_', '-' (first a letter or digit), up to ENV_MAX: accepted."""
    assert cli._environment(name) == name


@pytest.mark.parametrize(("bucket", "problem"), [
    ("ab", "3 to 63 characters long, not 2"),
    ("b" * 64, "3 to 63 characters long, not 64"),
    ("Qa-Locks", "only lowercase letters"),
    ("qa_locks", "only lowercase letters"),
    ("-qa-locks", "beginning and ending with a letter or digit"),
    ("qa-locks-", "beginning and ending with a letter or digit"),
    ("qa..locks", "two adjacent periods"),
    ("192.168.10.1", "formatted as an IP address"),
    ("xn--locks", "must not begin with 'xn--'"),
    ("sthree-locks", "must not begin with 'sthree-'"),
    ("locks-s3alias", "must not end with '-s3alias'"),
    ("locks--ol-s3", "must not end with '--ol-s3'"),
])
def test_a_bucket_name_breaking_s3_rules_is_refused(capsys, bucket, problem):
    """--lock-bucket-name is checked against S3's naming rules: exit 2, one line, no AWS call."""
    err = refused(capsys, "status", "--environment", "qa", f"--lock-bucket-name={bucket}")
    assert f"argument --lock-bucket-name: {bucket!r} is not a valid S3 bucket name: " in err
    assert problem in err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_checks_the_bucket_name(capsys, command):
    """deploy, resume, status, unlock and graph all refuse an invalid bucket name."""
    err = refused(capsys, command, "--environment", "qa", "--lock-bucket-name", "Bad_Name",
                  *COMMANDS[command])
    assert "is not a valid S3 bucket name" in err


@pytest.mark.parametrize("bucket", ["qa-locks", "abc", "my.locks.2026", "b" * 63])
def test_valid_bucket_names_are_accepted(bucket):
    """Names within the rules pass unchanged."""
    assert cli._bucket(bucket) == bucket


@pytest.mark.parametrize("command", COMMANDS)
def test_a_state_dir_that_is_a_file_is_refused(capsys, tmp_path, command):
    """--state-dir naming a regular file: exit 2, one line, no traceback, on every command."""
    path = tmp_path / "notes.txt"
    path.write_text("not a directory")
    err = refused(capsys, command, "--environment", "qa", "--state-dir", str(path),
                  *COMMANDS[command])
    assert err == (f"abfsm {command}: error: argument --state-dir: {str(path)!r} is not a "
                   f"directory (see `abfsm {command} --help`)\n")


def test_a_state_dir_under_a_file_is_refused(capsys, tmp_path):
    """--state-dir FILE/sub (cannot be created): exit 2 naming the file in the way."""
    (tmp_path / "notes.txt").write_text("x")
    err = refused(capsys, "status", "--environment", "qa", "--state-dir",
                  str(tmp_path / "notes.txt" / "state"))
    assert f"is under {str(tmp_path / 'notes.txt')!r}, a file" in err


def test_a_state_dir_that_does_not_exist_yet_is_accepted(tmp_path):
    """A directory to be created (the default .abfsm on first use) is fine."""
    assert cli._state_dir(str(tmp_path / "new" / "state")) == str(tmp_path / "new" / "state")
