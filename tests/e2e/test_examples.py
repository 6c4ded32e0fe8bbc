"""The runnable walk-throughs under examples/ run green against the demo emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"PYTHON": sys.executable, "ABFSM": f"{sys.executable} -m abfsm"})
    return subprocess.run(["bash", str(ROOT / "examples" / name)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180, check=False)


def test_common_uses_of_the_original_tool_all_succeed():
    """The four common uses of deploy.py, as abfsm commands, each end in success."""
    proc = run_example("common-uses.sh")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("succeeded") == 4
    assert "planned (dry run, nothing changed)" in proc.stdout


def test_ci_pipeline_step_acts_on_exit_codes():
    """The CI step deploys (exit 0), then is refused by a manual freeze (exit 3)."""
    proc = run_example("ci-pipeline-demo.sh")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "deployed" in proc.stdout
    assert "(exit 3 as expected)" in proc.stdout


def test_resume_after_a_manual_fix_walk_through():
    """deploy fails in wait-elb (exit 1), status shows it, resume finishes, status is free."""
    proc = run_example("resume-after-fix.sh")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "FAILED in wait-elb" in out
    assert out.index("FAILED in wait-elb") < out.index("succeeded") < out.index("qa: free (no lock)")


def test_step_functions_walk_through():
    """sfn deploy, sfn start, sfn watch to the end (exit 0), a start refused by a manual
    freeze (exit 3), sfn status of that execution, and abfsm status naming the freeze."""
    proc = run_example("stepfunctions/walk-through.sh")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert out.index("qa succeeded after") < out.index("(exit 3 as expected: refused)")
    assert "is FAILED in locked (exit 3)" in out
    assert "LOCKED by a lock abfsm did not write" in out
    assert "NoSuchJsonPathError" not in proc.stderr  # moto's interpreter logs kept quiet
