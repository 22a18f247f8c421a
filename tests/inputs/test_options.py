"""Run options declared once: the same option from the command line, the environment or a scenario file,
in that order of precedence, and every default in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from emitter.app.config import run_config
from emitter.errors import ConfigError
from emitter.inputs.options import OPTIONS, option

from ..conftest import WORKFLOWS, run_cli

ECOM = str(WORKFLOWS / "ecommerce.yaml")
NONE = {o.name: None for o in OPTIONS}


def test_defaults_live_in_the_declaration() -> None:
    cfg = run_config(ECOM, NONE, environ={})
    assert cfg.speed == option("speed").default
    assert cfg.sinks == list(option("sink").default)
    assert cfg.progress == option("progress").default
    assert cfg.load.population == option("population").default


def test_environment_sets_options_below_the_command_line() -> None:
    env = {"EMITTER_SEED": "42", "EMITTER_SPEED": "max", "EMITTER_SESSIONS": "12", "EMITTER_SINK": "null file:x.jsonl"}
    cfg = run_config(ECOM, NONE, environ=env)
    assert (cfg.seed, str(cfg.speed), cfg.load.sessions, cfg.sinks) == (42, "max", 12, ["null", "file:x.jsonl"])
    cfg = run_config(ECOM, {**NONE, "seed": 7, "sessions": 3}, environ=env)
    assert (cfg.seed, cfg.load.sessions) == (7, 3)


def test_environment_overrides_a_scenario_file_and_the_command_line_both() -> None:
    sc = str(WORKFLOWS / "scenarios" / "flaky-dependency.yaml")  # seed 23, speed max, arrival rate 6
    cfg = run_config(sc, NONE, environ={})
    assert (cfg.seed, cfg.load.rate) == (23, 6)
    cfg = run_config(sc, NONE, environ={"EMITTER_SEED": "5", "EMITTER_USERS": "9"})
    assert (cfg.seed, cfg.load.users, cfg.load.profile) == (5, 9, None)  # the closed model replaces the file's
    cfg = run_config(sc, {**NONE, "seed": 1, "arrival_rate": 2.0}, environ={"EMITTER_SEED": "5", "EMITTER_USERS": "9"})
    assert (cfg.seed, cfg.load.users, cfg.load.rate) == (1, None, 2.0)


def test_a_bad_environment_value_is_one_line_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"environment: EMITTER_SPEED: expected realtime, max or a positive factor"):
        run_config(ECOM, NONE, environ={"EMITTER_SPEED": "warp"})


def test_the_environment_reaches_the_real_command(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    env = {"EMITTER_SEED": "3", "EMITTER_SESSIONS": "5", "EMITTER_SPEED": "max", "EMITTER_SINK": f"file:{out}"}
    proc = run_cli("run", ECOM, "--progress", "off", env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert "seed 3" in proc.stderr.decode()
    assert sum(b'"session_end":true' in line for line in out.read_bytes().splitlines()) == 5
    bad = run_cli("run", ECOM, env={"EMITTER_SESSIONS": "-1"})
    assert bad.returncode == 2
    assert (
        bad.stderr.decode().strip()
        == "emitter: error: environment: EMITTER_SESSIONS: expected a positive integer, got '-1'"
    )


def test_check_reads_scenario_files(tmp_path: Path) -> None:
    """``emitter check`` once reported every scenario key as an unknown workflow key."""
    good = run_cli("check", *(str(p) for p in sorted((WORKFLOWS / "scenarios").glob("*.yaml"))))
    assert good.returncode == 0, good.stderr.decode()
    assert good.stdout.decode().count("ok: ") == 4 and "scenario 'payment-slowdown'" in good.stdout.decode()
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"workflow: {WORKFLOWS / 'microservices.yaml'}\nfaults: [{{kind: melt, target: {{service: x}}}}]\n")
    proc = run_cli("check", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.decode().strip() == (
        f"{bad}: faults -> 0 -> kind: expected one of latency, errors, timeout, outage, got 'melt'"
    )


def test_yamls_null_is_the_null_sink_and_no_value_elsewhere(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(f"workflow: {WORKFLOWS / 'ecommerce.yaml'}\nsinks: [null, ~]\n")
    assert run_config(str(p), {}, {}).sinks == ["null", "null"]
    p.write_text(f"workflow: {WORKFLOWS / 'ecommerce.yaml'}\nspeed: ~\n")
    with pytest.raises(ConfigError, match="speed: expected a value, got YAML's null"):
        run_config(str(p), {}, {})
