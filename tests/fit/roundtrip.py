"""The round trip's statistics, shared by the unit and the integration tests.

* :func:`truth_in_intervals`: each fitted probability's Wilson interval, at 99 % jointly over the cells
  (Bonferroni), must hold the declared one.
* :func:`two_sample`: per state, a chi-square test of homogeneity between two streams' next-step counts,
  Holm across states; the streams agree when no state is rejected at ``alpha``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

import emitter
from emitter.core.spec import EXIT, Workflow
from emitter.validate.stats import holm, wilson


def truth_in_intervals(
    report: dict[str, Any], truth: Workflow, confidence: float = 0.99, merged_exit: float = 1.0
) -> list[str]:
    """Cells whose declared probability lies outside the fitted one's interval, jointly at ``confidence``
    over every cell (Bonferroni); empty when all hold. ``report`` is the fit's (its ``cells`` are the counts
    each fitted probability rests on, per user type where a type has rows of its own, else pooled ``*``).
    A declared cell the recording never showed is judged as a count of 0 of its row's n. A truth's exit
    point that the fit gave a row (sessions merged by an idle gap continue after it) passes when at least
    ``merged_exit`` of its departures leave."""
    cells = report["cells"]
    rows: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}
    for c in cells:
        rows.setdefault((c["group"], c["from"]), {})[c["to"]] = (c["count"], c["n"])
    joint = 1 - (1 - confidence) / max(len(cells), 1)
    bad = []
    for (group, origin), fitted in rows.items():
        types = [ut.name for ut in truth.user_types] if group == "*" else [group]
        overridden = {(c["group"], c["from"]) for c in cells if c["group"] != "*"}
        n = next(iter(fitted.values()))[1]
        for t in types:
            if group == "*" and (t, origin) in overridden:
                continue
            if origin in truth.exit_points:
                k = fitted.get(EXIT, (0, n))[0]
                if k < merged_exit * n:
                    bad.append(f"[{t}] exit point {origin}: only {k}/{n} leave")
                continue
            declared = truth.entry_for(t) if origin == "<entry>" else truth.row_for(t, origin)
            for target in set(declared) | set(fitted):
                k = fitted.get(target, (0, n))[0]
                lo, hi = wilson(k, n, joint)
                p = declared.get(target, 0.0)
                if not lo <= p <= hi:
                    bad.append(f"[{t}] {origin} -> {target}: declared {p}, fitted {k}/{n} [{lo:.4f}, {hi:.4f}]")
    return sorted(set(bad))


def _rows(events: Any) -> dict[str, dict[str, int]]:
    learned = emitter.learn(events)
    out: dict[str, dict[str, int]] = {"<entry>": {}}
    e = learned.entry_counts.sum(axis=0)
    t = learned.trans_counts.sum(axis=0)
    for i, s in enumerate(learned.states):
        if e[i]:
            out["<entry>"][s] = int(e[i])
        row = {learned.targets[j]: int(k) for j, k in enumerate(t[i]) if k}
        if row and set(row) != {EXIT}:
            out[s] = row
    return out


def two_sample(a: Any, b: Any, alpha: float = 0.01) -> list[str]:
    """States whose next-step distributions differ between the two streams (Holm across states)."""
    ra, rb = _rows(a), _rows(b)
    names, pvals = [], []
    for s in sorted(set(ra) & set(rb)):
        targets = sorted(set(ra[s]) | set(rb[s]))
        table = np.array([[ra[s].get(t, 0) for t in targets], [rb[s].get(t, 0) for t in targets]])
        if table.shape[1] < 2 or table.sum() < 60:
            continue
        names.append(s)
        pvals.append(float(stats.chi2_contingency(table)[1]))
    return [f"{s} (p adjusted {p:.2g})" for s, p in zip(names, holm(pvals), strict=True) if p <= alpha]
