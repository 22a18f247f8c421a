"""Rebuild sessions from events that may arrive out of order, twice, or as retries; count the walk.

One logical step per (session, seq): retries (attempt > 1) and duplicates never count as transitions.
Memory stays bounded: a session leaves once its last call and every call before it have been seen, or
when it has been idle longest among more than ``max_open`` open sessions.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import msgspec
import numpy as np
import numpy.typing as npt

from ..workflow import Workflow

__all__ = ["Assembler", "Counts", "ObservedEvent"]

POOLED = "*"


class ObservedEvent(msgspec.Struct, forbid_unknown_fields=False):
    """The fields of an event the validator reads (everything else is ignored)."""

    session_id: str
    seq: int
    endpoint: str
    attempt: int = 1
    user_type: str | None = None
    session_end: bool = False
    end_reason: str | None = None
    event_id: str | None = None
    run_id: str | None = None


@dataclass
class Counts:
    """Entry and transition counts per (user-type group, state); column ``S`` of ``trans`` is "left"."""

    groups: tuple[str, ...]
    states: tuple[str, ...]
    entry: npt.NDArray[np.int64]
    trans: npt.NDArray[np.int64]
    violations: Counter[tuple[str, ...]] = field(default_factory=Counter)
    abandon: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 0), np.int64))

    @classmethod
    def empty(cls, groups: tuple[str, ...], states: tuple[str, ...]) -> Counts:
        g, s = len(groups), len(states)
        return cls(
            groups,
            states,
            np.zeros((g, s), np.int64),
            np.zeros((g, s, s + 1), np.int64),
            abandon=np.zeros((g, s), np.int64),
        )


class _Session:
    __slots__ = ("calls", "end_reason", "end_seq", "group", "seen")

    def __init__(self, group: int) -> None:
        self.calls: dict[int, int] = {}
        self.seen: set[int] = set()
        self.group = group
        self.end_seq = -1
        self.end_reason: str | None = None


class Assembler:
    """Feed events with :meth:`add`; read :attr:`counts` and the bookkeeping counters at any time."""

    def __init__(
        self, wf: Workflow, *, max_open: int = 1_000_000, remember_ended: int = 1_000_000, run_id: str | None = None
    ) -> None:
        self.workflow = wf
        self.run_id = run_id
        self.other_runs = 0
        per_type = any(ut.entry_points is not None or ut.transitions for ut in wf.user_types)
        self.groups: tuple[str, ...] = tuple(ut.name for ut in wf.user_types) if per_type else (POOLED,)
        self._group_index = {g: i for i, g in enumerate(self.groups)}
        self.states = wf.states
        self._state_index = {s: i for i, s in enumerate(self.states)}
        self._is_exit = np.zeros(len(self.states), bool)
        for e in wf.exit_points:
            self._is_exit[self._state_index[e]] = True
        self.exit_col = len(self.states)
        self.counts = Counts.empty(self.groups, self.states)
        self.max_open = max_open
        self._open: OrderedDict[str, _Session] = OrderedDict()
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._remember = remember_ended
        self.events = 0
        self.duplicates = 0
        self.retries = 0
        self.late = 0
        self.sessions = 0
        self.sessions_complete = 0
        self.sessions_evicted_open = 0
        self.ended_by: Counter[str] = Counter()

    @property
    def open_sessions(self) -> int:
        return len(self._open)

    def add(self, ev: ObservedEvent) -> None:
        if self.run_id is not None and ev.run_id != self.run_id:
            self.other_runs += 1
            return
        self.events += 1
        sid = ev.session_id
        sess = self._open.get(sid)
        if sess is None:
            if sid in self._ended:
                self.late += 1
                return
            if self.groups[0] == POOLED:
                g = 0
            else:
                gi = self._group_index.get(ev.user_type or "")
                if gi is None:
                    self.counts.violations[("unknown user type", str(ev.user_type))] += 1
                    return
                g = gi
            sess = _Session(g)
            self._open[sid] = sess
            self.sessions += 1
            if len(self._open) > self.max_open:
                self._open.popitem(last=False)
                self.sessions_evicted_open += 1
        else:
            self._open.move_to_end(sid)
        k = ev.seq
        key = k << 8 | min(ev.attempt, 255)
        if key in sess.seen:
            self.duplicates += 1
            return
        sess.seen.add(key)
        s = self._state_index.get(ev.endpoint, -1)
        if s < 0:
            self.counts.violations[("unknown endpoint", ev.endpoint)] += 1
            return
        if k in sess.calls:
            self.retries += 1
            if sess.calls[k] != s:
                self.counts.violations[("retry changed endpoint", self.states[sess.calls[k]], ev.endpoint)] += 1
            elif ev.session_end:  # the last attempt of a call carries the session's end
                self._end(sid, sess, k, s, ev.end_reason)
            return
        sess.calls[k] = s
        c = self.counts
        g = sess.group
        if k == 0:
            c.entry[g, s] += 1
        prev = sess.calls.get(k - 1)
        if prev is not None:
            c.trans[g, prev, s] += 1
        nxt = sess.calls.get(k + 1)
        if nxt is not None:
            c.trans[g, s, nxt] += 1
        if sess.end_seq >= 0 and k > sess.end_seq:
            c.violations[("call after the session's end", ev.endpoint)] += 1
        if ev.session_end:
            self._end(sid, sess, k, s, ev.end_reason)
        elif sess.end_seq >= 0 and len(sess.calls) == sess.end_seq + 1:
            self._finish(sid)

    def _end(self, sid: str, sess: _Session, k: int, s: int, reason: str | None) -> None:
        if sess.end_seq == k:
            return
        c = self.counts
        g = sess.group
        sess.end_seq = k
        sess.end_reason = reason
        self.ended_by[str(reason)] += 1
        if reason == "exit" and not self._is_exit[s]:
            c.trans[g, s, self.exit_col] += 1
        elif reason == "abandon":
            c.abandon[g, s] += 1
        if k + 1 in sess.calls:
            c.violations[("call after the session's end", self.states[sess.calls[k + 1]])] += 1
        if len(sess.calls) == k + 1:
            self._finish(sid)

    def _finish(self, sid: str) -> None:
        del self._open[sid]
        self.sessions_complete += 1
        self._ended[sid] = None
        if len(self._ended) > self._remember:
            self._ended.popitem(last=False)
