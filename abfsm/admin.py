"""`abfsm status` and `abfsm unlock`: read and remove locks without running the machine."""

from __future__ import annotations

import json
from typing import Any

from abfsm.clock import Clock, SystemClock
from abfsm.context import Settings
from abfsm.lock import stale_after_s
from abfsm.log import trigger_words
from abfsm.runner import make_lock, services_for


def status_data(settings: Settings, *, clock: Clock | None = None, services: Any = None,
                history: int = 5) -> dict[str, Any]:
    clock = clock or SystemClock()
    lock = make_lock(settings, services or services_for(settings), clock)
    holder = lock.holder()
    current: dict[str, Any] | None = None
    if holder is not None:
        current = {"lock": lock.where, "lock_age_s": round(holder.age_s, 1)}
        if holder.record is None:
            # unreadable: it claims to be an abfsm record but breaks the schema.
            current.update(foreign=True, unreadable=bool(holder.problem),
                           problem=holder.problem or None, description=holder.describe(clock))
        else:
            r = holder.record
            age = r.heartbeat_age(clock)
            current.update(
                foreign=False, run_id=r.run_id, state=r.state, status=r.status,
                failed_state=r.failed_state, last_error=r.last_error,
                started_at=r.started_at, heartbeat=r.heartbeat,
                heartbeat_age_s=round(age, 1), stale=age > stale_after_s(r),
                started_by=r.started_by, context=r.context, history=r.history,
                engine=r.engine, execution_arn=r.execution_arn)
    return {"environment": settings.environment, "free": holder is None, "current": current,
            "recent": [_brief(d) for d in lock.history(history)]}


def status(settings: Settings, *, fmt: str = "text", **kwargs: Any) -> str:
    data = status_data(settings, **kwargs)
    if fmt == "json":
        return json.dumps(data, indent=2, default=str) + "\n"
    return "\n".join(_text(data)) + "\n"


def unlock(settings: Settings, *, run_id: str | None, force: bool, clock: Clock | None = None,
           services: Any = None) -> str:
    clock = clock or SystemClock()
    lock = make_lock(settings, services or services_for(settings), clock)
    holder = lock.remove(run_id=run_id, force=force)
    return f"removed {lock.where}: {holder.describe(clock)}\n"


def _brief(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: d.get(k) for k in ("run_id", "status", "state", "failed_state", "started_at",
                                 "finished_at", "exit_code", "last_error", "unlocked")}
    out["versions"] = (d.get("context") or {}).get("versions") or {}  # what each ASG launches
    return out


def _versions(versions: dict[str, str]) -> str:
    return "; ".join(f"{asg} {what}" for asg, what in sorted(versions.items()))


def _text(data: dict[str, Any]) -> list[str]:
    env = data["environment"]
    cur = data["current"]
    if cur is None:
        lines = [f"{env}: free (no lock)"]
    elif cur["foreign"]:
        lines = [f"{env}: LOCKED by {cur['description']}", f"  lock       {cur['lock']}"]
    else:
        ctx = cur.get("context") or {}
        lines = [
            f"{env}: run {cur['run_id']} is {cur['status']} in "
            f"{cur.get('failed_state') or cur['state']}",
            f"  lock       {cur['lock']}",
            f"  started    {cur['started_at']} by {cur['started_by'].get('user')}@"
            f"{cur['started_by'].get('host')}"
            + (f" ({cur['started_by']['ci_job_url']})" if cur['started_by'].get('ci_job_url') else ""),
            f"  heartbeat  {cur['heartbeat']} ({cur['heartbeat_age_s']:.0f} s ago"
            + (", stale" if cur["stale"] else "") + ")",
        ]
        if cur.get("engine") == "stepfunctions":
            lines.append(f"  engine     Step Functions, execution {cur.get('execution_arn') or '?'}")
        if ctx.get("target"):
            lbs = (ctx.get("load_balancers") or []) + (ctx.get("target_groups") or [])
            count = ctx.get("count") or {}  # an execution's plan: n, step, desired (no list)
            steps = ctx.get("steps") or (f"of {count['step']}, at {count['desired']}"
                                         if count.get("step") else None)
            lines.append(f"  plan       {ctx.get('active') or '-'} -> {ctx['target']} "
                         f"({ctx.get('target_count') or count.get('n')} instances, steps {steps})")
            lines.append(f"  balancers  {', '.join(lbs) if lbs else 'none'}")
        if ctx.get("versions"):
            lines.append(f"  versions   {_versions(ctx['versions'])}")
        if ctx.get("resumed"):
            lines.append("  processes  resumed for the run, to suspend again: " + "; ".join(
                f"{asg} {' '.join(names)}" for asg, names in ctx["resumed"].items()))
        if cur.get("last_error"):
            lines.append(f"  error      {cur['last_error']}")
        for h in cur.get("history") or []:
            if h.get("approval"):  # an approval state's decision: who, when, why
                why = f": {h['reason']}" if h.get("reason") else ""
                lines.append(f"    {h['at']}  {h['approval']} by {h['by']} in {h['state']}{why}")
                continue
            took = f", {h['elapsed_s']} s" if h.get("elapsed_s") is not None else ""  # sfn: none
            lines.append(f"    {h['at']}  {h['src']} -> {h['dst']} ({trigger_words(h['trigger'])}"
                         f"{took})")
    if data["recent"] and data["recent"][0].get("versions"):
        lines.append(f"versions after the last run: {_versions(data['recent'][0]['versions'])}")
    if data["recent"]:
        lines.append("recent runs:")
        for r in data["recent"]:
            if r.get("unlocked"):
                u = r["unlocked"]
                by = u.get("by") or {}
                lines.append(f"  {r['run_id']}  {r['status']:<12} by {by.get('user')}@"
                             f"{by.get('host')} at {u.get('at')} (was {u.get('status')} in "
                             f"{u.get('state')}{', --force' if u.get('force') else ''})")
                continue
            lines.append(f"  {r['run_id']}  {r['status']:<12} exit {r['exit_code']}  "
                         f"finished {r['finished_at']}")
    return lines
