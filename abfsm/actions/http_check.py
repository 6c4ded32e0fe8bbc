"""http_check: a smoke test over HTTP; `successes` passes in a row per target -> `passed`.

`params: {url: "http://{private_ip}:8080/health", expect_status: 200, expect_body: "ok",
successes: 3}`. A URL with `{private_ip}`, `{private_dns}` or `{instance_id}` is checked
against every new instance (their addresses: one DescribeInstances, once); one with
`{lb_dns}` once per load balancer of the plan; any other URL once. Every --update-timeout
each target is asked again (GET, redirects not followed) until each has answered as
expected `successes` times in a row (a wrong answer starts its count again), or the
state's timeout passes: then the outcome is `failed`, naming each target not yet passing,
what it answered last and when. A URL that cannot be filled in fails the state.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from collections.abc import Mapping

from abfsm.actions.base import AwsCall, Param, Run, action
from abfsm.actions.waiting import Progress, wait_until
from abfsm.clock import utc_iso
from abfsm.errors import StateFailed, WaitTimeout

INSTANCE_FIELDS = frozenset({"private_ip", "private_dns", "instance_id"})
LB_FIELDS = frozenset({"lb_dns"})
_REQUEST_TIMEOUT_S = 10.0  # one request's connect + read timeout (at most the poll interval)


@dataclass
class Target:
    name: str  # what the failure names: an instance id, a load balancer, or the URL
    url: str
    streak: int = 0
    answered: str = "not asked yet"
    at: str = ""


def url_fields(url: str) -> set[str]:
    """The `{names}` a URL template uses; raises ValueError for a malformed template."""
    return {name for _, name, _, _ in string.Formatter().parse(url) if name is not None}


def targets(run: Run, url: str) -> list[Target]:
    """What to check: one target per new instance, per load balancer, or the URL itself."""
    fields = url_fields(url)
    unknown = fields - INSTANCE_FIELDS - LB_FIELDS
    if unknown:
        raise StateFailed(f"{run.state}: url {url!r}: unknown placeholder {{{sorted(unknown)[0]}}} "
                          f"(known: {', '.join('{' + f + '}' for f in sorted(INSTANCE_FIELDS | LB_FIELDS))})")
    if fields & INSTANCE_FIELDS and fields & LB_FIELDS:
        raise StateFailed(f"{run.state}: url {url!r} mixes instance and load balancer placeholders")
    plan = run.plan
    if fields & LB_FIELDS:
        names = plan.load_balancers + plan.target_groups
        if not names:
            raise StateFailed(f"{run.state}: url {url!r} needs a load balancer; the plan has none")
        return [Target(name, url.format(lb_dns=dns)) for name, dns in _lb_dns(run, names)]
    if not fields:
        return [Target(url, url)]
    ids = list(plan.instance_ids)
    if not ids and plan.target:  # resumed: which new instances serve now, read once
        group = run.aws.autoscaling.describe([plan.target]).get(plan.target)
        ids = group.ready_ids if group else []
    if not ids:
        raise StateFailed(f"{run.state}: no new instance to check (the target ASG has none ready)")
    addresses = run.aws.ec2.addresses(ids) if fields - {"instance_id"} else {}
    out = []
    for iid in ids:
        addr = addresses.get(iid)
        values = {"instance_id": iid, "private_ip": addr.private_ip if addr else "",
                  "private_dns": addr.private_dns if addr else ""}
        if any(not values[f] for f in fields):
            raise StateFailed(f"{run.state}: instance {iid} has no "
                              f"{' / '.join(sorted(f for f in fields if not values[f]))}")
        out.append(Target(iid, url.format(**values)))
    return out


def _lb_dns(run: Run, names: list[str]) -> list[tuple[str, str]]:
    out = []
    for name in names:
        dns = run.aws.elbv2.dns_name(name) if ":targetgroup/" in name else run.aws.elb.dns_name(name)
        if not dns:
            raise StateFailed(f"{run.state}: {name} has no load balancer DNS name for {{lb_dns}}")
        out.append((name, dns))
    return out


def _pool(timeout: float) -> Any:
    import urllib3  # lazily: `abfsm graph` reads the actions registry

    return urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)


def ask(pool: Any, target: Target, status: int, body: str | None) -> tuple[bool, str]:
    """One GET: whether it answered as expected, and what it answered."""
    try:
        resp = pool.request("GET", target.url, redirect=False, preload_content=True)
    except Exception as exc:  # urllib3's errors: refused, timed out, DNS, ...
        reason = getattr(exc, "reason", None) or exc
        return False, f"no answer ({type(reason).__name__}: {str(reason).split(': ')[-1][:120]})"
    text = resp.data.decode("utf-8", "replace")
    if resp.status != status:
        return False, f"HTTP {resp.status} (expected {status})"
    if body is not None and body not in text:
        return False, f"HTTP {resp.status} without {body!r} in the body ({_snippet(text)})"
    return True, f"HTTP {resp.status}"


def _snippet(text: str) -> str:
    one = " ".join(text.split())
    return repr(one if len(one) <= 60 else one[:57] + "...")


PARAMS = {
    "url": Param("str", required=True,
                 doc="URL template: {private_ip}, {private_dns}, {instance_id} (each new "
                     "instance) or {lb_dns} (each load balancer)"),
    "expect_status": Param("int", default=200, doc="the HTTP status a passing answer has"),
    "expect_body": Param("str", doc="text a passing answer's body contains"),
    "successes": Param("int", default=3, doc="passes in a row each target needs"),
}


def _calls(settings: Any, params: Mapping[str, Any]) -> list[AwsCall]:
    try:
        fields = url_fields(str(params.get("url", "")))
    except ValueError:
        return []
    calls = []
    if fields & {"private_ip", "private_dns"}:
        calls.append(AwsCall("ec2", "DescribeInstances"))
    if fields & LB_FIELDS:
        calls += [AwsCall("elb", "DescribeLoadBalancers", resource="elb"),
                  AwsCall("elbv2", "DescribeTargetGroups", resource="target-group"),
                  AwsCall("elbv2", "DescribeLoadBalancers")]
    return calls


def _planned(run: Run) -> tuple[str, list[str]]:
    return "passed", []  # GET requests only


@action({"passed", "failed"}, params=PARAMS, calls=_calls, planner=_planned,
        doc="GET a URL on every new instance (or load balancer) until `successes` expected "
            "answers in a row each, or the state's timeout: passed or failed")
def http_check(run: Run) -> str:
    params = run.params
    url = str(params["url"])
    status = int(params.get("expect_status", 200))
    body = params.get("expect_body")
    need = int(params.get("successes", 3))
    try:
        checked = targets(run, url)
    except ValueError as exc:
        raise StateFailed(f"{run.state}: url {url!r} is not a valid template: {exc}") from None
    pool = _pool(min(_REQUEST_TIMEOUT_S, run.settings.update_timeout))
    run.log.info("http_check.started", state=run.state, urls=[t.url for t in checked],
                 expect_status=status, successes=need)

    def check() -> Progress:
        for t in checked:
            if t.streak >= need:
                continue
            ok, t.answered = ask(pool, t, status, None if body is None else str(body))
            t.at = utc_iso(run.clock.now())
            t.streak = t.streak + 1 if ok else 0
        waiting = [t for t in checked if t.streak < need]
        return Progress(ready=len(checked) - len(waiting), total=len(checked),
                        done=not waiting, summary=f"{len(checked) - len(waiting)}/{len(checked)} "
                        f"passed {need} time(s) in a row",
                        not_ready=[{"id": t.name, "state": f"{t.answered} ({t.streak}/{need})"}
                                   for t in waiting],
                        what=f"answered as expected {need} time(s) in a row")

    try:
        wait_until(run, check)
    except WaitTimeout:
        failing = [t for t in checked if t.streak < need]
        run.log.error("http_check.failed", state=run.state, timeout_s=run.timeout(),
                      targets=[{"target": t.name, "url": t.url, "answered": t.answered,
                                "at": t.at} for t in failing])
        run.said_no(f"{run.state}: no pass within {run.timeout():g} s: " + "; ".join(
            f"{t.name}: {t.answered} at {t.at or '-'}" for t in failing))
        return "failed"
    run.log.info("http_check.passed", state=run.state, urls=[t.url for t in checked],
                 successes=need)
    return "passed"
