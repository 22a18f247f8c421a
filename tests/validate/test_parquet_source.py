"""The validator reads the Parquet sink's files (one file, or a directory partitioned by date) as it reads
JSON lines: the same report, field for field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import WORKFLOWS, run_cli

START = "2026-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pq")
    r = run_cli(
        "run",
        str(WORKFLOWS / "ecommerce.yaml"),
        *("--seed", "21", "--num-users", "600", "--date-range", "3", "--start", START, "--speed", "max"),
        *("--progress", "off", "--sink", f"file:{d / 'e.jsonl'}", "--sink", f"parquet:{d / 'e.parquet'}"),
        *("--sink", f"parquet:{d / 'parts'}?partition=date&labels=flat"),
    )
    assert r.returncode == 0, r.stderr
    return d


def _report(outputs: Path, source: str, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    rep = outputs / (Path(source).name + ".report.json")
    r = run_cli("validate", str(WORKFLOWS / "ecommerce.yaml"), "--source", source, "--report", str(rep), *extra)
    return r.returncode, json.loads(rep.read_text())


def test_parquet_file_and_directory_give_the_jsonl_report(outputs: Path) -> None:
    code, want = _report(outputs, str(outputs / "e.jsonl"))
    assert code == 0 and want["verdict"] == "consistent" and want["events"]["read"] > 10_000
    for source in (str(outputs / "e.parquet"), str(outputs / "parts")):
        got_code, got = _report(outputs, source)
        assert got_code == code
        got.pop("source"), want.pop("source", None)
        assert got == want


def test_a_wrong_workflow_is_rejected_from_parquet_too(outputs: Path, tmp_path: Path) -> None:
    text = (WORKFLOWS / "ecommerce.yaml").read_text()
    assert "/api/users/{id}/profile: 0.85" in text
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        text.replace("/api/users/{id}/profile: 0.85", "/api/users/{id}/profile: 0.70").replace(
            "/api/browse: 0.10", "/api/browse: 0.25", 1
        )
    )
    r = run_cli("validate", str(wrong), "--source", str(outputs / "e.parquet"))
    assert r.returncode == 1, r.stdout.decode()[-500:]


def test_a_broken_parquet_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1" + b"\0" * 64)
    r = run_cli("validate", str(WORKFLOWS / "ecommerce.yaml"), "--source", str(bad))
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr.decode() and "Parquet" in err[-1], err
