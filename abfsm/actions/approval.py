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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from abfsm.actions.base import AwsCall, Run, action
from abfsm.actions.waiting import Progress, wait_until
from abfsm.clock import Clock, utc_iso
from abfsm.context import Settings
from abfsm.errors import PreconditionFailed, Refused
from abfsm.lock import Lock, Store
from abfsm.record import started_by

KIND = "abfsm.approval"
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


def doc_name(run_id: str, state: str) -> str:
    return f"approvals/{run_id}-{state}.json"


def approve_command(settings: Settings, verb: str = "approve") -> str:
    """The command an operator runs to decide (with the lock flags this run uses)."""
    where = (f" --lock-bucket-name {settings.lock_bucket_name}" if settings.lock_bucket_name
             else (f" --state-dir {settings.state_dir}" if settings.state_dir != ".abfsm" else ""))
    return f"abfsm {verb} --environment {settings.environment}{where}"


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
        doc = {"kind": KIND, "run_id": run.record.run_id, "environment": run.settings.environment,
               "state": run.state, "status": PENDING, "requested_at": utc_iso(run.clock.now()),
               "command": command}
        try:
            store.put_doc(name, _body(doc))
        except PreconditionFailed:  # written meanwhile (by a resumed twin): read it
            doc, _ = read(store, name)
    if doc is not None and doc.get("status") in (APPROVED, REJECTED):
        return _take(run, doc)
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
    entry = {"at": doc.get("decided_at"), "approval": decision, "state": run.state,
             "by": doc.get("decided_by"), "reason": doc.get("reason")}
    if entry not in run.record.history:
        run.record.history.append(entry)
    run.log.info("approval.decided", state=run.state, decision=decision,
                 by=str(doc.get("decided_by") or "?"), at=str(doc.get("decided_at") or ""),
                 reason=doc.get("reason"))
    if decision == REJECTED:
        why = f": {doc['reason']}" if doc.get("reason") else ""
        run.said_no(f"{run.state}: rejected by {doc.get('decided_by')} at "
                    f"{doc.get('decided_at')}{why}")
    return decision


def decide(lock: Lock, clock: Clock, decision: str, reason: str | None = None,
           who: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`abfsm approve` / `abfsm reject`: write the decision into the run's pending request.

    Refused (exit 3) when nothing waits for a decision: no run, a lock abfsm did not write,
    no pending request of the run holding the lock, or one already decided.
    """
    verb = {APPROVED: "approve", REJECTED: "reject"}[decision]
    holder = lock.holder()
    if holder is None:
        raise Refused(f"nothing to {verb}: no run holds {lock.where} (the environment is free)")
    if holder.record is None:
        raise Refused(f"nothing to {verb}: {lock.where} holds {holder.describe(clock)}")
    record = holder.record
    states = [h.get("dst") for h in record.history if h.get("dst")] + [record.state]
    for state in dict.fromkeys(reversed(states)):
        name = doc_name(record.run_id, str(state))
        doc, etag = read(lock.store, name)
        if doc is None:
            continue
        if doc.get("status") != PENDING:
            raise Refused(f"run {record.run_id}'s approval in {state} was already "
                          f"{doc.get('status')} by {doc.get('decided_by')} at {doc.get('decided_at')}")
        by = who or started_by()
        doc.update(status=decision, decided_at=utc_iso(clock.now()),
                   decided_by=f"{by.get('user', '?')}@{by.get('host', '?')}",
                   decided_ci_job_url=by.get("ci_job_url"), reason=reason)
        try:
            lock.store.put_doc(name, _body(doc), etag=etag)
        except PreconditionFailed:
            raise Refused(f"run {record.run_id}'s approval in {state} changed while deciding "
                          "(someone else decided?); run `abfsm status` and try again") from None
        return doc
    raise Refused(f"run {record.run_id} ({record.status} in {record.state}) is not waiting "
                  "for an approval; nothing was decided")
