"""write_marker: write a line describing the new deployment to a file (e.g. for a status page).

It shows every part of an action declaration: its outcomes, its parameters (validated in
the spec before any AWS call, defaults filled in: `run.params`), the AWS calls it makes
(none: it only reads what inspect decided) and a one-line doc. It returns an outcome and
never prints.
"""

from __future__ import annotations

from pathlib import Path

from abfsm.actions import Param, Run, action


@action({"written"},
        params={"path": Param("str", required=True, doc="file to write (relative to the working directory)"),
                "text": Param("str", default="{target} serves {count} instance(s) (run {run_id})",
                              doc="the line; {target}, {active}, {count} and {run_id} are filled in")},
        requires=("target",),
        doc="write a line about the new deployment to a file")
def write_marker(run: Run) -> str:
    plan = run.plan
    line = str(run.params["text"]).format(target=plan.target, active=plan.active or "",
                                          count=plan.target_count, run_id=run.record.run_id)
    path = Path(str(run.params["path"]))
    path.write_text(line + "\n", encoding="utf-8")
    return "written"
