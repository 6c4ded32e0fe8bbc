"""approval: a manual checkpoint; `abfsm approve` -> `approved`, `abfsm reject` -> `rejected`.

On entry the state writes a pending request next to the run record (the side document
`ENV/approvals/<run_id>-<state>.json` in the lock bucket, or under the state dir) and logs
`approval.pending` with the command to run. It then polls that document every
--update-timeout, heartbeat included, up to the state's timeout (a timeout fails the state);
with --pause-at-approval it returns `paused` at once instead (the spec routes it to a final
state with exit 4 that keeps the lock) and a later `abfsm approve` + `abfsm resume` carry on.

`abfsm approve` / `abfsm reject [--reason TEXT]` write the decision into the pending
document (a conditional write: the first decision wins). The run takes it at its next poll,
or when resumed, and records who decided, when and why in the run record's history.
Re-entering the state after a decision takes the same decision again (idempotent).

On the Step Functions engine the request is the lock record's `approval` object (the same
fields plus the execution's task token; abfsm/sfn/fragments.py approval): `abfsm approve`
answers SendTaskSuccess with who decided and the lock's ETag, `abfsm reject` answers
SendTaskFailure abfsm.Rejected with the same words a local rejection fails with.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from abfsm.actions.base import AwsCall, Run, action
from abfsm.actions.waiting import Progress, wait_until
from abfsm.aws.stepfunctions import StateMachines
from abfsm.clock import Clock, utc_iso
from abfsm.context import Settings
from abfsm.errors import PreconditionFailed, Refused
from abfsm.lock import Lock, Store
from abfsm.record import RunRecord, started_by

KIND = "abfsm.approval"
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
REJECTED_ERROR = "abfsm.Rejected"  # the error a rejected Step Functions approval fails with
TOKEN = "task_token"  # the Step Functions request's token (never shown by `abfsm status`)


def doc_name(run_id: str, state: str) -> str:
    return f"approvals/{run_id}-{state}.json"


def approve_command(settings: Settings, verb: str = "approve") -> str:
    """The command an operator runs to decide (with the lock flags this run uses)."""
    where = (f" --lock-bucket-name {settings.lock_bucket_name}" if settings.lock_bucket_name
             else (f" --state-dir {settings.state_dir}" if settings.state_dir != ".abfsm" else ""))
    return f"abfsm {verb} --environment {settings.environment}{where}"


def what(state: str, approved: str | None, rejected: str | None) -> str:
    """What an approval decides, in the words `abfsm status` shows (both engines)."""
    return f"{state}: approve -> {approved or '-'}, reject -> {rejected or '-'}"


def rejection(state: str, by: Any, at: Any, reason: Any) -> str:
    """Why a rejected run failed (the record's last_error; a rejected execution's cause)."""
    why = f": {reason}" if reason else ""
    return f"{state}: rejected by {by} at {at}{why}"


def read(store: Store, name: str) -> tuple[dict[str, Any] | None, str | None]:
    got = store.get_doc(name)
    if got is None:
        return None, None
    try:
        data = json.loads(got.body)
    except ValueError:
        return None, got.etag
    return (data if isinstance(data, dict) and data.get("kind") == KIND else None), got.etag


def _body(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(dict(doc), indent=1, sort_keys=True) + "\n").encode()


def _calls(settings: Settings, params: Mapping[str, Any]) -> list[AwsCall]:
    if not settings.lock_bucket_name:
        return []  # a local state dir
    return [AwsCall("s3", "GetObject", resource="lock-bucket"),
            AwsCall("s3", "PutObject", mutating=True, resource="lock-bucket")]


def _planned(run: Run) -> tuple[str, list[str]]:
    s = run.settings
    where = (f"s3 PutObject {s.lock_bucket_name}/{s.environment}/" if s.lock_bucket_name
             else f"local file {s.state_dir}/{s.environment}/")
    pause = "; then exit 4 (--pause-at-approval)" if s.pause_at_approval else ""
    return "approved", [f"{where}{doc_name('RUN_ID', run.state)} (approval request in "
                        f"{run.state}, waits for abfsm approve{pause})"]


@action({"approved", "rejected", "paused"}, calls=_calls, planner=_planned,
        doc="wait for `abfsm approve` (approved) or `abfsm reject` (rejected) up to the "
            "state's timeout; paused at once with --pause-at-approval")
def approval(run: Run) -> str:
    store = run.lock.store
    name = doc_name(run.record.run_id, run.state)
    command = approve_command(run.settings)
    doc, _ = read(store, name)
    if doc is None:
        routes = {t.trigger: t.dest for t in run.spec.transitions if t.source == run.state}
        doc = {"kind": KIND, "run_id": run.record.run_id, "environment": run.settings.environment,
               "state": run.state, "status": PENDING, "requested_at": utc_iso(run.clock.now()),
               "what": what(run.state, routes.get(APPROVED), routes.get(REJECTED)),
               "command": command, "reject": approve_command(run.settings, "reject")}
        try:
            store.put_doc(name, _body(doc))
        except PreconditionFailed:  # written meanwhile (by a resumed twin): read it
            doc, _ = read(store, name)
    if doc is not None and doc.get("status") in (APPROVED, REJECTED):
        return _take(run, doc)
    if doc is not None and run.record.approval != doc:
        run.record.approval = dict(doc)  # `abfsm status` shows the request from the record
        run.heartbeat()
    pause = run.settings.pause_at_approval
    run.log.info("approval.pending", state=run.state, command=command,
                 reject=approve_command(run.settings, "reject"), pause=pause,
                 timeout_s=None if pause else run.timeout())
    if pause:
        return "paused"
    seen: dict[str, Any] = {}

    def check() -> Progress:
        got, _ = read(store, name)
        decided = got is not None and got.get("status") in (APPROVED, REJECTED)
        if decided:
            seen.update(got)  # type: ignore[arg-type]
        return Progress(ready=int(decided), total=1, done=decided, summary="no decision",
                        not_ready=[] if decided else [{"id": f"approval: {command}",
                                                        "state": "(no decision yet)"}],
                        what="decision")

    wait_until(run, check)  # a timeout fails the state
    return _take(run, seen)


def _take(run: Run, doc: Mapping[str, Any]) -> str:
    decision = str(doc["status"])
    run.record.approval = None  # saved with the next transition
    entry = {"at": doc.get("decided_at"), "approval": decision, "state": run.state,
             "by": doc.get("decided_by"), "reason": doc.get("reason")}
    if entry not in run.record.history:
        run.record.history.append(entry)
    run.log.info("approval.decided", state=run.state, decision=decision,
                 by=str(doc.get("decided_by") or "?"), at=str(doc.get("decided_at") or ""),
                 reason=doc.get("reason"))
    if decision == REJECTED:
        run.said_no(rejection(run.state, doc.get("decided_by"), doc.get("decided_at"),
                              doc.get("reason")))
    return decision


def pending(record: RunRecord) -> dict[str, Any] | None:
    """The approval request the run waits on (its token left out), for `abfsm status`: the
    record's `approval`, set by either engine when the state asks and cleared when the run
    takes a decision (a local decision waits in the side document until then)."""
    if record.approval is None or record.approval.get("status") != PENDING:
        return None
    return {k: v for k, v in record.approval.items() if k != TOKEN}


def _request(store: Store, record: RunRecord) -> tuple[str, dict[str, Any], str | None] | None:
    """(state, request, its document's ETag) of the run's latest approval request: the lock
    record's own `approval` (Step Functions), else the side document of the latest state."""
    if record.engine == "stepfunctions":
        if record.approval is None:
            return None
        return str(record.approval.get("state", record.state)), dict(record.approval), None
    states = [h.get("dst") for h in record.history if h.get("dst")] + [record.state]
    for state in dict.fromkeys(reversed(states)):
        doc, etag = read(store, doc_name(record.run_id, str(state)))
        if doc is not None:
            return str(state), doc, etag
    return None


def decide(lock: Lock, clock: Clock, decision: str, reason: str | None = None,
           who: Mapping[str, Any] | None = None, *, run_id: str | None = None,
           stepfunctions: Callable[[], StateMachines] | None = None) -> dict[str, Any]:
    """`abfsm approve` / `abfsm reject`: write the decision into the run's pending request
    (or, for a Step Functions run, answer its execution's task token).

    Refused (exit 3) when nothing waits for a decision: no run, a lock abfsm did not write,
    another run than `run_id`, no pending request of the run holding the lock, or one
    already decided.
    """
    verb = {APPROVED: "approve", REJECTED: "reject"}[decision]
    holder = lock.holder()
    if holder is None:
        raise Refused(f"nothing to {verb}: no run holds {lock.where} (the environment is free)")
    if holder.record is None:
        raise Refused(f"nothing to {verb}: {lock.where} holds {holder.describe(clock)}")
    record = holder.record
    if run_id is not None and record.run_id != run_id:
        raise Refused(f"nothing to {verb}: {lock.where} is held by run {record.run_id}, not "
                      f"{run_id}; nothing was decided")
    found = _request(lock.store, record)
    if found is None:
        raise Refused(f"run {record.run_id} ({record.status} in {record.state}) is not waiting "
                      "for an approval; nothing was decided")
    state, doc, etag = found
    if doc.get("status") != PENDING:
        raise Refused(f"run {record.run_id}'s approval in {state} was already "
                      f"{doc.get('status')} by {doc.get('decided_by')} at {doc.get('decided_at')}")
    by = who or started_by()
    doc.update(status=decision, decided_at=utc_iso(clock.now()),
               decided_by=f"{by.get('user', '?')}@{by.get('host', '?')}",
               decided_ci_job_url=by.get("ci_job_url"), reason=reason)
    if record.engine == "stepfunctions":
        return _answer(record, holder.etag, state, doc, stepfunctions)
    try:
        lock.store.put_doc(doc_name(record.run_id, state), _body(doc), etag=etag)
    except PreconditionFailed:
        raise Refused(f"run {record.run_id}'s approval in {state} changed while deciding "
                      "(someone else decided?); run `abfsm status` and try again") from None
    return doc


def _answer(record: RunRecord, etag: str, state: str, doc: dict[str, Any],
            stepfunctions: Callable[[], StateMachines] | None) -> dict[str, Any]:
    """Send a Step Functions run's decision to the execution waiting on the request's token.

    Approved: SendTaskSuccess with who decided and the lock's ETag (which the execution
    tracks from then on: it never saw its own PutObject's answer). Rejected: SendTaskFailure
    abfsm.Rejected, its cause the words a local rejection fails with.
    """
    token = doc.pop(TOKEN, None)
    if record.status != "running" or not token or doc.get("run_id") != record.run_id:
        raise Refused(f"run {record.run_id} (Step Functions execution, {record.status} in "
                      f"{record.state}) is not waiting for an approval; nothing was decided")
    if stepfunctions is None:
        raise Refused(f"run {record.run_id} is a Step Functions execution; its decision needs "
                      "the Step Functions API")
    if doc["status"] == APPROVED:
        answered = stepfunctions().answer(str(token), output=json.dumps({
            "decision": APPROVED, "etag": etag, "decided_by": doc["decided_by"],
            "decided_at": doc["decided_at"], "reason": doc["reason"]}))
    else:
        answered = stepfunctions().answer(str(token), error=REJECTED_ERROR, cause=rejection(
            state, doc["decided_by"], doc["decided_at"], doc["reason"]))
    if not answered:
        raise Refused(f"run {record.run_id}'s execution no longer waits for a decision in "
                      f"{state} (decided already, timed out or ended); nothing was decided")
    doc["execution_arn"] = record.execution_arn
    return doc
