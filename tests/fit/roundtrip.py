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


def declared_cells(wf: Workflow) -> dict[tuple[str, str], float]:
    cells = {("<entry>", s): p for s, p in wf.entry_points.items()}
    for s, row in wf.transitions.items():
        if s in wf.exit_points:
            continue
        for t, p in row.items():
            cells[(s, t)] = p
    for s in wf.states:  # a row that is not declared: its state is an exit point
        if s not in wf.transitions and s not in wf.exit_points:
            raise AssertionError(s)
    return cells


def truth_in_intervals(fitted_text: str, truth: Workflow, confidence: float = 0.99) -> list[str]:
    """Cells whose declared probability lies outside the fitted one's joint interval (empty: all hold).
    The counts come from the fitted file's comments (``K of N``)."""
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    section = row = None
    for line in fitted_text.splitlines():
        if not line.startswith(" "):
            section = line.split(":")[0]
            continue
        if section not in ("entry_points", "transitions") or "#" not in line:
            if section == "transitions" and line.startswith("  ") and not line.startswith("    "):
                row = line.strip().rstrip(":").strip('"')
            continue
        key = line.split(":")[0].strip().strip('"')
        k, n = line.split("#", 1)[1].split(";")[0].replace(",", "").split(" of ")
        origin = "<entry>" if section == "entry_points" else row
        assert origin is not None
        counts[(origin, key)] = (int(k), int(n))
    cells = declared_cells(truth)
    joint = 1 - (1 - confidence) / max(len(cells), 1)
    bad = []
    for (a, b), p in cells.items():
        k, n = counts.get((a, b), (0, 0))
        if n == 0:
            n = next((nn for (x, _), (_, nn) in counts.items() if x == a), 0)
        lo, hi = wilson(k, n, joint)
        if not lo <= p <= hi:
            bad.append(f"{a} -> {b}: declared {p}, fitted {k}/{n} [{lo:.4f}, {hi:.4f}]")
    return bad


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
