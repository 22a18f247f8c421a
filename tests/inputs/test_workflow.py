"""Workflow files: the seed format, extensions, every validation error, and the round trip."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import yaml

from emitter.core.spec import EXIT
from emitter.errors import ConfigError
from emitter.inputs.workflow import load_workflow, loads_workflow, parse_workflow, workflow_yaml

from ..conftest import WORKFLOWS, run_cli

SEED_MINIMAL = """
name: tiny
entry_points: {/a: 0.7, /b: 0.3}
transitions:
  /a: {/b: 0.5, /done: 0.5}
  /b: {/a: 0.2, /done: 0.8}
exit_points: [/done]
avg_response_times: {/a: 50, /b: 80, /done: 20}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loads_workflow(text, "wf.yaml")
    return [str(p) for p in info.value.problems]


def one_problem(text: str) -> str:
    probs = problems(text)
    assert len(probs) == 1, probs
    return probs[0]


def test_seed_format_loads_unchanged() -> None:
    wf = loads_workflow(SEED_MINIMAL)
    assert wf.name == "tiny"
    assert dict(wf.entry_points) == {"/a": 0.7, "/b": 0.3}
    assert wf.exit_points == ("/done",)
    assert wf.states == ("/a", "/b", "/done")
    assert math.isclose(wf.endpoints["/a"].latency.mean(), 50.0)
    assert wf.endpoints["/done"].method == "GET"
    assert [ut.name for ut in wf.user_types] == ["premium", "free", "guest"]
    assert [ut.weight for ut in wf.user_types] == [0.3, 0.5, 0.2]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_workflows_pass_check(path: Path) -> None:
    wf = load_workflow(path)
    assert len(wf.states) >= 2
    proc = run_cli("check", str(path))
    assert proc.returncode == 0, proc.stderr.decode()


def test_ecommerce_is_the_seed_workflow() -> None:
    wf = load_workflow(WORKFLOWS / "ecommerce.yaml")
    assert len(wf.states) == 15
    assert dict(wf.entry_points) == {"/api/login": 0.6, "/api/browse": 0.3, "/api/search": 0.1}
    assert set(wf.exit_points) == {
        "/api/logout",
        "/api/orders/{id}/confirmation",
        "/api/orders/{id}/tracking",
    }
    path1 = [
        "/api/login",
        "/api/users/{id}/profile",
        "/api/browse",
        "/api/products/{id}",
        "/api/cart",
        "/api/checkout",
        "/api/payment",
        "/api/orders/{id}/confirmation",
    ]
    path2 = ["/api/browse", "/api/products/{id}", "/api/products/{id}/reviews", "/api/cart"]
    path3 = [
        "/api/login",
        "/api/users/{id}/profile",
        "/api/orders",
        "/api/orders/{id}",
        "/api/orders/{id}/tracking",
    ]
    for p in (path1, path2, path3):
        for a, b in itertools.pairwise(p):
            assert wf.transitions[a][b] > 0, (a, b)
    assert wf.transitions["/api/login"]["/api/users/{id}/profile"] == 0.85
    assert wf.transitions["/api/browse"]["/api/products/{id}"] == 0.60
    assert wf.transitions["/api/cart"]["/api/checkout"] == 0.50
    assert wf.transitions["/api/checkout"]["/api/payment"] == 0.90


def test_microservices_has_a_service_graph() -> None:
    wf = load_workflow(WORKFLOWS / "microservices.yaml")
    assert len(wf.states) == 15
    used = {e.service for e in wf.endpoints.values()}
    assert len(wf.services) >= 6
    assert used <= set(wf.services)
    assert sum(len(s.calls) for s in wf.services.values()) >= 5


def test_round_trip_reloads_identically() -> None:
    for path in sorted(WORKFLOWS.glob("*.yaml")):
        wf = load_workflow(path)
        again = loads_workflow(workflow_yaml(wf), "dumped.yaml")
        assert again.to_dict() == wf.to_dict()
        assert again.digest == wf.digest
        assert workflow_yaml(loads_workflow(workflow_yaml(again))) == workflow_yaml(again)


def test_extensions_are_read() -> None:
    text = (
        SEED_MINIMAL
        + """
endpoints:
  /a: {method: put, service: alpha, latency: {dist: lognormal, p50: 40, p99: 300},
       errors: {rate: 0.1, codes: {500: 0.25, 503: 0.75}}}
  /b: {latency: {dist: mixture, components: [{weight: 3, dist: constant, value: 5}, {weight: 1, dist: uniform, min: 10, max: 20}]},
       query: {q: {values: [x y, z], weights: [1, 3]}}}
think_time: {dist: exponential, mean: 2}
user_types:
  pro: {weight: 0.25, overrides: {latency_factor: 0.5, transitions: {/a: {/done: 1.0}}}}
  basic: 0.75
max_calls: 7
"""
    )
    wf = loads_workflow(text)
    a = wf.endpoints["/a"]
    assert (a.method, a.service, a.error_rate) == ("PUT", "alpha", 0.1)
    assert dict(a.error_codes) == {500: 0.25, 503: 0.75}
    assert math.isclose(wf.endpoints["/b"].latency.mean(), 0.75 * 5 + 0.25 * 15)
    assert wf.max_calls == 7
    assert wf.row_for("pro", "/a") == {"/done": 1.0}
    assert wf.row_for("basic", "/a") == {"/b": 0.5, "/done": 0.5}
    assert wf.user_type("pro").latency_factor == 0.5


def test_exit_pseudo_target() -> None:
    wf = loads_workflow("""
entry_points: {/a: 1.0}
transitions: {/a: {/a: 0.4, $exit: 0.6}}
exit_points: []
""")
    assert wf.row_for("free", "/a") == {"/a": 0.4, EXIT: 0.6}


# ------------------------------------------------------------------ every validation error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            SEED_MINIMAL.replace("/a: 0.7", "/a: 1.7"),
            "wf.yaml: entry_points -> /a: probability 1.7 is not in [0, 1]",
        ),
        (
            SEED_MINIMAL.replace("/b: 0.5, /done: 0.5", "/b: 0.5, /done: 0.6"),
            "wf.yaml: transitions -> /a: probabilities sum to 1.1, not 1 (within 1e-6)",
        ),
        (
            SEED_MINIMAL.replace("/a: 0.7, /b: 0.3", "/a: 0.7, /b: 0.2"),
            "wf.yaml: entry_points: probabilities sum to 0.9, not 1 (within 1e-6)",
        ),
        (
            SEED_MINIMAL.replace("/b: 0.5, /done: 0.5", "/c: 0.5, /done: 0.5"),
            "wf.yaml: transitions -> /a -> /c: unknown target '/c' from state '/a': not an exit point and has no transitions",
        ),
        (
            SEED_MINIMAL.replace("/a: 0.7, /b: 0.3", "/a: 0.7, /z: 0.3"),
            "wf.yaml: entry_points -> /z: unknown entry point '/z': not an exit point and has no transitions",
        ),
        (
            SEED_MINIMAL.replace("/b: {/a: 0.2, /done: 0.8}", "/b: {}"),
            "wf.yaml: transitions -> /b: dead end: state '/b' has no transitions and is not an exit point",
        ),
        (
            SEED_MINIMAL.replace("/b: 80", "/b: -80"),
            "wf.yaml: avg_response_times -> /b: expected a positive number, got -80",
        ),
        (
            SEED_MINIMAL.replace("/b: 80", "/b: fast"),
            "wf.yaml: avg_response_times -> /b: expected a number, got 'fast'",
        ),
        (
            SEED_MINIMAL.replace("/a: 0.7", "/a: 'x'"),
            "wf.yaml: entry_points -> /a: expected a number, got 'x'",
        ),
        (
            SEED_MINIMAL.replace("exit_points: [/done]", "exit_points: /done"),
            "wf.yaml: exit_points: expected a list, got '/done'",
        ),
        (SEED_MINIMAL + "colour: blue\n", "wf.yaml: colour: unknown key 'colour'"),
        (SEED_MINIMAL + "max_calls: 0\n", "wf.yaml: max_calls: expected an integer >= 1, got 0"),
        (
            SEED_MINIMAL + "endpoints: {/a: {method: FETCH}}\n",
            "wf.yaml: endpoints -> /a -> method: unknown HTTP method 'FETCH'",
        ),
        (
            SEED_MINIMAL + "endpoints: {/a: {latency: {dist: lognormal, p50: 90, p99: 40}}}\n",
            "wf.yaml: endpoints -> /a -> latency -> p99: p99 40 must be above p50 90",
        ),
        (
            SEED_MINIMAL + "endpoints: {/a: {latency: {dist: gauss, mean: 3}}}\n",
            "wf.yaml: endpoints -> /a -> latency -> dist: unknown distribution 'gauss'",
        ),
        (
            SEED_MINIMAL + "endpoints: {/a: {errors: {rate: 0.1, codes: {200: 1.0}}}}\n",
            "wf.yaml: endpoints -> /a -> errors -> codes -> 200: error status 200 is not an error",
        ),
        (SEED_MINIMAL + "user_types: {a: 0.5, b: 0.4}\n", "wf.yaml: user_types: weights sum to 0.9, not 1"),
        (
            SEED_MINIMAL + "user_types: {a: {weight: 1.0, overrides: {transitions: {/q: {/done: 1.0}}}}}\n",
            "wf.yaml: user_types -> a -> overrides -> transitions -> /q: unknown state '/q'",
        ),
        (
            SEED_MINIMAL + "think_time: {dist: uniform, min: 5, max: 1}\n",
            "wf.yaml: think_time -> max: max 1 is below min 5",
        ),
        (
            SEED_MINIMAL + "endpoints: {/a: {params: {id: {min: 1}}}}\n",
            "wf.yaml: endpoints -> /a -> params -> id: route '/a' has no placeholder {id}",
        ),
        (SEED_MINIMAL + "services: {web: {calls: [db]}, db: {calls: [web]}}\n", "call cycle"),
        (
            SEED_MINIMAL + "services: {web: {calls: [nosuch]}}\n",
            "wf.yaml: services -> web -> calls -> 0: unknown service 'nosuch'",
        ),
        ("- just\n- a list\n", "wf.yaml: (top level): expected a mapping of workflow keys"),
    ],
)
def test_each_problem_is_one_clear_line(text: str, expected: str) -> None:
    probs = problems(text)
    assert any(expected in p for p in probs), probs
    assert all("\n" not in p for p in probs)


def test_unreachable_state() -> None:
    text = SEED_MINIMAL + "  /island: {/done: 1.0}\n"
    text = text.replace(
        "exit_points: [/done]\navg_response_times: {/a: 50, /b: 80, /done: 20}\n  /island: {/done: 1.0}\n",
        "  /island: {/done: 1.0}\nexit_points: [/done]\n",
    )
    msg = one_problem(text)
    assert msg == "wf.yaml: transitions -> /island: unreachable state '/island': no path from an entry point reaches it"


def test_state_that_cannot_reach_an_exit() -> None:
    probs = problems("""
entry_points: {/a: 1.0}
transitions:
  /a: {/b: 0.5, /done: 0.5}
  /b: {/c: 1.0}
  /c: {/b: 1.0}
exit_points: [/done]
""")
    assert probs == [
        "wf.yaml: transitions -> /b: state '/b' cannot reach an exit: sessions entering it never end",
        "wf.yaml: transitions -> /c: state '/c' cannot reach an exit: sessions entering it never end",
    ]


def test_missing_required_keys() -> None:
    probs = problems("name: x\n")
    assert "wf.yaml: entry_points: missing (required)" in probs
    assert "wf.yaml: transitions: missing (required)" in probs
    assert "wf.yaml: exit_points: missing (required)" in probs


def test_duplicate_keys_are_refused() -> None:
    msg = one_problem(SEED_MINIMAL.replace("/b: 80", "/b: 80, /b: 90"))
    assert "duplicate key '/b'" in msg and "line" in msg


def test_yaml_syntax_error_names_line() -> None:
    msg = one_problem("entry_points: {/a: 1.0\n")
    assert msg.startswith("wf.yaml: line ")


def test_all_problems_reported_at_once() -> None:
    text = SEED_MINIMAL.replace("/a: 0.7", "/a: 7").replace("/b: 80", "/b: -1")
    assert len(problems(text)) == 2


def test_exit_point_with_transitions_warns() -> None:
    wf = loads_workflow(SEED_MINIMAL.replace("exit_points: [/done]", "  /done: {/a: 1.0}\nexit_points: [/done]"))
    assert any("never used" in w for w in wf.warnings)


def test_parse_workflow_from_dict() -> None:
    data = yaml.safe_load(SEED_MINIMAL)
    assert parse_workflow(data).states == ("/a", "/b", "/done")


# ------------------------------------------------------------------ the command line


def test_check_reports_problems_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SEED_MINIMAL.replace("/a: 0.7", "/a: 1.7"))
    proc = run_cli("check", str(bad))
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert f"{bad}: entry_points -> /a: probability 1.7 is not in [0, 1]" in err
    assert "Traceback" not in err


def test_check_missing_file(tmp_path: Path) -> None:
    proc = run_cli("check", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2
    assert proc.stderr.decode().strip() == f"{tmp_path / 'nope.yaml'}: (top level): file not found"
