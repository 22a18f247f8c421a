"""Edges of ``emitter fit`` (and of what it stands on) found in review: each once made it fail or lie."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import emitter
from emitter.app.config import run_config
from emitter.core.load import Load, WeeklyProfile
from emitter.core.model import Model
from emitter.errors import ConfigError
from emitter.fit import Call, FitOptions, fit
from emitter.fit.fitter import fit_positive
from emitter.fit.templates import fold_path
from emitter.inputs.workflow import loads_workflow
from emitter.sinks.base import open_sink

from ..conftest import WORKFLOWS, run_cli
from ..helpers import START_US, ecommerce


def _call(t: int, route: str, sess: str, **kw: object) -> Call:
    return Call(
        start_us=t, duration_us=1000, route=route, path=None, method="GET", service="s", status=200, session=sess, **kw
    )  # type: ignore[arg-type]


def _loads(calls: list[Call]) -> emitter.Workflow:
    res = fit(calls, [], FitOptions(min_count=1))
    return loads_workflow(res.yaml, "<fit>")


def test_sessions_of_one_call_give_a_workflow_of_exit_points() -> None:
    wf = _loads([_call(s * 10**9, "/a", f"s{s}") for s in range(10)])
    assert wf.exit_points == ("/a",) and dict(wf.transitions) == {}


def test_a_type_seen_rarely_does_not_break_the_homogeneity_test() -> None:
    calls = []
    for i in range(190):
        calls.append(_call(i * 10**9, "/x" if i % 2 else "/y", f"a{i}", user_type="A"))
        calls.append(_call(i * 10**9, "/y" if i % 3 else "/x", f"b{i}", user_type="B"))
    calls += [_call(i * 10**9, "/z", f"c{i}", user_type="C") for i in range(20)]
    assert set(_loads(calls).entry_points) == {"/x", "/y", "/z"}


def test_every_session_capped_is_a_clear_error() -> None:
    calls = [_call(i * 10**6, "/a" if i % 2 else "/b", "s", end_reason="cap" if i == 9 else None) for i in range(10)]
    with pytest.raises(ValueError, match="call cap"):
        fit(calls, [], FitOptions(min_count=1))


def test_rounding_never_makes_p99_equal_p50() -> None:
    spec, _ = fit_positive(np.array([100.001] * 10 + [100.012] * 9), 0.001)
    assert spec["dist"] == "constant"


def test_names_the_yaml_cannot_hold_plainly_still_load() -> None:
    calls = [
        Call(
            start_us=i * 10**6,
            duration_us=1000,
            route=None,
            path=p,
            method="GET",
            service="s",
            status=200,
            session=f"s{i // 2}",
        )
        for i, p in enumerate(["/search?q=%F0%9F%98%80", "/o/1000000000000009", "/search?q=caf%C3%A9", "/o/7"] * 5)
    ]
    wf = _loads(calls)
    assert "/search" in wf.endpoints and "/o/{id}" in wf.endpoints
    assert {p.name for p in wf.endpoints["/search"].query} == {"q"}
    assert fold_path("/search?q=1#top") == ("/search", [])


def test_output_is_the_same_whatever_the_hash_seed(tmp_path: Path) -> None:
    ds = emitter.generate(WORKFLOWS / "ecommerce.yaml", seed=2, num_users=200, start="2026-01-01T00:00:00Z")
    src = ds.save_jsonl(tmp_path / "e.jsonl")
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"f{seed}.yaml"
        r = run_cli("fit", str(src), "-o", str(out), "--min-count", "40", "--name", "w", env={"PYTHONHASHSEED": seed})
        assert r.returncode == 0, r.stderr
        outs.append(out.read_text())
    assert outs[0] == outs[1]


def test_fit_refuses_unwritable_outputs_in_one_line(tmp_path: Path) -> None:
    ds = emitter.generate(WORKFLOWS / "ecommerce.yaml", seed=2, num_users=50, start="2026-01-01T00:00:00Z")
    src = ds.save_jsonl(tmp_path / "e.jsonl")
    (tmp_path / "file").write_text("x")
    for args in (
        ["-o", str(tmp_path)],
        ["-o", str(tmp_path / "file" / "w.yaml")],
        ["-o", str(tmp_path / "w.yaml"), "--report", str(tmp_path / "file" / "r.json")],
    ):
        r = run_cli("fit", str(src), *args)
        err = r.stderr.decode()
        assert (
            r.returncode == 2 and "Traceback" not in err and err.strip().splitlines()[-1].startswith("emitter: error:")
        ), err
    r = run_cli("fit", str(tmp_path), "-o", str(tmp_path / "w.yaml"), "--format", "jsonl")
    assert r.returncode == 2 and "Traceback" not in r.stderr.decode()


def test_a_profile_that_allows_no_start_is_refused_not_a_hang() -> None:
    from emitter.core.engine import Simulation
    from emitter.core.limits import OutOfRange

    tuesday = START_US + 5 * 86_400_000_000  # 2026-01-06
    only_mondays = WeeklyProfile(days=[1, 0, 0, 0, 0, 0, 0])
    sim = Simulation(Model(ecommerce()), 1, Load(num_users=10, date_range_s=86_400, profile=only_mondays), tuesday)
    with pytest.raises(OutOfRange, match="profile is 0"):
        list(sim.batches())


def test_the_command_lines_model_beats_the_environments(tmp_path: Path) -> None:
    cfg = run_config(str(WORKFLOWS / "ecommerce.yaml"), {"users": 5}, {"EMITTER_NUM_USERS": "100"})
    assert cfg.load.closed and not cfg.load.dataset


@pytest.mark.parametrize(
    ("query", "says"),
    [("compression=snappy&level=3", "takes no level"), ("compression=gzip&level=22", "level"), ("level=40", "level")],
)
def test_parquet_levels_are_checked_per_codec(query: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        open_sink(f"parquet:x.parquet?{query}")


def test_learn_takes_events_whose_optional_columns_are_all_empty() -> None:
    ds = emitter.generate(WORKFLOWS / "ecommerce.yaml", seed=2, num_users=30, start="2026-01-01T00:00:00Z")
    going_on = [e for e in ds.events() if e["end_reason"] is None][:5]
    assert emitter.learn(going_on).steps == 5
    with pytest.raises(ValueError, match="no events"):
        emitter.learn([])


def test_a_trace_split_across_files_is_one_call(tmp_path: Path) -> None:
    root = {
        "traceId": "t1",
        "id": "r",
        "kind": "SERVER",
        "name": "GET /a",
        "timestamp": 1,
        "duration": 10,
        "localEndpoint": {"serviceName": "front"},
        "tags": {"session.id": "s", "http.route": "/a"},
    }
    child = {
        "traceId": "t1",
        "id": "c",
        "parentId": "k",
        "kind": "SERVER",
        "name": "GET /inner",
        "timestamp": 3,
        "duration": 2,
        "localEndpoint": {"serviceName": "back"},
        "tags": {"session.id": "s", "http.route": "/inner"},
    }
    client = {
        "traceId": "t1",
        "id": "k",
        "parentId": "r",
        "kind": "CLIENT",
        "name": "GET",
        "timestamp": 2,
        "duration": 4,
        "localEndpoint": {"serviceName": "front"},
        "tags": {},
    }
    (tmp_path / "a.json").write_text(json.dumps([root, client]))
    (tmp_path / "b.json").write_text(json.dumps([child]))
    out = tmp_path / "w.yaml"
    r = run_cli(
        "fit",
        str(tmp_path / "a.json"),
        str(tmp_path / "b.json"),
        "-o",
        str(out),
        "--min-count",
        "1",
        "--report",
        str(tmp_path / "r.json"),
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["calls"] == 1 and rep["services"][0]["caller"] == "front" and rep["services"][0]["callee"] == "back"


def test_repeated_records_count_once(tmp_path: Path) -> None:
    """At-least-once delivery repeats records: a span seen twice (the same file given twice) and events of
    which some came again are fitted as if each had come once, and the repeats are counted."""
    ev = tmp_path / "e.jsonl"
    ds = emitter.generate(WORKFLOWS / "ecommerce.yaml", seed=5, num_users=200, start="2026-01-01T00:00:00Z")
    ds.save_jsonl(ev)
    lines = ev.read_text().splitlines()
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join(lines + lines[:100]) + "\n")
    reports = []
    for name, src in (("once", ev), ("twice", twice)):
        rep = tmp_path / f"{name}.json"
        r = run_cli("fit", str(src), "-o", str(tmp_path / f"{name}.yaml"), "--report", str(rep))
        assert r.returncode == 0, r.stderr
        reports.append(json.loads(rep.read_text()))
    once, again = reports
    assert (once["repeats"], again["repeats"]) == (0, 100)
    assert again["cells"] == once["cells"] and again["calls"] == once["calls"] == len(lines)
    assert (tmp_path / "twice.yaml").read_text() == (tmp_path / "once.yaml").read_text().replace("once", "twice")

    span = {
        "traceId": "t1", "id": "r", "kind": "SERVER", "name": "GET /a", "timestamp": 1, "duration": 10,
        "localEndpoint": {"serviceName": "front"}, "tags": {"session.id": "s", "http.route": "/a"},
    }  # fmt: skip
    (tmp_path / "z.json").write_text(json.dumps([span]))
    rep = tmp_path / "z-report.json"
    r = run_cli(
        "fit", str(tmp_path / "z.json"), str(tmp_path / "z.json"), "-o", str(tmp_path / "z.yaml"),
        "--min-count", "1", "--report", str(rep),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = json.loads(rep.read_text())
    assert (got["calls"], got["spans"], got["repeats"]) == (1, 1, 1)
    assert b"1 repeated record ignored" in r.stderr
