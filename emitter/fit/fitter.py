"""From recorded calls (and spans) to a workflow that plays the recording back.

1. Endpoints: ``http.route`` when the traffic has it, else the URL path folded into a template
   (:mod:`.templates`). A route seen with several methods keeps its most common one (the report lists the mix).
2. Sessions: ``session.id`` when present; else a user key (``user.id``, ``enduser.id`` or an attribute the
   user names) split where the user was idle longer than ``gap`` (the gaps' quantiles are reported).
   Calls are ordered by start time; a call with ``attempt`` > 1 (``http.request.resend_count`` > 0)
   retries the one before it and is no step of the walk.
3. The chain: counted as the validator counts (:func:`emitter.validate.learn.learn`); every session's
   last step leaves (``$exit``), except one the recording says the call cap cut. States seen fewer than
   ``min_count`` times are dropped: steps into them leave instead (listed in the report).
4. Per endpoint: method, service, latency (lognormal by p50/p99 when a Kolmogorov-Smirnov distance says it
   fits, else an empirical mixture of uniform pieces over its quantiles; the fit's distance is stated),
   error rate and status mix of first attempts, parameter values of path placeholders and query keys.
   Think time: the pauses between a call's end and the next call's start, fitted the same way.
5. From spans: which services each service calls (the share of its server spans that call each one), kept
   when at least half do; each service's own time (its server spans minus their children).
6. User types, when the traffic names them: weights by users.

The result is the workflow as data (for :func:`emitter.inputs.workflow.parse_workflow`), the same as a
commented YAML text (counts and intervals as comments), and a report of what was learned and dropped.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.spec import EXIT
from ..validate.stats import wilson
from .templates import Folding
from .traffic import Call, Span

__all__ = ["FitOptions", "FitResult", "fit"]

F64 = npt.NDArray[np.float64]
Z99 = 2.3263478740408408
KS_OK = 0.05  # a lognormal "fits" when its KS distance to the sample is below this (or the sample is small)
MAX_CHOICES = 20  # parameter values kept as choices; more distinct values than this become an integer range


@dataclass(frozen=True)
class FitOptions:
    name: str = "fitted"
    session_attr: str | None = None  # an attribute holding the session id (default: session.id)
    user_attr: str | None = None  # an attribute holding the user key (default: user.id, enduser.id)
    user_type_attr: str | None = None  # an attribute holding the user's type (default: user.type)
    gap_s: float = 1800.0  # a user idle longer than this starts a new session
    min_count: int = 5
    confidence: float = 0.99


@dataclass
class FitResult:
    workflow: dict[str, Any]
    yaml: str
    report: dict[str, Any]
    comments: dict[tuple[str, ...], str] = field(default_factory=dict)


# ------------------------------------------------------------------ distributions


def _round(x: float, digits: int = 4) -> float:
    if x == 0 or not math.isfinite(x):
        return 0.0
    return float(f"{x:.{digits}g}")


def fit_positive(values: F64, unit_min: float) -> tuple[dict[str, Any], str]:
    """A distribution spec for positive values and a comment saying how well it fits."""
    v = np.sort(np.maximum(values, unit_min))
    n = len(v)
    if n == 0:
        return {"dist": "constant", "value": unit_min}, "no samples"
    p50, p99 = float(np.quantile(v, 0.5)), float(np.quantile(v, 0.99))
    if n < 20 or p99 <= p50 * 1.0001:
        mean = float(v.mean())
        if p99 <= p50 * 1.0001:
            return {"dist": "constant", "value": _round(p50)}, f"n = {n:,}; constant"
        spec = {"dist": "lognormal", "p50": _round(p50), "p99": _round(p99)}
        return spec, f"n = {n:,} (too few to judge the fit); mean {mean:.4g}"
    from scipy import stats

    mu, sigma = math.log(p50), (math.log(p99) - math.log(p50)) / Z99
    d = float(stats.kstest(v, stats.lognorm(s=sigma, scale=math.exp(mu)).cdf).statistic)
    if d < KS_OK:
        spec = {"dist": "lognormal", "p50": _round(p50), "p99": _round(p99)}
        return spec, f"n = {n:,}; lognormal, KS distance {d:.3f}"
    # an empirical mixture: uniform pieces between quantiles (finer in the tail)
    qs = np.unique(np.r_[np.linspace(0, 0.9, 10), [0.95, 0.99, 0.999, 1.0]])
    edges = np.quantile(v, qs)
    comps = []
    for i in range(len(edges) - 1):
        lo, hi, w = float(edges[i]), float(edges[i + 1]), float(qs[i + 1] - qs[i])
        if w <= 0:
            continue
        if hi <= lo:
            comps.append({"weight": _round(w, 6), "dist": "constant", "value": _round(lo)})
        else:
            comps.append({"weight": _round(w, 6), "dist": "uniform", "min": _round(lo), "max": _round(hi)})
    why = f"n = {n:,}; a lognormal does not fit (KS distance {d:.3f}): empirical"
    return {"dist": "mixture", "components": comps}, why


# ------------------------------------------------------------------ sessions


def _sessions(calls: list[Call], opts: FitOptions) -> tuple[dict[str, list[Call]], dict[str, Any]]:
    """Calls grouped into sessions (each in time order), and how they were built."""

    def attr(c: Call, key: str | None, default: str | None) -> str | None:
        if key is None:
            return default
        v = c.attrs.get(key)
        return None if v is None else str(v)

    keyed = [(attr(c, opts.session_attr, c.session), c) for c in calls]
    if all(k is not None for k, _ in keyed):
        out: dict[str, list[Call]] = defaultdict(list)
        for key, c in keyed:
            out[str(key)].append(c)
        for v in out.values():
            v.sort(key=lambda c: (c.start_us, c.attempt))
        return dict(out), {"by": opts.session_attr or "session.id"}
    users = [(attr(c, opts.user_attr, c.user), c) for c in calls]
    missing = sum(1 for u, _ in users if u is None)
    if missing:
        raise ValueError(
            f"{missing:,} of {len(calls):,} calls have no session id and no user key: name the attributes "
            "that hold them (--session-attr, --user-attr)"
        )
    by_user: dict[str, list[Call]] = defaultdict(list)
    for u, c in users:
        by_user[str(u)].append(c)
    out = {}
    gaps: list[float] = []
    splits = 0
    gap_us = opts.gap_s * 1e6
    for u, cs in by_user.items():
        cs.sort(key=lambda c: (c.start_us, c.attempt))
        k = 0
        cur = [cs[0]]
        for prev, c in itertools.pairwise(cs):
            g = c.start_us - (prev.start_us + prev.duration_us)
            gaps.append(g / 1e6)
            if g > gap_us:
                out[f"{u}#{k}"] = cur
                k += 1
                splits += 1
                cur = []
            cur.append(c)
        out[f"{u}#{k}"] = cur
    q = np.quantile(gaps, [0.5, 0.9, 0.99]).tolist() if gaps else [0.0, 0.0, 0.0]
    info = {
        "by": f"{opts.user_attr or 'user.id'} split at idle gaps over {opts.gap_s:g} s",
        "users": len(by_user),
        "splits": splits,
        "gap_s": {"p50": q[0], "p90": q[1], "p99": q[2], "max": max(gaps, default=0.0)},
    }
    return out, info


# ------------------------------------------------------------------ the fit


def _largest_remainder(probs: dict[str, float], digits: int = 6) -> dict[str, float]:
    """Probabilities rounded to ``digits`` that still sum to exactly one."""
    scale = 10**digits
    raw = {k: v * scale for k, v in probs.items()}
    floor = {k: int(v) for k, v in raw.items()}
    rest = scale - sum(floor.values())
    for k in sorted(raw, key=lambda k: raw[k] - floor[k], reverse=True)[:rest]:
        floor[k] += 1
    return {k: v / scale for k, v in floor.items() if v}


def _param(values: list[str]) -> dict[str, Any]:
    if all(v.isdigit() for v in values):
        nums = [int(v) for v in values]
        return {"min": min(nums), "max": max(nums)}
    c = Counter(values)
    if len(c) > MAX_CHOICES:
        return {"values": [v for v, _ in c.most_common(MAX_CHOICES)]}
    total = sum(c.values())
    return {"values": list(c), "weights": [_round(n / total, 6) for n in c.values()]}


def fit(calls: list[Call], spans: Iterable[Span], opts: FitOptions | None = None) -> FitResult:
    from ..validate.learn import learn

    opts = opts or FitOptions()
    if not calls:
        raise ValueError("no API calls found in the traffic (root server spans with an HTTP route or path)")
    folding = Folding()
    methods: dict[str, Counter[str]] = defaultdict(Counter)
    services: dict[str, Counter[str]] = defaultdict(Counter)
    query: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for c in calls:
        if c.route is None:
            assert c.path is not None
            c.route = folding.add(c.path)
        elif c.path:
            _, known = _fold_known(c.route, c.path)
            if known:
                folding.values[c.route].append(known)
        methods[c.route][c.method] += 1
        services[c.route][c.service] += 1
        q = c.attrs.get("url.query")
        if isinstance(q, str) and q:
            for qk, qv in _pairs(q):
                if len(query[c.route][qk]) < 10_000:
                    query[c.route][qk].append(qv)
        elif c.path and "?" in c.path:
            for qk, qv in _pairs(c.path.split("?", 1)[1]):
                query[c.route][qk].append(qv)
    sessions, session_info = _sessions(calls, opts)
    # logical steps: a retry (attempt > 1) repeats the step before it
    rows = []
    think: list[float] = []
    capped = 0
    for sid, cs in sessions.items():
        seq = -1
        last_end = None
        first_attempts = []
        for c in cs:
            if c.attempt == 1 or seq < 0:
                seq += 1
                if last_end is not None:
                    think.append(max(c.start_us - last_end, 0) / 1e6)
                first_attempts.append(c)
            last_end = c.start_us + c.duration_us
            rows.append(
                {
                    "session_id": sid,
                    "seq": seq,
                    "attempt": c.attempt,
                    "endpoint": c.route,
                    "user_type": c.user_type or "",
                    "end_reason": None,
                }
            )
        cap = any(c.end_reason == "cap" for c in cs)
        capped += cap
        rows[-1]["end_reason"] = "cap" if cap else "exit"
    learned = learn(rows)
    S = len(learned.states)
    entry = learned.entry_counts.sum(axis=0)
    trans = learned.trans_counts.sum(axis=0)
    visits = {s: int(trans[i].sum()) + int(learned.abandoned.sum(axis=0)[i]) for i, s in enumerate(learned.states)}
    seen = Counter(r["endpoint"] for r in rows)
    keep = [s for s in learned.states if seen[s] >= opts.min_count]
    dropped = sorted(set(learned.states) - set(keep), key=lambda s: -seen[s])
    index = {s: i for i, s in enumerate(learned.states)}
    # entry points (dropped states' entries are dropped with them)
    e_counts = {s: int(entry[index[s]]) for s in keep if entry[index[s]]}
    n_entry = sum(e_counts.values())
    if not n_entry:
        raise ValueError("no session starts at a state seen often enough: lower --min-count")
    comments: dict[tuple[str, ...], str] = {}
    conf = opts.confidence

    def note(key: tuple[str, ...], k: int, n: int) -> None:
        lo, hi = wilson(k, n, conf)
        comments[key] = f"{k:,} of {n:,}; {conf:.0%} interval [{lo:.4f}, {hi:.4f}]"

    entry_points = _largest_remainder({s: k / n_entry for s, k in e_counts.items()})
    for s, k in e_counts.items():
        note(("entry_points", s), k, n_entry)
    transitions: dict[str, dict[str, float]] = {}
    exit_points: list[str] = []
    for s in keep:
        row = trans[index[s]]
        counts: dict[str, int] = {}
        for j, k in enumerate(row):
            if not k:
                continue
            target = EXIT if j == S else learned.states[j]
            if target != EXIT and target not in keep:
                target = EXIT  # a dropped state: the user leaves instead
            counts[target] = counts.get(target, 0) + int(k)
        n = sum(counts.values())
        if n == 0 or set(counts) == {EXIT}:
            exit_points.append(s)
            continue
        transitions[s] = _largest_remainder({t: k / n for t, k in counts.items()})
        for t, k in counts.items():
            note(("transitions", s, t), k, n)
    # states reached only through dropped ones are unreachable now: drop them too
    reach: set[str] = set(entry_points)
    frontier = list(reach)
    while frontier:
        s = frontier.pop()
        for t in transitions.get(s, {}):
            if t != EXIT and t not in reach:
                reach.add(t)
                frontier.append(t)
    for s in [s for s in keep if s not in reach]:
        keep.remove(s)
        dropped.append(s)
        transitions.pop(s, None)
        if s in exit_points:
            exit_points.remove(s)
    # per endpoint
    by_state: dict[str, list[Call]] = defaultdict(list)
    for c in calls:
        if c.route in keep:
            by_state[c.route].append(c)
    endpoints: dict[str, Any] = {}
    method_mix: dict[str, dict[str, int]] = {}
    for s in keep:
        cs = by_state[s]
        firsts = [c for c in cs if c.attempt == 1] or cs
        method = methods[s].most_common(1)[0][0]
        if len(methods[s]) > 1:
            method_mix[s] = dict(methods[s])
        lat, lat_note = fit_positive(np.array([c.duration_us / 1000 for c in cs], float), 0.001)
        comments[("endpoints", s, "latency")] = lat_note
        statuses = Counter(c.status for c in firsts)
        ok = Counter({k: v for k, v in statuses.items() if k < 400})
        bad = Counter({k: v for k, v in statuses.items() if k >= 400})
        n_first = sum(statuses.values())
        spec: dict[str, Any] = {
            "method": method,
            "service": services[s].most_common(1)[0][0],
            "latency": lat,
            "success_status": ok.most_common(1)[0][0] if ok else 200,
        }
        n_bad = sum(bad.values())
        spec["errors"] = {
            "rate": _round(n_bad / n_first, 6) if n_first else 0.0,
            "codes": _largest_remainder({str(k): v / n_bad for k, v in bad.items()}) if n_bad else {"500": 1.0},
        }
        comments[("endpoints", s, "errors")] = f"{n_bad:,} of {n_first:,} first attempts failed"
        params = {}
        names = [p[1:-1] for p in _placeholders(s)]
        vals = folding.values.get(s, [])
        for i, name in enumerate(names):
            col = [v[i] for v in vals if len(v) > i]
            if col:
                params[name] = _param(col)
        if params:
            spec["params"] = params
        spec["query"] = {k: _param(v) for k, v in query.get(s, {}).items()}
        endpoints[s] = spec
    if think:
        think_spec, think_note = fit_positive(np.array(think, float), 0.001)
    else:
        think_spec, think_note = {"dist": "constant", "value": 1.0}, "no pauses seen"
    comments[("think_time",)] = think_note
    wf: dict[str, Any] = {
        "name": opts.name,
        "description": f"fitted by emitter fit from {len(calls):,} calls in {len(sessions):,} sessions",
        "entry_points": entry_points,
        "transitions": transitions,
        "exit_points": exit_points,
        "endpoints": endpoints,
        "think_time": think_spec,
    }
    steps_per_session = Counter(r["session_id"] for r in rows if r["attempt"] == 1)
    if capped:
        wf["max_calls"] = max(steps_per_session.values())
    svc, svc_report = _services(list(spans), {endpoints[s]["service"] for s in keep})
    if svc:
        wf["services"] = svc
    types = _user_types(sessions)
    if types:
        wf["user_types"] = types
    report = {
        "calls": len(calls),
        "spans": svc_report.get("span_count", 0),
        "sessions": len(sessions),
        "sessions_capped": capped,
        "session_building": session_info,
        "states": len(keep),
        "dropped_states": [{"state": s, "calls": seen[s]} for s in dropped],
        "folded_paths": folding.report(),
        "method_mix": method_mix,
        "services": svc_report.get("edges", []),
        "visits": visits,
        "fitted_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return FitResult(wf, to_yaml(wf, comments, report), report, comments)


def _placeholders(route: str) -> list[str]:
    import re

    return re.findall(r"\{[A-Za-z_][A-Za-z0-9_]*\}", route)


def _fold_known(route: str, path: str) -> tuple[str, list[str]]:
    """A path's values for a declared route's placeholders (``/a/{id}`` and ``/a/42`` -> ["42"])."""
    rp, pp = route.split("/"), path.split("?", 1)[0].split("/")
    if len(rp) != len(pp):
        return route, []
    return route, [p for r, p in zip(rp, pp, strict=True) if r.startswith("{") and r.endswith("}")]


def _pairs(q: str) -> list[tuple[str, str]]:
    import urllib.parse

    return urllib.parse.parse_qsl(q, keep_blank_values=True)


def _services(spans: list[Span], roots: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Which services each service calls (kept when at least half of its server spans do), and own times."""
    if not spans:
        return {}, {}
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        if s.parent_id:
            children[s.parent_id].append(s)
    served: Counter[str] = Counter()
    calls: dict[str, Counter[str]] = defaultdict(Counter)
    offset: dict[tuple[str, str], float] = defaultdict(float)  # summed start offsets: the order of the calls
    own: dict[str, list[float]] = defaultdict(list)
    for s in spans:
        if s.kind not in ("server", "consumer", None):
            continue
        served[s.service] += 1
        kids = children.get(s.span_id, [])
        callees: dict[str, int] = {}
        busy = 0
        for c in kids:
            busy += c.duration_us
            if c.kind in ("client", "producer"):
                targets = {g.service for g in children.get(c.span_id, []) if g.service != s.service}
                peer = c.attrs.get("peer.service") or c.attrs.get("db.system") or c.attrs.get("server.address")
                if not targets and isinstance(peer, str):
                    targets = {peer}
            else:
                targets = {c.service} - {s.service}
            for t in targets:
                callees.setdefault(t, c.start_us - s.start_us)
        for t, off in callees.items():
            calls[s.service][t] += 1
            offset[(s.service, t)] += off
        parent = by_id.get(s.parent_id) if s.parent_id else None
        if parent is not None:  # a callee's own time (a root's is the rest of its endpoint's latency)
            own[s.service].append(max(s.duration_us - busy, 0) / 1000)
    out: dict[str, Any] = {}
    edges = []
    names = sorted(set(served) | {t for cs in calls.values() for t in cs} | roots)
    kept: dict[str, list[str]] = {n: [] for n in names}
    for a in names:
        for b, k in sorted(calls.get(a, Counter()).items(), key=lambda kv: offset[(a, kv[0])] / kv[1]):
            share = k / served[a]
            keep_it = share >= 0.5 and not _reaches(kept, b, a)
            if keep_it:
                kept[a].append(b)
            edges.append({"caller": a, "callee": b, "calls": k, "of": served[a], "share": share, "kept": keep_it})
    for n in names:
        spec: dict[str, Any] = {}
        if kept[n]:
            spec["calls"] = kept[n]
        if own.get(n):
            spec["latency"], _ = fit_positive(np.array(own[n], float), 0.001)
        out[n] = spec
    if not any(kept.values()):
        return {}, {"edges": edges, "span_count": len(spans)}
    return out, {"edges": edges, "span_count": len(spans)}


def _reaches(graph: dict[str, list[str]], a: str, b: str) -> bool:
    """True when ``b`` is reachable from ``a`` (an edge b -> a would close a cycle)."""
    seen, stack = set(), [a]
    while stack:
        x = stack.pop()
        if x == b:
            return True
        if x in seen:
            continue
        seen.add(x)
        stack.extend(graph.get(x, ()))
    return False


def _user_types(sessions: dict[str, list[Call]]) -> dict[str, Any]:
    users: dict[str, str] = {}
    for sid, cs in sessions.items():
        t = next((c.user_type for c in cs if c.user_type), None)
        if t:
            users[cs[0].user or sid] = t
    if not users:
        return {}
    c = Counter(users.values())
    total = sum(c.values())
    return {t: {"weight": w} for t, w in _largest_remainder({t: n / total for t, n in c.most_common()}).items()}


# ------------------------------------------------------------------ YAML with comments


def _scalar(v: Any) -> str:
    return json.dumps(v)


def _flow(v: Any) -> str:
    return json.dumps(v, separators=(", ", ": "))


def to_yaml(wf: dict[str, Any], comments: dict[tuple[str, ...], str], report: dict[str, Any]) -> str:
    """The workflow as YAML with the fit's counts and intervals as comments (JSON-style scalars and flow
    collections, which every YAML 1.2 reader takes)."""
    lines = [
        f"# Fitted by emitter fit: {report['calls']:,} calls, {report['sessions']:,} sessions"
        + (f", {report['spans']:,} spans" if report.get("spans") else ""),
        "# Probabilities are maximum-likelihood estimates; each comment gives the count it rests on and its interval.",
    ]
    if report["dropped_states"]:
        shown = ", ".join(f"{d['state']} ({d['calls']})" for d in report["dropped_states"][:10])
        lines.append(f"# Dropped (seen too rarely; steps into them leave instead): {shown}")
    lines.append(f"name: {_scalar(wf['name'])}")
    lines.append(f"description: {_scalar(wf['description'])}")

    def mapping(key: str, m: dict[str, float], path: tuple[str, ...], indent: int) -> None:
        pad = " " * indent
        lines.append(f"{pad}{_scalar(key)}:" if indent else f"{key}:")
        for k, v in m.items():
            c = comments.get((*path, k))
            lines.append(f"{pad}  {_scalar(k)}: {v!r}" + (f"  # {c}" if c else ""))

    mapping("entry_points", wf["entry_points"], ("entry_points",), 0)
    lines.append("transitions:")
    for s, row in wf["transitions"].items():
        mapping(s, row, ("transitions", s), 2)
    lines.append(f"exit_points: {_flow(wf['exit_points'])}")
    lines.append("endpoints:")
    for s, spec in wf["endpoints"].items():
        lines.append(f"  {_scalar(s)}:")
        for k, v in spec.items():
            c = comments.get(("endpoints", s, k))
            lines.append(f"    {k}: {_flow(v)}" + (f"  # {c}" if c else ""))
    c = comments.get(("think_time",))
    lines.append(f"think_time: {_flow(wf['think_time'])}" + (f"  # {c}" if c else ""))
    if "max_calls" in wf:
        capped = report["sessions_capped"]
        lines.append(f"max_calls: {wf['max_calls']}  # the longest session seen; {capped:,} were capped")
    if "services" in wf:
        lines.append("services:")
        shares = {(e["caller"], e["callee"]): e for e in report["services"]}
        for n, spec in wf["services"].items():
            calls = spec.get("calls", [])
            why = "; ".join(
                f"{b}: {shares[(n, b)]['calls']:,} of {shares[(n, b)]['of']:,}" for b in calls if (n, b) in shares
            )
            lines.append(f"  {_scalar(n)}: {_flow(spec)}" + (f"  # calls {why}" if why else ""))
    if "user_types" in wf:
        lines.append(f"user_types: {_flow(wf['user_types'])}")
    return "\n".join(lines) + "\n"
