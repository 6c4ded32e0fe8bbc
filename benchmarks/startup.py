#!/usr/bin/env python
"""Start-up time of the abfsm CLI, and whether boto3/botocore get imported.

Each command runs in a fresh subprocess RUNS times (after one unmeasured warm-up run that
fills the bytecode cache); the median and the minimum wall times are printed. Each command
then runs once under `python -X importtime` to list what it imported. `python -c pass` is
the interpreter's own start-up, for reference.

Usage: python benchmarks/startup.py [--runs 10]
Prints numbers only; never fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SCRIPT = Path(PY).parent / "abfsm"  # the console script installed next to this python
WATCH = ("boto3", "botocore", "moto", "transitions", "yaml", "structlog")


def commands() -> list[tuple[str, list[str], list[str]]]:
    """(label, argv to time, argv for -X importtime)"""
    cli = [str(SCRIPT)] if SCRIPT.exists() else [PY, "-m", "abfsm"]
    out = [
        ("python -c pass (interpreter only)", [PY, "-c", "pass"],
         [PY, "-X", "importtime", "-c", "pass"]),
        ('python -c "import abfsm.cli"', [PY, "-c", "import abfsm.cli"],
         [PY, "-X", "importtime", "-c", "import abfsm.cli"]),
        ("abfsm --help", [*cli, "--help"], [PY, "-X", "importtime", "-m", "abfsm", "--help"]),
    ]
    if (ROOT / "abfsm" / "graph.py").exists():
        out.append(("abfsm graph (mermaid)", [*cli, "graph"],
                    [PY, "-X", "importtime", "-m", "abfsm", "graph"]))
    else:
        print("note: abfsm/graph.py is not there yet; `abfsm graph` not measured")
    return out


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e["PYTHONPATH"] = str(ROOT)  # the working tree, even if abfsm is installed elsewhere
    return e


def time_runs(argv: list[str], runs: int) -> tuple[list[float], list[float], int]:
    """Wall times and CPU times (user + system of the child) of `runs` runs, last exit code."""
    subprocess.run(argv, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)  # warm-up: bytecode cache
    walls, cpus = [], []
    code = 0
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        code = proc.returncode
    return walls, cpus, code


def imports(argv: list[str]) -> tuple[set[str], list[tuple[int, str]], int]:
    """Top-level packages imported, the heaviest packages (cumulative us), module count."""
    proc = subprocess.run(argv, cwd=ROOT, env=env(), capture_output=True, text=True, check=False)
    tops: set[str] = set()
    slow: list[tuple[int, str]] = []
    count = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, raw = line.split(":", 1)[1].split("|")
        name = raw[1:]  # one space after the bar; more spaces mean a nested import
        count += 1
        tops.add(name.strip().split(".")[0])
        package = name.strip()
        if "." not in package and package not in ("abfsm", "encodings", "site"):
            slow.append((int(cumulative), package))  # a package's own import, nested or not
    slow.sort(reverse=True)
    return tops, slow[:4], count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"# abfsm start-up time ({args.runs} runs each, median; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})")
    print()
    print("| command | median wall ms | min wall ms | median CPU ms | exit | modules imported "
          "| boto3 imported | botocore imported | other notable "
          "| heaviest packages (cumulative import ms) |")
    print("|---|---:|---:|---:|---:|---:|---|---|---|---|")
    for label, timed, traced in commands():
        times, cpus, code = time_runs(timed, args.runs)
        tops, slow, count = imports(traced)
        slowest = ", ".join(f"{name} {us / 1000:.1f}" for us, name in slow)
        other = ", ".join(m for m in WATCH[2:] if m in tops) or "none"
        boto3, botocore = ("YES" if name in tops else "no" for name in ("boto3", "botocore"))
        print(f"| {label} | {statistics.median(times) * 1000:.1f} | {min(times) * 1000:.1f} | "
              f"{statistics.median(cpus) * 1000:.0f} | {code} | {count} | {boto3} | {botocore} "
              f"| {other} | {slowest} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
