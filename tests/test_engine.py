"""The core: determinism, ordering, load models, and the fast encoder held to the reference."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from emitter.core.batch import EventBatch
from emitter.core.engine import BLOCK
from emitter.core.load import Load
from emitter.encode.jsonl import encode_jsonl
from emitter.encode.render import render_strings
from emitter.inputs.workflow import load_workflow, loads_workflow

from .helpers import ROOT, START_US, all_events, ecommerce, simulate, stream_bytes
from .oracles import event_dicts, reference_jsonl

SCHEMA = json.loads((ROOT / "emitter" / "schema" / "event-v1.schema.json").read_text())


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


def test_events_match_the_json_schema() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for line in stream_bytes(ecommerce(), 11, Load(sessions=200)).splitlines():
        ev = json.loads(line)
        validator.validate(ev)
        assert list(ev) == SCHEMA["required"]  # documented key order


@pytest.mark.parametrize("path", sorted((ROOT / "workflows").glob("*.yaml")), ids=lambda p: p.name)
def test_fast_encoder_equals_reference(path: Path) -> None:
    wf = load_workflow(path)
    for b in simulate(wf, 21, Load(sessions=700)).batches():
        ref = reference_jsonl(b)
        assert encode_jsonl(b) == ref


ODD_WORKFLOW = r"""
name: "caf\u00e9 \"flow\" \\ \t ✓"
entry_points: {"/api/caf\u00e9/\"q\"/{id}": 0.7, "/api/search": 0.3}
transitions:
  "/api/caf\u00e9/\"q\"/{id}": {"/api/items/{sku}/x\\y/{user_id}": 0.5, /out: 0.5}
  "/api/items/{sku}/x\\y/{user_id}": {/out: 1.0}
  "/api/search": {"/api/caf\u00e9/\"q\"/{id}": 0.5, /out: 0.5}
exit_points: [/out]
endpoints:
  "/api/caf\u00e9/\"q\"/{id}":
    service: "kaffee-ü"
    query: {"n\u00e4me": {values: ["a b", "ü/\"", "x&y=z"]}, "pg": {min: 0, max: 3}}
  "/api/items/{sku}/x\\y/{user_id}":
    method: PUT
    params: {sku: {values: ["s1", "s-ß"]}}
user_types: {"gäst \"1\"": 0.5, "tab\there": 0.5}
"""


def _odd_batches() -> list[EventBatch]:
    """Simulated batches with edge values and the columns the simulation leaves at defaults (end reasons, roles,
    anomalous, faults) overwritten; one workflow with quotes, backslashes, controls and non-ASCII in names."""
    rng = np.random.default_rng(5)
    out = []
    for wf in (loads_workflow(ODD_WORKFLOW), ecommerce()):
        sim = simulate(wf, 3, Load(sessions=300))
        ctx = dataclasses.replace(
            sim.ctx, fault_ids=("f1", 'sl\u00f6w "db"', "back\\slash", "ctl\x01", "f5"), run_id='r\u00fcn"1'
        )
        for b in sim.batches():
            n = len(b)
            cols = dict(b.cols)
            cols["end"] = rng.integers(0, 4, n).astype(np.int8)
            cols["role"] = rng.integers(0, 3, n).astype(np.int8)
            cols["anomalous"] = rng.random(n) < 0.3
            faults = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
            faults[rng.random(n) < 0.4] = 0
            faults[:3] = [np.uint64(2**64 - 1), np.uint64(1 << 63), np.uint64(0b10110)]
            cols["faults"] = faults
            lat = cols["latency"].copy()
            lat[:8] = [0, 1, 10, 999, 1000, 1500, 30_000_000, 123_456_789_012]
            cols["latency"] = lat
            user = cols["user"].copy()
            user[:4] = [0, 999_999, 1_000_000, 123_456_789_012]  # wider than ctx.user_width
            cols["user"] = user
            t = cols["t"].copy()
            t[:5] = [-START_US, 951_782_400_000_000 - START_US, 4_102_444_799_999_999 - START_US, 86_399_999_999, 0]
            cols["t"] = t
            out.append(EventBatch(ctx, cols, b.params))
    return out


def test_fast_encoders_on_odd_values_and_strings() -> None:
    batches = _odd_batches()
    ref = [reference_jsonl(b) for b in batches]
    text = b"".join(ref).decode()
    assert '\\"' in text and "café" in text and "\\t" in text and "\\u0001" in text  # escapes were exercised
    rows = [json.loads(line) for line in text.splitlines()]
    assert {r["end_reason"] for r in rows} == {None, "exit", "cap", "abandon"}
    assert {r["labels"]["role"] for r in rows} == {"none", "root", "propagated"}
    assert any(len(r["labels"]["faults"]) > 1 for r in rows)
    for b, r in zip(batches, ref, strict=True):
        assert encode_jsonl(b) == r
        assert encode_jsonl(b.slice(1, len(b) - 1)) == reference_jsonl(b.slice(1, len(b) - 1))
    assert encode_jsonl(batches[0].slice(0, 0)) == b""


def test_fast_encoder_edge_values() -> None:
    b = next(iter(simulate(ecommerce(), 2, Load(sessions=20)).batches())).slice(0, 8)
    us = np.array([1, 10, 999, 1000, 1500, 12_345, 30_000_000, 123_456_789_012], np.int64)
    t = np.array([0, 951_782_400_000_000, 4_102_444_799_999_999, 0, 0, 0, 0, 0], np.int64) - START_US
    b = EventBatch(b.ctx, {**b.cols, "latency": us, "t": t}, b.params)  # incl. 2000-02-29
    got = [json.loads(line)["latency_ms"] for line in encode_jsonl(b).splitlines()]
    assert [repr(x) for x in got] == [repr(int(x) / 1000) for x in us]
    data, off = render_strings(b, ("timestamp",))["timestamp"]
    assert [bytes(data[off[i] : off[i + 1]]).decode() for i in range(3)] == [
        "1970-01-01T00:00:00.000000Z",
        "2000-02-29T00:00:00.000000Z",
        "2099-12-31T23:59:59.999999Z",
    ]


def test_string_columns_equal_the_events() -> None:
    """The render layer's Arrow-style columns hold the events' strings (what a columnar sink writes)."""
    for b in _odd_batches()[:2]:
        cols = render_strings(b)
        for name, (data, off) in cols.items():
            got = [bytes(data[off[i] : off[i + 1]]).decode() for i in range(len(b))]
            assert got == [e[name] for e in event_dicts(b)], name


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
