"""The shape of a workflow: checks on its chain and its service graph that no single value shows.

Unknown targets, dead ends, unreachable states, states that cannot reach an exit (per user type too),
and calls to unknown services or in cycles. Each problem names its key path, like every other.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from ..core.spec import EXIT
from .convert import Path, Problems

__all__ = ["check_calls", "check_chain"]


def check_chain(
    probs: Problems,
    who: str,
    entry: Mapping[str, float],
    rows: Mapping[str, Mapping[str, float]],
    exits: list[str],
    states: list[str],
    declared: set[str],
    warnings: list[str],
    entry_path: Path,
) -> None:
    """Structure checks: unknown targets, dead ends, unreachable states, states that cannot reach an exit."""
    tpath: Path = ("transitions",) if not who else (*entry_path, "transitions")
    label = f" for user type {who!r}" if who else ""
    exit_set = set(exits)
    bad = False
    for s in entry:
        if s not in declared or (s not in rows and s not in exit_set):
            probs.error(
                (*entry_path, "entry_points", s) if who else ("entry_points", s),
                f"unknown entry point {s!r}{label}: not an exit point and has no transitions",
            )
            bad = True
    for s, row in rows.items():
        for t in row:
            if t != EXIT and t not in rows and t not in exit_set:
                probs.error(
                    (*tpath, s, t),
                    f"unknown target {t!r} from state {s!r}{label}: not an exit point and has no transitions",
                )
                bad = True
    for s in states:
        if s in exit_set:
            if s in rows and rows[s] and not who:
                warnings.append(
                    f"transitions -> {s}: exit point has transitions; they are never used "
                    "(reaching an exit point ends the session)"
                )
            continue
        if s in rows and not rows[s]:
            probs.error((*tpath, s), f"dead end{label}: state {s!r} has no transitions and is not an exit point")
            bad = True
        elif s not in rows and s in declared and s not in entry and not who:
            probs.error(("transitions", s), f"dead end: state {s!r} has no transitions and is not an exit point")
            bad = True
    if bad:
        return
    # reachability over edges with p > 0
    reach: set[str] = set()
    todo = deque(s for s, p in entry.items() if p > 0)
    while todo:
        s = todo.popleft()
        if s in reach:
            continue
        reach.add(s)
        if s in exit_set:
            continue
        todo.extend(t for t, p in rows.get(s, {}).items() if p > 0 and t != EXIT)
    for s in states:
        if s not in reach and not who:
            probs.error(
                ("transitions", s) if s in rows else ("exit_points",) if s in exit_set else ("endpoints", s),
                f"unreachable state {s!r}: no path from an entry point reaches it",
            )
    # every reachable state must reach an exit (an exit point, or a $exit target)
    can_exit = set(exit_set) | {s for s, r in rows.items() if r.get(EXIT, 0) > 0}
    changed = True
    while changed:
        changed = False
        for s, r in rows.items():
            if s not in can_exit and s not in exit_set and any(p > 0 and t in can_exit for t, p in r.items()):
                can_exit.add(s)
                changed = True
    for s in states:
        if s in reach and s not in can_exit:
            probs.error((*tpath, s), f"state {s!r}{label} cannot reach an exit: sessions entering it never end")


def check_calls(probs: Problems, calls: Mapping[str, tuple[str, ...]]) -> None:
    """Each service's ``calls`` name declared services other than itself, and no call cycle exists."""
    for name, cs in calls.items():
        for i, c in enumerate(cs):
            if c not in calls:
                probs.error(("services", name, "calls", i), f"unknown service {c!r} (declared: {', '.join(calls)})")
            elif c == name:
                probs.error(("services", name, "calls", i), f"service {c!r} calls itself")
    colour: dict[str, int] = {}  # cycles make a call tree infinite

    def visit(n: str, stack: list[str]) -> None:
        colour[n] = 1
        for c in calls[n]:
            if c not in calls or c == n:
                continue
            if colour.get(c) == 1:
                cyc = [*stack[stack.index(c) :], c] if c in stack else [n, c]
                probs.error(("services", n, "calls"), f"call cycle {' -> '.join(cyc)}")
            elif c not in colour:
                visit(c, [*stack, c])
        colour[n] = 2

    for n in calls:
        if n not in colour:
            visit(n, [n])
