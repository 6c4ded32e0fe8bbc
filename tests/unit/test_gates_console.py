"""The console sentences of the gate events: every one has its own rendering (never raw
key=value), and the lines an operator reads when a gate says no name what said no."""

from __future__ import annotations

import pytest

from abfsm.log import ConsoleRenderer
from abfsm.log_schema import EVENTS

GATE_EVENTS = sorted(n for n in EVENTS if n.split(".")[0] in
                     ("alarms", "alarm", "bake", "approval", "hook", "http_check"))


def render(**event: object) -> str:
    return str(ConsoleRenderer(verbose=False)(None, "info", dict(event)))


@pytest.mark.parametrize("name", GATE_EVENTS)
def test_every_gate_event_has_its_own_console_sentence(name: str) -> None:
    """Each gate event is rendered by ConsoleRenderer._<name>, not the generic key=value."""
    assert hasattr(ConsoleRenderer, "_" + name.replace(".", "_"))


def test_alarm_fired_names_the_alarm_and_since_when() -> None:
    """An alarm saying no: state, alarm, since when (the failure line after it quotes the
    StateReason, so it is not said twice)."""
    assert render(event="alarm.fired", state="bake", alarm="qa-5xx", since="2026-12-01T21:30:00Z",
                  reason="Threshold Crossed: 1 datapoint [31.0] > 10.0") == (
        "  bake: CloudWatch alarm qa-5xx is in ALARM since 2026-12-01T21:30:00Z")


def test_waiting_for_approval_shows_the_command() -> None:
    """The approval line gives the exact commands to approve or reject."""
    assert render(event="approval.pending", state="approval", pause=False, timeout_s=3600,
                  command="abfsm approve --environment qa",
                  reject="abfsm reject --environment qa") == (
        "  approval: waiting for approval: abfsm approve --environment qa  "
        "(or: abfsm reject --environment qa --reason TEXT; up to 3600 s)")


def test_http_check_failed_lists_each_target_its_answer_and_when() -> None:
    """One line per failing target under the failure."""
    text = render(event="http_check.failed", state="health-check", timeout_s=180,
                  targets=[{"target": "i-0b2", "url": "http://10.0.0.2:8080/health",
                            "answered": "HTTP 503 (expected 200)", "at": "2026-12-01T21:33:00Z"}])
    assert text.splitlines() == ["  ✗ health-check: no pass within 180 s (→ failed):",
                                 "      i-0b2: HTTP 503 (expected 200) at 2026-12-01T21:33:00Z"]


def test_hook_output_and_failure_lines() -> None:
    """The hook's own lines are indented under its state; a non-zero exit names the code."""
    assert render(event="hook.output", state="smoke-test", line="cart: 500") == \
        "    smoke-test │ cart: 500"
    assert render(event="hook.failed", state="smoke-test", command=["./smoke.sh"], exit_code=1,
                  duration_s=0.04) == "  ✗ smoke-test: ./smoke.sh exited 1 after 0.0 s (→ failed)"
