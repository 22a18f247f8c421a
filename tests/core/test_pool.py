"""The time-ordering pool and the closed model walked in chunks: same total order, memory that follows what is in flight."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from emitter.core import engine
from emitter.core.batch import concat
from emitter.core.load import Load
from emitter.core.pool import TimePool, time_order
from emitter.inputs.workflow import loads_workflow

from ..helpers import all_events, ecommerce, simulate, stream_bytes
from ..oracles import event_dicts


def _block(rng: np.random.Generator, n: int, first_sess: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    cols = {
        "t": rng.integers(0, 400, n).astype(np.int64),  # a narrow range: many ties to break
        "sess": first_sess + rng.integers(0, 50, n).astype(np.int64),
        "seq": rng.integers(0, 20, n).astype(np.int32),
        "attempt": rng.integers(1, 3, n).astype(np.int16),
    }
    return cols, np.vstack([cols["t"] * 3, cols["sess"]])


def test_drains_hand_out_the_total_order_whatever_the_runs_and_horizons() -> None:
    rng = np.random.default_rng(5)
    pool = TimePool()
    everything: list[dict[str, np.ndarray]] = []
    out: list[dict[str, np.ndarray]] = []
    horizon = 0
    for i in range(40):
        cols, params = _block(rng, int(rng.integers(0, 300)), 100 * i)
        cols = {k: v + horizon if k == "t" else v for k, v in cols.items()}  # nothing earlier than what has left
        params = np.vstack([cols["t"] * 3, cols["sess"]])
        everything.append({k: v.copy() for k, v in cols.items()})
        pool.add(cols, params)
        horizon += int(rng.integers(0, 60))
        due = pool.drain(horizon)
        waiting = len(pool)
        if due is not None:
            got, got_params = due
            assert (got["t"] < horizon).all()
            assert (got_params[0] == got["t"] * 3).all() and (got_params[1] == got["sess"]).all()
            out.append(got)
        assert waiting == sum(len(e["t"]) for e in everything) - sum(len(o["t"]) for o in out)
    due = pool.drain(None)
    assert due is not None and len(pool) == 0
    out.append(due[0])
    allc = {k: np.concatenate([e[k] for e in everything]) for k in everything[0]}
    want = time_order(allc)
    for k in allc:
        assert (np.concatenate([o[k] for o in out]) == allc[k][want]).all(), k


def test_earliest_is_a_stable_sort_prefix() -> None:
    rng = np.random.default_rng(2)
    never = np.iinfo(np.int64).max
    for _ in range(200):
        v = rng.integers(0, 30, int(rng.integers(1, 80))).astype(np.int64)
        v[rng.random(len(v)) < 0.2] = never
        k = int(rng.integers(1, 90))
        cand = np.flatnonzero(v < never)
        want = np.sort(cand[np.argsort(v[cand], kind="stable")[:k]])
        assert (engine._earliest(v, k, never) == want).all()


def _max_waiting(sim: engine.Simulation, rows: bool = True) -> tuple[int, list[dict]]:
    most = 0
    batches = []
    for b in sim.batches():
        if rows:
            batches.append(b)
        most = max(most, len(sim._pool))
    return most, event_dicts(concat(batches)) if rows else []


def test_closed_model_in_chunks_keeps_users_single_and_holds_only_what_is_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load = Load(users=400, duration_s=1800)
    sim = simulate(ecommerce(), 4, load)
    chunked, rows = _max_waiting(sim)
    assert {r["user_id"] for r in rows} == {f"user-{i:06d}" for i in range(400)}
    ts = [r["timestamp"] for r in rows]
    assert ts == sorted(ts)
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    by_user: dict[str, list[str]] = {}
    for r in rows:
        first.setdefault(r["session_id"], r["timestamp"])
        last[r["session_id"]] = r["timestamp"]
        if r["seq"] == 0:
            by_user.setdefault(r["user_id"], []).append(r["session_id"])
    for sids in by_user.values():  # a user never runs two sessions at once
        for a, b in itertools.pairwise(sids):
            assert first[b] > last[a]
    assert sum(r["session_end"] for r in rows) == sim.sessions_started
    # every user walked at once, round after round, the fast ones run ahead of the laggards that hold the
    # horizon back, and the pool holds several sessions a user; in chunks of the earliest, about those in flight
    monkeypatch.setattr(engine, "closed_chunk", lambda users: users)
    whole, _ = _max_waiting(simulate(ecommerce(), 4, load))
    assert chunked < 0.5 * whole, (chunked, whole)


def test_closed_model_memory_is_flat_over_run_length(monkeypatch: pytest.MonkeyPatch) -> None:
    def most(hours: int) -> int:
        return _max_waiting(simulate(ecommerce(), 4, Load(users=400, duration_s=hours * 3600)), rows=False)[0]

    short, long = most(2), most(8)
    assert long < 1.15 * short, (short, long)  # (measured: 7,150 and 7,847)
    monkeypatch.setattr(engine, "closed_chunk", lambda users: users)  # whole rounds: 56,692 and 149,677
    assert most(8) > 2 * most(2)


def test_closed_model_in_chunks_keeps_the_session_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "CHUNK", 7)
    sim = simulate(ecommerce(), 4, Load(users=30, sessions=100))
    b = all_events(sim)
    assert sim.sessions_started == 100 == int(np.count_nonzero(b.cols["end"]))


def test_bounded_batches_change_the_batches_not_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    wf = ecommerce()
    for load in (Load(users=300, duration_s=900), Load(arrival_rate=40, duration_s=900)):
        whole = stream_bytes(wf, 3, load)
        sizes = [len(b) for b in simulate(wf, 3, load).batches()]
        monkeypatch.setattr(engine, "MAX_BATCH", 500)
        assert stream_bytes(wf, 3, load) == whole
        small = [len(b) for b in simulate(wf, 3, load).batches()]
        monkeypatch.undo()
        assert max(sizes) > 500 >= max(small) and sum(small) == sum(sizes)


_WIDE = """
entry_points:
  /a/{id}: 1.0
transitions:
  /a/{id}:
    /u/{uid}: 0.5
    /a/{id}: 0.3
    /out: 0.2
  /u/{uid}:
    /a/{id}: 0.5
    /out: 0.5
exit_points: [/out]
endpoints:
  /a/{id}:
    params: {id: {min: %d, max: %d}}
  /u/{uid}:
    params: {uid: {from: user}}
"""


@pytest.mark.parametrize(
    ("lo", "hi", "population", "users32", "params32"),
    [
        (1, 99, 10_000, True, True),
        (0, 2**40, 10_000, True, False),
        (1, 99, 10**12, False, False),
        (2**31 - 9, 2**31 - 1, 2**31, True, True),  # the last values 32 bits hold
        (2**31 - 5, 2**31 + 5, 2**31 + 2, False, False),
    ],
)
def test_the_pool_keeps_values_exactly_whatever_their_range(
    monkeypatch: pytest.MonkeyPatch, lo: int, hi: int, population: int, users32: bool, params32: bool
) -> None:
    wf = loads_workflow(_WIDE % (lo, hi))
    load = Load(sessions=3000, arrival_rate=50.0, population=population)
    sim = simulate(wf, 3, load)
    assert ("user" in sim._narrow) is users32 and (sim._params_narrow is not None) is params32
    narrowed = all_events(sim)
    monkeypatch.setattr(engine.Simulation, "_pool_dtypes", lambda self, population: ({}, None))
    monkeypatch.setattr(engine, "DERIVED", ())
    wide = all_events(simulate(wf, 3, load))
    assert list(narrowed.cols) == list(wide.cols)
    for k, v in wide.cols.items():
        assert narrowed.cols[k].dtype == v.dtype and (narrowed.cols[k] == v).all(), k
    assert narrowed.params.dtype == np.int64 and (narrowed.params == wide.params).all()
    users = wide.cols["user"]
    assert int(users.max()) > population // 2  # the range was used: values past 32 bits when it has them
    if hi > 2**30:
        assert int(np.abs(wide.params).max()) > 2**30


def test_narrow_dtypes_hold_the_limits() -> None:
    from emitter.core.ids import MAX_ATTEMPT
    from emitter.core.limits import MAX_CALLS

    narrow, _ = simulate(ecommerce(), 1)._pool_dtypes(10)
    assert np.iinfo(narrow["seq"]).max >= MAX_CALLS - 1 and np.iinfo(narrow["attempt"]).max >= MAX_ATTEMPT
