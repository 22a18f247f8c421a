"""Mutation fuzzing of the bundled workflow and scenario files, shared by the test suite and ``scripts/fuzz.py``.

A case is one bundled file with one to three mutations drawn by Hypothesis. A mutation replaces a value
anywhere in the tree with a hostile one, scales a number to an extreme (often still valid, so that runs
get fuzzed too), or it deletes a key, adds an unknown one, or swaps a key for a hostile one. Hostile values include huge and negative numbers, NaN, lone surrogates, megabyte strings,
deep nesting, wrong types and near-miss units. Whole-text attacks are cases too: alias bombs, deep flow
nesting, binary junk and an empty file. Each case runs ``emitter check`` on the file in process, then
``emitter run`` on it when check accepts it, for a few sessions into the null sink. Both must return exit
0 or 2 with every error a single line, without raising and within the time limit. Raising, a traceback,
another exit code or a hang is a failure.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import math
import shutil
import signal
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st
from msgspec import inspect as mi

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = sorted((ROOT / "workflows").glob("*.yaml")) + sorted((ROOT / "workflows" / "scenarios").glob("*.yaml"))
DEEP = "__deep__"

_words = st.sampled_from(
    [
        "",
        "0",
        "-1",
        "1e309",
        "nan",
        "inf",
        "-90s",
        "90q",
        "1e400s",
        "2026-13-45T99:00:00Z",
        "9999-12-31T23:59:59Z",
        "file:",
        "kafka://",
        "otlp://:99999",
        "$exit",
        "{id}",
        "/a/{",
        "normal",
        "lognormal",
        "\x00",
        "\ud800",
        "ünï/cødé",
        "a" * 300,
    ]
)
HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1, 2**31, 0, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, math.inf, -math.inf]),
    _words,
    st.text(max_size=12),
    st.sampled_from(["x" * 1_000_000, "é" * 200_000]),
    st.none(),
    st.booleans(),
    st.sampled_from([[], {}, [None], {"": None}]),
    st.integers(min_value=30, max_value=100_000).map(lambda d: f"{DEEP}{d}"),
    st.lists(st.one_of(st.integers(), _words), max_size=4),
    st.dictionaries(_words, st.one_of(st.integers(), _words, st.none()), max_size=3),
)

TEXT_ATTACKS = [
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
    "[" * 50_000 + "]" * 50_000,
    "{a: " * 20_000 + "1" + "}" * 20_000,
    "\x00\x01\x02\xff binary",
    "",
    "just a string",
    "- 1\n- 2\n",
    "name: x\n" * 3,
    "a: !!python/object/apply:os.system ['true']\n",
    "name: &a [*a]\nworkflow: &b {x: *b}\n",
    "? [a, b]\n: 1\n",
    "entry_points: {? {a: 1} : 1}\n",
]


@dataclass
class Outcome:
    command: str
    code: int | None  # None: it raised (or hung)
    stderr: str
    error: str = ""  # what went wrong, when something did
    trace: str = ""  # the traceback, when it raised


URIS = st.sampled_from(
    [
        "kafka://127.0.0.1:1/t",
        "kafka://:9092",
        "otlp://x:0",
        "otlp+http://[::1",
        "file:no/such/dir/x",
        "file:",
        "parquet:",
        "null",
        "1e400",
        "-0",
        "0x10",
        "1_000",
        "2026-02-30",
        "now",
        "36h",
        "1000000000000",
    ]
)


def _inside(value: str) -> str:
    """A value that names a path names one under the case's directory (a sink makes its parents)."""
    value = value.replace("..", "__").replace("~", "_")
    for scheme in ("file:", "parquet:"):
        if value.startswith(scheme + "/"):
            return f"{scheme}.{value[len(scheme) :]}"
    return "." + value if value.startswith("/") else value


@st.composite
def run_options(draw: st.DrawFn) -> list[str]:
    """``emitter run`` arguments: one to three run options with hostile values (the null sink unless drawn)."""
    from emitter.inputs.options import OPTIONS

    values = st.one_of(
        _words, URIS, st.text(max_size=10), st.integers(-(10**30), 10**30).map(str), st.floats().map(str)
    )
    pairs = draw(st.lists(st.tuples(st.sampled_from([o.flag for o in OPTIONS]), values), min_size=1, max_size=3))
    argv = [a for pair in pairs for a in (pair[0], _inside(pair[1]))]
    return argv if "--sink" in argv else [*argv, "--sink", "null"]


def _paths(tree: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield here
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, (*here, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, (*here, i))


def _get(tree: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        tree = tree[p]
    return tree


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Path, str]:
    """(a bundled file, its mutated text)."""
    src = draw(st.sampled_from(BUNDLED))
    if draw(st.integers(0, 19)) == 0:
        return src, draw(st.sampled_from(TEXT_ATTACKS))
    tree = yaml.safe_load(src.read_text())
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(tree))
        op = draw(st.sampled_from(["replace", "replace", "tweak", "tweak", "tweak", "delete", "add", "rekey"]))
        value = draw(HOSTILE)
        value = _inside(value) if isinstance(value, str) else value  # (a report path, say, stays in the case)
        numbers = [p for p in paths if isinstance(_get(tree, p), int | float) and not isinstance(_get(tree, p), bool)]
        if op == "tweak" and numbers:  # a plausible number made extreme but often still valid: runs get fuzzed too
            path = draw(st.sampled_from(numbers))
            old = _get(tree, path)
            factor = draw(st.sampled_from([0, -1, 1e-9, 0.01, 0.5, 2, 10, 1e3, 1e6]))
            value, op = (old * factor if isinstance(old, float) else int(old * factor)), "replace"
        else:
            path = draw(st.sampled_from(paths))
            op = "replace" if op == "tweak" else op
        if not path:
            tree = value if op == "replace" else tree
            continue
        parent, last = _get(tree, path[:-1]), path[-1]
        if op == "replace":
            parent[last] = value
        elif op == "delete":
            del parent[last]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(_words)] = value
        elif op == "rekey" and isinstance(parent, dict):
            parent[value if isinstance(value, str | int | float | bool) or value is None else str(value)] = parent.pop(
                last
            )
    text = yaml.safe_dump(tree, sort_keys=False, width=1 << 30)
    while DEEP in text:  # deep nesting goes in as text: the dumper itself would recurse
        i = text.index(DEEP)
        j = i + len(DEEP)
        while j < len(text) and text[j].isdigit():
            j += 1
        depth = int(text[i + len(DEEP) : j])
        text = text[:i] + "[" * depth + "]" * depth + text[j:]
    return src, text


def stage(src: Path, text: str, tmp: Path) -> Path:
    """Write the case where the file's relative references (a scenario's workflow) still resolve."""
    (tmp / "scenarios").mkdir(parents=True, exist_ok=True)
    for wf in (ROOT / "workflows").glob("*.yaml"):
        if not (tmp / wf.name).exists():
            shutil.copy(wf, tmp / wf.name)
    rel = src.relative_to(ROOT / "workflows")
    out = tmp / rel.parent / f"case-{rel.name}"
    out.write_text(text, encoding="utf-8", errors="surrogatepass")
    return out


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang


def _call(argv: list[str], limit_s: int) -> Outcome:
    from emitter.cli import main

    err = io.StringIO()
    out = io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(limit_s)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code: int | None = main(argv)
        error = trace = ""
    except _Hang:
        code, error = None, f"hung past {limit_s} s"
        trace = ""
    except SystemExit as exc:  # (argparse)
        code, error, trace = (exc.code if isinstance(exc.code, int) else 1), "", ""
    except BaseException as exc:  # noqa: BLE001 - any other exception is what the fuzzer looks for
        code, error = None, f"raised {type(exc).__name__}: {str(exc)[:200]}"
        trace = "".join(traceback.format_exception(exc)[-6:])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    text = err.getvalue()
    if not error and code not in (0, 2):
        error = f"exit {code}"
    if not error and "Traceback" in text:
        error = "printed a traceback"
    if not error and code == 2:
        bad = [ln for ln in text.splitlines() if ln and not (ln.startswith(("emitter", "warning")) or ": " in ln)]
        if bad:
            error = f"an error that is not one line per problem: {bad[0][:200]!r}"
    return Outcome(argv[0], code, text, error, trace)


def run_case(path: Path, limit_s: int = 20, cwd: Path | None = None) -> list[Outcome]:
    """``check``, then (if accepted) a short ``run``, in ``cwd`` (where a scenario's relative outputs land);
    every outcome, failed or not."""
    with contextlib.chdir(cwd or Path.cwd()):
        res = [_call(["check", str(path)], limit_s)]
        if res[0].code == 0:
            argv = ["run", str(path), "--sessions", "20", "--speed", "max", "--sink", "null", "--progress", "off"]
            res.append(_call(argv, limit_s))
    return res


def run_failures(options: list[str], cwd: Path, limit_s: int = 20) -> list[Outcome]:
    """A short ``emitter run`` of the ecommerce workflow with ``options`` after the defaults (later wins)."""
    wf = str(ROOT / "workflows" / "ecommerce.yaml")
    with contextlib.chdir(cwd):
        out = _call(["run", wf, "--sessions", "5", "--speed", "max", "--progress", "off", *options], limit_s)
    return [out] if out.error else []


# ----------------------------------------------------------------------------- the other commands, on bad records

RECORD_ATTACKS = [
    b"{}",
    b"null",
    b"[1, 2]",
    b'"just a string"',
    b"{",
    b"\x00\xff\xfe\x80",
    b'{"session_id": 5, "seq": "x"}',
    b'{"session_id": "s", "seq": 1e400, "endpoint": "/a"}',
    b'{"timestamp": "2026-99-99T99:99:99Z", "session_id": "s"}',
    b'{"labels": {"faults": 5, "role": []}}',
    b'{"trace_id": 7, "span_id": null, "resourceSpans": "x"}',
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "x"}]}]}]}',
    b'{"type": "fault", "id": null, "start": "never"}',
    b'{"type": "manifest", "run_id": [], "start": 1e309}',
    b"\xef\xbb\xbf{}",
    b"x" * 300_000,
]
GOLDEN = ROOT / "tests" / "golden"


def _golden_lines(name: str, n: int = 300) -> list[bytes]:
    import gzip

    with gzip.open(GOLDEN / name, "rb") as fh:
        return [line.rstrip(b"\n") for _, line in zip(range(n), fh, strict=False)]


@st.composite
def records(draw: st.DrawFn, lines: list[bytes]) -> bytes:
    """JSON lines of a real stream with one to five lines broken: replaced by an attack, cut short, or a
    field given a hostile value."""
    import json

    out = list(lines)
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(out) - 1))
        how = draw(st.sampled_from(["attack", "cut", "field", "field"]))
        if how == "attack":
            out[i] = draw(st.sampled_from(RECORD_ATTACKS))
        elif how == "cut":
            out[i] = out[i][: draw(st.integers(0, max(0, len(out[i]) - 1)))]
        else:
            try:
                rec = json.loads(out[i])
            except ValueError:
                continue
            if isinstance(rec, dict) and rec:
                key = draw(st.sampled_from(sorted(rec)))
                value = draw(HOSTILE)
                if isinstance(value, str) and value.startswith(DEEP):
                    value = None
                rec[key] = value
                out[i] = json.dumps(rec, default=str).encode("utf-8", "surrogatepass")
    return b"\n".join(out) + b"\n"


@functools.cache
def _truth_lines() -> list[bytes]:
    """The truth records of the golden faults scenario (a short run, once per process, in a temporary dir)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "truth.jsonl"
        argv = ["run", str(GOLDEN / "faults.yaml"), "--sessions", "30", "--sink", "null", "--progress", "off"]
        out = _call([*argv, "--truth", f"file:{path}"], 60)
        assert out.code == 0, out.stderr
        return path.read_bytes().splitlines()


# each command's exit codes that are answers, not failures: validate 1 (rejected) and 3 (no data)
COMMAND_CODES = {"validate": {0, 1, 2, 3}, "score": {0, 2}, "fit": {0, 2}, "report": {0, 2}}


@st.composite
def command_case(draw: st.DrawFn) -> tuple[list[str], dict[str, bytes]]:
    """One of validate, score, fit and report on broken stream records, with up to two hostile options of its
    own: the argv (relative to the case directory) and the files to write there first."""
    from emitter.cli import build_parser

    wf = str(ROOT / "workflows" / "ecommerce.yaml")
    cmd = draw(st.sampled_from(sorted(COMMAND_CODES)))
    events = draw(records(_golden_lines("faults.jsonl.gz")))
    files = {"events.jsonl": events}
    if cmd == "validate":
        argv = ["validate", wf, "--source", "events.jsonl"]
    elif cmd == "fit":
        argv = ["fit", "events.jsonl", "-o", "fitted.yaml"]
    else:
        truth = draw(records(_truth_lines())) if draw(st.booleans()) else b"{}\n"
        files["truth.jsonl"] = truth
        if cmd == "score":
            files["detections.jsonl"] = draw(records([b'{"service": "payments", "start": 60, "end": 900}'] * 3))
            argv = ["score", "--truth", "truth.jsonl", "--detections", "detections.jsonl", "--events", "events.jsonl"]
        else:
            argv = ["report", "events.jsonl", "-o", "report.html", "--truth", "truth.jsonl", "--workflow", wf]
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    flags = sorted(
        o for a in sub.choices[cmd]._actions for o in a.option_strings if o.startswith("--") and o != "--help"
    )
    values = st.one_of(_words, URIS, st.text(max_size=10), st.integers(-(10**30), 10**30).map(str))
    for flag, value in draw(st.lists(st.tuples(st.sampled_from(flags), values), max_size=2)):
        argv += [flag, _inside(value)]
    return argv, files


def command_outcome(argv: list[str], files: dict[str, bytes], cwd: Path, limit_s: int = 30) -> Outcome:
    """``files`` written in ``cwd``, then the command run there; the command's own answers are not errors."""
    with contextlib.chdir(cwd):
        for name, data in files.items():
            Path(name).write_bytes(data)
        out = _call(argv, limit_s)
    if out.error.startswith("exit ") and out.code in COMMAND_CODES[argv[0]]:
        out.error = ""
        if "Traceback" in out.stderr:
            out.error = "printed a traceback"
    return out


def command_failures(argv: list[str], files: dict[str, bytes], cwd: Path, limit_s: int = 30) -> list[Outcome]:
    out = command_outcome(argv, files, cwd, limit_s)
    return [out] if out.error else []


# ----------------------------------------------------------------------------- files drawn from the declared specs
#
# The mutations above start from the bundled files; these strategies start from the types the loaders declare
# (emitter/inputs/specs.py, the scenario's Structs and the core's fault, profile, retry and reaction types),
# read through msgspec.inspect, so a new key or constraint is fuzzed the day it is declared. A value inside
# its declared constraints is drawn from them (bounds included); a parsed text leaf (a duration, a rate, a
# sink) from what the bundled files give that parser; a key or a plain string from the file's own few names,
# so that states, routes and services refer to each other often enough for files to get past the loaders'
# semantic checks and into a run. A probability map is sometimes scaled to sum to 1, for the same reason.


def _spec_type(kind: str) -> Any:
    from emitter.inputs.scenario import ScenarioFile
    from emitter.inputs.specs import WorkflowFile

    return {"workflow": WorkflowFile, "scenario": ScenarioFile}[kind]


_WRITTEN_AS = [
    (mi.DictType, dict),
    (mi.ListType | mi.VarTupleType, list),
    (mi.FloatType | mi.IntType, int | float),
    (mi.StrType, str),
    (mi.NoneType, type(None)),
]


def _member(data: Any, t: mi.UnionType) -> Any:
    """The member of a union that ``data`` is written as (a tagged Struct by its tag), or None."""
    for m in t.types:
        inner = m.type if isinstance(m, mi.Metadata) else m
        if isinstance(inner, mi.StructType):
            if isinstance(data, dict) and (inner.tag_field is None or data.get(inner.tag_field) == inner.tag):
                return m
        elif not isinstance(data, bool) and any(isinstance(inner, a) and isinstance(data, b) for a, b in _WRITTEN_AS):
            return m
    others = [m for m in t.types if isinstance(m, mi.Metadata) and isinstance(m.type, mi.AnyType)]
    return others[0] if others else None


def spec_leaves(
    data: Any, t: Any, path: tuple[Any, ...] = (), extra: dict[str, Any] | None = None
) -> Iterator[tuple[tuple[Any, ...], Any, Any, dict[str, Any]]]:
    """Every leaf of ``data`` read against its declared type ``t`` (a msgspec.inspect node): (key path,
    value, the leaf's type node, its Meta extras)."""
    extra = extra or {}
    if isinstance(t, mi.Metadata):
        yield from spec_leaves(data, t.type, path, {**extra, **(t.extra or {})})
    elif isinstance(t, mi.UnionType):
        m = _member(data, t)
        if m is not None:
            yield from spec_leaves(data, m, path, extra)
    elif isinstance(t, mi.StructType) and isinstance(data, dict):
        for f in t.fields:
            if f.encode_name in data:
                yield from spec_leaves(data[f.encode_name], f.type, (*path, f.encode_name))
    elif isinstance(t, mi.DictType) and isinstance(data, dict):
        for k, v in data.items():
            yield from spec_leaves(v, t.value_type, (*path, k))
    elif isinstance(t, mi.ListType | mi.VarTupleType) and isinstance(data, list):
        for i, v in enumerate(data):
            yield from spec_leaves(v, t.item_type, (*path, i))
    else:
        yield path, data, t, extra


@functools.cache
def _bundled_pools() -> tuple[tuple[str, ...], dict[str, tuple[Any, ...]], dict[str, tuple[str, ...]]]:
    """From the bundled files: every name (routes and services), what each text parser is given, and each
    bundled workflow's own names."""
    names: set[str] = set()
    parsed: dict[str, set[Any]] = collections.defaultdict(set)
    per_workflow: dict[str, tuple[str, ...]] = {}
    for src in BUNDLED:
        tree = yaml.safe_load(src.read_text())
        kind = "scenario" if src.parent.name == "scenarios" else "workflow"
        if kind == "workflow":
            own = {*tree.get("transitions", {}), *tree.get("endpoints", {}), *tree.get("services", {})}
            per_workflow[src.name] = tuple(sorted(own))
            names |= own
        for _, value, _, extra in spec_leaves(tree, mi.type_info(_spec_type(kind))):
            if "parse" in extra and isinstance(value, str | int | float) and not isinstance(value, bool):
                parsed[extra["parse"]].add(value)
    return tuple(sorted(names)), {k: tuple(sorted(v, key=str)) for k, v in parsed.items()}, per_workflow


_TEXT = st.characters(codec="utf-8", max_codepoint=0xFFFF, exclude_categories=["Cs", "Cc", "Co", "Cn"])


def _normalised(d: dict[Any, Any]) -> dict[Any, Any]:
    total = sum(v for v in d.values() if isinstance(v, int | float))
    return {k: v / total for k, v in d.items()} if 0 < total < math.inf else d


def _closed(tree: Any) -> Any:
    """A drawn workflow made a chain the loader can accept, all else left as drawn: every state reachable
    from an entry point, every row over known states (or ``$exit``) and summing to 1, exit points among
    the states."""
    if not isinstance(tree, dict):
        return tree
    entry = {k: v for k, v in (tree.get("entry_points") or {}).items() if isinstance(k, str)}
    rows = {k: v for k, v in (tree.get("transitions") or {}).items() if isinstance(k, str)}
    states = sorted({*entry, *rows})
    if not states:
        return tree
    exits = sorted({e for e in tree.get("exit_points") or [] if e in states}) or [states[-1]]
    transitions = {}
    for state in states:
        if state in exits:
            continue
        row = {k: v for k, v in (rows.get(state) or {}).items() if k in states or k == "$exit"}
        transitions[state] = _normalised(row) if sum(row.values()) > 0 else {"$exit": 1.0}
    seen, todo = set(), [k for k, v in entry.items() if v > 0]
    while todo:
        state = todo.pop()
        if state not in seen:
            seen.add(state)
            todo += [k for k, v in transitions.get(state, {}).items() if v > 0 and k != "$exit"]
    entry |= {k: 0.01 for k in states if k not in seen}
    return tree | {"entry_points": _normalised(entry), "transitions": transitions, "exit_points": exits}


def _numbers(t: Any) -> st.SearchStrategy[Any]:
    lo = t.ge if t.ge is not None else t.gt
    hi = t.le if t.le is not None else t.lt
    if isinstance(t, mi.IntType):
        lo_i = None if lo is None else int(lo) + (t.gt is not None)
        hi_i = None if hi is None else int(hi) - (t.lt is not None)
        return st.integers(lo_i, hi_i)
    exact = st.floats(
        lo, hi, exclude_min=t.gt is not None, exclude_max=t.lt is not None, allow_nan=False, allow_infinity=False
    )
    # mostly plausible magnitudes, sometimes anything the bounds allow
    plausible_hi = min(hi, 1000.0) if hi is not None else 1000.0
    plausible_lo = lo if lo is not None else -1000.0
    if plausible_hi <= plausible_lo:
        return exact
    plausible = st.floats(plausible_lo, plausible_hi, exclude_min=t.gt is not None, allow_nan=False)
    return st.one_of(plausible, plausible, exact)


def spec_strategy(t: Any, names: st.SearchStrategy[str], parsed: dict[str, tuple[Any, ...]]) -> st.SearchStrategy[Any]:
    """Values of the declared type node ``t`` within its constraints (see the section's comment)."""

    def walk(t: Any, extra: dict[str, Any]) -> st.SearchStrategy[Any]:
        if isinstance(t, mi.Metadata):
            return walk(t.type, {**extra, **(t.extra or {})})
        if "parse" in extra:
            seen = parsed.get(extra["parse"], ())
            return st.sampled_from(seen) if seen else _words
        if isinstance(t, mi.StructType):
            req: dict[str, st.SearchStrategy[Any]] = {}
            opt: dict[str, st.SearchStrategy[Any]] = {}
            for f in t.fields:
                (req if f.required else opt)[f.encode_name] = walk(f.type, {})
            if t.tag_field is not None:
                req[t.tag_field] = st.just(t.tag)
            return st.fixed_dictionaries(req, optional=opt)
        if isinstance(t, mi.UnionType):
            return st.one_of([walk(m, extra) for m in t.types])  # (UNSET is not among them: an unset field is left out)
        if isinstance(t, mi.DictType):
            keys = names if isinstance(t.key_type, mi.StrType) else st.one_of(st.integers(100, 599), names)
            size = {"min_size": t.min_length or 0, "max_size": min(t.max_length or 5, 5)}
            d = st.dictionaries(keys, walk(t.value_type, {}), **size)
            if not size["min_size"]:  # mostly not empty: an empty mapping is one case
                d = st.one_of(d, st.dictionaries(keys, walk(t.value_type, {}), **(size | {"min_size": 1})))
            value = t.value_type
            if isinstance(value, mi.Metadata) and (value.extra or {}).get("range") == "probability":
                return st.one_of(d, d.map(_normalised), d.map(_normalised))
            return d
        if isinstance(t, mi.ListType | mi.VarTupleType):
            items = walk(t.item_type, {})
            size = {"min_size": t.min_length or 0, "max_size": min(t.max_length or 4, 4)}
            return st.one_of(st.lists(items, **size), st.lists(items, unique_by=repr, **size))
        if isinstance(t, mi.FloatType | mi.IntType):
            return _numbers(t)
        if isinstance(t, mi.StrType):
            text = st.text(_TEXT, min_size=t.min_length or 0, max_size=min(t.max_length or 12, 12))
            return st.one_of(names, names, names, text) if not t.min_length else st.one_of(names, names, text)
        if isinstance(t, mi.LiteralType):
            return st.sampled_from(t.values)
        if isinstance(t, mi.BoolType):
            return st.booleans()
        if isinstance(t, mi.NoneType):
            return st.none()
        return st.one_of(names, st.integers(100, 599), _words)  # Any: what a user might put there

    return walk(t, {})


@st.composite
def spec_file(draw: st.DrawFn) -> tuple[Path, str]:
    """(the bundled file whose place the case takes, the text of a workflow or scenario drawn from the specs)."""
    everything, parsed, per_workflow = _bundled_pools()
    kind = draw(st.sampled_from(["workflow", "workflow", "scenario"]))
    if kind == "workflow":
        pool = draw(
            st.lists(
                st.one_of(st.sampled_from(everything), st.text(_TEXT, min_size=1, max_size=8)),
                min_size=1,
                max_size=6,
                unique=True,
            )
        )
        tree = draw(spec_strategy(mi.type_info(_spec_type(kind)), st.sampled_from(pool), parsed))
        tree = _closed(tree) if draw(st.booleans()) else tree
        src = ROOT / "workflows" / sorted(per_workflow)[0]
    else:
        workflow = draw(st.sampled_from(sorted(per_workflow)))
        tree = draw(spec_strategy(mi.type_info(_spec_type(kind)), st.sampled_from(per_workflow[workflow]), parsed))
        tree.pop("workflows", None)
        tree["workflow"] = f"../{workflow}"  # (staged as the bundled scenarios are: see stage)
        src = next(p for p in BUNDLED if p.parent.name == "scenarios")
    return src, yaml.safe_dump(tree, sort_keys=False, width=1 << 30, allow_unicode=True)


def _outside(t: Any) -> list[Any]:
    """Values just outside a number's declared bounds: the bound itself where it is excluded, else one step
    (or the bound's own size) beyond it."""
    out: list[Any] = []
    if t.gt is not None:
        out.append(t.gt)
    elif t.ge is not None:
        out.append(t.ge - 1)
    if t.lt is not None:
        out.append(t.lt)
    elif t.le is not None:
        out.append(t.le + max(1, abs(t.le)))
    return out


def constraint_violations(src: Path) -> Iterator[tuple[tuple[Any, ...], Any, str]]:
    """For each number in a bundled file whose declared type bounds it, each value just outside a bound:
    (key path, value, the file's text with that one value changed)."""
    kind = "scenario" if src.parent.name == "scenarios" else "workflow"
    tree = yaml.safe_load(src.read_text())
    for path, _, t, extra in spec_leaves(tree, mi.type_info(_spec_type(kind))):
        if not isinstance(t, mi.FloatType | mi.IntType) or "parse" in extra or not path:
            continue
        for bad in _outside(t):
            changed = yaml.safe_load(src.read_text())
            parent = _get(changed, path[:-1])
            parent[path[-1]] = bad
            yield path, bad, yaml.safe_dump(changed, sort_keys=False, width=1 << 30)


def failures(path: Path, limit_s: int = 20, cwd: Path | None = None) -> list[Outcome]:
    return [o for o in run_case(path, limit_s, cwd) if o.error]


if __name__ == "__main__":  # pragma: no cover - one file by hand: python -m tests.fuzz FILE
    for o in run_case(Path(sys.argv[1])):
        print(o)
