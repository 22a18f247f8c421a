"""The command line, through real subprocesses: outputs, reruns, exit codes, and no tracebacks."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import WORKFLOWS, run_cli

ECOM = str(WORKFLOWS / "ecommerce.yaml")
BASE = ["--seed", "7", "--start", "2026-01-01T00:00:00Z", "--progress", "off"]


def emit(tmp: Path, name: str, *extra: str) -> bytes:
    out = tmp / name
    proc = run_cli("run", ECOM, *BASE, "--sessions", "300", "--sink", f"file:{out}", *extra)
    assert proc.returncode == 0, proc.stderr.decode()
    return out.read_bytes()


def test_run_is_repeatable_at_any_speed_and_seed_matters(tmp_path: Path) -> None:
    a = emit(tmp_path, "a.jsonl", "--speed", "max")
    assert a == emit(tmp_path, "b.jsonl", "--speed", "max")
    assert a == emit(tmp_path, "c.jsonl", "--speed", "1000000")
    other = tmp_path / "d.jsonl"
    proc = run_cli(
        "run",
        ECOM,
        "--seed",
        "8",
        "--start",
        "2026-01-01T00:00:00Z",
        "--progress",
        "off",
        "--sessions",
        "300",
        "--speed",
        "max",
        "--sink",
        f"file:{other}",
    )
    assert proc.returncode == 0
    assert other.read_bytes() != a
    lines = a.splitlines()
    assert sum(json.loads(x)["session_end"] for x in lines) == 300


def test_summary_reports_counts_rate_and_seed(tmp_path: Path) -> None:
    proc = run_cli("run", ECOM, *BASE, "--sessions", "200", "--speed", "max", "--sink", "null")
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "200 sessions started, 200 ended" in err
    assert "effective arrival rate" in err
    assert "repeat with --seed 7 --start 2026-01-01T00:00:00Z" in err
    assert "sink null:" in err and "0 failed, 0 dropped" in err
    assert proc.stdout == b""


def test_stdout_is_the_default_sink(tmp_path: Path) -> None:
    proc = run_cli("run", ECOM, *BASE, "--sessions", "20", "--speed", "max")
    assert proc.returncode == 0
    evs = [json.loads(x) for x in proc.stdout.splitlines()]
    assert evs and {e["workflow"] for e in evs} == {"ecommerce"}


def test_gzip_file_is_deterministic_and_equal(tmp_path: Path) -> None:
    plain = emit(tmp_path, "p.jsonl", "--speed", "max")
    g1 = emit(tmp_path, "g1.jsonl.gz", "--speed", "max")
    g2 = emit(tmp_path, "g2.jsonl.gz", "--speed", "max")
    assert g1 == g2
    assert gzip.decompress(g1) == plain


def test_validate_exit_codes(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    proc = run_cli("run", ECOM, *BASE, "--sessions", "3000", "--speed", "max", "--sink", f"file:{out}")
    assert proc.returncode == 0
    ok = run_cli("validate", ECOM, "--source", f"file:{out}", "--report", str(tmp_path / "r.json"))
    assert ok.returncode == 0, ok.stdout.decode()
    assert "verdict: CONSISTENT" in ok.stdout.decode()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verdict"] == "consistent" and report["events"]["sessions"] == 3000
    # the same stream judged against a different chain is rejected
    other = tmp_path / "other.yaml"
    other.write_text(
        (WORKFLOWS / "ecommerce.yaml")
        .read_text()
        .replace("    /api/payment: 0.90\n    /api/cart: 0.10", "    /api/payment: 0.80\n    /api/cart: 0.20")
    )
    bad = run_cli("validate", str(other), "--source", "-", input=out.read_bytes())
    assert bad.returncode == 1
    assert "verdict: REJECTED" in bad.stdout.decode()
    assert "/api/checkout" in bad.stdout.decode()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", ECOM, "--speed", "fast"], "argument --speed: expected realtime, max or a positive factor"),
        (["run", ECOM, "--sessions", "-4"], "argument --sessions: expected a positive integer, got '-4'"),
        (["run", ECOM, "--start", "yesterday"], "argument --start: expected an RFC 3339 timestamp"),
        (["run", ECOM, "--duration", "5 parsecs"], "argument --duration: expected a duration"),
        (["run", ECOM, "--sink", "ftp://x", "--sessions", "1"], "unknown sink 'ftp://x'"),
        (["run", ECOM, "--users", "3", "--arrival-rate", "2"], "choose one load model"),
        (["run", "nope.yaml"], "nope.yaml: (top level): file not found"),
        (["validate", ECOM, "--source", "nope.jsonl"], "--source: nope.jsonl: file not found"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    proc = run_cli(*args)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_bad_workflow_names_file_path_and_value(tmp_path: Path) -> None:
    wf = tmp_path / "w.yaml"
    wf.write_text(
        "entry_points: {/a: 1.0}\ntransitions: {/a: {/b: 1.0}}\nexit_points: [/b]\navg_response_times: {/a: 0}\n"
    )
    proc = run_cli("run", str(wf), "--sessions", "1")
    assert proc.returncode == 2
    assert (
        proc.stderr.decode().strip()
        == f"emitter: error: {wf}: avg_response_times -> /a: expected a positive number, got 0"
    )


def test_sigint_stops_a_realtime_run_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "live.jsonl"
    env = dict(os.environ)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emitter",
            "run",
            ECOM,
            "--seed",
            "1",
            "--arrival-rate",
            "50",
            "--speed",
            "realtime",
            "--progress",
            "lines",
            "--sink",
            f"file:{out}",
        ],
        stderr=subprocess.PIPE,
        env=env,
    )
    time.sleep(3.0)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert time.monotonic() - t0 < 5
    text = err.decode()
    assert proc.returncode == 130, text
    assert "stopped by SIGINT" in text and "Traceback" not in text
    lines = out.read_bytes().splitlines()
    assert lines, text
    for line in lines:
        json.loads(line)  # every line complete
    assert f"{len(lines):,} sent, {len(lines):,} acknowledged" in text
    assert "lag p50" in text


def test_broken_pipe_on_stdout_is_quiet() -> None:
    cmd = f"{sys.executable} -m emitter run {ECOM} --seed 1 --speed max --sessions 5000 --progress off | head -n 3"
    proc = subprocess.run(cmd, shell=True, capture_output=True, timeout=60, check=False)
    assert len(proc.stdout.splitlines()) == 3
    assert b"Traceback" not in proc.stderr


def test_report_paths_are_checked_before_the_run_and_never_truncated_for_nothing(tmp_path: Path) -> None:
    ecom = str(WORKFLOWS / "ecommerce.yaml")
    base = ["run", ecom, "--sessions", "20", "--speed", "max", "--sink", "null", "--progress", "off"]
    for where, needle in ((tmp_path / "no" / "such" / "r.html", "no such directory"), (tmp_path, "is a directory")):
        proc = run_cli(*base, "--report", str(where))
        err = proc.stderr.decode()
        assert proc.returncode == 2 and needle in err and "Traceback" not in err, err
        assert "done:" not in err  # refused before anything ran
    keep = tmp_path / "keep.html"
    keep.write_text("the last report")
    proc = run_cli(*base, "--report", str(keep), "--truth", "file:/proc/nope/t.jsonl")  # fails after the check
    assert proc.returncode == 2, proc.stderr.decode()
    assert keep.read_text() == "the last report"
    proc = run_cli(*base, "--report", f"file:{keep}")  # file:PATH, like --truth
    assert proc.returncode == 0, proc.stderr.decode()
    assert keep.read_text().startswith("<!DOCTYPE html>") and not list(tmp_path.glob("*.tmp"))
    for cmd in (["validate", ecom, "--source", str(keep)], ["score", "--truth", str(keep), "--detections", str(keep)]):
        proc = run_cli(*cmd, "--html", str(tmp_path / "none" / "v.html"))
        assert proc.returncode == 2 and "--html" in proc.stderr.decode() and b"Traceback" not in proc.stderr


def test_report_from_files_refuses_what_it_cannot_read_in_one_line(tmp_path: Path) -> None:
    ecom = str(WORKFLOWS / "ecommerce.yaml")
    files = []
    for seed in ("1", "2"):
        f = tmp_path / f"{seed}.jsonl"
        run_cli("run", ecom, "--seed", seed, "--sessions", "30", "--speed", "max", "--sink", f"file:{f}")
        files.append(str(f))
    out = str(tmp_path / "r.html")
    truth = tmp_path / "t.jsonl"
    truth.write_text('{"type": "fault", "id": "x"}\n')
    for args, needle in (
        ([*files], "events of 2 runs: give --run-id"),
        ([files[0], "--run-id", "nope"], "no events of run nope"),
        ([ecom], "line 1: not an emitter event"),
        ([files[0], "--truth", str(truth)], "no manifest record"),
        ([str(tmp_path / "missing.jsonl")], "file not found"),
    ):
        proc = run_cli("report", *args, "-o", out)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and needle in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not Path(out).exists()
    proc = run_cli(
        "report", *files, "--run-id", json.loads(Path(files[1]).read_text().splitlines()[0])["run_id"], "-o", out
    )
    assert proc.returncode == 0 and "report of" in proc.stderr.decode()
