"""The core engine: determinism, time order, sessions, load models, draws that follow the workflow."""

from __future__ import annotations

import itertools

import numpy as np

from emitter.core.engine import BLOCK
from emitter.core.load import Load
from emitter.inputs.workflow import loads_workflow

from ..helpers import START_US, all_events, ecommerce, simulate, stream_bytes
from ..oracles import event_dicts


def test_same_seed_same_stream_other_seed_differs() -> None:
    wf = ecommerce()
    a = stream_bytes(wf, 3, Load(sessions=300))
    assert a == stream_bytes(wf, 3, Load(sessions=300))
    assert a != stream_bytes(wf, 4, Load(sessions=300))


def test_events_are_in_time_order_and_sessions_complete() -> None:
    sim = simulate(ecommerce(), 5, Load(sessions=3 * BLOCK + 17))
    last = -1
    ends = 0
    for b in sim.batches():
        t = b.cols["t"]
        assert t[0] >= last
        assert (np.diff(t) >= 0).all()
        last = int(t[-1])
        ends += int(np.count_nonzero(b.cols["end"]))
    assert sim.sessions_started == 3 * BLOCK + 17
    assert ends == sim.sessions_started


def test_session_structure() -> None:
    wf = ecommerce()
    b = all_events(simulate(wf, 9, Load(sessions=400)))
    rows = event_dicts(b)
    sessions: dict[str, list[dict]] = {}
    for r in rows:
        sessions.setdefault(r["session_id"], []).append(r)
    assert len(sessions) == 400
    for evs in sessions.values():
        seqs = [e["seq"] for e in evs]
        assert seqs == list(range(len(evs)))
        assert [e["session_end"] for e in evs] == [False] * (len(evs) - 1) + [True]
        assert evs[0]["endpoint"] in wf.entry_points
        for a, c in itertools.pairwise(evs):
            assert wf.transitions[a["endpoint"]][c["endpoint"]] > 0
            ta, tc = a["timestamp"], c["timestamp"]
            assert tc > ta
        assert evs[-1]["endpoint"] in wf.exit_points and evs[-1]["end_reason"] == "exit"
        assert len({e["user_id"] for e in evs}) == 1 and len({e["user_type"] for e in evs}) == 1


def test_ids_unique_and_w3c_sized() -> None:
    rows = event_dicts(all_events(simulate(ecommerce(), 2, Load(sessions=1000))))
    assert len({r["event_id"] for r in rows}) == len(rows)
    assert len({r["trace_id"] for r in rows}) == len(rows)
    assert len({r["span_id"] for r in rows}) == len(rows)
    assert all(len(r["trace_id"]) == 32 and len(r["span_id"]) == 16 for r in rows)
    assert len({r["run_id"] for r in rows}) == 1


def test_cap_ends_sessions() -> None:
    wf = loads_workflow("""
entry_points: {/a: 1.0}
transitions: {/a: {/a: 0.95, /out: 0.05}}
exit_points: [/out]
max_calls: 5
""")
    rows = event_dicts(all_events(simulate(wf, 1, Load(sessions=200))))
    per: dict[str, list] = {}
    for r in rows:
        per.setdefault(r["session_id"], []).append(r)
    assert max(len(v) for v in per.values()) == 5
    capped = [v for v in per.values() if v[-1]["end_reason"] == "cap"]
    assert capped and all(len(v) == 5 and v[-1]["endpoint"] == "/a" for v in capped)


def test_duration_bounds_session_starts() -> None:
    sim = simulate(ecommerce(), 1, Load(duration_s=600, arrival_rate=5))
    b = all_events(sim)
    firsts = b.cols["t"][b.cols["seq"] == 0]
    assert firsts.max() < 600_000_000
    # Poisson arrivals at 5/s over 600 s: 3000 expected, sd ~55
    assert abs(sim.sessions_started - 3000) < 5 * 55


def test_open_model_rate_is_for_the_whole_run() -> None:
    sim = simulate(ecommerce(), 8, Load(sessions=5000, arrival_rate=20))
    all_events(sim)
    rate = sim.sessions_started / (sim.last_arrival_us / 1e6)
    assert abs(rate - 20) < 20 * 0.06


def test_closed_model_keeps_n_users_busy() -> None:
    n_users = 50
    sim = simulate(ecommerce(), 4, Load(users=n_users, duration_s=3600))
    rows = event_dicts(all_events(sim))
    users = {r["user_id"] for r in rows}
    assert len(users) == n_users
    # a user never runs two sessions at once
    spans: dict[str, list[tuple[str, str, str]]] = {}
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    for r in rows:
        first.setdefault(r["session_id"], r["timestamp"])
        last[r["session_id"]] = r["timestamp"]
        spans.setdefault(r["user_id"], [])
    by_user: dict[str, list[str]] = {}
    for r in rows:
        if r["seq"] == 0:
            by_user.setdefault(r["user_id"], []).append(r["session_id"])
    for sids in by_user.values():
        for a, b in itertools.pairwise(sids):
            assert first[b] > last[a]
    assert sim.sessions_started > n_users * 10


def test_closed_model_session_cap() -> None:
    sim = simulate(ecommerce(), 4, Load(users=30, sessions=100))
    all_events(sim)
    assert sim.sessions_started == 100


def test_user_types_follow_the_mix() -> None:
    wf = ecommerce()
    b = all_events(simulate(wf, 6, Load(sessions=20_000, population=20_000)))
    first = b.cols["seq"] == 0
    counts = np.bincount(b.cols["utype"][first], minlength=3) / first.sum()
    # premium 30 % / free 50 % / guest 20 %; sd at n=20000 is ~0.0035
    assert np.allclose(counts, [0.3, 0.5, 0.2], atol=0.02)


def test_latency_follows_the_declared_mean() -> None:
    wf = ecommerce()
    b = all_events(simulate(wf, 6, Load(sessions=5000)))
    for name in ("/api/payment", "/api/browse"):
        s = wf.states.index(name)
        lat = b.cols["latency"][b.cols["state"] == s] / 1000
        mean = wf.endpoints[name].latency.mean()
        assert abs(lat.mean() - mean) < 0.05 * mean


def test_error_rate_and_codes() -> None:
    wf = ecommerce()
    b = all_events(simulate(wf, 6, Load(sessions=5000)))
    status = b.cols["status"]
    err = status >= 400
    n = len(status)
    assert abs(err.mean() - 0.05) < 4 * np.sqrt(0.05 * 0.95 / n)
    assert set(np.unique(status[err]).tolist()) <= {500, 503, 502, 429, 404}


def test_start_time_shifts_timestamps_only() -> None:
    wf = ecommerce()
    a = event_dicts(all_events(simulate(wf, 2, Load(sessions=50), start_us=START_US)))
    b = event_dicts(all_events(simulate(wf, 2, Load(sessions=50), start_us=START_US + 3_600_000_000)))
    assert [x["timestamp"][11:13] for x in a] != [x["timestamp"][11:13] for x in b]
    assert [x["endpoint"] for x in a] == [x["endpoint"] for x in b]
