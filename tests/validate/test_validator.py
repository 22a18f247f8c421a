"""The validator: quiet on correct streams (at the stated rate), loud on wrong ones, robust to mess."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from emitter.core.load import Load
from emitter.core.spec import EXIT, Workflow
from emitter.encode.jsonl import encode_jsonl
from emitter.inputs.workflow import loads_workflow, parse_workflow
from emitter.validate.assemble import Assembler
from emitter.validate.report import build_report
from emitter.validate.sources import feed_lines
from emitter.validate.stats import holm, pearson_gof, wilson

from ..helpers import ecommerce, simulate


def lines_of(wf: Workflow, seed: int, sessions: int) -> list[bytes]:
    return b"".join(encode_jsonl(b) for b in simulate(wf, seed, Load(sessions=sessions)).batches()).splitlines()


def judge(wf: Workflow, lines: list[bytes], alpha: float = 0.01, min_samples: int = 30):  # type: ignore[no-untyped-def]
    asm = Assembler(wf)
    bad = feed_lines(asm, iter(lines))
    return build_report(asm, alpha=alpha, min_samples=min_samples, malformed=bad)


def shifted(wf: Workflow, state: str, up: str, down: str, delta: float) -> Workflow:
    d = wf.to_dict()
    d["transitions"][state][up] = round(d["transitions"][state][up] + delta, 10)
    d["transitions"][state][down] = round(d["transitions"][state][down] - delta, 10)
    return parse_workflow(d)


def test_accepts_the_engines_stream() -> None:
    wf = ecommerce()
    rep = judge(wf, lines_of(wf, 7, 20_000))
    assert rep.consistent, rep.render()
    assert rep.data["events"]["sessions_complete"] == 20_000
    assert rep.data["summary"]["max_abs_error"] < 0.03


def test_rejects_a_transition_shifted_by_three_points() -> None:
    wf = ecommerce()
    drifted = shifted(wf, "/api/cart", "/api/checkout", "/api/browse", 0.03)
    rep = judge(wf, lines_of(drifted, 7, 20_000))
    assert not rep.consistent
    rejected = [r["state"] for r in rep.rows if r["verdict"] == "REJECTED"]
    assert rejected == ["/api/cart"]
    assert rep.exit_code == 1


def test_power_and_false_alarms_measured_over_seeds() -> None:
    """Across 40 seeds: the true chain passes at about alpha, a 4-point shift is caught nearly always."""
    wf = ecommerce()
    drifted = shifted(wf, "/api/products/{id}", "/api/cart", "/api/browse", 0.04)
    alpha = 0.05
    false_alarms = sum(not judge(wf, lines_of(wf, s, 4000), alpha).consistent for s in range(40))
    caught = sum(not judge(wf, lines_of(drifted, s, 4000), alpha).consistent for s in range(40))
    # false alarms ~ Binomial(40, <=0.05): P(X > 7) < 0.5 %
    assert false_alarms <= 7
    # products row has ~6000 departures at 4000 sessions: a 4-point shift is ~5 sigma
    assert caught >= 36


@pytest.mark.slow
def test_p_values_are_calibrated() -> None:
    """Per-row p-values under the true chain are uniform (KS), so alpha means what it says."""
    wf = loads_workflow("""
entry_points: {/a: 0.5, /b: 0.5}
transitions:
  /a: {/a: 0.2, /b: 0.5, /c: 0.3}
  /b: {/a: 0.6, /c: 0.4}
exit_points: [/c]
""")
    pv = []
    rejected = 0
    for seed in range(300):
        rep = judge(wf, lines_of(wf, seed, 300), alpha=0.05)
        rejected += not rep.consistent
        pv += [r["p_value"] for r in rep.rows if r["test"] == "chi2"]
    assert sps.kstest(pv, "uniform").pvalue > 0.001
    # family-wise rate with Holm over 3 rows is at most 0.05: Binomial(300, 0.05) has P(X > 26) < 1 %
    assert rejected <= 26
    assert rejected >= 3  # and it is not a test that never fires


def _random_workflow(draw: st.DrawFn) -> Workflow:
    k = draw(st.integers(2, 6))
    n_exit = draw(st.integers(1, 2))
    states = [f"/s{i}" for i in range(k)]
    exits = [f"/x{i}" for i in range(n_exit)]
    rows: dict[str, dict[str, float]] = {}
    for i, s in enumerate(states):
        targets = [*states, *exits]
        w = [draw(st.integers(0, 5)) for _ in targets]
        # a spine keeps every state reachable and every state able to leave
        w[(i + 1) % len(targets) if i + 1 < k else k + (i % n_exit)] += 3
        if draw(st.booleans()):
            targets.append(EXIT)
            w.append(draw(st.integers(1, 3)))
        total = sum(w)
        rows[s] = {t: x / total for t, x in zip(targets, w, strict=True) if x}
        # make the row sum exactly 1 in floating point
        last = next(reversed(rows[s]))
        rows[s][last] = 1.0 - sum(v for t, v in rows[s].items() if t != last)
    entry_w = [1] + [draw(st.integers(0, 3)) for _ in states[1:]]
    entry = {s: x / sum(entry_w) for s, x in zip(states, entry_w, strict=True) if x}
    last = next(reversed(entry))
    entry[last] = 1.0 - sum(v for t, v in entry.items() if t != last)
    for e in exits:  # every exit reachable
        rows[states[-1]].setdefault(e, 0.0)
    data = {"name": "random", "entry_points": entry, "transitions": rows, "exit_points": exits}
    try:
        return parse_workflow(data)
    except Exception:
        from hypothesis import assume

        assume(False)
        raise


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.composite(_random_workflow)(), st.integers(0, 2**31))
def test_accepts_streams_of_random_valid_workflows(wf: Workflow, seed: int) -> None:
    rep = judge(wf, lines_of(wf, seed, 2000), alpha=0.001)
    assert rep.verdict == "consistent", rep.render()


def test_impossible_transition_is_a_hard_violation() -> None:
    wf = ecommerce()
    lines = lines_of(wf, 3, 200)
    evs = [json.loads(x) for x in lines]
    # splice: make one session jump from login straight to payment
    target = next(e for e in evs if e["endpoint"] == "/api/login" and not e["session_end"])
    nxt = next(e for e in evs if e["session_id"] == target["session_id"] and e["seq"] == target["seq"] + 1)
    nxt["endpoint"] = "/api/payment"
    rep = judge(wf, [json.dumps(e).encode() for e in evs])
    assert rep.verdict == "rejected"
    assert any(
        v["kind"] == "impossible transition" and "/api/login -> /api/payment" in v["detail"]
        for v in rep.data["violations"]
    )


def test_order_duplicates_and_retries_do_not_change_the_counts() -> None:
    wf = ecommerce()
    lines = lines_of(wf, 5, 1500)
    base = judge(wf, lines)
    messy = list(lines)
    rnd = random.Random(1)
    messy += rnd.sample(lines, 2000)  # duplicates
    for line in rnd.sample(lines, 500):  # retries of the same logical call
        e = json.loads(line)
        e["attempt"] = 2
        e["event_id"] = "f" * 16
        messy.append(json.dumps(e).encode())
    messy += [b"not json", b'{"seq": "x"}', b"\xff\xfe", b"[]"]
    rnd.shuffle(messy)
    asm = Assembler(wf)
    bad = feed_lines(asm, iter(messy))
    rep = build_report(asm, malformed=bad)
    assert bad == 4
    # a copy that arrives after its session is complete is counted as late, not re-examined
    assert asm.duplicates + asm.retries + asm.late == 2500
    assert asm.retries > 0 and asm.duplicates > 0
    assert [r["n"] for r in rep.rows] == [r["n"] for r in base.rows]
    assert [r["p_value"] for r in rep.rows] == [r["p_value"] for r in base.rows]
    assert rep.consistent


def test_memory_is_bounded_by_evicting_finished_sessions() -> None:
    wf = ecommerce()
    asm = Assembler(wf, remember_ended=100)
    feed_lines(asm, iter(lines_of(wf, 5, 3000)))
    assert asm.sessions_complete == 3000
    assert asm.open_sessions < 200


def test_per_user_type_rows_when_types_override_the_chain() -> None:
    from emitter.inputs.workflow import load_workflow

    from ..helpers import ROOT

    wf = load_workflow(ROOT / "workflows" / "microservices.yaml")
    rep = judge(wf, lines_of(wf, 2, 8000))
    assert rep.consistent, rep.render()
    assert rep.data["groups"] == ["premium", "free", "guest"]
    guest_entry = next(r for r in rep.rows if r["group"] == "guest" and r["state"] == "<entry>")
    assert {c["target"] for c in guest_entry["cells"]} == {"/api/v1/catalog/products", "/api/v1/search"}


def test_thin_rows_are_reported_not_judged() -> None:
    wf = ecommerce()
    rep = judge(wf, lines_of(wf, 5, 60), min_samples=30)
    thin = [r for r in rep.rows if r["thin"]]
    assert thin and all(r["p_adjusted"] is None for r in thin)
    assert rep.data["summary"]["rows_thin"] == len(thin)


# ------------------------------------------------------------------ the arithmetic


def test_pearson_matches_scipy_and_exact_path_kicks_in() -> None:
    counts = np.array([30, 50, 20, 0])
    p = np.array([0.25, 0.5, 0.25, 0.0])
    res = pearson_gof(counts, p)
    ref = sps.chisquare([30, 50, 20], [25, 50, 25])
    assert res.method == "chi2" and res.dof == 2
    assert res.p_value == pytest.approx(ref.pvalue)
    small = pearson_gof(np.array([3, 1, 0]), np.array([0.5, 0.3, 0.2]))
    assert small.method == "exact-mc"
    assert 0 < small.p_value <= 1
    # far from the declared row, the exact test is small too
    assert pearson_gof(np.array([0, 0, 12]), np.array([0.5, 0.3, 0.2])).p_value < 0.001


def test_holm_known_answer() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_wilson_known_answer() -> None:
    lo, hi = wilson(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo0, hi0 = wilson(0, 20)
    assert lo0 == 0 and hi0 == pytest.approx(0.1611, abs=1e-4)
