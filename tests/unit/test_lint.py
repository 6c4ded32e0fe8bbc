"""The code passes ruff (E, F, W, B) and mypy --strict, as configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)


def test_ruff_finds_nothing():
    """`ruff check` over the package, tests, benchmarks and examples is clean."""
    proc = _run("ruff", "check", "abfsm", "tests", "benchmarks", "examples")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_finds_nothing():
    """`mypy` (strict, per pyproject.toml) over abfsm/ is clean."""
    proc = _run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
