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

import dataclasses
import datetime as dt
import itertools
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.limits import MAX_PARAM
from ..core.spec import EXIT
from ..validate.stats import wilson
from .templates import Folding
from .traffic import Call, Span

__all__ = ["FitOptions", "FitResult", "fit"]

F64 = npt.NDArray[np.float64]
Z99 = 2.3263478740408408
ENTRY = "<entry>"
KS_OK = 0.05  # a lognormal "fits" when its KS distance to the sample is below this (or the sample is small)
MAX_CHOICES = 20  # distinct parameter values kept as weighted choices; past this, the most common ones, uniformly


@dataclass(frozen=True)
class FitOptions:
    name: str = "fitted"
    session_attr: str | None = None  # an attribute holding the session id (default: session.id)
    user_attr: str | None = None  # an attribute holding the user key (default: user.id, enduser.id)
    user_type_attr: str | None = None  # an attribute holding the user's type (default: user.type)
    gap_s: float = 1800.0  # a user idle longer than this starts a new session
    min_count: int = 5
    confidence: float = 0.99
    alpha: float = 0.01  # a user type gets its own row when it differs from the others at this level (Holm)


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
    p50, p99 = _round(float(np.quantile(v, 0.5))), _round(float(np.quantile(v, 0.99)))
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

    out: dict[str, list[Call]] = defaultdict(list)
    by_user: dict[str, list[Call]] = defaultdict(list)
    lost = 0
    for c in calls:
        sid = attr(c, opts.session_attr, c.session)
        if sid is not None:
            out[sid].append(c)
            continue
        user = attr(c, opts.user_attr, c.user)
        if user is None:
            lost += 1  # neither a session nor a user: no walk to put it in
        else:
            by_user[user].append(c)
    if lost == len(calls):
        raise ValueError(
            f"none of the {len(calls):,} calls has a session id or a user key: name the attributes that hold "
            "them (--session-attr, --user-attr)"
        )
    for v in out.values():
        v.sort(key=lambda c: (c.start_us, c.attempt))
    if not by_user:
        return dict(out), {"by": opts.session_attr or "session.id", "calls_without_session": lost}
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
        "by": f"{opts.user_attr or 'user.id'} split at idle gaps over {opts.gap_s:g} s"
        + (" (and session.id where calls have one)" if len(out) > len(by_user) + splits else ""),
        "calls_without_session": lost,
        "users": len(by_user),
        "splits": splits,
        "gap_s": {"p50": q[0], "p90": q[1], "p99": q[2], "max": max(gaps, default=0.0)},
    }
    return dict(out), info


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
    if all(v.isascii() and v.isdigit() for v in values):
        nums = [int(v) for v in values]
        if max(nums) <= MAX_PARAM:
            return {"min": min(nums), "max": max(nums)}
    c = Counter(values)
    if len(c) > MAX_CHOICES:  # the most common, drawn uniformly (the report's paths show the rest)
        return {"values": [v for v, _ in c.most_common(MAX_CHOICES)]}
    total = sum(c.values())
    return {"values": list(c), "weights": [_round(n / total, 6) for n in c.values()]}


def fit(calls: list[Call], spans: Iterable[Span], opts: FitOptions | None = None) -> FitResult:
    from ..validate.learn import learn

    opts = opts or FitOptions()
    calls = [dataclasses.replace(c) for c in calls]  # (routes and types are filled in on copies)
    if not calls:
        raise ValueError("no API calls found in the traffic (root server spans with an HTTP route or path)")
    folding = Folding()
    if opts.user_type_attr is not None:
        for c in calls:
            v = c.attrs.get(opts.user_type_attr)
            c.user_type = None if v is None else str(v)
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
    think_by_type: dict[str, list[float]] = defaultdict(list)
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
                    think_by_type[c.user_type or ""].append(think[-1])
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
    trans_all = learned.trans_counts.sum(axis=0)
    visits = {s: int(trans_all[i].sum()) for i, s in enumerate(learned.states)}
    seen = Counter(r["endpoint"] for r in rows)
    keep = [s for s in learned.states if seen[s] >= opts.min_count]
    dropped = sorted(set(learned.states) - set(keep), key=lambda s: (-seen[s], s))
    index = {s: i for i, s in enumerate(learned.states)}
    groups = list(learned.groups)
    # per user type and row ("<entry>" or a state): counts by target, dropped states folded into leaving
    counts: dict[str, dict[str, Counter[str]]] = {g: defaultdict(Counter) for g in groups}
    for gi, g in enumerate(groups):
        for s in keep:
            k = int(learned.entry_counts[gi, index[s]])
            if k:
                counts[g][ENTRY][s] += k
            for j, k in enumerate(learned.trans_counts[gi, index[s]]):
                if k:
                    target = EXIT if j == S else learned.states[j]
                    counts[g][s][EXIT if target != EXIT and target not in keep else target] += int(k)
    pooled: dict[str, Counter[str]] = defaultdict(Counter)
    for g in groups:
        for row, tally in counts[g].items():
            pooled[row].update(tally)
    if not sum(pooled[ENTRY].values()):
        raise ValueError("no session starts at a state seen often enough: lower --min-count")
    exit_points = [s for s in keep if not pooled[s] or set(pooled[s]) == {EXIT}]
    if not any(EXIT in pooled[s] for s in keep):
        raise ValueError(
            "no session of the recording ends by leaving (every one was cut by the call cap): nothing says how "
            "users leave"
        )
    named = [g for g in groups if g]
    overrides = _type_overrides(counts, named, [r for r in pooled if r not in exit_points], opts.alpha)
    comments: dict[tuple[str, ...], str] = {}
    conf = opts.confidence
    cells: list[dict[str, Any]] = []

    def row_probs(c: Counter[str], key: tuple[str, ...], group: str) -> dict[str, float]:
        n = sum(c.values())
        for t, k in c.items():
            lo, hi = wilson(k, n, conf)
            comments[(*key, t)] = f"{k:,} of {n:,}; {conf:.0%} interval [{lo:.4f}, {hi:.4f}]"
            cells.append(
                {"group": group, "from": ENTRY if key[-1] == "entry_points" else key[-1], "to": t, "count": k, "n": n}
            )
        return _largest_remainder({t: k / n for t, k in c.items()})

    def global_row(row: str) -> Counter[str]:
        c: Counter[str] = Counter()
        for g in groups:
            if row not in overrides.get(g, {}):
                c.update(counts[g].get(row, Counter()))
        return c if sum(c.values()) else pooled[row]

    entry_points = row_probs(global_row(ENTRY), ("entry_points",), "*")
    transitions = {s: row_probs(global_row(s), ("transitions", s), "*") for s in keep if s not in exit_points}
    type_rows: dict[str, dict[str, dict[str, float]]] = {}
    for g, rows_g in overrides.items():
        for row in rows_g:
            key = ("user_types", g, "entry_points") if row == ENTRY else ("user_types", g, "transitions", row)
            type_rows.setdefault(g, {})[row] = row_probs(counts[g][row], key, g)
    # states reached only through dropped ones are unreachable now: drop them too
    reach: set[str] = set(entry_points) | {s for r in type_rows.values() for s in r.get(ENTRY, {})}
    frontier = list(reach)
    while frontier:
        s = frontier.pop()
        nexts = set(transitions.get(s, {})) | {t for r in type_rows.values() for t in r.get(s, {})}
        for t in nexts:
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
        extra = _type_times(calls, think_by_type, list(types), opts.alpha)
        for g in types:
            own_rows = type_rows.get(g, {})
            ov: dict[str, Any] = dict(extra.get(g, {}))
            if ENTRY in own_rows:
                ov["entry_points"] = own_rows[ENTRY]
            trs = {r: p for r, p in own_rows.items() if r != ENTRY and r in keep}
            if trs:
                ov["transitions"] = trs
            if ov and g in types:
                types[g]["overrides"] = ov
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
        "cells": cells,
        "type_overrides": {g: sorted(r) for g, r in overrides.items()},
        "fitted_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return FitResult(wf, to_yaml(wf, comments, report), report, comments)


def _peel(samples: dict[str, Any], alpha: float) -> list[str]:
    """Types whose sample differs from the other types' (two-sample KS), found by peeling off the most
    different one while it differs at ``alpha`` (Bonferroni over the types still in)."""
    from scipy import stats

    rest = [g for g, v in samples.items() if len(v) >= 50]
    out = []
    while len(rest) >= 2:
        ps = []
        for g in rest:
            others = np.concatenate([samples[h] for h in rest if h != g])
            ps.append(float(stats.ks_2samp(samples[g], others).pvalue))
        i = int(np.argmin(ps))
        if ps[i] * len(rest) > alpha:
            break
        out.append(rest.pop(i))
    return out


def _type_times(
    calls: list[Call], think: dict[str, list[float]], types: list[str], alpha: float
) -> dict[str, dict[str, Any]]:
    """Per user type, a think time of its own and a latency factor, where the type's pauses or its latencies
    (against each endpoint's median) differ from the other types' (:func:`_peel`)."""
    out: dict[str, dict[str, Any]] = {}
    if len(types) < 2:
        return out
    pauses = {g: np.array(think.get(g, [])) for g in types}
    for g in _peel(pauses, alpha):
        out.setdefault(g, {})["think_time"], _ = fit_positive(pauses[g], 0.001)
    by_route: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        by_route[str(c.route)].append(max(c.duration_us, 1))
    med = {r: float(np.median(v)) for r, v in by_route.items()}
    shift: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        if c.user_type:
            shift[c.user_type].append(math.log(max(c.duration_us, 1) / med[str(c.route)]))
    logs = {g: np.array(shift.get(g, [])) for g in types}
    odd = _peel(logs, alpha)
    usual = [g for g in types if g not in odd and len(logs[g])]
    if usual:
        base = float(np.median(np.concatenate([logs[g] for g in usual])))
        for g in odd:
            factor = math.exp(float(np.median(logs[g])) - base)
            if abs(factor - 1) >= 0.02:
                out.setdefault(g, {})["latency_factor"] = _round(factor, 3)
    return out


def _type_overrides(
    counts: dict[str, dict[str, Counter[str]]], types: list[str], rows: list[str], alpha: float
) -> dict[str, dict[str, Counter[str]]]:
    """The rows in which a user type walks differently from the others: a chi-square test of homogeneity
    across the types per row (Holm across rows), then, in a row that differs, each type against the rest
    (Holm within the row); a type that differs there gets the row as its own."""
    from scipy import stats

    from ..validate.stats import holm

    if len(types) < 2:
        return {}
    tested, pvals = [], []
    for row in rows:
        targets = sorted({t for g in types for t in counts[g].get(row, {})})
        table = np.array([[counts[g].get(row, Counter()).get(t, 0) for t in targets] for g in types])
        table = table[table.sum(axis=1) >= 30]
        table = table[:, table.sum(axis=0) > 0] if len(table) else table
        if len(targets) < 2 or len(table) < 2 or table.shape[1] < 2:
            continue
        tested.append((row, targets))
        pvals.append(float(stats.chi2_contingency(table)[1]))
    out: dict[str, dict[str, Counter[str]]] = {}

    def table_of(gs: list[str], row: str, targets: list[str]) -> Any:
        t = np.array([[counts[g].get(row, Counter()).get(x, 0) for x in targets] for g in gs])
        return t[:, t.sum(axis=0) > 0]

    for (row, targets), p in zip(tested, holm(pvals), strict=True):
        if p > alpha:
            continue
        # peel off the most different type while the rest still differ among themselves
        rest = [g for g in types if sum(counts[g].get(row, Counter()).values()) >= 30]
        while len(rest) >= 2:
            ps = []
            for g in rest:
                others: Counter[str] = Counter()
                for h in rest:
                    if h != g:
                        others.update(counts[h].get(row, Counter()))
                mine = counts[g].get(row, Counter())
                t = np.array([[mine.get(x, 0) for x in targets], [others.get(x, 0) for x in targets]])
                t = t[:, t.sum(axis=0) > 0]
                ps.append(float(stats.chi2_contingency(t)[1]) if t.shape[1] >= 2 else 1.0)
            worst = int(np.argmin(ps))
            if min(ps) * len(rest) > alpha:  # (Bonferroni over the types still in)
                break
            g = rest.pop(worst)
            out.setdefault(g, {})[row] = counts[g][row]
            t = table_of(rest, row, targets)
            if len(rest) < 2 or t.shape[1] < 2 or float(stats.chi2_contingency(t)[1]) > alpha:
                break
    return out


def _placeholders(route: str) -> list[str]:
    return re.findall(r"\{[A-Za-z_][A-Za-z0-9_]*\}", route)


def _fold_known(route: str, path: str) -> tuple[str, list[str]]:
    """A path's values for a declared route's placeholders (``/a/{id}`` and ``/a/42`` -> ["42"])."""
    rp, pp = route.split("/"), path.split("?", 1)[0].split("/")
    if len(rp) != len(pp):
        return route, []
    whole = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*\}$")  # the placeholders a workflow route declares
    return route, [p for r, p in zip(rp, pp, strict=True) if whole.match(r)]


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
            for t in sorted(targets):
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
        for b, k in sorted(calls.get(a, Counter()).items(), key=lambda kv: (offset[(a, kv[0])] / kv[1], kv[0])):
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
    return json.dumps(v, ensure_ascii=False)


def _flow(v: Any) -> str:
    return json.dumps(v, separators=(", ", ": "), ensure_ascii=False)


def _plain(text: str) -> str:
    """A name as comment text: one line, whatever it holds."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def to_yaml(wf: dict[str, Any], comments: dict[tuple[str, ...], str], report: dict[str, Any]) -> str:
    """The workflow as YAML with the fit's counts and intervals as comments (JSON-style scalars and flow
    collections, which every YAML 1.2 reader takes)."""
    lines = [
        f"# Fitted by emitter fit: {report['calls']:,} calls, {report['sessions']:,} sessions"
        + (f", {report['spans']:,} spans" if report.get("spans") else ""),
        "# Probabilities are maximum-likelihood estimates; each comment gives the count it rests on and its interval.",
    ]
    if report["dropped_states"]:
        shown = ", ".join(f"{_plain(d['state'])} ({d['calls']})" for d in report["dropped_states"][:10])
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
    lines.append("transitions:" if wf["transitions"] else "transitions: {}")
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
                f"{_plain(b)}: {shares[(n, b)]['calls']:,} of {shares[(n, b)]['of']:,}"
                for b in calls
                if (n, b) in shares
            )
            lines.append(f"  {_scalar(n)}: {_flow(spec)}" + (f"  # calls {why}" if why else ""))
    if "user_types" in wf:
        lines.append("user_types:  # weights by users; a type's own rows where it walks differently (tested)")
        for t, spec in wf["user_types"].items():
            lines.append(f"  {_scalar(t)}:")
            lines.append(f"    weight: {spec['weight']!r}")
            ov = spec.get("overrides")
            if not ov:
                continue
            lines.append("    overrides:")
            for key in ("think_time", "latency_factor"):
                if key in ov:
                    lines.append(f"      {key}: {_flow(ov[key])}  # differs from the other types (KS test)")
            if "entry_points" in ov:
                lines.append("      entry_points:")
                for k, v in ov["entry_points"].items():
                    c = comments.get(("user_types", t, "entry_points", k))
                    lines.append(f"        {_scalar(k)}: {v!r}" + (f"  # {c}" if c else ""))
            if "transitions" in ov:
                lines.append("      transitions:")
                for row, probs in ov["transitions"].items():
                    lines.append(f"        {_scalar(row)}:")
                    for k, v in probs.items():
                        c = comments.get(("user_types", t, "transitions", row, k))
                        lines.append(f"          {_scalar(k)}: {v!r}" + (f"  # {c}" if c else ""))
    return "\n".join(lines) + "\n"
