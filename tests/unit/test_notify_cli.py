"""The notification flags of deploy and resume: checked before any AWS call (exit 2), the
settings keep redacted targets only, and a dry run starts no sink."""

from __future__ import annotations

from typing import Any

import pytest

from abfsm import cli, runner
from tests.unit.test_cli import no_aws, run_main  # noqa: F401 - fixtures

BASE = ["deploy", "--environment", "qa"]
SLACK = "slack:https://hooks.slack.com/services/T0AAA/B0BBB/s3cr3tXYZtoken"


@pytest.mark.parametrize(("argv", "env", "says"), [
    (BASE + ["--notify", "teams:https://x.example/h"], None, "--notify 'teams'"),
    (BASE + ["--notify", "webhook:http://example.com/h"], None, "loopback"),
    (BASE + ["--notify-on", "run.started,bogus"], None, "--notify-on: unknown event 'bogus'"),
    (BASE, "logs:ok syslog:udp://nohost", "ABFSM_NOTIFY syslog:udp://nohost"),
    (["resume", "--environment", "qa", "--notify", "sns:nope"], None, "not an SNS topic ARN"),
])
def test_a_bad_notify_value_exits_2_before_any_aws_call(argv, env, says, monkeypatch, capsys, no_aws):  # noqa: F811
    """A bad SINK (flag or ABFSM_NOTIFY) or event name: exit 2, one stderr line, no AWS call."""
    if env is not None:
        monkeypatch.setenv("ABFSM_NOTIFY", env)
    code = run_main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and says in err


def test_a_refused_secret_url_is_not_echoed(capsys, no_aws):  # noqa: F811
    """Refusing a Slack URL over http prints it redacted, never its secret path."""
    assert run_main(BASE + ["--notify", SLACK.replace("https:", "http:")]) == 2
    assert "s3cr3t" not in capsys.readouterr().err


def _settings(monkeypatch: pytest.MonkeyPatch, argv: list[str], tmp_path: Any) -> Any:
    seen: dict[str, Any] = {}

    def fake_deploy(settings: Any, **_: Any) -> runner.Outcome:
        seen["settings"] = settings
        return runner.Outcome(0, "done")

    monkeypatch.setattr(runner, "deploy", fake_deploy)
    assert run_main(argv + ["--log-format", "json", "--state-dir", str(tmp_path)]) == 0
    return seen["settings"]


def test_settings_keep_each_sinks_kind_and_redacted_target(monkeypatch, tmp_path, capsys):
    """Settings (logged in run.started, stored in the record) name sinks redacted only."""
    monkeypatch.setenv("ABFSM_NOTIFY", "events:default")
    s = _settings(monkeypatch, BASE + ["--notify", SLACK, "--notify-on", "run.finished",
                                       "--notify-create", "--dry-run"], tmp_path)
    assert s.notify == ["events:default", "slack:https://hooks.slack.com/services/***"]
    assert (s.notify_on, s.notify_create) == (["run.finished"], True)
    assert "s3cr3t" not in repr(s.to_dict())


def test_a_dry_run_starts_no_sink(monkeypatch, tmp_path, capsys):
    """--dry-run sends nothing (not one mutating call): no notifier is started."""
    started: list[Any] = []
    monkeypatch.setattr("abfsm.notify.build.start", lambda *a, **k: started.append(a))
    _settings(monkeypatch, BASE + ["--notify", "events:default", "--dry-run"], tmp_path)
    assert started == []


def test_the_notifier_is_flushed_even_when_the_run_raises(monkeypatch, tmp_path, capsys):
    """An error out of the run still closes the notifier (run.finished is flushed) and untaps it."""
    from abfsm import log
    from abfsm.errors import StateFailed

    closed: list[bool] = []

    class Fake:
        def tap(self, _: Any) -> None:
            pass

        def close(self) -> float:
            closed.append(True)
            return 0.0

    fake = Fake()
    monkeypatch.setattr("abfsm.notify.build.start", lambda *a, **k: fake)

    def boom(*_: Any, **__: Any) -> Any:
        raise StateFailed("boom")

    monkeypatch.setattr(runner, "deploy", boom)
    code = cli.main(BASE + ["--notify", "events:default", "--log-format", "json",
                            "--state-dir", str(tmp_path)])
    assert code == 1 and closed == [True] and fake.tap not in log._taps


def test_the_iam_policy_hint_names_only_the_aws_sinks_and_no_notify_on():
    """The iam-policy command a denial names keeps the --notify sinks that call AWS and leaves out
    HTTP sinks (no permission; their URLs are credentials) and --notify-on (changes none)."""
    from abfsm.context import Settings

    settings = Settings(environment="qa", notify=["slack:https://hooks.slack.com/services/***",
                                                  "sns:arn:aws:sns:us-east-1:123456789012:d"],
                        notify_on=["run.finished"])
    command = cli.iam_policy_command(settings)
    assert "--notify sns:arn:aws:sns:us-east-1:123456789012:d" in command
    assert "slack" not in command and "--notify-on" not in command
