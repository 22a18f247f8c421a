"""The simulation engine: users walk the workflow on a virtual clock, in vectorised lock-step.

Every simulated user is an agent with its own state, clock and random draws; for speed, agents that are
in the same step of their session move together as rows of numpy arrays (one array operation moves them
all). Sessions start in blocks (open model: Poisson arrivals; closed model: each user starts a new session
a pause after the last one ended, the users due first walked together; dataset model: every user's
sessions at times spread over a date range). Finished events wait in the pool (``pool.py``) until no
session that has not been simulated yet could produce an earlier one; then they leave in time order. The
output is therefore a pure function of (workflow, seed, load, start): no wall clock is read here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from ._kernels import categorical, categorical_sparse
from .batch import EventBatch, RunContext
from .calls import CallTrees, call_outcomes
from .dist import DistTable
from .faults import MAX_FAULTS, Dynamics
from .ids import MAX_ATTEMPT, mix64
from .limits import MAX_DATASET_SESSIONS, MAX_SESSIONS_PER_USER, OutOfRange, check_time_range
from .load import Load
from .model import END_ABANDON, END_CAP, END_EXIT, END_NONE, PARAM_CHOICE, PARAM_INT, PARAM_USER, Model
from .pool import TimePool
from .streams import id_keys, stream

__all__ = ["USER_BLOCK", "Simulation", "closed_blocks", "run_identity"]

BLOCK = 8192  # sessions simulated together; fixed, so the random streams do not depend on anything else
CHUNK = 65536  # closed model: users walked together at most (fixed for the same reason); see closed_chunk
MAX_BATCH = 1 << 18  # events handed out in one batch at most (batch bounds never change the stream)

I64 = npt.NDArray[np.int64]
DERIVED = ("utype", "anomalous")  # columns the pool does not keep: they follow from the user and the faults


def run_identity(model: Model, seed: int, load: Load, start_us: int, extra: str = "") -> str:
    """The run id: a digest of everything that determines the stream (never the speed or the sinks)."""
    text = f"{seed}|{model.workflow.digest}|{load.fingerprint()}|{start_us}|{extra}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Simulation:
    """Iterate :meth:`batches` to get every event of the run, in time order, in columnar batches."""

    def __init__(
        self,
        model: Model,
        seed: int,
        load: Load,
        start_us: int,
        run_extra: str = "",
        dynamics: Dynamics | None = None,
        *,
        sess_stride: int = 1,
        sess_offset: int = 0,
        run_id: str | None = None,
        key_seed: int | None = None,
        shard: tuple[int, int] = (0, 1),
        stream_block: int = 0,
        population: int | None = None,
        chunk: int | None = None,
    ) -> None:
        """``stream_block`` > 0 draws every stream of this simulation from that block's own (a closed-model
        block of users, :func:`closed_blocks`); ``population`` is the whole run's number of users when this
        simulation is one part of it (ids are as wide as the run's); ``chunk``: the closed model's users walked
        together (default :func:`closed_chunk` of this simulation's users)."""
        self._chunk = chunk
        self.model = model
        self.shard, self.shards = shard
        if not 0 <= self.shard < self.shards:
            raise ValueError(f"shard {self.shard} of {self.shards}")
        if self.shards > 1 and load.closed:
            raise ValueError("the closed model cannot be sharded")
        self.sess_stride = sess_stride
        self.sess_offset = sess_offset
        self.dynamics = dyn = dynamics or Dynamics()
        if len(dyn.fault_ids) > MAX_FAULTS:
            raise ValueError(f"at most {MAX_FAULTS} faults per run")
        self.trees = CallTrees(model.workflow)
        self._fault_targets = [
            (
                self.trees.index.get(f.service, -2) if f.service else -1,
                model.index.get(f.endpoint, -2) if f.endpoint else -1,
            )
            for f in dyn.faults
        ]
        self.seed = seed
        self.load = load
        self.start_us = start_us
        self._r_arrive = stream(seed, "arrivals", stream_block)
        self._r_user = stream(seed, "users", stream_block)
        self._block = -1  # the block the walk's streams belong to (open and dataset models: each block's own)
        self._block_streams(stream_block)
        # ids are keyed by the run (seed, workflow, load, start): a repeat of the run repeats them, any other
        # run, even with the same seed, gets its own; several workflows of one run share the run's keys
        rid = run_id or run_identity(model, seed, load, start_us, run_extra)
        keys = id_keys(seed if key_seed is None else key_seed, rid)
        if load.dataset:
            pop: int | None = load.first_user + (load.num_users or 0)
        else:
            pop = load.first_user + (load.users or 0) if load.closed else load.population
        if population is not None:
            pop = population
        self.ctx = RunContext(
            model,
            rid,
            start_us,
            keys,
            fault_ids=dyn.fault_ids,
            user_width=max(6, len(str(max(pop or 1, 1) - 1))),
        )
        self._pause = DistTable([load.user_pause], scale=1e6)
        self._counts: I64 | None = None  # the dataset model's sessions per user, drawn on first need
        self.sessions_started = 0
        self.events = 0
        self.last_arrival_us = 0
        self.horizon: int | None = 0  # every event not yet handed out is at or after this (None: all out)
        self._pool = TimePool()
        self._narrow, self._params_narrow = self._pool_dtypes(pop or 1)
        self._layout: dict[str, np.dtype[Any]] = {}  # the walk's columns and dtypes, in its order

    def _sess(self, first: int, count: int) -> I64:
        """Session numbers; a run of several workflows interleaves them so that they stay unique."""
        return (first + np.arange(count, dtype=np.int64)) * self.sess_stride + self.sess_offset

    # ------------------------------------------------------------ users

    def user_types(self, users: I64) -> npt.NDArray[np.int16]:
        """A user's type is fixed for the run: a keyed hash of the user number, drawn by the type mix."""
        u = (mix64(users, self.ctx.key_user_type) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        return (u[:, None] >= self.model.type_cum[None, :]).sum(axis=1).astype(np.int16)  # type: ignore[no-any-return]

    # ------------------------------------------------------------ the walk

    def walk(self, starts: I64, sess: I64, users: I64) -> tuple[dict[str, npt.NDArray[Any]], I64, I64]:
        """Simulate whole sessions for a block of agents; returns event columns, params, and each session's end.

        Phase 1 draws every agent's intended path through the chain (the walk's own random stream).
        Phase 2 lives it step by step: each call's outcome (latency, status, faults), retries, the user's
        reaction to a failure (abandoning cuts the path short), think time. Paths never depend on
        outcomes, so the chain a validator learns back is the declared one whatever the faults.
        """
        m = self.model
        n0 = len(starts)
        utype_all = self.user_types(users)
        # ---- phase 1: intended paths
        steps: list[tuple[I64, npt.NDArray[Any], npt.NDArray[np.int8]]] = []
        u = self._r_walk.random(n0)
        state = categorical(u, m.entry_cum, utype_all)
        rows = np.arange(n0)
        k = 0
        while len(rows):
            uw = self._r_walk.random(len(rows))
            row = utype_all[rows].astype(np.int64) * m.n_states + state
            nxt = categorical_sparse(uw, m.trans_ptr, m.trans_cum, m.trans_target, row)
            done = m.is_exit[state] | (nxt == m.exit_col)
            end = np.where(done, END_EXIT, np.where(k + 1 >= m.max_calls, END_CAP, END_NONE)).astype(np.int8)
            steps.append((rows, state, end))
            going = end == END_NONE
            rows, state = rows[going], nxt[going]
            k += 1
        # ---- phase 2: outcomes on the clock
        dyn = self.dynamics
        t_all = starts.copy()
        ends = np.zeros(n0, np.int64)
        alive = np.ones(n0, bool)
        cascade = np.zeros(n0, bool)
        onset = np.zeros(n0, np.int64)
        if dyn.cascade.rate > 0:
            length = np.zeros(n0, np.int64)
            for r, _, _ in steps:
                length[r] += 1
            cascade = self._r_fault.random(n0) < dyn.cascade.rate
            onset = length // 2
        user_retries = np.zeros(n0, np.int64)
        parts: dict[str, list[npt.NDArray[Any]]] = {
            k: []
            for k in (
                "row",
                "t",
                "seq",
                "attempt",
                "state",
                "status",
                "latency",
                "faults",
                "role",
                *(("node_start", "node_dur", "node_status") if self.trees.K > 1 else ()),
            )
        }
        n_ev = 0
        end_at: list[I64] = []
        end_val: list[npt.NDArray[np.int8]] = []
        retry = dyn.retry
        retry_on = np.array(retry.on, np.int16)
        react = dyn.reactions
        for k, (rows_k, state_k, end_k) in enumerate(steps):
            keep = alive[rows_k]
            rows, state, end = rows_k[keep], state_k[keep], end_k[keep]
            if not len(rows):
                continue
            t = t_all[rows]
            ut = utype_all[rows]
            last_evt = np.zeros(len(rows), np.int64)
            attempt = np.ones(len(rows), np.int64)
            cur = np.arange(len(rows))  # positions (into rows) still making an attempt
            while len(cur):
                res = call_outcomes(
                    m,
                    self.trees,
                    dyn,
                    self._fault_targets,
                    state[cur],
                    t[cur],
                    ut[cur],
                    cascade[rows[cur]] & (k >= onset[rows[cur]]),
                    self._r_lat,
                    self._r_err,
                    self._r_fault,
                )
                c = len(cur)
                parts["row"].append(rows[cur])
                parts["t"].append(t[cur])
                parts["seq"].append(np.full(c, k, np.int32))
                parts["attempt"].append(attempt[cur].astype(np.int16))
                parts["state"].append(state[cur].astype(np.int16))
                parts["status"].append(res.status)
                parts["latency"].append(res.latency)
                parts["faults"].append(res.faults)
                parts["role"].append(res.role)
                if self.trees.K > 1:
                    assert res.node_start is not None and res.node_dur is not None and res.node_status is not None
                    parts["node_start"].append(res.node_start)
                    parts["node_dur"].append(res.node_dur)
                    parts["node_status"].append(res.node_status)
                last_evt[cur] = n_ev + np.arange(c)
                n_ev += c
                t[cur] = t[cur] + res.latency
                if dyn.quiet:
                    break
                failed = np.isin(res.status, retry_on)
                auto = failed & (attempt[cur] < retry.max_attempts)
                again = auto | res.duplicate
                wait = np.zeros(c, np.int64)
                if again.any():
                    wait = retry.backoff_us(attempt[cur], self._r_fault.random(c))
                gave_up = failed & ~auto & ~res.duplicate
                if gave_up.any() and (react.abandon > 0 or react.retry > 0):
                    ur = self._r_fault.random(c)
                    who = rows[cur]
                    quit_ = gave_up & (ur < react.abandon)
                    by_hand = (
                        gave_up
                        & ~quit_
                        & (ur < react.abandon + react.retry)
                        & (user_retries[who] < react.max_user_retries)
                        & (attempt[cur] < MAX_ATTEMPT)
                    )
                    if quit_.any():
                        alive[who[quit_]] = False
                        end[cur[quit_]] = END_ABANDON
                    if by_hand.any():
                        user_retries[who[by_hand]] += 1
                        lo, hi = react.RETRY_PAUSE_S
                        wait = np.where(
                            by_hand, np.rint((lo + (hi - lo) * self._r_fault.random(c)) * 1e6).astype(np.int64), wait
                        )
                        again |= by_hand
                again &= attempt[cur] < MAX_ATTEMPT
                t[cur] = t[cur] + np.where(again, wait, 0)
                attempt[cur] += again
                cur = cur[again]
            done = end != END_NONE
            end_at.append(last_evt[done])
            end_val.append(end[done])
            ends[rows[done]] = t[done]
            t_all[rows] = t + m.think.sample(ut, self._r_think)
        row = np.concatenate(parts["row"])
        n = len(row)
        endcol = np.zeros(n, np.int8)
        if end_at:
            endcol[np.concatenate(end_at)] = np.concatenate(end_val)
        cols: dict[str, npt.NDArray[Any]] = {
            "t": np.concatenate(parts["t"]),
            "sess": sess[row],
            "user": users[row],
            "utype": utype_all[row],
            "seq": np.concatenate(parts["seq"]),
            "attempt": np.concatenate(parts["attempt"]),
            "state": np.concatenate(parts["state"]),
            "status": np.concatenate(parts["status"]),
            "latency": np.concatenate(parts["latency"]),
            "end": endcol,
        }
        faults = np.concatenate(parts["faults"])
        cols["anomalous"] = faults != 0
        cols["role"] = np.concatenate(parts["role"])
        cols["faults"] = faults
        if self.trees.K > 1:
            for key in ("node_start", "node_dur", "node_status"):
                cols[key] = np.concatenate(parts[key])
        params = self._params(cols["state"], cols["user"])
        return cols, params, ends

    def _params(self, state: npt.NDArray[np.int16], users: I64) -> I64:
        m = self.model
        n = len(state)
        out = np.zeros((len(m.slots), n), np.int64)
        for j, slot in enumerate(m.slots):
            u = self._r_param.random(n)
            kind = slot.kind[state]
            col = out[j]
            rows = kind == PARAM_INT
            if rows.any():
                s = state[rows]
                col[rows] = slot.lo[s] + (u[rows] * slot.span[s]).astype(np.int64)
            rows = kind == PARAM_USER
            if rows.any():
                col[rows] = users[rows]
            rows = kind == PARAM_CHOICE
            if rows.any():
                s = state[rows]
                col[rows] = slot.choice_start[s] + categorical(u[rows], slot.choice_cum, s)
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
            prof = load.profile
            peak = prof.peak if prof is not None else 1.0
            gaps = np.rint(self._r_arrive.standard_exponential(BLOCK) * mean_gap_us / peak).astype(np.int64)
            cand = last + np.cumsum(gaps)
            last = int(cand[-1])
            if prof is not None and load.shaped:  # thinning: keep each at rate(t) / peak
                keep = self._r_arrive.random(BLOCK) * peak < prof.multiplier(cand, self.start_us)
                starts = cand[keep][:n]
                if len(starts) == n:
                    last = int(starts[-1])
            else:
                starts = cand[:n]
                last = int(starts[-1])
            if limit_us is not None:
                over = starts >= limit_us
                if over.any() or last >= limit_us:
                    starts = starts[~over]
                    if len(starts):
                        users = self._r_user.integers(0, load.population, len(starts))
                        sess = self._sess(total, len(starts))
                        yield starts, sess, users, None
                    return
            if not len(starts):
                continue
            users = self._r_user.integers(0, load.population, len(starts))
            sess = self._sess(total, len(starts))
            total += len(starts)
            done = load.sessions is not None and total >= load.sessions
            yield starts, sess, users, None if done else last
            if done:
                return

    def _session_counts(self) -> I64:
        """Dataset model: each user's count of sessions (the first draws of the ``users`` stream)."""
        if self._counts is None:
            load = self.load
            assert load.num_users is not None
            per_user = DistTable([load.sessions_per_user], scale=1.0, minimum=1)
            counts = per_user.sample(np.zeros(load.num_users, np.int64), self._r_user)
            np.minimum(counts, MAX_SESSIONS_PER_USER, out=counts)
            total = int(counts.sum())
            if total > MAX_DATASET_SESSIONS:
                raise OutOfRange(
                    f"the dataset model drew {total:,} sessions ({load.num_users:,} users); at most "
                    f"{MAX_DATASET_SESSIONS:,}: use fewer users or fewer sessions per user"
                )
            self._counts = counts
        return self._counts

    @property
    def target_sessions(self) -> int | None:
        """How many sessions the run (or this shard of it) starts, when that is known before it runs."""
        if self.load.dataset:
            total = int(self._session_counts().sum())
            if self.shards == 1:
                return total
            return sum(min(BLOCK, total - first) for first in range(self.shard * BLOCK, total, self.shards * BLOCK))
        return self.load.sessions if self.shards == 1 else None  # (a shard's share depends on the arrivals)

    def _dataset_blocks(self) -> Iterator[tuple[I64, I64, I64, int | None]]:
        """Dataset model: each user's session count, every session's start over the range, in start order."""
        load = self.load
        assert load.num_users is not None
        counts = self._session_counts()
        total = int(counts.sum())
        starts = self._spread(total, round(load.date_range_s * 1e6))
        owners = np.repeat(np.arange(load.num_users, dtype=np.int64) + load.first_user, counts)
        self._r_user.shuffle(owners)  # which user each start (in time order) belongs to
        for first in range(0, total, BLOCK):
            stop = min(first + BLOCK, total)
            horizon = int(starts[stop]) if stop < total else None
            yield starts[first:stop], self._sess(first, stop - first), owners[first:stop], horizon

    def _spread(self, n: int, range_us: int) -> I64:
        """``n`` sorted start times in [0, range_us): uniform, or thinned by the profile's shape."""
        prof = self.load.profile
        r = self._r_arrive
        if prof is None or not self.load.shaped:
            return np.sort(np.floor(r.random(n) * range_us).astype(np.int64))
        peak = prof.peak
        grid = np.linspace(0, range_us, 8193).astype(np.int64)
        accept = float(prof.multiplier(grid, self.start_us).mean()) / peak  # the share thinning keeps
        if not accept > 0:
            raise OutOfRange(
                f"the {prof.kind} profile is 0 over the whole date range: no session could start (give the range "
                "a day the profile allows)"
            )
        parts: list[I64] = []
        have = 0
        rounds = 0
        while have < n:
            rounds += 1
            if rounds > 1000:  # (the grid missed the only windows the profile allows)
                raise OutOfRange(f"the {prof.kind} profile allows almost no session start over the date range")
            m = min(max(1024, int((n - have) * 1.1 / accept)), 1 << 24)
            cand = np.floor(r.random(m) * range_us).astype(np.int64)
            keep = cand[r.random(m) * peak < prof.multiplier(cand, self.start_us)]
            parts.append(keep[: n - have])
            have += len(parts[-1])
        return np.sort(np.concatenate(parts))

    def _closed_rounds(self) -> Iterator[EventBatch]:
        """Closed model: every user starts a session a pause after the last one ended.

        The users due first are walked together, at most ``CHUNK`` at a time (the earliest starts; ties by
        user number), so that what waits in the pool is the sessions in flight, not a whole round of them.
        """
        load = self.load
        assert load.users is not None
        never = np.iinfo(np.int64).max
        users = np.arange(load.users, dtype=np.int64) + load.first_user
        limit_us = never if load.duration_s is None else round(load.duration_s * 1e6)
        # first sessions are staggered as if every user had just finished one
        next_start = self._pause.sample(np.zeros(load.users, np.int64), self._r_arrive)
        chunk = self._chunk or closed_chunk(load.users)
        total = 0
        while True:
            next_start[next_start >= limit_us] = never  # (these users start no other session)
            k = chunk if load.sessions is None else min(chunk, load.sessions - total)
            idx = _earliest(next_start, k, never)
            if not len(idx):
                return
            starts = next_start[idx]
            sess = self._sess(total, len(idx))
            total += len(idx)
            ends = self._walk_into(starts, sess, users[idx])
            next_start[idx] = ends + self._pause.sample(np.zeros(len(idx), np.int64), self._r_arrive)
            done = load.sessions is not None and total >= load.sessions
            horizon = None if done else int(next_start.min())
            yield from self._drain(horizon if horizon != never else None)
            if done:
                return

    # ------------------------------------------------------------ the pool

    def _pool_dtypes(self, population: int) -> tuple[dict[str, type[np.generic]], type[np.generic] | None]:
        """Narrower dtypes the pool keeps events in where this run's values fit (exactly), and the params'.

        Events wait in the pool for about a session's length; at a million sessions in flight that is most
        of a run's memory, so each waiting event is kept in 57 bytes instead of 79 (ecommerce.yaml): seq and
        attempt in the bits their limits allow, user numbers and parameters in 32 bits when every value the
        run can draw fits, and the user type and the anomalous flag not at all (both follow from other
        columns). They are widened again as they leave: the batches are the same.
        """
        narrow: dict[str, type[np.generic]] = {"seq": np.uint16, "attempt": np.uint8}
        i32 = np.iinfo(np.int32).max
        if population - 1 <= i32:
            narrow["user"] = np.int32
        m = self.model
        bound = len(m.choices)
        for slot in m.slots:
            ints = slot.kind == PARAM_INT
            if ints.any():
                lo, hi = slot.lo[ints], slot.lo[ints] + slot.span[ints] - 1
                bound = max(bound, int(np.abs(lo).max()), int(np.abs(hi).max()))
            if (slot.kind == PARAM_USER).any():
                bound = max(bound, population - 1)  # (user numbers)
        return narrow, (np.int32 if bound <= i32 else None)

    def _walk_into(self, starts: I64, sess: I64, users: I64) -> I64:
        cols, params, ends = self.walk(starts, sess, users)
        self.sessions_started += len(starts)
        self.last_arrival_us = max(self.last_arrival_us, int(starts.max()))
        if not self._layout:
            self._layout = {k: v.dtype for k, v in cols.items()}
        for k in DERIVED:
            del cols[k]
        for k, dt in self._narrow.items():
            cols[k] = cols[k].astype(dt)
        self._pool.add(cols, params if self._params_narrow is None else params.astype(self._params_narrow))
        return ends

    def _widen(self, due: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """The pool's columns as the walk made them (derived ones computed again), in the walk's order."""
        out: dict[str, npt.NDArray[Any]] = {}
        for k, dt in self._layout.items():
            if k == "utype":  # (after "user", which the walk makes first)
                out[k] = self.user_types(out["user"])
            elif k == "anomalous":
                out[k] = due["faults"] != 0
            else:
                out[k] = due[k].astype(dt, copy=False)
        return out

    def _block_streams(self, block: int) -> None:
        """The walk's streams for ``block`` (every shard draws the same arrivals and users, then walks only
        its own blocks, each from streams keyed by the block: so the union of shards is the whole run)."""
        if block != self._block:
            self._block = block
            seed = self.seed
            self._r_walk = stream(seed, "walk", block)
            self._r_lat = stream(seed, "latency", block)
            self._r_err = stream(seed, "errors", block)
            self._r_think = stream(seed, "think", block)
            self._r_param = stream(seed, "params", block)
            self._r_fault = stream(seed, "faults", block)

    def batches(self) -> Iterator[EventBatch]:
        self._pool = TimePool()
        if self.load.closed:
            yield from self._closed_rounds()
        else:
            blocks = self._dataset_blocks() if self.load.dataset else self._open_blocks()
            for block, (starts, sess, users, horizon) in enumerate(blocks):
                if block % self.shards == self.shard:
                    self._block_streams(block)
                    self._walk_into(starts, sess, users)
                yield from self._drain(horizon)
        yield from self._drain(None)

    def _drain(self, horizon: int | None) -> Iterator[EventBatch]:
        """Hand out every event earlier than ``horizon`` (all of them when None), in time order, in batches of
        at most ``MAX_BATCH`` events (more only when that many share one time)."""
        while True:
            cut = self._pool.cut_for(horizon, MAX_BATCH)
            self.horizon = cut
            due = self._pool.drain(cut)
            if due is not None:
                out, params = self._widen(due[0]), due[1].astype(np.int64, copy=False)
                self.events += len(out["t"])
                check_time_range(self.start_us, int(out["t"][0]), int((out["t"] + out["latency"]).max()))
                yield EventBatch(self.ctx, out, params)
            if cut == horizon:
                return


USER_BLOCK = 131_072  # closed model: users per block, each walked from streams of its own (see closed_blocks)


def closed_blocks(load: Load) -> list[tuple[int, int]]:
    """A closed-model run's blocks of users, as (first user, count): one block (the run as it always was)
    unless the run has more than ``USER_BLOCK`` users and is bounded by time alone. Then each block of
    users is walked on its own, from streams keyed by the block, and the blocks' events are merged in time
    order: a shard or a worker can walk some of the blocks and leave the rest to others. A run bounded by a
    number of sessions stays one block: which sessions are the first N depends on every user."""
    users = load.users or 0
    if users <= USER_BLOCK or load.sessions is not None:
        return [(0, users)]
    return [(first, min(USER_BLOCK, users - first)) for first in range(0, users, USER_BLOCK)]


def closed_chunk(users: int) -> int:
    """Closed model: how many users (the earliest due) are walked together.

    Walking every user at once, round after round, lets the users with short sessions run ahead of the
    laggards that hold the horizon back: the pool then grows with the run (about 3x from 30 min to 4 h).
    Walking only the earliest part keeps the spread bounded, so the pool holds about the sessions in flight:
    a quarter of the users (at most ``CHUNK``), but half of them up to 4,096, where walks that small would
    cost more in speed than the quarter saves (1,000 users: 19 events waiting a user at half, 7 at a
    quarter, over 1 h and 16 h alike; 0.55 M against 0.35 M events/s).
    """
    return max(1, min(CHUNK, max(users // 4, min(users // 2, 4096))))


def _earliest(next_start: I64, k: int, never: int) -> I64:
    """The (ascending) indices of the ``k`` smallest values below ``never``; ties go to the smaller index."""
    cand: I64 = np.flatnonzero(next_start < never)
    if len(cand) <= k:
        return cand
    vals = next_start[cand]
    thr = np.partition(vals, k - 1)[k - 1]
    pick = vals < thr
    pick[np.flatnonzero(vals == thr)[: k - int(pick.sum())]] = True
    out: I64 = cand[pick]
    return out
