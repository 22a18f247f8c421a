"""Rebuild sessions from events that may arrive out of order, twice, or as retries; count the walk.

One logical step per (session, seq): retries (attempt > 1) and duplicates never count as transitions.
Memory stays bounded: a session leaves once its last call and every call before it have been seen, or
when it has been idle longest among more than ``max_open`` open sessions.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Annotated

import msgspec
import numpy as np
import numpy.typing as npt

from ..core.ids import MAX_ATTEMPT, MAX_SEQ
from ..core.spec import Workflow

__all__ = ["Assembler", "Counts", "ObservedEvent"]

POOLED = "*"


class ObservedEvent(msgspec.Struct, forbid_unknown_fields=False):
    """The fields of an event the validator reads (everything else is ignored), in the schema's ranges: a
    record outside them is malformed (counted and skipped), not a call."""

    session_id: str
    seq: Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]
    endpoint: str
    attempt: Annotated[int, msgspec.Meta(ge=1, le=MAX_ATTEMPT)] = 1
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
    """Feed events with :meth:`add`; read :attr:`counts` and the bookkeeping counters at any time.

    The hot path keeps counts in flat Python lists (an increment there costs a fraction of one on a numpy
    array); :attr:`counts` turns them into arrays on demand.
    """

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
        self._exit_points = {self._state_index[e] for e in wf.exit_points}
        S = len(self.states)
        self._S = S
        self.exit_col = S
        G = len(self.groups)
        self._entry = [0] * (G * S)
        self._trans = [0] * (G * S * (S + 1))
        self._abandon = [0] * (G * S)
        self._violations: Counter[tuple[str, ...]] = Counter()
        self.max_open = max_open
        self._open: dict[str, _Session] = {}
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
    def counts(self) -> Counts:
        G, S = len(self.groups), self._S
        return Counts(
            self.groups,
            self.states,
            np.array(self._entry, np.int64).reshape(G, S),
            np.array(self._trans, np.int64).reshape(G, S, S + 1),
            violations=Counter(self._violations),
            abandon=np.array(self._abandon, np.int64).reshape(G, S),
        )

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
            if len(self.groups) == 1:
                g = 0
            else:
                gi = self._group_index.get(ev.user_type or "")
                if gi is None:
                    self._violations[("unknown user type", str(ev.user_type))] += 1
                    return
                g = gi
            sess = _Session(g)
            self._open[sid] = sess
            self.sessions += 1
            if len(self._open) > self.max_open:  # the oldest open session has been idle the longest
                del self._open[next(iter(self._open))]
                self.sessions_evicted_open += 1
        k = ev.seq
        key = k << 8 | min(ev.attempt, 255)
        seen = sess.seen
        if key in seen:
            self.duplicates += 1
            return
        seen.add(key)
        s = self._state_index.get(ev.endpoint, -1)
        if s < 0:
            self._violations[("unknown endpoint", ev.endpoint)] += 1
            return
        calls = sess.calls
        if k in calls:
            self.retries += 1
            if calls[k] != s:
                self._violations[("retry changed endpoint", self.states[calls[k]], ev.endpoint)] += 1
            elif ev.session_end:  # the last attempt of a call carries the session's end
                self._end(sid, sess, k, s, ev.end_reason)
            return
        calls[k] = s
        S = self._S
        base = sess.group * S
        if k == 0:
            self._entry[base + s] += 1
        prev = calls.get(k - 1)
        if prev is not None:
            self._trans[(base + prev) * (S + 1) + s] += 1
        nxt = calls.get(k + 1)
        if nxt is not None:
            self._trans[(base + s) * (S + 1) + nxt] += 1
        if ev.session_end:
            if sess.end_seq >= 0 and k > sess.end_seq:
                self._violations[("call after the session's end", ev.endpoint)] += 1
            self._end(sid, sess, k, s, ev.end_reason)
        elif sess.end_seq >= 0:
            if k > sess.end_seq:
                self._violations[("call after the session's end", ev.endpoint)] += 1
            elif len(calls) == sess.end_seq + 1:
                self._finish(sid)

    def _end(self, sid: str, sess: _Session, k: int, s: int, reason: str | None) -> None:
        if sess.end_seq == k:
            return
        S = self._S
        base = sess.group * S
        sess.end_seq = k
        sess.end_reason = reason
        self.ended_by[str(reason)] += 1
        if reason == "exit" and s not in self._exit_points:
            self._trans[(base + s) * (S + 1) + S] += 1
        elif reason == "abandon":
            self._abandon[base + s] += 1
        if k + 1 in sess.calls:
            self._violations[("call after the session's end", self.states[sess.calls[k + 1]])] += 1
        if len(sess.calls) == k + 1:
            self._finish(sid)

    def _finish(self, sid: str) -> None:
        del self._open[sid]
        self.sessions_complete += 1
        self._ended[sid] = None
        if len(self._ended) > self._remember:
            self._ended.popitem(last=False)
