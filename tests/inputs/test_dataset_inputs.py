"""The dataset model's inputs: the scenario file's keys, the command line's flags, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from emitter.app.config import run_config
from emitter.core.load import WeeklyProfile
from emitter.errors import ConfigError
from emitter.inputs.options import parse_date_range, parse_sessions_per_user, parse_start

from ..conftest import WORKFLOWS, run_cli

DAY = 86_400.0


def test_sessions_per_user_forms() -> None:
    assert parse_sessions_per_user("3,2").components[0].spec == (("mean", 3.0), ("stddev", 2.0))
    assert parse_sessions_per_user([4, 1]).mean() == 4
    assert parse_sessions_per_user(5).mean() == 5
    d = parse_sessions_per_user({"dist": "lognormal", "mean": 3, "stddev": 1})
    assert d.mean() == pytest.approx(3)
    for bad, says in [("x", "MEAN,SD"), ("3,-1", "standard deviation"), ("0.5", "mean"), ({"dist": "normal"}, "mean")]:
        with pytest.raises(ValueError, match=says):
            parse_sessions_per_user(bad)


def test_date_range_forms() -> None:
    assert parse_date_range(30) == (None, 30 * DAY)
    assert parse_date_range("36h") == (None, 36 * 3600.0)
    start = parse_start("2026-01-01T00:00:00Z")
    assert parse_date_range("2026-01-01/2026-01-08") == (start, 7 * DAY)
    assert parse_date_range({"start": "2026-01-01", "end": "2026-01-02T12:00:00Z"}) == (start, 1.5 * DAY)
    for bad in ("2026-01-02/2026-01-01", {"start": "2026-01-01"}, "now/2026-01-01", True, "soon"):
        with pytest.raises(ValueError):
            parse_date_range(bad)


def _scenario(tmp_path: Path, body: str) -> str:
    p = tmp_path / "s.yaml"
    p.write_text(f"workflow: {WORKFLOWS / 'ecommerce.yaml'}\n" + body)
    return str(p)


def test_a_scenario_declares_the_dataset_model(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path,
        "load:\n  model: dataset\n  num_users: 1000\n  sessions_per_user: [4, 2]\n"
        "  date_range: {start: 2026-02-01, end: 2026-03-01}\n"
        "  profile: {kind: weekly, days: [1, 1, 1, 1, 1, 0.3, 0.3], amplitude: 0.5, peak: 14h}\n",
    )
    cfg = run_config(path, {}, {})
    ld = cfg.load
    assert ld.dataset and ld.num_users == 1000 and ld.sessions_per_user.mean() == 4
    assert ld.date_range_s == 28 * DAY and cfg.start_us == parse_start("2026-02-01T00:00:00Z")
    assert isinstance(ld.profile, WeeklyProfile) and ld.profile.peak_at == 14 * 3600
    # the command line overrides the file, as for every option
    cfg2 = run_config(path, {"num_users": 10, "date_range": (None, 2 * DAY)}, {})
    assert cfg2.load.num_users == 10 and cfg2.load.date_range_s == 2 * DAY
    # num_users alone picks the model
    assert run_config(_scenario(tmp_path, "load: {num_users: 5}\n"), {}, {}).load.dataset


@pytest.mark.parametrize(
    ("body", "where", "says"),
    [
        ("load: {model: dataset}\n", "load -> num_users", "needs num_users"),
        ("load: {num_users: 5, arrival_rate: 3}\n", "load -> arrival_rate", "not part of the dataset model"),
        ("load: {model: open, num_users: 5}\n", "load -> num_users", "set model: dataset"),
        ("load: {num_users: 5}\nsessions: 10\n", "sessions", "sets the sessions itself"),
        ("load: {num_users: 5, date_range: 2026-01-05/2026-01-01}\n", "load -> date_range", "ends before"),
        ("load: {num_users: 5, sessions_per_user: [3, 2, 1]}\n", "load -> sessions_per_user", "MEAN,SD"),
        ("load: {num_users: 5, profile: {kind: weekly, days: [1, 2]}}\n", "load -> profile -> days", "seven"),
        (
            "start: 2026-05-01T00:00:00Z\nload: {num_users: 5, date_range: 2026-01-01/2026-01-02}\n",
            "start",
            "another time",
        ),
    ],
)
def test_scenario_errors_name_the_key(tmp_path: Path, body: str, where: str, says: str) -> None:
    path = _scenario(tmp_path, body)
    with pytest.raises(ConfigError) as e:
        run_config(path, {}, {})
    text = str(e.value)
    assert f"{path}: {where}" in text and says in text, text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--num-users", "5", "--users", "3"], "choose one load model"),
        (["--num-users", "5", "--duration", "1m"], "--duration: the dataset model sets the sessions itself"),
        (["--date-range", "3"], "--date-range: is for the dataset model"),
        (["--num-users", "5", "--sessions-per-user", "x"], "--sessions-per-user"),
        (["--num-users", "0"], "--num-users"),
    ],
)
def test_cli_errors_are_one_line_exit_2(args: list[str], says: str) -> None:
    r = run_cli("run", str(WORKFLOWS / "ecommerce.yaml"), "--speed", "max", *args)
    err = r.stderr.decode()
    assert r.returncode == 2 and says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_check_describes_the_dataset_model(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "load: {num_users: 2000, sessions_per_user: [3, 2], date_range: 30}\n")
    r = run_cli("check", path)
    assert r.returncode == 0, r.stderr


def test_a_draw_of_more_sessions_than_a_run_can_hold_is_refused_before_it_starts() -> None:
    args = ["--num-users", "3000", "--sessions-per-user", "100000,0", "--speed", "max", "--sink", "null"]
    r = run_cli("run", str(WORKFLOWS / "ecommerce.yaml"), *args)
    err = r.stderr.decode()
    assert r.returncode == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "load: num_users: the dataset model drew 300,000,000 sessions" in err
    import emitter

    with pytest.raises(ConfigError, match="at most 200,000,000"):
        emitter.generate(WORKFLOWS / "ecommerce.yaml", num_users=3000, sessions_per_user=(100_000, 0))
