"""`abfsm graph`: draw the machine from the validated spec, optionally marking a run on it.

Both texts are generated from the validated `Spec` — the same object the runner hands to
`transitions.Machine` through `machine_config()` — never from a hand-written copy:

- mermaid `stateDiagram-v2` (default; no dependency at all);
- Graphviz dot text (no dependency either); png/svg render that dot text with pygraphviz
  (the optional extra `abfsm[graph]`, whose wheel bundles Graphviz).

Why not `transitions.extensions.GraphMachine` itself: its mermaid engine writes state
names as ids (`wait-instances`, `scale` break mermaid's parser), its front matter is not a
valid `title:`, it paints the initial state "active" and cannot tell final states apart;
its dot text needs pygraphviz even when no image is wanted. The tests check that every
edge drawn here is one a `transitions.Machine` built from `machine_config()` takes.

With `--environment ENV` the run record of ENV's current run (the lock) or else of its
last finished run is read, and the graph marks the state the run is in, the state that
failed and the path it took. Without `--lock-bucket-name` only the local state dir is read
and no boto3 client is built; this module never imports boto3 itself.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abfsm.errors import UsageError
from abfsm.log import silence
from abfsm.spec import RUNNER_TRIGGERS, Spec, StateSpec

TITLE = "abfsm"
FORMATS = ("mermaid", "dot", "png", "svg")
EXTRA_HINT = "pip install 'abfsm[graph]'"

# Words mermaid's stateDiagram lexer treats as keywords (case-insensitively); a state
# with such a name gets a suffixed id. Its label always shows the real name.
_MERMAID_RESERVED = frozenset({
    "state", "note", "end", "as", "class", "classdef", "style", "scale", "direction",
    "click", "href", "hide", "acctitle", "accdescr", "default", "fork", "join", "choice",
})

# Colours shared by mermaid classDefs and dot attributes.
_OK = ("#e3f4e6", "#2e7d32")  # (fill, stroke): a final state with exit 0
_ERROR = ("#fbe3e3", "#c62828")  # a final state with exit 1
_OTHER = ("#fff4d6", "#b26a00")  # any other exit code (e.g. 3, refused)
_VISITED = ("#e3eefc", "#1565c0")  # a state the marked run went through
_CURRENT = ("#ffe082", "#e65100")  # the state the marked run is in
_STOPPED = ("#ffcdd2", "#b71c1c")  # the state whose action failed


@dataclass(frozen=True)
class Marks:
    """Where a run is on the graph: its state, the failed state, the path it took."""

    current: str | None = None
    failed: str | None = None
    steps: tuple[tuple[str, str, str], ...] = ()  # (src, trigger, dst) in order
    caption: str = ""

    @property
    def visited(self) -> list[str]:
        seen: dict[str, None] = {}
        for src, _, dst in self.steps:
            seen.setdefault(src)
            seen.setdefault(dst)
        if self.current:
            seen.setdefault(self.current)
        return list(seen)

    def step_numbers(self) -> dict[tuple[str, str], list[int]]:
        """(src, trigger) -> the 1-based positions of that move in the path."""
        out: dict[tuple[str, str], list[int]] = {}
        for i, (src, trigger, _) in enumerate(self.steps, 1):
            out.setdefault((src, trigger), []).append(i)
        return out


@dataclass
class _Run:
    """The fields of a run record the marks need (a RunRecord or an archived dict)."""

    run_id: str = "?"
    state: str | None = None
    status: str = "?"
    failed_state: str | None = None
    last_error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def marks_from_record(spec: Spec, record: Any) -> Marks:
    """Marks for a run record (RunRecord or its JSON dict); moves the spec lacks are skipped."""
    data = record if isinstance(record, Mapping) else vars(record)
    known: dict[str, Any] = {k: data.get(k) for k in ("run_id", "state", "status", "failed_state",
                                                      "last_error") if data.get(k) is not None}
    run = _Run(**known, history=list(data.get("history") or []))
    declared = {(t.source, t.trigger, t.dest) for t in spec.transitions}
    steps = tuple(
        (h.get("src"), h.get("trigger"), h.get("dst")) for h in run.history
        if isinstance(h, Mapping) and (h.get("src"), h.get("trigger"), h.get("dst")) in declared
    )
    current = run.state if run.state in spec.states else None
    failed = run.failed_state if run.last_error and run.failed_state in spec.states else None
    where = f"failed in {failed}" if failed else f"{run.status} in {run.state}"
    if run.state == run.status:  # a final state names the status itself
        where = run.status if not failed else f"{run.status} in {failed}"
    return Marks(current=current, failed=failed, steps=steps,  # type: ignore[arg-type]
                 caption=f"{data.get('environment') or '?'} run {run.run_id}, {where}")


# ---------------------------------------------------------------------------- mermaid


def mermaid(spec: Spec, marks: Marks | None = None, title: str = TITLE) -> str:
    """The machine as a mermaid stateDiagram-v2, one stable line per state and transition."""
    ids = _mermaid_ids(spec.states)
    numbers = marks.step_numbers() if marks else {}
    if marks and marks.caption:
        title = f"{title}: {marks.caption}"
    lines = ["---", f"title: {_yaml_str(title)}", "---", "stateDiagram-v2"]
    body: list[str] = []
    for name, st in spec.states.items():
        body.append(f'state "{_mermaid_label(_label(st))}" as {ids[name]}')
    body.append(f"[*] --> {ids[spec.initial]}")
    for (src, dst), triggers in _edges(spec).items():
        labels = [t + _step_suffix(numbers.get((src, t))) for t in triggers]
        body.append(f"{ids[src]} --> {ids[dst]}: {' | '.join(labels)}")
    classes = _node_classes(spec, marks)
    for cls in _CLASS_ORDER:
        if cls in classes.values():
            fill, stroke = _CLASS_COLOURS[cls]
            width = "3px" if cls in ("current", "stopped") else "2px"
            body.append(f"classDef {cls} fill:{fill},stroke:{stroke},stroke-width:{width}")
    for name, cls in classes.items():
        body.append(f"class {ids[name]} {cls}")
    lines += ["    " + line for line in body]
    return "\n".join(lines) + "\n"


_CLASS_COLOURS = {"ok": _OK, "error": _ERROR, "other": _OTHER, "visited": _VISITED,
                  "current": _CURRENT, "stopped": _STOPPED}
_CLASS_ORDER = ("ok", "error", "other", "visited", "current", "stopped")


def _node_classes(spec: Spec, marks: Marks | None) -> dict[str, str]:
    """One class per node that has one: run marks first, then the kind of final state."""
    out: dict[str, str] = {}
    visited = set(marks.visited) if marks else set()
    for name, st in spec.states.items():
        if marks and name == marks.failed:
            out[name] = "stopped"
        elif marks and name == marks.current:
            out[name] = "current"
        elif name in visited:
            out[name] = "visited"
        elif st.final:
            out[name] = _final_kind(st)
    return out


def _final_kind(st: StateSpec) -> str:
    return "ok" if st.exit == 0 else "error" if st.exit == 1 else "other"


def _mermaid_ids(names: Iterable[str]) -> dict[str, str]:
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = re.sub(r"\W", "_", name, flags=re.ASCII)
        if not base[:1].isalpha():
            base = "s_" + base
        if base.lower() in _MERMAID_RESERVED:
            base += "_"
        ident, n = base, 2
        while ident.lower() in taken:
            ident, n = f"{base}_{n}", n + 1
        taken.add(ident.lower())
        ids[name] = ident
    return ids


def _mermaid_label(text: str) -> str:
    return text.replace('"', "#quot;").replace(":", "#58;")


def _yaml_str(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9 _.-]+", text) else json.dumps(text)


# ---------------------------------------------------------------------------- dot


def dot(spec: Spec, marks: Marks | None = None, title: str = TITLE) -> str:
    """The machine as Graphviz dot text: left to right, final states double-bordered."""
    numbers = marks.step_numbers() if marks else {}
    classes = _node_classes(spec, marks)
    if marks and marks.caption:
        title = f"{title}: {marks.caption}"
    out = [
        "digraph abfsm {",
        f"    graph [label={_q(title)}, labelloc=t, fontsize=18, fontname=Helvetica, "
        "rankdir=LR, nodesep=0.35, ranksep=0.55, pad=0.3];",
        "    node [shape=box, style=\"rounded,filled\", fillcolor=white, color=\"#37474f\", "
        "fontname=Helvetica, fontsize=12, margin=\"0.15,0.06\"];",
        "    edge [color=\"#455a64\", fontname=Helvetica, fontsize=10, arrowsize=0.7];",
        "    __start__ [shape=point, width=0.15, label=\"\", color=black, fillcolor=black];",
    ]
    for name, st in spec.states.items():
        attrs = {"label": _label(st, sep="\n")}
        cls = classes.get(name)
        if st.final:
            attrs["peripheries"] = "2"
        if cls:
            fill, stroke = _CLASS_COLOURS[cls]
            attrs.update(fillcolor=fill, color=stroke)
            if cls in ("current", "stopped"):
                attrs["penwidth"] = "3"
        out.append(f"    {_q(name)} [{_attrs(attrs)}];")
    finals = [n for n, st in spec.states.items() if st.final]
    out.append("    { rank=sink; " + " ".join(_q(n) for n in finals) + " }")
    out.append(f"    __start__ -> {_q(spec.initial)};")
    for tr in spec.transitions:
        steps = numbers.get((tr.source, tr.trigger))
        attrs = {"label": tr.trigger + _step_suffix(steps)}
        if steps:
            attrs.update(color=_VISITED[1], fontcolor=_VISITED[1], penwidth="2.5")
        elif tr.trigger in RUNNER_TRIGGERS:  # fired on errors: drawn lighter than outcomes
            attrs.update(style="dashed", color="#9e9e9e", fontcolor="#757575")
        out.append(f"    {_q(tr.source)} -> {_q(tr.dest)} [{_attrs(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(attrs: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={_q(v)}" for k, v in attrs.items())


# ---------------------------------------------------------------------------- shared


def _label(st: StateSpec, sep: str = " ") -> str:
    return f"{st.name}{sep}(exit {st.exit})" if st.final else st.name


def _edges(spec: Spec) -> dict[tuple[str, str], list[str]]:
    """(src, dst) -> triggers, in declaration order (parallel moves share one arrow)."""
    out: dict[tuple[str, str], list[str]] = {}
    for tr in spec.transitions:
        out.setdefault((tr.source, tr.dest), []).append(tr.trigger)
    return out


def _step_suffix(steps: list[int] | None) -> str:
    return f" ({', '.join(map(str, steps))})" if steps else ""


def render(dot_text: str, fmt: str) -> bytes:
    """png/svg bytes of dot text, through pygraphviz (the `abfsm[graph]` extra)."""
    try:
        import pygraphviz
    except ImportError:
        raise UsageError(f"--format {fmt} needs Graphviz: {EXTRA_HINT}") from None
    data = pygraphviz.AGraph(string=dot_text).draw(format=fmt, prog="dot")
    return bytes(data)


def produce(spec: Spec, fmt: str, marks: Marks | None = None) -> bytes:
    """The graph in one of FORMATS, as the bytes to write."""
    if fmt == "mermaid":
        return mermaid(spec, marks).encode()
    if fmt == "dot":
        return dot(spec, marks).encode()
    if fmt in ("png", "svg"):
        return render(dot(spec, marks), fmt)
    raise UsageError(f"--format {fmt}: not one of {', '.join(FORMATS)}")


# ---------------------------------------------------------------------------- command


def command(args: argparse.Namespace) -> int:
    """`abfsm graph`: validate the spec, read the run to mark (if asked), write the graph."""
    from abfsm.actions import ACTIONS
    from abfsm.spec import load_spec

    spec = load_spec(getattr(args, "spec", None), ACTIONS)
    fmt = getattr(args, "format", None) or "mermaid"
    output = getattr(args, "output", None)
    if fmt in ("png", "svg") and not output and _isatty(sys.stdout):
        raise UsageError(f"--format {fmt} writes an image; give --output FILE or redirect stdout")
    if output:
        check_output(output)  # before reading the environment's run (an AWS call)
    marks = None
    if getattr(args, "environment", None):
        marks = environment_marks(spec, args)
    data = produce(spec, fmt, marks)
    if output:
        try:
            Path(output).write_bytes(data)
        except OSError as exc:
            raise UsageError(f"--output {output}: cannot write it ({exc.strerror})") from None
    else:
        try:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except OSError:  # `abfsm graph | head`: the reader had enough
            silence(sys.stdout)
    return 0


def check_output(output: str) -> None:
    """--output must name a file in an existing directory (one line, exit 2, if not)."""
    path = Path(output)
    if path.is_dir():
        raise UsageError(f"--output {output}: is a directory; name a file")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"--output {output}: the directory {parent} {what}")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def environment_marks(spec: Spec, args: argparse.Namespace) -> Marks | None:
    """Marks for ENV's current run (its lock) or else its last finished run; None if none."""
    from abfsm.clock import SystemClock
    from abfsm.context import Settings
    from abfsm.runner import make_lock, services_for

    settings = Settings(
        environment=args.environment,
        lock_bucket_name=getattr(args, "lock_bucket_name", None),
        state_dir=getattr(args, "state_dir", None) or ".abfsm",
        region=getattr(args, "region", None),
        endpoint_url=getattr(args, "endpoint_url", None),
        profile=getattr(args, "profile", None),
    )
    # Services builds no client until one is used: the local store never touches it.
    lock = make_lock(settings, services_for(settings), SystemClock())
    holder = lock.holder()
    if holder is not None and holder.record is not None:
        return marks_from_record(spec, holder.record)
    last = lock.history(1)
    if last:
        return marks_from_record(spec, last[0])
    why = "holds a lock abfsm did not write" if holder is not None else "has no run on record"
    sys.stderr.write(f"abfsm graph: {settings.environment} {why} ({lock.where}); "
                     "nothing marked\n")
    return None
