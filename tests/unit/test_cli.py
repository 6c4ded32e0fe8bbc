"""Flag validation in-process: each bad flag exits 2 with one stderr line naming it, before any
AWS call; the original tool's flags and no-sub-command style; --help without boto3; help text
on every option; status and unlock keep stdout for their report."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from abfsm import cli, log, runner
from abfsm.aws import session
from abfsm.clock import SystemClock
from abfsm.record import RunRecord, new_record

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to connect to AWS or start a run fails the test."""
    def boom(*_: Any, **__: Any) -> Any:
        pytest.fail("an AWS connection or a run was started")

    monkeypatch.setattr(session, "connect", boom)
    monkeypatch.setattr(runner, "connect", boom)
    monkeypatch.setattr(runner, "services_for", boom)
    monkeypatch.setattr(runner, "deploy", boom)
    monkeypatch.setattr(runner, "resume", boom)


def run_main(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse errors exit through SystemExit
        return int(exc.code or 0)


BASE = ["deploy", "--environment", "qa"]


@pytest.mark.parametrize(("argv", "flag"), [
    (BASE + ["--instance-count", "0"], "--instance-count"),
    (BASE + ["--instance-count", "abc"], "--instance-count"),
    (BASE + ["--instance-count", "-3"], "--instance-count"),
    (BASE + ["--instance-count-step", "0"], "--instance-count-step"),
    (BASE + ["--update-timeout", "-1"], "--update-timeout"),
    (BASE + ["--update-timeout", "0"], "--update-timeout"),
    (BASE + ["--health-check-timeout", "x"], "--health-check-timeout"),
    (BASE + ["--health-check-timeout", "nan"], "--health-check-timeout"),
    (BASE + ["--target-group-arn", "not-an-arn"], "--target-group-arn"),
    (BASE + ["--instance-count", "4", "--instance-count-match"], "--instance-count-match"),
    (BASE + ["--instance-count", "4", "--instance-count-step", "5"], "--instance-count-step"),
    (BASE + ["--no-elb-check", "--elb-name", "qa-public"], "--no-elb-check"),
    (BASE + ["--zero", "--clean-up"], "--clean-up"),
    (["deploy", "--elb-name", "qa-public"], "--environment"),
    (["deploy", "--environment", "qa prod!"], "--environment"),
    (["deploy", "--environment", ""], "--environment"),
    (BASE + ["--log-format", "xml"], "--log-format"),
    (BASE + ["--no-such-flag"], "--no-such-flag"),
    (["resume"], "--environment"),
    (["unlock", "--environment", "qa"], "--run-id"),
])
def test_bad_flag_exits_2_with_one_line_naming_it(argv, flag, capsys, no_aws):
    """A bad value or combination exits 2 with exactly one stderr line naming the flag, no AWS."""
    code = run_main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1 and err.endswith("\n")
    assert flag in err


def test_bad_flag_in_original_style_exits_2(capsys, no_aws):
    """The no-sub-command form validates the same way (exit 2, one line)."""
    code = run_main(["--environment", "qa", "--instance-count", "0"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "--instance-count" in err


def test_bad_spec_exits_2_before_any_aws_call(tmp_path, capsys, no_aws):
    """--spec naming a broken file exits 2 with one line naming the file, no AWS call."""
    bad = tmp_path / "broken.yaml"
    bad.write_text("version: 1\ninitial: nowhere\nstates: {}\ntransitions: []\n")
    code = run_main(BASE + ["--spec", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and str(bad) in err


def test_no_sub_command_means_deploy(monkeypatch, capsys, tmp_path):
    """`abfsm --environment qa ...` (the original tool's style) runs a deploy with those flags."""
    seen: dict[str, Any] = {}

    def fake_deploy(settings: Any, **kw: Any) -> runner.Outcome:
        seen["settings"] = settings
        return runner.Outcome(0, "done")

    monkeypatch.setattr(runner, "deploy", fake_deploy)
    code = run_main(["--environment", "qa", "--elb-name", "qa-public", "--instance-count", "4",
                     "--log-format", "json", "--state-dir", str(tmp_path)])
    assert code == 0
    s = seen["settings"]
    assert (s.environment, s.elb_names, s.instance_count) == ("qa", ["qa-public"], 4)


def test_deploy_exit_code_is_the_outcomes(monkeypatch, capsys, tmp_path):
    """deploy returns the run's exit code and, in JSON mode, one stderr line with the error."""
    monkeypatch.setattr(runner, "deploy",
                        lambda settings, **kw: runner.Outcome(3, "refused", "qa.lock is held"))
    code = run_main(BASE + ["--log-format", "json", "--state-dir", str(tmp_path)])
    assert code == 3
    assert capsys.readouterr().err == "abfsm: qa.lock is held\n"


def test_no_arguments_prints_help_and_exits_2(capsys, no_aws):
    """`abfsm` alone prints the help and exits 2."""
    assert run_main([]) == 2
    assert "deploy" in capsys.readouterr().out


ORIGINAL_FLAGS = [
    "--lock-bucket-name", "locks", "--single-asg", "--dry-run", "--zero",
    "--environment", "qa", "--elb-name", "qa-public", "--instance-count-match",
    "--instance-count", "4", "--instance-count-step", "2", "--update-timeout", "5",
    "--health-check-timeout", "60", "--clean-up", "--verbose",
]


def test_every_original_deploy_py_flag_is_accepted_by_deploy():
    """Every flag of the original deploy.py parses on `deploy` with its value."""
    args = cli.build_parser().parse_args(["deploy"] + ORIGINAL_FLAGS)
    assert (args.lock_bucket_name, args.single_asg, args.dry_run, args.zero) == ("locks", True, True, True)
    assert (args.environment, args.elb_name, args.instance_count_match) == ("qa", ["qa-public"], True)
    assert (args.instance_count, args.instance_count_step) == (4, 2)
    assert (args.update_timeout, args.health_check_timeout) == (5.0, 60.0)
    assert (args.clean_up, args.verbose) == (True, True)


def test_original_defaults_are_kept():
    """Defaults as the original documented: 8 instances, 30 s polls, 600 s health check, one step."""
    s = cli.settings_from(cli.build_parser().parse_args(["deploy", "--environment", "qa"]))
    assert (s.instance_count, s.instance_count_step) == (8, None)
    assert (s.update_timeout, s.health_check_timeout) == (30.0, 600.0)


def test_seconds_accept_an_s_suffix():
    """--update-timeout 30s (the original help's spelling) is 30 seconds."""
    args = cli.build_parser().parse_args(["deploy", "--environment", "qa", "--update-timeout", "30s"])
    assert args.update_timeout == 30.0


def test_help_does_not_import_boto3():
    """`abfsm --help` exits 0 without importing boto3 or botocore (checked with -X importtime)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "abfsm", "--help"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "deploy" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "abfsm.cli" in imported  # the check sees our imports at all
    assert not {m for m in imported if m.split(".")[0] in ("boto3", "botocore")}


def test_no_region_is_a_usage_error_before_any_state(tmp_path, monkeypatch, capsys):
    """No --region and no region in the environment: exit 2, one line, no lock taken."""
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    code = cli.main(["deploy", "--environment", "qa", "--state-dir", str(tmp_path),
                 "--log-format", "json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["abfsm deploy: no AWS region configured: pass --region, or set "
                   "AWS_DEFAULT_REGION / AWS_REGION, or use a profile with a region"]
    assert not (tmp_path / "qa.lock").exists()


# --- help text -------------------------------------------------------------------------------

def _parsers(parser: argparse.ArgumentParser, path: str = "abfsm") -> Iterator[tuple[str, Any]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_and_sub_command_has_help_text():
    """Walking the argparse tree: every option of every command and every command has help."""
    parser = cli.build_parser()
    missing = []
    for path, p in _parsers(parser):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                named = {a.dest: a.help for a in action._choices_actions}
                missing += [f"{path} {name}" for name in action.choices if not named.get(name)]
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert len(list(_parsers(parser))) == 1 + len(cli.COMMANDS) + len(cli.SFN_COMMANDS)
    assert missing == []


# --- file arguments --------------------------------------------------------------------------

@pytest.mark.parametrize("command", [BASE, ["graph"]], ids=["deploy", "graph"])
def test_a_spec_that_is_not_utf8_is_one_line_exit_2(command, tmp_path, capsys, no_aws):
    """--spec naming a binary (non-UTF-8) file: exit 2, one line naming the file, no traceback."""
    binary = tmp_path / "states.yaml"
    binary.write_bytes(b"version: 1\n\xff\xfe\x00garbage\n")
    code = run_main(command + ["--spec", str(binary)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"{binary}: line 2: not UTF-8 text (byte 0xff); is it a YAML file?" in err


# --- status and unlock: stdout is the report, logs go to stderr as console lines -------------

def seed_lock(aws: Any, bucket: str = "qa-locks") -> RunRecord:
    """A running abfsm run's record as qa.lock in an S3 bucket (in-process moto)."""
    aws("s3").create_bucket(Bucket=bucket)
    record = new_record("qa", 1, "locked", {"environment": "qa"}, SystemClock())
    aws("s3").put_object(Bucket=bucket, Key="qa.lock", Body=record.to_json())
    return record


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every event dict the command logs, after its own log.configure (bound keys merged)."""
    capture = LogCapture()
    real = log.configure

    def configure(*args: Any, **kwargs: Any) -> str:
        fmt = real(*args, **kwargs)
        structlog.configure(processors=[structlog.contextvars.merge_contextvars,
                                        structlog.processors.add_log_level, capture])
        return fmt

    monkeypatch.setattr(log, "configure", configure)
    return capture.entries


def test_unlock_binds_run_id_and_env_to_its_lines(aws, events, capsys):
    """unlock --force: its DeleteObject line carries the removed run's run_id and env."""
    record = seed_lock(aws)
    code = run_main(["unlock", "--environment", "qa", "--lock-bucket-name", "qa-locks", "--force"])
    assert code == 0
    deletes = [e for e in events if e["event"] == "aws.call" and e["action"] == "DeleteObject"]
    assert len(deletes) == 1
    assert all((e.get("run_id"), e.get("env")) == (record.run_id, "qa") for e in events)


def test_unlock_by_run_id_binds_that_run(aws, events, capsys):
    """unlock --run-id ID: every line of it names that run and the environment."""
    record = seed_lock(aws)
    code = run_main(["unlock", "--environment", "qa", "--lock-bucket-name", "qa-locks",
                     "--run-id", record.run_id])
    assert code == 0 and events
    assert all((e.get("run_id"), e.get("env")) == (record.run_id, "qa") for e in events)


def test_unlock_prints_its_report_on_stdout_and_console_lines_on_stderr(aws, capsys):
    """unlock: stdout is the one report line; stderr has its AWS calls as console lines."""
    record = seed_lock(aws)
    code = run_main(["unlock", "--environment", "qa", "--lock-bucket-name", "qa-locks", "--force"])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.startswith(f"removed s3://qa-locks/qa.lock: run {record.run_id} ")
    assert not [line for line in (out + err).splitlines() if line.lstrip().startswith("{")]
    delete, archive = err.splitlines()  # the lock removed, the run archived as unlocked
    assert delete.startswith("    aws s3 DeleteObject Bucket=qa-locks Key=qa.lock IfMatch=")
    assert archive == f"    aws s3 PutObject Bucket=qa-locks Key=qa/runs/{record.run_id}.json"


def test_status_prints_only_its_report(aws, capsys):
    """status (text and JSON): stdout is the report alone, stderr empty (reads log at debug)."""
    seed_lock(aws)
    base = ["status", "--environment", "qa", "--lock-bucket-name", "qa-locks"]
    assert run_main(base) == 0
    out, err = capsys.readouterr()
    assert out.startswith("qa: run ") and err == ""
    assert run_main(base + ["--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["environment"] == "qa" and err == ""
