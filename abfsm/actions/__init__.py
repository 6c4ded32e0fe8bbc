"""One module per state action; ACTIONS maps the names states.yaml uses to them.

`action`, `Param`, `AwsCall` and `Run` are the public API for writing an action (built-in
or in another package).
"""

from abfsm.actions.acquire_lock import acquire_lock
from abfsm.actions.approval import approval
from abfsm.actions.bake import bake
from abfsm.actions.base import Action, AwsCall, Param, Run, action
from abfsm.actions.drain import drain
from abfsm.actions.empty_target import empty_target
from abfsm.actions.hook import hook
from abfsm.actions.http_check import http_check
from abfsm.actions.inspect import inspect
from abfsm.actions.rollback import rollback
from abfsm.actions.scale_step import scale_step
from abfsm.actions.wait_elb import wait_elb
from abfsm.actions.wait_instances import wait_instances

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (acquire_lock, inspect, empty_target, scale_step, wait_instances, wait_elb,
              bake, approval, hook, http_check, drain, rollback)
}

__all__ = ["ACTIONS", "Action", "AwsCall", "Param", "Run", "action"]
