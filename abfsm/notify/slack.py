"""A Slack Block Kit message for a log event (pure: no I/O).

run.finished gets the full picture: environment, outcome, the path with the time in each
state, old/new ASG and counts, who started it and the CI job, and on failure the error and
the exact next commands. run.started and state.failed get short messages; any other event
selected with --notify-on a generic one.
"""

from __future__ import annotations

import json
from typing import Any

_ICONS = {"done": ":white_check_mark:", "planned": ":memo:", "refused": ":no_entry:",
          "failed": ":x:", "rolled-back": ":leftwards_arrow_with_hook:",
          "interrupted": ":octagonal_sign:", "lock-lost": ":warning:"}
_VERDICT = {"done": "succeeded", "planned": "planned (dry run)", "refused": "was refused",
            "failed": "FAILED", "rolled-back": "FAILED and was rolled back",
            "interrupted": "was interrupted", "lock-lost": "stopped: its lock was taken away"}
_MAX_TEXT = 2900  # Slack caps a section's text at 3000 characters


def message(event: dict[str, Any], started: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of an incoming-webhook POST for one event."""
    name = event.get("event")
    if name == "run.finished":
        return _finished(event, started)
    if name == "run.started":
        return _started(event)
    if name == "state.failed":
        return _state_failed(event, started)
    if name == "approval.pending":
        return _approval(event, started)
    return _generic(event)


def _finished(e: dict[str, Any], started: dict[str, Any] | None) -> dict[str, Any]:
    outcome = str(e.get("outcome"))
    where = f" in {e['failed_state']}" if e.get("failed_state") and outcome != "done" else ""
    head = (f"{e.get('env')}: deployment {_VERDICT.get(outcome, outcome)}{where} "
            f"after {float(e.get('duration_s') or 0):.1f} s")
    fields = [_field("Environment", _esc(str(e.get("env")))),
              _field("Outcome", f"{_esc(outcome)} (exit {e.get('exit_code')})")]
    if e.get("active"):
        fields.append(_field("Old ASG", f"{_esc(str(e['active']))} ({e.get('active_count')} desired "
                                        "before the run)"))
    if e.get("target"):
        fields.append(_field("New ASG", f"{_esc(str(e['target']))} (target "
                                        f"{e.get('target_count')} instance(s))"))
    fields += _who(started)
    blocks: list[dict[str, Any]] = [_header(f"{_ICONS.get(outcome, ':grey_question:')} {head}"),
                                    {"type": "section", "fields": fields[:10]}]
    path = e.get("path") or []
    if path:
        steps = " → ".join(f"`{_esc(str(p.get('state')))}` {float(p.get('elapsed_s') or 0):.1f} s"
                           for p in path)
        blocks.append(_section(f"*Path*\n{steps} → `{_esc(str(e.get('final_state')))}`"))
    if e.get("error"):
        blocks.append(_section(f"*Error*\n{_code(str(e['error']))}"))
    if e.get("next"):
        blocks.append(_section("*Next*\n" + _code("\n".join(str(n) for n in e["next"]))))
    blocks.append(_context(f"run {e.get('run_id')} · lock {e.get('lock')}"))
    return {"text": head, "blocks": blocks}


def _started(e: dict[str, Any]) -> dict[str, Any]:
    command = e.get("command", "deploy")
    head = f"{e.get('env')}: {command} started"
    if e.get("from_state"):
        head += f" (from {e['from_state']})"
    fields = [_field("Environment", _esc(str(e.get("env")))),
              _field("Command", f"abfsm {_esc(str(command))}")]
    fields += _who(e)
    fields.append(_field("Lock", _esc(str(e.get("lock")))))
    return {"text": head, "blocks": [_header(f":rocket: {head}"), {"type": "section", "fields": fields},
                                     _context(f"run {e.get('run_id')} · abfsm {e.get('version')}")]}


def _state_failed(e: dict[str, Any], started: dict[str, Any] | None) -> dict[str, Any]:
    head = f"{e.get('env')}: {e.get('state')} failed (→ {e.get('next')})"
    return {"text": head, "blocks": [_header(f":warning: {head}"),
                                     _section(f"*Error*\n{_code(str(e.get('error')))}"),
                                     _context(f"run {e.get('run_id')}")]}


def _approval(e: dict[str, Any], started: dict[str, Any] | None) -> dict[str, Any]:
    head = f"{e.get('env')}: waiting for approval in {e.get('state')}"
    blocks = [_header(f":raised_hand: {head}")]
    if e.get("command"):
        blocks.append(_section("*To approve*\n" + _code(str(e["command"]))))
    if e.get("reject"):
        blocks.append(_section("*To reject*\n" + _code(str(e["reject"]))))
    blocks.append(_context(f"run {e.get('run_id')}"))
    return {"text": head, "blocks": blocks}


def _generic(e: dict[str, Any]) -> dict[str, Any]:
    head = f"{e.get('env')}: {e.get('event')}"
    rest = {k: v for k, v in e.items() if k not in ("ts", "level", "event", "run_id", "env")}
    return {"text": head, "blocks": [_section(f"*{_esc(head)}*\n" + _code(json.dumps(rest, default=str))),
                                     _context(f"run {e.get('run_id')}")]}


def _who(started: dict[str, Any] | None) -> list[dict[str, Any]]:
    by = (started or {}).get("started_by") or {}
    if not by:
        return []
    out = [_field("Started by", _esc(f"{by.get('user', '?')}@{by.get('host', '?')}"))]
    if by.get("ci_job_url"):
        out.append(_field("CI job", f"<{by['ci_job_url']}|{_esc(str(by['ci_job_url']))}>"))
    return out


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:_MAX_TEXT]}}


def _field(name: str, value: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": f"*{name}*\n{value}"[:2000]}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _esc(text)}]}


def _code(text: str) -> str:
    return "```" + _esc(text.replace("```", "'''"))[:_MAX_TEXT - 20] + "```"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
