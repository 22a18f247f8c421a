"""The Python API for notebooks: generate, the dataset's views, learn and compare, workflows built in Python."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import emitter
from emitter.errors import ConfigError
from emitter.validate.assemble import ObservedEvent
from emitter.validate.learn import report

from ..conftest import ROOT, WORKFLOWS, run_cli

START = "2026-01-01T00:00:00Z"


def test_save_jsonl_and_parquet_are_the_clis_bytes(tmp_path: Path) -> None:
    wf = WORKFLOWS / "ecommerce.yaml"
    args = ["--seed", "7", "--num-users", "150", "--sessions-per-user", "4,2", "--date-range", "3"]
    r = run_cli(
        "run",
        str(wf),
        *args,
        "--start",
        START,
        "--speed",
        "max",
        "--progress",
        "off",
        "--sink",
        f"file:{tmp_path / 'cli.jsonl'}",
        "--sink",
        f"parquet:{tmp_path / 'cli.parquet'}?row_group_size=2000",
    )
    assert r.returncode == 0, r.stderr
    ds = emitter.generate(wf, seed=7, num_users=150, sessions_per_user=(4, 2), date_range=3, start=START)
    ds.save_jsonl(tmp_path / "api.jsonl")
    ds.save_parquet(tmp_path / "api.parquet", row_group_size=2000)
    assert (tmp_path / "api.jsonl").read_bytes() == (tmp_path / "cli.jsonl").read_bytes()
    assert (tmp_path / "api.parquet").read_bytes() == (tmp_path / "cli.parquet").read_bytes()
    assert ds.run_id.encode() in (tmp_path / "cli.jsonl").read_bytes()[:200]


def test_a_workflow_object_a_dict_and_its_file_give_one_run() -> None:
    wf = emitter.load_workflow(WORKFLOWS / "ecommerce.yaml")
    kw = {"seed": 3, "num_users": 40, "start": START}
    a = emitter.generate(wf, **kw)
    b = emitter.generate(wf.to_dict(), **kw)
    c = emitter.generate(WORKFLOWS / "ecommerce.yaml", **kw)
    assert b"".join(a.jsonl()) == b"".join(b.jsonl()) == b"".join(c.jsonl())


def test_views_agree(tmp_path: Path) -> None:
    ds = emitter.generate(WORKFLOWS / "microservices.yaml", seed=5, num_users=80, start=START)
    events = list(ds.events())
    n = len(ds)
    assert n == len(events) > 0
    table = ds.to_arrow()
    assert table.num_rows == n and table.column_names[:3] == ["schema_version", "event_id", "run_id"]
    frame = ds.to_pandas()
    assert isinstance(frame, pd.DataFrame) and len(frame) == n and "label_anomalous" in frame.columns
    assert frame["event_id"].tolist() == [e["event_id"] for e in events]
    pframe = ds.to_polars()
    assert isinstance(pframe, pl.DataFrame) and pframe.height == n
    assert pframe["latency_ms"].to_list() == [e["latency_ms"] for e in events]
    sessions = ds.sessions
    assert sum(len(s.calls) for s in sessions) == n
    by_id = {e["session_id"]: e for e in events}
    assert {s.session_id for s in sessions} == set(by_id)
    s0 = sessions[0]
    ev0 = [e for e in events if e["session_id"] == s0.session_id]
    assert s0.endpoint_sequence == [e["endpoint"] for e in ev0 if e["attempt"] == 1]
    assert [c.event_id for c in s0.calls] == [e["event_id"] for e in ev0]
    assert s0.user_id == ev0[0]["user_id"] and s0.start.isoformat().startswith(ev0[0]["timestamp"][:19])
    assert s0.end_reason == next(e["end_reason"] for e in ev0 if e["end_reason"])
    assert [x.start for x in sessions] == sorted(x.start for x in sessions)


def test_failure_scenarios_like_the_seeds() -> None:
    """The seed's example 4: a share of sessions with cascade failures shows in failed sessions and labels."""
    wf = WORKFLOWS / "ecommerce.yaml"
    calm = emitter.generate(wf, seed=8, num_users=300, start=START)
    storm = emitter.generate(wf, seed=8, num_users=300, start=START, cascade_failure_rate=0.3)
    f_calm = sum(s.failed for s in calm.sessions) / len(calm.sessions)
    f_storm = sum(s.failed for s in storm.sessions) / len(storm.sessions)
    assert f_storm > f_calm + 0.05
    labelled = sum(1 for e in storm.events() if "cascade" in e["labels"]["faults"])
    assert labelled > 0 and not any(e["labels"]["faults"] for e in calm.events())
    truth = storm.truth()
    assert truth[0]["type"] == "manifest" and truth[0]["run_id"] == storm.run_id
    assert [r["id"] for r in truth[1:]] == ["cascade"]
    fault = {"kind": "errors", "target": {"service": "payment"}, "start": "0s", "duration": "30d", "rate": 1.0}
    hit = emitter.generate(wf, seed=8, num_users=300, start=START, faults=[fault])
    pay = [e for e in hit.events() if e["service"] == "payment" and e["attempt"] == 1]
    assert pay and all(e["status_code"] >= 500 and e["labels"]["role"] == "root" for e in pay)


@pytest.mark.parametrize(
    ("kw", "where", "says"),
    [
        ({"num_users": 0}, "num_users", "positive integer"),
        ({"num_users": 5, "users": 3}, "num_users", "choose one load model"),
        ({"num_users": 5, "sessions": 3}, "sessions", "sets the sessions itself"),
        ({"date_range": "soon"}, "date_range", "duration"),
        ({"date_range": ("2026-02-01", "2026-01-01")}, "date_range", "ends before it starts"),
        ({"sessions_per_user": (0.2, 1)}, "sessions_per_user", "mean of sessions per user"),
        ({"sessions_per_user": "lots"}, "sessions_per_user", "MEAN,SD"),
        ({"cascade_failure_rate": 2.0}, "cascade_failure_rate", "probability"),
        (
            {"faults": [{"kind": "latency", "target": {"service": "nope"}, "duration": "1m"}]},
            "faults",
            "unknown service",
        ),
        ({"faults": [{"kind": "melt", "duration": "1m"}]}, "faults", "expected"),
    ],
)
def test_bad_arguments_are_config_errors_naming_the_argument(kw: dict, where: str, says: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as e:
        emitter.generate(WORKFLOWS / "ecommerce.yaml", **kw)
    text = str(e.value)
    assert text.startswith("generate(): " + where) and says in text, text


def test_learn_and_compare_find_the_declared_chain_and_reject_another() -> None:
    wf = emitter.load_workflow(WORKFLOWS / "ecommerce.yaml")
    ds = emitter.generate(wf, seed=42, num_users=1000, start=START)
    learned = emitter.learn(ds)
    table = emitter.compare(wf, learned)
    assert table.attrs["verdict"] == "consistent"
    assert {"from", "to", "declared", "learned", "ci_low", "ci_high", "p_adjusted", "verdict"} <= set(table.columns)
    inside = ((table["ci_low"] <= table["declared"]) & (table["declared"] <= table["ci_high"])).mean()
    assert inside > 0.85  # 95 % intervals; most cells hold the truth
    p = learned.transitions["/api/login"]["/api/users/{id}/profile"]
    assert abs(p - wf.transitions["/api/login"]["/api/users/{id}/profile"]) < 0.03
    # a workflow with one row changed (0.85/0.10/0.05 -> 0.70/0.25/0.05) must be rejected on the same data
    d = wf.to_dict()
    d["transitions"]["/api/login"] = {"/api/users/{id}/profile": 0.70, "/api/browse": 0.25, "/api/logout": 0.05}
    other = emitter.compare(emitter.parse_workflow(d), learned)
    assert other.attrs["verdict"] == "rejected"
    assert set(other.loc[other["verdict"] == "REJECTED", "from"]) == {"/api/login"}


def test_learn_counts_what_the_validator_counts_from_every_form(tmp_path: Path) -> None:
    """Retries and duplicates never count; the same counts from the dataset, its files, a frame and dicts."""
    ds = emitter.generate(ROOT / "tests" / "golden" / "faults.yaml")
    events = list(ds.events())
    doubled = events + events[::7]  # duplicates, out of order
    base = emitter.learn(ds)
    assert base.retries == sum(1 for e in events if e["attempt"] > 1) > 0
    ds.save_jsonl(tmp_path / "e.jsonl.gz")
    ds.save_parquet(tmp_path / "e.parquet")
    forms = [doubled, tmp_path / "e.jsonl.gz", str(tmp_path / "e.parquet"), ds.to_pandas(), ds.to_polars()]
    for form in forms:
        got = emitter.learn(form)
        order = [got.states.index(s) for s in base.states]
        assert np.array_equal(
            got.trans_counts.sum(axis=0)[order][:, [*order, len(order)]], base.trans_counts.sum(axis=0)
        )
    assert emitter.learn(doubled).duplicates == len(events[::7])
    # and the validator's own assembler agrees, row for row, for each workflow of the run
    keys = ("session_id", "seq", "endpoint", "attempt", "user_type", "session_end", "end_reason")
    for wf, _ in ds.workflows:
        mine = [e for e in events if e["workflow"] == wf.name]
        asm = emitter.Assembler(wf)
        for e in mine:
            asm.add(ObservedEvent(**{k: e[k] for k in keys}))
        assert report(wf, emitter.learn(mine)).data["rows"] == emitter.build_report(asm).data["rows"]


def test_a_workflow_built_in_python_is_checked_like_a_file_and_written_to_yaml(tmp_path: Path) -> None:
    wf = emitter.workflow(
        "api_gateway",
        entry_points={"/health": 0.2, "/api/login": 0.8},
        transitions={
            "/health": {"/metrics": 1.0},
            "/api/login": {"/api/users": 0.7, "/api/logout": 0.3},
            "/api/users": {"/api/logout": 1.0},
        },
        exit_points={"/api/logout", "/metrics"},
        avg_response_times={"/api/login": 120, "/health": 5},
    )
    path = emitter.save_workflow(wf, tmp_path / "gw.yaml")
    back = emitter.load_workflow(path)
    assert back.digest == wf.digest and back.endpoints["/api/login"].latency.mean() == pytest.approx(120)
    assert emitter.workflow_yaml(wf) == path.read_text()
    ds = emitter.generate(wf, seed=1, num_users=50, start=START)
    assert {e["endpoint"] for e in ds.events()} <= set(wf.states)
    with pytest.raises(ConfigError) as e:
        emitter.workflow("bad", entry_points={"/a": 0.5}, transitions={"/a": {"/b": 1.0}}, exit_points=["/b"])
    assert str(e.value).startswith("<python>: entry_points")


def test_learned_table_gives_counts_and_intervals() -> None:
    ds = emitter.generate(WORKFLOWS / "ecommerce.yaml", seed=6, num_users=300, start=START)
    learned = emitter.learn(ds)
    table = learned.table()
    row = table[(table["from"] == "/api/login") & (table["to"] == "/api/browse")].iloc[0]
    g = learned.groups.index(row["user_type"])  # a row per user type
    n = int(learned.trans_counts[g, learned.states.index("/api/login")].sum())
    assert row["n"] == n and row["p"] == pytest.approx(row["count"] / n)
    assert row["ci_low"] < row["p"] < row["ci_high"]
    assert table.groupby(["user_type", "from"])["p"].sum().round(9).eq(1).all()  # every row sums to one
    with pytest.raises(ValueError, match="session_id"):
        emitter.learn([{"endpoint": "/a", "seq": 0}])
