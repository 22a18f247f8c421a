"""The simulation engine: users walk the workflow on a virtual clock, in vectorised lock-step.

Every simulated user is an agent with its own state, clock and random draws; for speed, agents that are
in the same step of their session move together as rows of numpy arrays (one array operation moves them
all). Sessions start in blocks (open model: Poisson arrivals; closed model: each user starts a new session
a pause after the last one ended). Finished events wait in a pool until no session that has not been
simulated yet could produce an earlier one; then they leave in time order. The output is therefore a pure
function of (workflow, seed, load, start): no wall clock is read here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .batch import COLUMNS, EventBatch, RunContext
from .dist import Dist, DistTable
from .ids import mix64
from .model import END_CAP, END_EXIT, END_NONE, PARAM_CHOICE, PARAM_INT, PARAM_USER, Model

__all__ = ["DEFAULT_ARRIVAL_RATE", "Load", "Simulation"]

DEFAULT_ARRIVAL_RATE = 10.0  # sessions per simulated second, when nothing else sets the load
DEFAULT_POPULATION = 10_000
DEFAULT_USER_PAUSE = Dist.lognormal_mean(30.0, 1.0)  # seconds between a closed-model user's sessions
BLOCK = 2048  # sessions simulated together; fixed, so the random streams do not depend on anything else

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Load:
    """How many sessions start, and when. Rates are for the whole run, in simulated time."""

    sessions: int | None = None  # stop starting sessions after this many
    duration_s: float | None = None  # stop starting sessions after this much simulated time
    arrival_rate: float | None = None  # open model: new sessions per simulated second (Poisson)
    users: int | None = None  # closed model: this many concurrent users
    user_pause: Dist = DEFAULT_USER_PAUSE  # closed model: pause between a user's sessions (seconds)
    population: int = DEFAULT_POPULATION  # open model: distinct users sessions are drawn from

    @property
    def closed(self) -> bool:
        return self.users is not None

    @property
    def rate(self) -> float:
        return self.arrival_rate if self.arrival_rate is not None else DEFAULT_ARRIVAL_RATE

    @property
    def bounded(self) -> bool:
        return self.sessions is not None or self.duration_s is not None

    def describe(self) -> str:
        parts = []
        if self.closed:
            parts.append(f"closed model: {self.users} concurrent users, pause mean {self.user_pause.mean():g} s")
        else:
            parts.append(f"open model: {self.rate:g} new sessions per simulated second (Poisson)")
        if self.sessions is not None:
            parts.append(f"{self.sessions} sessions")
        if self.duration_s is not None:
            parts.append(f"sessions start during the first {self.duration_s:g} simulated seconds")
        if not self.bounded:
            parts.append("until interrupted")
        return "; ".join(parts)

    def fingerprint(self) -> str:
        return repr(
            (
                self.sessions,
                self.duration_s,
                self.arrival_rate if not self.closed else None,
                self.users,
                self.user_pause if self.closed else None,
                self.population if not self.closed else None,
            )
        )


def run_identity(model: Model, seed: int, load: Load, start_us: int, extra: str = "") -> str:
    """The run id: a digest of everything that determines the stream (never the speed or the sinks)."""
    text = f"{seed}|{model.workflow.digest}|{load.fingerprint()}|{start_us}|{extra}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Simulation:
    """Iterate :meth:`batches` to get every event of the run, in time order, in columnar batches."""

    def __init__(self, model: Model, seed: int, load: Load, start_us: int, run_extra: str = "") -> None:
        self.model = model
        self.seed = seed
        self.load = load
        self.start_us = start_us
        streams = np.random.SeedSequence(seed).spawn(8)
        (
            self._r_arrive,
            self._r_user,
            self._r_walk,
            self._r_lat,
            self._r_err,
            self._r_think,
            self._r_param,
            r_keys,
        ) = (np.random.default_rng(s) for s in streams)
        keys = tuple(int(k) for k in r_keys.integers(0, 2**63, 8, dtype=np.int64))
        pop = load.users if load.closed else load.population
        self.ctx = RunContext(
            model,
            run_identity(model, seed, load, start_us, run_extra),
            start_us,
            keys,
            user_width=max(6, len(str(max(pop or 1, 1) - 1))),
        )
        self._pause = DistTable([load.user_pause], scale=1e6)
        self.sessions_started = 0
        self.events = 0
        self.last_arrival_us = 0

    # ------------------------------------------------------------ users

    def user_types(self, users: I64) -> npt.NDArray[np.int16]:
        """A user's type is fixed for the run: a keyed hash of the user number, drawn by the type mix."""
        u = (mix64(users, self.ctx.key_user_type) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        return (u[:, None] >= self.model.type_cum[None, :]).sum(axis=1).astype(np.int16)  # type: ignore[no-any-return]

    # ------------------------------------------------------------ the walk

    def walk(self, starts: I64, sess: I64, users: I64) -> tuple[dict[str, npt.NDArray[Any]], I64, I64]:
        """Simulate whole sessions for a block of agents; returns event columns, params, and each session's end."""
        m = self.model
        n0 = len(starts)
        utype_all = self.user_types(users)
        u = self._r_walk.random(n0)
        state = (u[:, None] >= m.entry_cum[utype_all]).sum(axis=1)
        t = starts.copy()
        rows = np.arange(n0)
        ends = np.zeros(n0, np.int64)
        parts: dict[str, list[npt.NDArray[Any]]] = {
            k: [] for k in ("row", "t", "seq", "state", "status", "latency", "end")
        }
        k = 0
        while len(rows):
            n = len(rows)
            ut = utype_all[rows]
            lat = m.latency.sample(state, self._r_lat, factor=m.latency_factor[ut])
            ue, uc = self._r_err.random(n), self._r_err.random(n)
            err = ue < m.error_rate[state]
            code = m.error_codes[state, (uc[:, None] >= m.error_cum[state]).sum(axis=1)]
            status = np.where(err, code, m.success[state]).astype(np.int16)
            uw = self._r_walk.random(n)
            nxt = (uw[:, None] >= m.trans_cum[ut, state]).sum(axis=1)
            done = m.is_exit[state] | (nxt == m.exit_col)
            end = np.where(done, END_EXIT, np.where(k + 1 >= m.max_calls, END_CAP, END_NONE)).astype(np.int8)
            parts["row"].append(rows)
            parts["t"].append(t)
            parts["seq"].append(np.full(n, k, np.int32))
            parts["state"].append(state.astype(np.int16))
            parts["status"].append(status)
            parts["latency"].append(lat)
            parts["end"].append(end)
            think = m.think.sample(ut, self._r_think)
            going = end == END_NONE
            ends[rows[~going]] = (t + lat)[~going]
            t = (t + lat + think)[going]
            rows = rows[going]
            state = nxt[going]
            k += 1
        row = np.concatenate(parts["row"])
        cols: dict[str, npt.NDArray[Any]] = {
            "t": np.concatenate(parts["t"]),
            "sess": sess[row],
            "user": users[row],
            "utype": utype_all[row],
            "seq": np.concatenate(parts["seq"]),
            "attempt": np.ones(len(row), np.int16),
            "state": np.concatenate(parts["state"]),
            "status": np.concatenate(parts["status"]),
            "latency": np.concatenate(parts["latency"]),
            "end": np.concatenate(parts["end"]),
        }
        n = len(row)
        cols["anomalous"] = np.zeros(n, np.bool_)
        cols["role"] = np.zeros(n, np.int8)
        cols["faults"] = np.zeros(n, np.uint64)
        params = self._params(cols["state"], cols["user"])
        return cols, params, ends

    def _params(self, state: npt.NDArray[np.int16], users: I64) -> I64:
        m = self.model
        n = len(state)
        out = np.zeros((len(m.slots), n), np.int64)
        for j, slot in enumerate(m.slots):
            u = self._r_param.random(n)
            kind = slot.kind[state]
            out[j] = np.where(kind == PARAM_INT, slot.lo[state] + (u * slot.span[state]).astype(np.int64), 0)
            if (slot.kind == PARAM_USER).any():
                out[j] = np.where(kind == PARAM_USER, users, out[j])
            if (slot.kind == PARAM_CHOICE).any():
                ch = slot.choice_start[state] + (u[:, None] >= slot.choice_cum[state]).sum(axis=1)
                out[j] = np.where(kind == PARAM_CHOICE, ch, out[j])
        return out

    # ------------------------------------------------------------ session starts

    def _open_blocks(self) -> Iterator[tuple[I64, I64, I64, int | None]]:
        """(starts, session numbers, users, horizon): horizon bounds every later session's start."""
        load = self.load
        mean_gap_us = 1e6 / load.rate
        limit_us = None if load.duration_s is None else round(load.duration_s * 1e6)
        last = 0
        total = 0
        while True:
            n = BLOCK if load.sessions is None else min(BLOCK, load.sessions - total)
            if n <= 0:
                return
            gaps = np.rint(self._r_arrive.standard_exponential(n) * mean_gap_us).astype(np.int64)
            starts = last + np.cumsum(gaps)
            if limit_us is not None:
                starts = starts[starts < limit_us]
            if not len(starts):
                return
            users = self._r_user.integers(0, load.population, len(starts))
            sess = np.arange(total, total + len(starts), dtype=np.int64)
            total += len(starts)
            last = int(starts[-1])
            done = len(starts) < n or (load.sessions is not None and total >= load.sessions)
            yield starts, sess, users, None if done else last
            if done:
                return

    def _closed_rounds(self, pool: list[tuple[dict[str, npt.NDArray[Any]], I64]]) -> Iterator[EventBatch]:
        """Closed model: every user starts a session a pause after the last one ended, round after round."""
        load = self.load
        assert load.users is not None
        never = np.iinfo(np.int64).max
        users = np.arange(load.users, dtype=np.int64)
        limit_us = never if load.duration_s is None else round(load.duration_s * 1e6)
        # first sessions are staggered as if every user had just finished one
        next_start = self._pause.sample(np.zeros(load.users, np.int64), self._r_arrive)
        total = 0
        while True:
            idx = np.nonzero(next_start < limit_us)[0]
            if load.sessions is not None and len(idx) > load.sessions - total:
                idx = np.sort(idx[np.argsort(next_start[idx], kind="stable")[: load.sessions - total]])
            if not len(idx):
                return
            starts = next_start[idx]
            sess = np.arange(total, total + len(idx), dtype=np.int64)
            total += len(idx)
            ends = self._walk_into(pool, starts, sess, users[idx])
            next_start[:] = never
            next_start[idx] = ends + self._pause.sample(np.zeros(len(idx), np.int64), self._r_arrive)
            done = load.sessions is not None and total >= load.sessions
            horizon = None if done else int(next_start.min())
            out = self._drain(pool, horizon if horizon != never else None)
            if out is not None:
                yield out
            if done:
                return

    def _walk_into(
        self, pool: list[tuple[dict[str, npt.NDArray[Any]], I64]], starts: I64, sess: I64, users: I64
    ) -> I64:
        cols, params, ends = self.walk(starts, sess, users)
        self.sessions_started += len(starts)
        self.last_arrival_us = max(self.last_arrival_us, int(starts.max()))
        pool.append((cols, params))
        return ends

    def batches(self) -> Iterator[EventBatch]:
        pool: list[tuple[dict[str, npt.NDArray[Any]], I64]] = []
        if self.load.closed:
            yield from self._closed_rounds(pool)
        else:
            for starts, sess, users, horizon in self._open_blocks():
                self._walk_into(pool, starts, sess, users)
                out = self._drain(pool, horizon)
                if out is not None:
                    yield out
        out = self._drain(pool, None)
        if out is not None:
            yield out

    def _drain(self, pool: list[tuple[dict[str, npt.NDArray[Any]], I64]], horizon: int | None) -> EventBatch | None:
        """Sort the pool; hand out every event earlier than ``horizon`` (all of them when None)."""
        if not pool:
            return None
        if len(pool) == 1:
            cols, params = pool[0]
        else:
            cols = {k: np.concatenate([p[0][k] for p in pool]) for k in COLUMNS}
            params = np.concatenate([p[1] for p in pool], axis=1)
        batch = EventBatch(self.ctx, cols, params)
        order = np.lexsort((batch.ekey, cols["t"]))
        cut = len(order) if horizon is None else int(np.searchsorted(cols["t"][order], horizon, side="left"))
        pool.clear()
        if cut < len(order):
            rest = order[cut:]
            pool.append(({k: v[rest] for k, v in cols.items()}, params[:, rest]))
        if cut == 0:
            return None
        head = order[:cut]
        self.events += cut
        return EventBatch(self.ctx, {k: v[head] for k, v in cols.items()}, params[:, head])


def effective_rate(sessions: int, span_us: int) -> float:
    return sessions / (span_us / 1e6) if span_us > 0 else math.nan
