"""The validator's report as a page: per group, the declared and the learned transition matrices as
heatmaps and their difference, rows the test rejected outlined in red, each cell's count and 95 % interval
on hover; for a live run, the worst cell's error against the events read, inside the band a stream that
follows the workflow would fall in.

It reads the validator's JSON report (:attr:`emitter.validate.report.Report.data`), nothing else.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._version import __version__
from .charts import Band, heading, heatmap, page, para, table, time_chart

__all__ = ["validation_report"]

ENTRY, LEAVE = "<entry>", "<leave>"
MAX_GROUPS = 6


def _matrices(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One group's rows as matrices: declared, learned (NaN where a row saw nothing), hover text."""
    sources = [str(r["state"]) for r in rows]
    targets: list[str] = []
    for r in rows:
        for c in r["cells"]:
            if c["target"] not in targets and c["target"] != LEAVE:
                targets.append(c["target"])
    order = [s for s in sources if s != ENTRY]
    targets = [t for t in order if t in targets] + [t for t in targets if t not in order] + [LEAVE]
    col = {t: j for j, t in enumerate(targets)}
    R, C = len(sources), len(targets)
    declared = np.zeros((R, C))
    learned = np.full((R, C), np.nan)
    counts = [["0"] * C for _ in range(R)]
    ci = [["-"] * C for _ in range(R)]
    for i, r in enumerate(rows):
        if r["n"]:
            learned[i] = 0.0
        for c in r["cells"]:
            j = col[c["target"]]
            declared[i, j] = c["declared"]
            if r["n"]:
                learned[i, j] = c["observed"]
                lo, hi = c["ci"]
                ci[i][j] = f"[{lo:.3f}, {hi:.3f}]"
            counts[i][j] = f"{c['count']:,} of {r['n']:,}"
    return {
        "sources": sources,
        "targets": targets,
        "declared": declared,
        "learned": learned,
        "extra": {"count": counts, "95% CI": ci},
        "rejected": [str(r["state"]) for r in rows if r["verdict"] == "REJECTED"],
        "thin": [str(r["state"]) for r in rows if r["thin"]],
    }


def _row_table(rows: list[Mapping[str, Any]]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for r in rows:
        worst = max(r["cells"], key=lambda c: c["abs_error"], default=None)
        p = r["p_adjusted"] if r["p_adjusted"] is not None else r["p_value"]
        out.append(
            (
                r["state"],
                f"{r['n']:,}",
                r["test"],
                "" if p is None else f"{p:.3g}",
                r["verdict"],
                ""
                if worst is None or not r["n"]
                else f"{worst['target']}: {worst['declared']:.3f} -> {worst['observed']:.3f} "
                f"[{worst['ci'][0]:.3f}, {worst['ci'][1]:.3f}]",
            )
        )
    return out


def validation_report(data: Mapping[str, Any]) -> str:
    """The page for a validator report (its JSON ``data``)."""
    s = data["summary"]
    ev = data["events"]
    worst = (
        f"{s['max_abs_error_at']}: |error| {s['max_abs_error']:.4f} at n={s['max_abs_error_n']:,} "
        f"(sampling noise there {s['max_abs_error_noise']:.4f})"
        if s["max_abs_error"] is not None
        else "none"
    )
    thin = f"{s['rows_thin']} too thin, n < {data['min_samples']}"
    verdict = str(data["verdict"])
    blocks: list[Any] = [
        heading(f"emitter validation report: workflow {data['workflow']}", 1, name="title"),
        para(
            f"<b id='verdict'>verdict: {html.escape(verdict)}</b>"
            + (f" ({html.escape(str(data['reason']))})" if data.get("reason") else "")
        ),
        table(
            [
                ("workflow", f"{data['workflow']} (digest {data['workflow_digest']})"),
                ("source", data.get("source", "")),
                ("events", f"{ev['read']:,} read, {ev['sessions']:,} sessions ({ev['sessions_complete']:,} complete)"),
                ("ignored", f"{ev['duplicates']:,} duplicates, {ev['retries']:,} retries, {ev['malformed']:,} bad"),
                ("test", f"Pearson X² per row, Holm over {s['rows_judged']} rows, family-wise alpha {data['alpha']:g}"),
                ("rows", f"{s['rows']} ({s['rows_rejected']} rejected, {thin})"),
                ("worst cell", worst),
                ("report by", f"emitter {__version__}"),
            ],
            name="identity",
        ),
    ]
    if data.get("violations"):
        blocks.append(heading("Impossible events", 3))
        blocks.append(
            table(
                [(v["kind"], v["detail"], f"{v['count']:,}") for v in data["violations"]],
                header=("kind", "detail", "count"),
                name="violations",
            )
        )
    groups = list(data.get("groups", []))
    for g in groups[:MAX_GROUPS]:
        rows = [r for r in data["rows"] if r["group"] == g]
        if not rows:
            continue
        m = _matrices(rows)
        label = "all users" if g == "*" else f"user type {g}"
        key = "all" if g == "*" else g
        blocks.append(heading(f"Transitions: {label}"))
        blocks.append(
            para(
                html.escape(
                    "Rows: where a call leaves from (<entry> is a session's first call); columns: where it goes "
                    "(<leave> ends the session). Rows the test rejected are outlined in red; hover a cell for its "
                    "count and 95 % interval. The difference is learned minus declared. Pale rows are too thin to "
                    "judge (too few departures); they do not set the colour scale."
                )
            )
        )
        if m["rejected"]:
            blocks.append(para(f"<b>rejected rows:</b> {html.escape(', '.join(m['rejected']))}"))
        common = {"highlight_rows": m["rejected"], "faded_rows": m["thin"], "extra": m["extra"]}
        src, tgt = m["sources"], m["targets"]
        blocks.append(
            (
                heatmap(f"declared_{key}", f"declared ({label})", src, tgt, m["declared"], **common),
                heatmap(f"learned_{key}", f"learned ({label})", src, tgt, m["learned"], **common),
            )
        )
        blocks.append(
            heatmap(
                f"difference_{key}",
                f"learned - declared ({label})",
                m["sources"],
                m["targets"],
                m["learned"] - m["declared"],
                diverging=True,
                **common,
            )
        )
        blocks.append(
            table(
                _row_table(rows),
                header=("row", "n", "test", "p (Holm)", "verdict", "worst cell: declared -> learned [95% CI]"),
                name=f"rows_{key}",
            )
        )
    if len(groups) > MAX_GROUPS:
        blocks.append(para(html.escape(f"{len(groups) - MAX_GROUPS} more groups are in the JSON report.")))
    live = data.get("live")
    if live and live.get("looks"):
        looks = [lk for lk in live["looks"] if lk.get("max_abs_error") is not None]
        band = live.get("band", [])
        blocks.append(heading("Convergence (live)"))
        blocks.append(
            para(
                html.escape(
                    "The learned matrix's worst cell, |learned - declared|, at each look (the events read so far), "
                    "and the 95 % band a stream that follows the workflow would put it in with the same row "
                    "counts (Monte Carlo from the declared probabilities). Above the band: the stream differs."
                )
            )
        )
        blocks.append(
            time_chart(
                "convergence",
                "worst cell's error against events read",
                [float(lk["events"]) for lk in looks],
                {
                    "max |learned - declared|": [lk["max_abs_error"] for lk in looks],
                    "band median": [b["median"] for b in band] if len(band) == len(looks) else [np.nan] * len(looks),
                },
                y_label="max |error|",
                x_label="events read",
                datetime=False,
                y_log=True,
                bands=[
                    Band(
                        [float(b["events"]) for b in band],
                        [b["lo"] for b in band],
                        [b["hi"] for b in band],
                        "95 % sampling band",
                    )
                ],
                dashed=("band median",),
            )
        )
        blocks.append(
            table(
                [
                    (
                        f"{lk['events']:,}",
                        f"{lk['alpha']:.3g}",
                        lk["cumulative"],
                        lk["window"],
                        ", ".join(lk["rejected_rows"]),
                    )
                    for lk in live["looks"]
                ],
                header=("events", "alpha", "cumulative", "window", "rejected rows"),
                name="looks",
            )
        )
    return page(f"emitter validation: {data['workflow']}", blocks)
