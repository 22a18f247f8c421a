"""Failures over the service graph: labels, measured effects, propagation, retries, reactions, truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emitter.core.batch import EventBatch, concat
from emitter.core.calls import CallTrees
from emitter.core.engine import Simulation
from emitter.core.faults import CascadePreset, Dynamics, Fault, Reactions, RetryPolicy
from emitter.core.load import Load, RampProfile, Spike, SpikesProfile
from emitter.core.model import Model
from emitter.encode.jsonl import encode_jsonl
from emitter.inputs.workflow import load_workflow
from emitter.validate.assemble import Assembler
from emitter.validate.report import build_report
from emitter.validate.sources import feed_lines

from ..conftest import WORKFLOWS, run_cli
from ..oracles import event_dicts

MICRO = load_workflow(WORKFLOWS / "microservices.yaml")
START = 1_767_225_600_000_000
MIN = 60_000_000


def run(dyn: Dynamics, sessions: int = 6000, seed: int = 5, rate: float = 10.0, wf=MICRO) -> EventBatch:  # type: ignore[no-untyped-def]
    sim = Simulation(Model(wf), seed, Load(sessions=sessions, arrival_rate=rate), START, dynamics=dyn)
    return concat(list(sim.batches()))


def names(b: EventBatch) -> np.ndarray:
    return np.array(b.ctx.model.states)[b.cols["state"]]


def window(b: EventBatch, f: Fault) -> np.ndarray:
    t = b.cols["t"]
    return (t >= f.start_us) & (t < f.end_us)


PAY_SLOW = Fault.of("pay-slow", "latency", service="payment", start_us=3 * MIN, duration_us=4 * MIN, factor=5)


def test_labels_exactly_inside_the_window_on_the_affected_path() -> None:
    b = run(Dynamics(faults=(PAY_SLOW,)))
    _, _, endpoints = CallTrees(MICRO).affected(PAY_SLOW)
    assert set(endpoints) == {"/api/v1/checkout", "/api/v1/payments"}
    expected = window(b, PAY_SLOW) & np.isin(names(b), endpoints)
    assert expected.sum() > 100
    assert (b.cols["anomalous"] == expected).all()
    assert (b.cols["faults"][expected] == 1).all() and (b.cols["faults"][~expected] == 0).all()
    role = b.cols["role"]
    assert (role[expected & (names(b) == "/api/v1/payments")] == 1).all()  # root: ran on payment
    assert (role[expected & (names(b) == "/api/v1/checkout")] == 2).all()  # propagated through it
    assert (role[~expected] == 0).all()
    rows = event_dicts(b)
    hit = [r for r in rows if r["labels"]["anomalous"]]
    assert hit and all(r["labels"]["faults"] == ["pay-slow"] for r in hit)


def test_untouched_calls_are_exactly_as_without_the_fault() -> None:
    base = run(Dynamics())
    slow = run(Dynamics(faults=(PAY_SLOW,)))

    def key(b):
        return dict(
            zip(b.ekey.tolist(), zip(b.cols["latency"].tolist(), b.cols["status"].tolist(), strict=True), strict=True)
        )

    kb, ks = key(base), key(slow)
    assert kb.keys() == ks.keys()  # the same calls happen (no retries or reactions configured)
    clean = slow.ekey[~slow.cols["anomalous"]].tolist()
    assert all(kb[k] == ks[k] for k in clean)
    hit = slow.ekey[slow.cols["anomalous"]].tolist()
    assert np.mean([ks[k][0] / kb[k][0] for k in hit]) > 2


def test_latency_rises_by_the_configured_factor_on_a_leaf() -> None:
    f = Fault.of("inv-slow", "latency", service="inventory", start_us=2 * MIN, duration_us=10 * MIN, factor=4)
    base, slow = run(Dynamics(), 8000), run(Dynamics(faults=(f,)), 8000)
    ep = "/api/v1/inventory/{id}"  # handled by inventory, which calls nobody
    sel_b = window(base, f) & (names(base) == ep)
    sel_s = window(slow, f) & (names(slow) == ep)
    ratio = slow.cols["latency"][sel_s].mean() / base.cols["latency"][sel_b].mean()
    assert sel_s.sum() > 300
    assert abs(ratio - 4) < 0.4  # lognormal sd 0.4: the mean of ~500 calls is within a few %


def test_add_ms_and_ramps() -> None:
    f = Fault.of(
        "inv-add",
        "latency",
        service="inventory",
        start_us=2 * MIN,
        duration_us=10 * MIN,
        ramp_in_us=4 * MIN,
        ramp_out_us=4 * MIN,
        add_ms=500,
    )
    b = run(Dynamics(faults=(f,)), 8000)
    ep = names(b) == "/api/v1/inventory/{id}"
    t = b.cols["t"]
    lat = b.cols["latency"] / 1000
    early = ep & (t >= f.start_us) & (t < f.start_us + MIN)  # intensity < 1/4
    middle = ep & (t >= f.start_us + 4 * MIN) & (t < f.end_us - 4 * MIN)  # full
    assert 0 < lat[early].mean() < 35 + 0.25 * 500 + 20
    assert abs(lat[middle].mean() - (35 + 500)) < 40


def test_error_rate_rises_by_the_configured_amount() -> None:
    f = Fault.of("inv-err", "errors", service="inventory", start_us=2 * MIN, duration_us=10 * MIN, rate=0.3, status=503)
    b = run(Dynamics(faults=(f,)), 8000)
    sel = window(b, f) & (names(b) == "/api/v1/inventory/{id}")
    n = int(sel.sum())
    share = float((b.cols["status"][sel] == 503).mean())
    expected = 0.3 + 0.7 * 0.05 * 0.3  # the fault, plus the baseline 5 % errors of which 30 % are 503
    assert abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
    outside = ~window(b, f) & (names(b) == "/api/v1/inventory/{id}")
    assert (b.cols["status"][outside] == 503).mean() < 0.03


def test_outage_fails_fast_and_callers_fail_with_it() -> None:
    f = Fault.of("inv-down", "outage", service="inventory", start_us=2 * MIN, duration_us=5 * MIN)
    b = run(Dynamics(faults=(f,)))
    w = window(b, f)
    inv = w & (names(b) == "/api/v1/inventory/{id}")
    assert (b.cols["status"][inv] == 503).all()
    assert b.cols["latency"][inv].max() < 5_000  # about a millisecond
    cart = w & (names(b) == "/api/v1/cart")  # cart calls inventory
    assert (b.cols["status"][cart] >= 400).all()  # 5xx from inventory, or the baseline 4xx before it
    search = w & (names(b) == "/api/v1/search")  # search -> catalog -> inventory: propagated two levels
    assert (b.cols["status"][search] >= 500).mean() > 0.97  # all but the baseline 4xx at search itself
    login = w & (names(b) == "/api/v1/auth/login")  # auth -> users: not upstream of inventory
    assert (b.cols["status"][login] >= 500).mean() < 0.1
    assert not b.cols["anomalous"][login].any()


def test_timeout_becomes_504_after_the_callers_timeout() -> None:
    # shipping declares timeout_ms: 2000; a hung shipping makes orders (its caller) answer 504 after ~2 s
    f = Fault.of("ship-hang", "timeout", service="shipping", start_us=2 * MIN, duration_us=10 * MIN, hang_ms=60_000)
    b = run(Dynamics(faults=(f,)), 8000)
    w = window(b, f)
    orders = w & (names(b) == "/api/v1/orders")
    assert orders.sum() > 50
    st = b.cols["status"][orders]
    assert (st == 504).mean() > 0.93 and (st >= 400).all()  # the others: baseline errors at orders itself
    lat = b.cols["latency"][orders][st == 504] / 1000
    assert (lat > 2000).all() and (lat < 2000 + 1000).all()
    # the client of the shipping endpoint itself waits its own 30 s default, then gives up: 504
    ship = w & (names(b) == "/api/v1/shipping/{id}/status")
    hung = b.cols["status"][ship] == 504
    assert hung.mean() > 0.93 and (b.cols["latency"][ship][hung] == 30_000_000).all()


def test_retries_follow_the_policy() -> None:
    f = Fault.of("inv-err", "errors", service="inventory", start_us=2 * MIN, duration_us=10 * MIN, rate=1.0, status=503)
    pol = RetryPolicy(max_attempts=3, backoff_ms=100, multiplier=2, jitter=0.2)
    b = run(Dynamics(faults=(f,), retry=pol))
    rows = [r for r in event_dicts(b) if r["endpoint"] == "/api/v1/inventory/{id}"]
    calls: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        calls.setdefault((r["session_id"], r["seq"]), []).append(r)
    in_window = [c for c in calls.values() if c[0]["labels"]["anomalous"] and len(c) > 1]
    assert len(in_window) > 50
    import datetime as dt

    def ts(r: dict) -> float:
        return dt.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()

    for c in in_window:
        c.sort(key=lambda r: r["attempt"])
        assert [r["attempt"] for r in c] == [1, 2, 3]
        assert all(r["status_code"] == 503 for r in c)
        for a, nxt, base in ((c[0], c[1], 0.1), (c[1], c[2], 0.2)):
            gap = ts(nxt) - (ts(a) + a["latency_ms"] / 1000)
            assert base * 0.8 - 1e-6 <= gap <= base * 1.2 + 1e-6
    n_retries = sum(1 for r in rows if r["attempt"] > 1)
    assert n_retries >= 2 * len(in_window)  # a retry storm on the failing service


def test_users_abandon_after_errors() -> None:
    f = Fault.of("inv-down", "outage", service="inventory", start_us=2 * MIN, duration_us=5 * MIN)
    b = run(Dynamics(faults=(f,), reactions=Reactions(abandon=1.0)))
    ab = b.cols["end"] == 3
    assert ab.sum() > 100
    assert np.isin(b.cols["status"][ab], [429, 500, 502, 503, 504]).all()  # the retryable failures
    w = window(b, f)
    # baseline errors make users leave too, but far more leave while inventory is down
    assert ab[w].mean() > 5 * ab[~w].mean()
    # nobody calls again after abandoning
    per = {}
    for s, q, e in zip(b.cols["sess"].tolist(), b.cols["seq"].tolist(), b.cols["end"].tolist(), strict=True):
        per.setdefault(s, []).append((q, e))
    for calls in per.values():
        calls.sort()
        assert all(e == 0 for _, e in calls[:-1])


def test_faulted_stream_without_abandonment_passes_the_validator() -> None:
    f = Fault.of("inv-down", "outage", service="inventory", start_us=2 * MIN, duration_us=5 * MIN)
    b = run(Dynamics(faults=(f,), retry=RetryPolicy(max_attempts=3)), 8000)
    asm = Assembler(MICRO)
    feed_lines(asm, iter(encode_jsonl(b).splitlines()))
    rep = build_report(asm, alpha=0.01)
    assert rep.consistent, rep.render()
    assert asm.retries > 100


def test_abandonment_is_reported_as_the_effective_chain() -> None:
    f = Fault.of("inv-down", "outage", service="inventory", start_us=2 * MIN, duration_us=5 * MIN)
    b = run(Dynamics(faults=(f,), reactions=Reactions(abandon=0.8)), 8000)
    asm = Assembler(MICRO)
    feed_lines(asm, iter(encode_jsonl(b).splitlines()))
    rep = build_report(asm, alpha=0.01)
    assert rep.consistent, rep.render()  # abandoning is censoring, not a different chain
    eff = {(e["group"], e["state"]): e for e in rep.data["effective"]}
    assert eff and "note:" in rep.render() and "abandoned after errors" in rep.render()
    e = max(eff.values(), key=lambda e: e["abandoned"])
    assert abs(sum(e["effective"].values()) - 1) < 1e-9


def test_cascade_preset_matches_the_seed_description() -> None:
    wf = load_workflow(WORKFLOWS / "ecommerce.yaml")
    b = run(Dynamics(cascade=CascadePreset(rate=0.3)), 6000, wf=wf)
    c = b.cols
    sess_hit = np.unique(c["sess"][c["anomalous"]])
    assert abs(len(sess_hit) / 6000 - 0.3) < 0.03
    first = (c["attempt"] == 1) & c["anomalous"]
    lengths = np.bincount(c["sess"][c["attempt"] == 1])
    assert (c["seq"][first] >= lengths[c["sess"][first]] // 2).all()  # the second half only
    st = c["status"][first]
    lat = c["latency"][first]
    timeouts = (st == 504) & (lat > 28e6)
    assert abs(timeouts.mean() - 0.20) < 0.03
    assert abs((st == 503).mean() - (0.15 + 0.65 * 0.05 * 0.3)) < 0.03
    dup = np.isin(b.ekey[first] + np.uint64(1), b.ekey)  # the same call again with attempt + 1
    assert abs(dup.mean() - 0.30) < 0.03


def test_everything_stays_deterministic_by_seed() -> None:
    f = Fault.of("inv-err", "errors", service="inventory", start_us=2 * MIN, duration_us=5 * MIN, rate=0.5)
    dyn = Dynamics(
        faults=(f,),
        retry=RetryPolicy(max_attempts=3),
        reactions=Reactions(abandon=0.3, retry=0.3),
        cascade=CascadePreset(rate=0.1),
    )
    a, b = encode_jsonl(run(dyn, 2000)), encode_jsonl(run(dyn, 2000))
    assert a == b
    assert a != encode_jsonl(run(dyn, 2000, seed=6))


def test_ramp_profile_shapes_arrivals() -> None:
    prof = RampProfile(a=1.0, b=4.0, start=0, over=600)
    sim = Simulation(Model(MICRO), 1, Load(duration_s=600, arrival_rate=5, profile=prof), START)
    b = concat(list(sim.batches()))
    firsts = b.cols["t"][(b.cols["seq"] == 0) & (b.cols["attempt"] == 1)] / 1e6
    early, late = (firsts < 150).sum(), (firsts >= 450).sum()
    # expected arrivals: 5 * 150 * (1 + 1.375)/2... integrate 5 * (1 + 3 t/600): early ~ 1031, late ~ 2719
    assert abs(early - 1031) < 5 * np.sqrt(1031)
    assert abs(late - 2719) < 5 * np.sqrt(2719)


# ------------------------------------------------------------------ scenarios and truth through the CLI


def test_bundled_scenarios_run_and_write_truth(tmp_path: Path) -> None:
    for sc in sorted((WORKFLOWS / "scenarios").glob("*.yaml")):
        out, truth = tmp_path / f"{sc.stem}.jsonl", tmp_path / f"{sc.stem}.truth.jsonl"
        proc = run_cli(
            "run",
            str(sc),
            "--progress",
            "off",
            "--duration",
            "15m",
            "--sessions",
            "1500",
            "--sink",
            f"file:{out}",
            "--truth",
            f"file:{truth}",
        )
        assert proc.returncode == 0, proc.stderr.decode()
        recs = [json.loads(x) for x in truth.read_text().splitlines()]
        assert recs[0]["type"] == "manifest" and all(r["type"] == "fault" for r in recs[1:]) and len(recs) > 1
        assert recs[0]["run_id"] == json.loads(out.read_text().splitlines()[0])["run_id"]


def test_truth_names_affected_services_and_edges(tmp_path: Path) -> None:
    truth = tmp_path / "t.jsonl"
    proc = run_cli(
        "run",
        str(WORKFLOWS / "scenarios" / "payment-slowdown.yaml"),
        "--progress",
        "off",
        "--sessions",
        "200",
        "--sink",
        "null",
        "--truth",
        f"file:{truth}",
    )
    assert proc.returncode == 0, proc.stderr.decode()
    fault = json.loads(truth.read_text().splitlines()[1])
    assert fault["id"] == "payment-slow" and fault["kind"] == "latency" and fault["target"] == {"service": "payment"}
    assert fault["affected_services"] == ["checkout", "payment"]
    assert fault["affected_edges"] == [["checkout", "payment"]]
    assert fault["start"] == "2026-01-01T00:20:00.000000Z" and fault["end"] == "2026-01-01T00:25:00.000000Z"
    assert fault["params"] == {"factor": 5.0, "add_ms": 0.0}


def test_scenario_runs_are_reproducible_and_flags_override(tmp_path: Path) -> None:
    sc = str(WORKFLOWS / "scenarios" / "flaky-dependency.yaml")
    outs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        proc = run_cli("run", sc, "--progress", "off", "--sessions", "800", "--sink", f"file:{out}")
        assert proc.returncode == 0, proc.stderr.decode()
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert sum(1 for _ in outs[0].splitlines()) > 800
    other = tmp_path / "c.jsonl"
    assert (
        run_cli(
            "run", sc, "--progress", "off", "--sessions", "800", "--seed", "99", "--sink", f"file:{other}"
        ).returncode
        == 0
    )
    assert other.read_bytes() != outs[0]


def test_several_workflows_in_one_scenario(tmp_path: Path) -> None:
    sc = tmp_path / "mix.yaml"
    sc.write_text(f"""
seed: 3
workflows:
  - {{path: {WORKFLOWS / "ecommerce.yaml"}, weight: 3}}
  - {{path: {WORKFLOWS / "microservices.yaml"}, weight: 1}}
load: {{arrival_rate: 20}}
sessions: 2000
speed: max
start: 2026-01-01T00:00:00Z
""")
    out = tmp_path / "mix.jsonl"
    proc = run_cli("run", str(sc), "--progress", "off", "--sink", f"file:{out}")
    assert proc.returncode == 0, proc.stderr.decode()
    evs = [json.loads(x) for x in out.read_text().splitlines()]
    wfs = {}
    for e in evs:
        wfs.setdefault(e["workflow"], set()).add(e["session_id"])
    assert {k: len(v) for k, v in wfs.items()} == {"ecommerce": 1500, "microservices": 500}
    assert [e["timestamp"] for e in evs] == sorted(e["timestamp"] for e in evs)
    assert len({e["event_id"] for e in evs}) == len(evs)
    assert len({e["run_id"] for e in evs}) == 1
    for name, path in (("ecommerce", "ecommerce.yaml"), ("microservices", "microservices.yaml")):
        part = tmp_path / f"{name}.jsonl"
        part.write_text("".join(json.dumps(e) + "\n" for e in evs if e["workflow"] == name))
        v = run_cli("validate", str(WORKFLOWS / path), "--source", str(part))
        assert v.returncode == 0, v.stdout.decode()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("workflow: nope.yaml\n", "nope.yaml: (top level): file not found"),
        (
            "workflow: {wf}\nfaults: [{{kind: melt, target: {{service: payment}}, duration: 1m}}]\n",
            "faults -> 0 -> kind: expected one of latency, errors, timeout, outage, got 'melt'",
        ),
        (
            "workflow: {wf}\nfaults: [{{kind: latency, factor: 2, target: {{service: paymnt}}, duration: 1m}}]\n",
            "faults -> 0 -> target -> service: unknown service 'paymnt'",
        ),
        (
            "workflow: {wf}\nfaults: [{{kind: latency, factor: 2, target: {{service: payment}}}}]\n",
            "faults -> 0 -> duration: missing (required)",
        ),
        (
            "workflow: {wf}\nfaults: [{{kind: errors, rate: 1.5, target: {{service: payment}}, duration: 1m}}]\n",
            "faults -> 0 -> rate: probability 1.5 is not in [0, 1]",
        ),
        ("workflow: {wf}\nload: {{model: closed}}\n", "load -> users: a closed model needs users: N"),
        ("workflow: {wf}\nspeed: warp\n", "speed: expected realtime, max or a positive factor"),
        ("workflow: {wf}\nreactions: {{abandon: 0.7, retry: 0.6}}\n", "reactions: abandon + retry = 1.3 exceeds 1"),
        ("workflow: {wf}\nload: {{profile: {{kind: wave}}}}\n", "load -> profile -> kind: expected constant, ramp"),
    ],
)
def test_bad_scenarios_are_one_line_exit_2(tmp_path: Path, body: str, needle: str) -> None:
    sc = tmp_path / "s.yaml"
    sc.write_text(body.format(wf=WORKFLOWS / "microservices.yaml"))
    proc = run_cli("run", str(sc), "--sessions", "1")
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert needle in err, err
    assert "Traceback" not in err


def test_random_faults_are_drawn_from_the_seed(tmp_path: Path) -> None:
    sc = tmp_path / "rnd.yaml"
    sc.write_text(f"""
seed: 4
workflow: {WORKFLOWS / "microservices.yaml"}
load: {{arrival_rate: 5}}
duration: 6h
speed: max
start: 2026-01-01T00:00:00Z
random_faults:
  - {{id: blip, rate_per_hour: 2, kind: latency, targets: [{{service: payment}}, {{service: search}}],
     duration: [1m, 5m], factor: [2, 8]}}
""")
    truths = []
    for name, seed in (("a", "4"), ("b", "4"), ("c", "5")):
        truth = tmp_path / f"{name}.jsonl"
        proc = run_cli(
            "run",
            str(sc),
            "--progress",
            "off",
            "--sessions",
            "50",
            "--sink",
            "null",
            "--seed",
            seed,
            "--truth",
            f"file:{truth}",
        )
        assert proc.returncode == 0, proc.stderr.decode()
        truths.append([json.loads(x) for x in truth.read_text().splitlines()[1:]])
    a, b, c = truths
    assert a == b and a != c
    # Poisson onsets at 2/h over 6 h: 12 expected (sd ~3.5); each with a drawn target, duration and factor
    assert 3 <= len(a) <= 25
    for f in a:
        assert f["id"].startswith("blip-") and f["target"]["service"] in ("payment", "search")
        assert 2 <= f["params"]["factor"] <= 8
        import datetime as dt

        span = (
            dt.datetime.fromisoformat(f["end"].replace("Z", "+00:00"))
            - dt.datetime.fromisoformat(f["start"].replace("Z", "+00:00"))
        ).total_seconds()
        assert 60 <= span <= 300


def test_spike_profile_raises_the_rate_inside_the_spike() -> None:
    prof = SpikesProfile(spikes=(Spike(at=300.0, duration=120.0, factor=4.0),))
    sim = Simulation(Model(MICRO), 2, Load(duration_s=900, arrival_rate=4, profile=prof), START)
    b = concat(list(sim.batches()))
    firsts = b.cols["t"][(b.cols["seq"] == 0) & (b.cols["attempt"] == 1)] / 1e6
    inside = ((firsts >= 300) & (firsts < 420)).sum() / 120
    outside = ((firsts < 300) | (firsts >= 420)).sum() / 780
    assert abs(inside - 16) < 5 * np.sqrt(16 / 120) and abs(outside - 4) < 5 * np.sqrt(4 / 780)
