"""The run report: one HTML page saying what a run did, read off a :class:`~.record.RunRecorder` and the
run's truth records (its manifest and fault intervals).

Top to bottom: who the run was (seed, start, digests); the schedule against the wall clock (events due
against events sent, the worst lag, drops and sink failures marked); the traffic over simulated time
(calls, sessions started against what the load model expects, the worst lag); per service p50 and p99
latency and error rate with the fault windows shaded and labelled; the calls each fault touched; retries
and abandoned sessions; and the service graph with what each fault touched in red.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._version import __version__
from ..core.calls import CallTrees
from ..core.load import Load
from ..core.spec import Workflow
from .charts import Window, graph_chart, heading, page, para, table, time_chart
from .record import RunRecorder

__all__ = ["fault_windows", "iso_ms", "run_report"]

MAX_FAULT_SERIES = 20


def iso_ms(iso: str | None) -> float | None:
    if not iso:
        return None
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def fault_windows(truth: Sequence[Mapping[str, Any]], end_ms: float) -> list[Window]:
    """The faults' intervals (ms since the epoch), each labelled with its id and kind; an open-ended one
    ends at ``end_ms``. The cascade (a share of all sessions, the whole run long) is not shaded: it would
    cover every chart; the table of fault intervals lists it."""
    out = []
    for r in truth:
        if r.get("type") != "fault" or r.get("kind") == "cascade":
            continue
        start = iso_ms(r.get("start"))
        if start is None:
            continue
        end = iso_ms(r.get("end"))
        out.append(Window(start, end if end is not None else end_ms, f"{r['id']} ({r['kind']})"))
    return out


def _service_graph(workflows: Sequence[Workflow]) -> tuple[list[str], list[tuple[str, str]]]:
    nodes: list[str] = []
    edges: list[tuple[str, str]] = []
    for wf in workflows:
        for s in CallTrees(wf).services:
            if s not in nodes:
                nodes.append(s)
        for name, svc in wf.services.items():
            for c in svc.calls:
                if (name, c) not in edges:
                    edges.append((name, c))
    return nodes, edges


def _expected_sessions(load: Load, start_us: int, t_us: npt.NDArray[np.int64], width_us: float) -> npt.NDArray[Any]:
    """Sessions per second the open model means to start in each bin (the profile's mean over the bin)."""
    sub = np.linspace(0.0, 1.0, 9)[:-1] + 1 / 16  # eight points across each bin
    grid = (t_us[:, None] + sub[None, :] * width_us).astype(np.int64)
    mult = (
        np.ones(grid.shape)
        if load.profile is None
        else load.profile.multiplier(grid.ravel(), start_us).reshape(grid.shape)
    )
    out: npt.NDArray[Any] = load.rate * mult.mean(1)
    if load.duration_s is not None:
        out = np.where(t_us >= load.duration_s * 1e6, np.nan, out)
    return out


def _identity(manifest: Mapping[str, Any], rec: RunRecorder, extra: Mapping[str, Any]) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        ("run id", manifest.get("run_id", "")),
        ("seed", manifest.get("seed", "")),
        ("start (simulated)", manifest.get("start", "")),
        ("speed", manifest.get("speed", "")),
        ("load", manifest.get("load", "")),
    ]
    if manifest.get("scenario"):
        rows.append(("scenario", f"{manifest['scenario']} (digest {manifest.get('scenario_digest', '')})"))
    for w in manifest.get("workflows", []):
        rows.append(("workflow", f"{w['name']} (digest {w['digest']}, weight {w['weight']:g})"))
    faults = manifest.get("faults", [])
    rows.append(("faults", ", ".join(faults) if faults else "none"))
    rows.append(("events", f"{rec.events:,}"))
    if rec.wall.used:  # recorded by the run itself (not read back from its files)
        rows.append(("wall time", f"{rec.wall_s:,.2f} s"))
        rows.append(("dropped / failed", f"{rec.dropped:,} / {rec.failed:,}"))
    rows += [(k, v) for k, v in extra.items()]
    rows.append(("report by", f"emitter {__version__}"))
    return rows


def _schedule(rec: RunRecorder) -> list[Any]:
    """The wall-clock section's paragraph and charts."""
    blocks: list[Any] = []
    wall = rec.wall
    wn = max(wall.used, 1)
    wx = list(np.arange(wn) * wall.width)
    sent = wall.arrays["sent"][:wn] / wall.width
    dropped = wall.arrays["dropped"][:wn]
    failed = wall.arrays["failed"][:wn]
    marks: dict[str, tuple[Sequence[float], Sequence[float]]] = {}
    for label, running in (("drops", dropped), ("sink failures", failed)):
        grew = np.flatnonzero(np.diff(np.concatenate(([0], np.maximum.accumulate(running)))) > 0)
        marks[label] = ([wx[i] for i in grew], [float(sent[i]) for i in grew])
    if rec.factor is not None:
        due = wall.arrays["due"][:wn] / wall.width
        series = {"intended (due)": due, "actual (sent)": sent}
        note = (
            f"Events per wall-clock second: what the schedule meant to send at speed {rec.factor:g}x against "
            "what was sent, in bins of "
            f"{wall.width:g} s. A gap between them is lag; red crosses mark where the sinks dropped events "
            f"or failed. Totals: {rec.dropped:,} dropped, {rec.failed:,} failed."
        )
    else:
        series = {"actual (sent)": sent}
        note = (
            "The run went as fast as possible (speed max): nothing was due at any wall time, so only what was "
            f"sent is drawn, per wall-clock second. Totals: {rec.dropped:,} dropped, {rec.failed:,} failed."
        )
    blocks.append(para(html.escape(note)))
    blocks.append(
        time_chart(
            "emit_rate",
            "events per second (wall clock)",
            wx,
            series,
            y_label="events / s",
            x_label="wall-clock seconds since the run's start",
            datetime=False,
            marks=marks,
            dashed=("intended (due)",),
        )
    )
    if rec.factor is not None:
        blocks.append(
            time_chart(
                "lag",
                "worst lag behind the schedule",
                wx,
                {"lag (wall clock)": wall.arrays["lag_max"][:wn]},
                y_label="seconds",
                x_label="wall-clock seconds since the run's start",
                datetime=False,
                height=200,
            )
        )
    return blocks


def run_report(
    rec: RunRecorder,
    truth: Sequence[Mapping[str, Any]],
    workflows: Sequence[Workflow],
    *,
    load: Load | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The run report's HTML. ``truth`` is the run's manifest then its fault records (as ``--truth``
    writes them); ``load`` (when known) draws the sessions the open model expects; ``extra`` adds rows to
    the identity table (the run's outcome, say)."""
    manifest = next((r for r in truth if r.get("type") == "manifest"), {})
    start_ms = iso_ms(manifest.get("start")) or 0.0
    start_us = round(start_ms * 1000)
    sim = rec.sim
    width_s = sim.width / 1e6
    n = sim.used
    t_us = (np.arange(n) * sim.width).astype(np.int64)
    x = list(start_ms + t_us / 1000)
    end_ms = start_ms + n * sim.width / 1000
    windows = fault_windows(truth, end_ms)
    blocks: list[Any] = [
        heading(f"emitter run report: {manifest.get('run_id', '')}", 1, name="title"),
        table(_identity(manifest, rec, extra or {}), name="identity"),
    ]

    # ---- the schedule against the wall clock ----
    blocks.append(heading("Emit rate: intended against actual (wall clock)"))
    if rec.wall.used:
        blocks += _schedule(rec)
    else:
        blocks.append(para(html.escape("Not recorded: this report was made from the run's files, not by the run.")))

    # ---- traffic over simulated time ----
    blocks.append(heading("Traffic (simulated time)"))
    started = sim.view("sessions_started") / width_s
    active = np.cumsum(sim.view("sessions_started") - sim.view("sessions_ended"))
    blocks.append(
        para(
            html.escape(
                f"Per {width_s:g} s of simulated time: the API calls made and the sessions in flight at each bin's "
                "end; then the sessions started against the rate the load model sets (open model: the arrival "
                "rate times the profile)."
            )
        )
    )
    blocks.append(
        time_chart(
            "traffic",
            "API calls and sessions in flight",
            x,
            {"API calls / s": sim.view("events") / width_s, "sessions in flight": active},
            y_label="calls / s",
            windows=windows,
            right=("sessions in flight",),
            right_label="sessions in flight",
        )
    )
    sessions: dict[str, Any] = {"sessions started / s": started}
    if load is not None and not load.closed and not load.dataset and n:
        expected = _expected_sessions(load, start_us, t_us, sim.width)
        if load.sessions is not None:  # the model stops starting sessions at the count: so does the line
            total = np.cumsum(sim.view("sessions_started"))
            done = np.flatnonzero(total >= load.sessions)
            if len(done):
                expected[done[0] + 1 :] = np.nan
        sessions["sessions expected / s (load model)"] = expected
    blocks.append(
        time_chart(
            "sessions",
            "sessions started against the load model",
            x,
            sessions,
            y_label="sessions / s",
            windows=windows,
            dashed=("sessions expected / s (load model)",),
            height=220,
        )
    )
    if rec.factor is not None:
        lag_sim = sim.view("lag_max")
        grew = np.flatnonzero(np.diff(np.concatenate(([0], np.maximum.accumulate(sim.view("lost"))))) > 0)
        blocks.append(
            time_chart(
                "lag_sim",
                "worst lag of the events due in each bin",
                x,
                {"lag": lag_sim},
                y_label="seconds",
                windows=windows,
                height=200,
                marks={"events dropped or failed by then": ([x[i] for i in grew], [float(lag_sim[i]) for i in grew])},
            )
        )

    # ---- per service ----
    ser = rec.service_series()
    svcs = rec.services
    blocks.append(heading("Services (simulated time)"))
    blocks.append(
        para(
            html.escape(
                "Each service's server spans: p99 and p50 latency (log-spaced buckets, each value within 8 % of "
                "the exact quantile) and the share of calls answered with a 5xx status. Shaded: fault windows. "
                "Click a legend entry to hide its line."
            )
        )
    )
    for key, title, label, log in (
        ("p99_ms", "p99 latency per service", "ms", True),
        ("p50_ms", "p50 latency per service", "ms", True),
        ("error_rate", "error rate per service (5xx share)", "share of calls", False),
    ):
        blocks.append(
            time_chart(
                f"svc_{key}",
                title,
                x,
                {s: ser[key][:, i] for i, s in enumerate(svcs)},
                y_label=label,
                windows=windows,
                y_log=log,
            )
        )

    # ---- faults, retries, abandonment ----
    faults = [r for r in truth if r.get("type") == "fault"]
    ids = list(manifest.get("faults", []))
    blocks.append(heading("Faults, retries and abandonment (simulated time)"))
    fc = sim.view("fault_calls")
    fseries: dict[str, Any] = {}
    for i, fid in enumerate(ids[:MAX_FAULT_SERIES]):
        if i < fc.shape[1]:
            fseries[f"{fid}"] = fc[:, i] / width_s
    fseries["anomalous calls"] = sim.view("anomalous") / width_s
    blocks.append(
        para(
            html.escape(
                "API calls per second each fault touched (the labels' bits), and all calls labelled anomalous."
                + (f" The first {MAX_FAULT_SERIES} faults are drawn." if len(ids) > MAX_FAULT_SERIES else "")
            )
        )
    )
    blocks.append(
        time_chart("fault_calls", "calls each fault touched", x, fseries, y_label="calls / s", windows=windows)
    )
    blocks.append(
        time_chart(
            "retries",
            "retries, abandoned sessions and failed calls",
            x,
            {
                "retries / s": sim.view("retries") / width_s,
                "sessions abandoned / s": sim.view("abandoned") / width_s,
                "API calls failed (5xx) / s": sim.view("root_errors") / width_s,
            },
            y_label="per second",
            windows=windows,
        )
    )

    # ---- the service graph ----
    nodes, edges = _service_graph(workflows)
    node_f: dict[str, list[str]] = {}
    edge_f: dict[tuple[str, str], list[str]] = {}
    for f in faults:
        if f.get("kind") == "cascade":
            continue  # it touches every service; the graph would say nothing
        for s in f.get("affected_services", []):
            node_f.setdefault(s, []).append(f["id"])
        for a, b in f.get("affected_edges", []):
            edge_f.setdefault((a, b), []).append(f["id"])
    totals = ser["calls"].sum(0) if len(svcs) else np.zeros(0)
    errs = np.nansum(ser["error_rate"] * ser["calls"], 0) if len(svcs) else np.zeros(0)
    info = {s: f"{int(totals[i]):,} calls, {errs[i] / max(totals[i], 1):.2%} 5xx" for i, s in enumerate(svcs)}
    blocks.append(heading("Service graph"))
    blocks.append(
        para(html.escape("Callers left of callees; services and calls a fault touched in red (hover: which)."))
    )
    blocks.append(
        graph_chart(
            "service_graph", "service graph", nodes, edges, node_faults=node_f, edge_faults=edge_f, node_info=info
        )
    )
    if faults:
        rows = [
            (
                f["id"],
                f["kind"],
                ", ".join(f"{k}={v}" for k, v in f.get("target", {}).items()),
                f["start"],
                f.get("end") or "open",
                ", ".join(f.get("affected_services", [])),
            )
            for f in faults
        ]
        blocks.append(heading("Fault intervals (truth)", 3))
        blocks.append(table(rows, header=("id", "kind", "target", "start", "end", "services"), name="faults"))
    return page(f"emitter run {manifest.get('run_id', '')}", blocks)
