"""Turn counts into a verdict: per-row tests, Holm across rows, intervals, errors, and a readable table."""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.spec import EXIT, Workflow
from .assemble import POOLED, Assembler, Counts
from .stats import holm, pearson_gof, wilson

__all__ = ["ENTRY", "Report", "build_report"]

ENTRY = "<entry>"
EXIT_NO_DATA = 3
EXIT_LABEL = "<leave>"


@dataclass
class Report:
    data: dict[str, Any]
    alpha: float
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return str(self.data["verdict"])

    @property
    def consistent(self) -> bool:
        return self.verdict == "consistent"

    @property
    def exit_code(self) -> int:
        """0 consistent, 1 rejected, 3 no data (nothing to judge); usage problems exit 2 before a report."""
        return 0 if self.consistent else EXIT_NO_DATA if self.verdict == "no data" else 1

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2, sort_keys=False)

    def render(self, *, all_rows: bool = False) -> str:
        d = self.data
        ev = d["events"]
        lines = [
            f"workflow {d['workflow']!r}: {ev['read']:,} events read, {ev['sessions']:,} sessions "
            f"({ev['sessions_complete']:,} complete); {ev['duplicates']:,} duplicates and {ev['retries']:,} "
            f"retries ignored; {ev['malformed']:,} malformed",
            f"test: Pearson X² per row (exact Monte-Carlo p when an expected count < 5), Holm over "
            f"{d['summary']['rows_judged']} rows, family-wise alpha {self.alpha:g}; rows with n < "
            f"{d['min_samples']} are too thin to judge",
            "",
            f"{'group':<10} {'state':<34} {'n':>8} {'test':>8} {'X2':>9} {'dof':>3} {'p':>9} {'p(Holm)':>9}  "
            f"{'verdict':<9} worst cell: declared -> observed [95% CI]",
        ]
        for r in self.rows:
            if not all_rows and r["verdict"] == "ok" and len(self.rows) > 40:
                continue
            worst = max(r["cells"], key=lambda c: c["abs_error"], default=None)
            wtxt = ""
            if worst is not None:
                wtxt = (
                    f"{_short(worst['target'], 28)}: {worst['declared']:.3f} -> {worst['observed']:.3f} "
                    f"[{worst['ci'][0]:.3f}, {worst['ci'][1]:.3f}]"
                )
            padj = "" if r["p_adjusted"] is None else f"{r['p_adjusted']:.3g}"
            group = "all" if r["group"] == POOLED else r["group"]
            lines.append(
                f"{_short(group, 10):<10} {_short(r['state'], 34):<34} {r['n']:>8,} {r['test']:>8} "
                f"{r['statistic']:>9.2f} {r['dof']:>3} {r['p_value']:>9.3g} {padj:>9}  {r['verdict']:<9} {wtxt}"
            )
        s = d["summary"]
        lines.append("")
        if s["max_abs_error"] is not None:
            lines.append(
                f"max |observed - declared| = {s['max_abs_error']:.4f} (n = {s['max_abs_error_n']:,}, "
                f"{s['max_abs_error_at']}); mean = {s['mean_abs_error']:.4f} over {s['cells_judged']} cells; "
                f"sampling noise at that n is about {s['max_abs_error_noise']:.4f}"
            )
        if s["rows_thin"]:
            lines.append(
                f"too few samples to judge: {s['rows_thin']} rows ({', '.join(s['thin_rows'][:8])}"
                f"{', ...' if len(s['thin_rows']) > 8 else ''})"
            )
        eff = d.get("effective") or []
        if eff:
            total = sum(e["abandoned"] for e in eff)
            worst = sorted(eff, key=lambda e: -e["abandon_rate"])[:5]
            lines.append(
                f"note: {total:,} sessions were abandoned after errors, so the effective chain differs from the "
                "nominal one (abandoning is an extra way out); rows above are judged on the calls that went on. "
                "Highest abandon rates: "
                + ", ".join(
                    f"{_g(e['group'])}{e['state']} {e['abandon_rate']:.1%} of {e['departures']:,}" for e in worst
                )
            )
        for v in d["violations"]:
            lines.append(f"VIOLATION: {v['kind']}: {v['detail']} ({v['count']:,} times)")
        lines.append(f"verdict: {d['verdict'].upper()}" + (f" - {d['reason']}" if d.get("reason") else ""))
        return "\n".join(lines)


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _reachable(wf: Workflow, group: str) -> set[str]:
    seen: set[str] = set()
    todo = [s for s, p in _declared(wf, group, None).items() if p > 0]
    while todo:
        s = todo.pop()
        if s in seen or s == EXIT:
            continue
        seen.add(s)
        todo += [t for t, p in _declared(wf, group, s).items() if p > 0]
    return seen


def _declared(wf: Workflow, group: str, state: str | None) -> dict[str, float]:
    ut = wf.user_types[0].name if group == POOLED else group
    if state is None:
        return dict(wf.entry_for(ut))
    return dict(wf.row_for(ut, state))


def build_report(
    asm: Assembler,
    *,
    alpha: float = 0.01,
    min_samples: int = 30,
    malformed: int = 0,
    source: str = "",
    counts: Counts | None = None,
) -> Report:
    """The report for everything ``asm`` counted (or for ``counts``, e.g. one window of a live run)."""
    wf = asm.workflow
    c = counts if counts is not None else asm.counts
    states = list(asm.states)
    targets = [*states, EXIT]
    rows: list[dict[str, Any]] = []
    violations: list[dict[str, Any]] = []
    for (kind, *detail), cnt in sorted(c.violations.items()):
        violations.append({"kind": kind, "detail": " -> ".join(detail), "count": int(cnt)})
    for gi, group in enumerate(c.groups):
        reach = _reachable(wf, group)
        for si, state in enumerate([None, *states]):
            obs = np.concatenate([c.entry[gi], [0]]) if state is None else c.trans[gi, si - 1]
            decl = _declared(wf, group, state)
            probs = np.array([decl.get(t, 0.0) for t in targets])
            n = int(obs.sum())
            name = ENTRY if state is None else state
            if state is not None and state not in reach and n == 0:
                continue  # this group never gets there
            if state is not None and state in wf.exit_points:
                if n:
                    for ti in np.nonzero(obs)[0]:
                        violations.append(
                            {
                                "kind": "transition out of an exit point",
                                "detail": f"{_g(group)}{state} -> {_t(targets[ti])}",
                                "count": int(obs[ti]),
                            }
                        )
                continue
            for ti in np.nonzero((probs == 0) & (obs > 0))[0]:
                violations.append(
                    {
                        "kind": "impossible transition",
                        "detail": f"{_g(group)}{name} -> {_t(targets[ti])}",
                        "count": int(obs[ti]),
                    }
                )
            seed = zlib.crc32(f"{group}|{name}".encode())
            res = pearson_gof(obs, probs, seed=seed)
            cells = []
            for ti in np.nonzero((probs > 0) | (obs > 0))[0]:
                k = int(obs[ti])
                ph = k / n if n else 0.0
                lo, hi = wilson(k, n)
                cells.append(
                    {
                        "target": _t(targets[ti]),
                        "declared": float(probs[ti]),
                        "observed": ph,
                        "count": k,
                        "ci": [lo, hi],
                        "abs_error": abs(ph - float(probs[ti])) if n else 0.0,
                    }
                )
            thin = n < min_samples
            rows.append(
                {
                    "group": group,
                    "state": name,
                    "n": n,
                    "test": res.method,
                    "statistic": res.statistic,
                    "dof": res.dof,
                    "p_value": res.p_value,
                    "p_adjusted": None,
                    "thin": thin,
                    "verdict": "no data" if n == 0 else "thin" if thin else "ok",
                    "cells": cells,
                }
            )
    effective = []
    for gi, group in enumerate(c.groups):
        for si, state in enumerate(states):
            a = int(c.abandon[gi, si])
            if not a or state in wf.exit_points:
                continue
            n = int(c.trans[gi, si].sum())
            rate = a / (n + a)
            decl = _declared(wf, group, state)
            effective.append(
                {
                    "group": group,
                    "state": state,
                    "abandoned": a,
                    "departures": n + a,
                    "abandon_rate": rate,
                    "nominal": {_t(t): p for t, p in decl.items()},
                    "effective": {**{_t(t): p * (1 - rate) for t, p in decl.items()}, "<abandon>": rate},
                }
            )
    judged = [r for r in rows if not r["thin"] and r["test"] != "none"]
    for r, pa in zip(judged, holm([r["p_value"] for r in judged]), strict=True):
        r["p_adjusted"] = pa
        if pa <= alpha:
            r["verdict"] = "REJECTED"
    judged_cells = [(r, cell) for r in rows if not r["thin"] and r["n"] for cell in r["cells"]]
    worst = max(judged_cells, key=lambda rc: rc[1]["abs_error"], default=None)
    rejected_rows = [r for r in rows if r["verdict"] == "REJECTED"]
    total = int(c.entry.sum() + c.trans.sum())
    if violations:
        verdict, reason = "rejected", f"{len(violations)} kinds of impossible events"
    elif rejected_rows:
        verdict, reason = "rejected", f"{len(rejected_rows)} rows differ from the workflow at alpha {alpha:g}"
    elif total == 0:
        verdict, reason = "no data", "no entries or transitions were observed"
    else:
        verdict, reason = "consistent", ""
    summary: dict[str, Any] = {
        "rows": len(rows),
        "rows_judged": len(judged),
        "rows_rejected": len(rejected_rows),
        "rows_thin": sum(1 for r in rows if r["thin"]),
        "thin_rows": [f"{_g(r['group'])}{r['state']} (n={r['n']})" for r in rows if r["thin"]],
        "cells_judged": len(judged_cells),
        "max_abs_error": worst[1]["abs_error"] if worst else None,
        "max_abs_error_n": worst[0]["n"] if worst else None,
        "max_abs_error_at": f"{_g(worst[0]['group'])}{worst[0]['state']} -> {worst[1]['target']}" if worst else None,
        "max_abs_error_noise": (
            math.sqrt(worst[1]["declared"] * (1 - worst[1]["declared"]) / worst[0]["n"]) if worst else None
        ),
        "mean_abs_error": (
            sum(cell["abs_error"] for _, cell in judged_cells) / len(judged_cells) if judged_cells else None
        ),
    }
    data = {
        "workflow": wf.name,
        "workflow_digest": wf.digest,
        "source": source,
        "alpha": alpha,
        "min_samples": min_samples,
        "verdict": verdict,
        "reason": reason,
        "events": {
            "read": asm.events + malformed,
            "malformed": malformed,
            "duplicates": asm.duplicates,
            "retries": asm.retries,
            "late": asm.late,
            "sessions": asm.sessions,
            "sessions_complete": asm.sessions_complete,
            "ended_by": dict(asm.ended_by),
            "other_runs": asm.other_runs,
        },
        "groups": list(c.groups),
        "summary": summary,
        "violations": violations,
        "rows": rows,
        "effective": effective,
    }
    return Report(data, alpha, rows)


def _g(group: str) -> str:
    return "" if group == POOLED else f"[{group}] "


def _t(target: str) -> str:
    return "<leave>" if target == EXIT else target
