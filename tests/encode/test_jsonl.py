"""The JSON-lines encoder held to the oracle (json.dumps of independently built events), on bundled and odd
workflows, odd column values, and the render layer's string columns."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from emitter.core.batch import EventBatch
from emitter.core.load import Load
from emitter.encode.jsonl import encode_jsonl
from emitter.encode.render import render_strings
from emitter.inputs.workflow import load_workflow, loads_workflow

from ..helpers import ROOT, START_US, ecommerce, simulate, stream_bytes
from ..oracles import event_dicts, reference_jsonl

SCHEMA = json.loads((ROOT / "emitter" / "schema" / "event-v1.schema.json").read_text())


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
