"""Defects found by probing the CLI as a new user would (issue 17): every number true, every edge clean.

Each test runs the real command in a subprocess, as the user did."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ..conftest import ROOT, WORKFLOWS, run_cli

ECOM = str(WORKFLOWS / "ecommerce.yaml")
MAX = ["--seed", "1", "--speed", "max", "--start", "2026-01-01T00:00:00Z", "--progress", "off"]


def _one_line_error(proc: subprocess.CompletedProcess[bytes], code: int = 2) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.startswith("emitter") and ": error: " in x]
    assert len(lines) == 1, err
    return lines[0]


def _summary_counts(err: str, sink: str) -> tuple[int, int, int]:
    line = next(x for x in err.splitlines() if x.startswith(f"emitter: sink {sink}"))
    nums = [int(w.replace(",", "")) for w in line.replace(";", " ").split() if w.replace(",", "").isdigit()]
    return nums[0], nums[1], nums[2]  # sent, acknowledged, failed


# ------------------------------------------------------------------ counts that lie


def test_a_pipe_that_closes_early_is_counted_as_failed() -> None:
    cmd = f"{sys.executable} -m emitter run {ECOM} {' '.join(MAX)} --sessions 2000 | head -c 20000 > /dev/null"
    proc = subprocess.run(cmd, shell=True, capture_output=True, timeout=120, check=False, cwd=ROOT)
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    sent, acked, failed = _summary_counts(err, "stdout")
    assert acked < 1000  # about what the pipe (64 KiB) and head took, not the 17,000 events generated
    assert failed > 0 and sent == acked + failed


def _limited(size: int) -> None:
    """(In the child) files may grow to ``size`` bytes: a write past that fails with EFBIG, as a full disk would."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def test_a_full_disk_is_counted_as_failed(tmp_path: Path) -> None:
    for name in ("out.jsonl", "out.jsonl.gz"):
        target = tmp_path / name
        proc = subprocess.run(
            [sys.executable, "-m", "emitter", "run", ECOM, *MAX, "--sessions", "3000", "--sink", f"file:{target}"],
            capture_output=True,
            timeout=120,
            check=False,
            preexec_fn=lambda: _limited(20_000),
        )
        err = proc.stderr.decode()
        assert proc.returncode == 1, err
        assert "Traceback" not in err and "File too large" in err, err
        sent, acked, failed = _summary_counts(err, f"file:{target}")
        if name.endswith(".gz"):
            assert acked == 0  # a compressed file is acknowledged when it closes whole
        else:
            assert acked * 400 <= 20_000  # the lines that fit (each over 400 bytes), never more
            assert target.read_bytes().count(b"\n") == acked
        assert failed > 0 and sent == acked + failed


def test_unknown_truth_schemes_are_refused(tmp_path: Path) -> None:
    proc = run_cli("run", ECOM, *MAX, "--sessions", "3", "--sink", "null", "--truth", "bogus://x", cwd=tmp_path)
    assert "unknown truth destination 'bogus://x'" in _one_line_error(proc)
    assert not (tmp_path / "bogus:").exists()


# ------------------------------------------------------------------ time and numbers at the edges


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--arrival-rate", "1e-300", "--sessions", "3"],
            "--arrival-rate: expected at least 1e-06 sessions per second",
        ),
        (["--start", "9999-12-31T23:59:59Z", "--sessions", "3"], "would pass 9999-12-31T23:59:59.999999Z"),
        (["--duration", "9000000d"], "--duration: expected at most"),
        (["--population", str(10**19)], "--population: expected at most"),
    ],
)
def test_loads_and_starts_outside_the_time_range_are_refused(args: list[str], needle: str) -> None:
    proc = run_cli("run", ECOM, "--seed", "1", "--speed", "max", "--progress", "off", "--sink", "null", *args)
    assert needle in _one_line_error(proc)


def _scenario(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(f"workflow: {WORKFLOWS / 'microservices.yaml'}\nspeed: max\nsessions: 50\nsinks: [null]\n{body}")
    return p


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            "load: {profile: {kind: spikes, spikes: [{at: 1s, duration: 10s, factor: 1e9}]}}\n",
            "factor: expected at most",
        ),
        (
            "load: {profile: {kind: spikes, spikes: [{at: 1s, duration: 10s, factor: 9223372036854775808}]}}\n",
            "at most",
        ),
        ("retry: {max_attempts: 2, backoff_ms: 1e300}\n", "backoff_ms: expected at most"),
    ],
)
def test_check_and_run_refuse_what_cannot_run(tmp_path: Path, body: str, needle: str) -> None:
    sc = _scenario(tmp_path, body)
    check = run_cli("check", str(sc))
    assert check.returncode == 2 and needle in check.stderr.decode(), check.stderr.decode()
    run = run_cli("run", str(sc), "--progress", "off")
    assert needle in _one_line_error(run)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("endpoints: {/a: {timeout_ms: 1e300}}\n", "timeout_ms: expected at most"),
        ("endpoints: {/a: {params: {id: {min: 1, max: 99999999999999999999}}}}\n", "max: expected at most"),
        ("endpoints: {/a: {latency: {dist: lognormal, mu: 900, sigma: 1}}}\n", "mu: expected at most"),
        ("endpoints: {/a: {latency: {dist: lognormal, p50: 10, p99: 1e300}}}\n", "p99: expected at most"),
    ],
)
def test_check_refuses_numbers_a_run_cannot_hold(tmp_path: Path, extra: str, needle: str) -> None:
    wf = tmp_path / "w.yaml"
    wf.write_text(
        'entry_points: {"/a/{id}": 1.0}\ntransitions: {"/a/{id}": {/done: 1.0}}\nexit_points: [/done]\n'
        + extra.replace("/a:", '"/a/{id}":')
    )
    check = run_cli("check", str(wf))
    assert check.returncode == 2 and needle in check.stderr.decode(), check.stderr.decode()
    run = run_cli("run", str(wf), *MAX, "--sessions", "5", "--sink", "null")
    assert needle in _one_line_error(run)


def _ring(path: Path, n: int) -> Path:
    lines = ["entry_points: {/s0: 1.0}", "exit_points: [/done]", "transitions:"]
    lines += [f"  /s{i}: {{/s{(i + 1) % n}: 0.9, /done: 0.1}}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_large_workflow_runs_in_bounded_memory(tmp_path: Path) -> None:
    """A 10,000-state chain checks and runs: its transition table is sparse, not 3 user types x 10,000 x
    10,001 cells (2.4 GB, twice) as it was."""
    wf = _ring(tmp_path / "big.yaml", 10_000)
    t0 = time.monotonic()
    peaks = []
    for args in (["check", str(wf)], ["run", str(wf), *MAX, "--sessions", "200", "--sink", "null"]):
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([sys.executable, "-m", "emitter", *args], stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)  # this command's own peak (not every earlier test's child)
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            assert proc.returncode == 0, err.read().decode()[-2000:]
        peaks.append(usage.ru_maxrss)
    assert time.monotonic() - t0 < 60
    peak_kb = max(peaks)
    assert peak_kb < 1_500_000, f"a child process peaked at {peak_kb / 1e6:.1f} GB"


def test_a_run_stuck_in_computation_stops_on_sigterm_and_sigint(tmp_path: Path) -> None:
    """Sessions of 65,535 calls: one block of them takes many seconds to compute; a signal still ends the
    run within 5 s (it used to wait for the block)."""
    wf = tmp_path / "long.yaml"
    wf.write_text(
        "entry_points: {/a: 1.0}\ntransitions: {/a: {/a: 0.999999, /done: 0.000001}}\nexit_points: [/done]\n"
        "max_calls: 65535\nthink_time: 0.01\n"
    )
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        proc = subprocess.Popen(
            [sys.executable, "-m", "emitter", "run", str(wf), *MAX, "--sessions", "60", "--sink", "null"],
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        time.sleep(5.0)
        assert proc.poll() is None, "the run ended before the signal: make the block longer"
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - t0 < 5.0, err.decode()[-500:]
        assert proc.returncode == code, (proc.returncode, err.decode()[-500:])
        assert b"Traceback" not in err
        assert b"emitter: stopped by" in err


# ------------------------------------------------------------------ tracebacks where a clear line belongs


@pytest.mark.parametrize("target", ["/sys/x.jsonl", "DIR", "/proc/self/oops/x.jsonl"])
def test_unwritable_file_sinks_are_one_line(tmp_path: Path, target: str) -> None:
    target = str(tmp_path) if target == "DIR" else target
    proc = run_cli("run", ECOM, *MAX, "--sessions", "3", "--sink", f"file:{target}")
    assert "cannot open" in _one_line_error(proc)


def test_validate_report_to_a_missing_directory_is_checked_first(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    assert run_cli("run", ECOM, *MAX, "--sessions", "50", "--sink", f"file:{events}").returncode == 0
    proc = run_cli("validate", ECOM, "--source", str(events), "--report", "/nonexistent/dir/r.json")
    assert "--report" in _one_line_error(proc) and "/nonexistent/dir" in proc.stderr.decode()


def test_a_damaged_gzip_source_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"\x1f\x8b" + os.urandom(4000))
    proc = run_cli("validate", ECOM, "--source", f"file:{junk}")
    assert "not a readable gzip file" in _one_line_error(proc)
    half = tmp_path / "half.gz"
    half.write_bytes(gzip.compress(os.urandom(30_000).hex().encode())[:-200])  # cut short
    assert "gzip" in _one_line_error(run_cli("validate", ECOM, "--source", str(half)))


def test_sigint_early_in_a_run_is_a_quiet_130() -> None:
    for delay in (0.3, 1.0):
        proc = subprocess.Popen(
            [sys.executable, "-m", "emitter", "run", ECOM, "--speed", "realtime", "--sink", "null"],
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # a second one while it stops
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, (delay, proc.returncode, err.decode()[-800:])
        assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err.decode()[-800:]


def test_validate_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    wf = _ring(tmp_path / "ring.yaml", 2_000)  # a report of 2,000 rows: more than a pipe holds
    events = tmp_path / "e.jsonl"
    assert run_cli("run", str(wf), *MAX, "--sessions", "500", "--sink", f"file:{events}").returncode == 0
    cmd = f"{sys.executable} -m emitter validate {wf} --source {events} --all-rows | head -n 1"
    proc = subprocess.run(cmd, shell=True, capture_output=True, timeout=120, check=False, cwd=ROOT)
    assert proc.stdout.count(b"\n") == 1
    assert b"Traceback" not in proc.stderr and b"Broken" not in proc.stderr, proc.stderr.decode()


def test_a_paced_run_into_a_closed_pipe_is_quiet() -> None:
    cmd = (
        f"{sys.executable} -m emitter run {ECOM} --seed 1 --speed 100 --progress off "
        f"--sessions 3000 | head -n 1; exit ${{PIPESTATUS[0]}}"
    )
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=120, check=False, cwd=ROOT)
    err = proc.stderr.decode()
    assert proc.stdout.count(b"\n") == 1
    assert "error" not in err and "Traceback" not in err, err
    assert proc.returncode == 141, (proc.returncode, err)  # 128 + SIGPIPE, as a shell reports a closed pipe


def test_errors_stay_on_one_line_with_control_characters(tmp_path: Path) -> None:
    nul = tmp_path / "nul.yaml"
    nul.write_text('entry_points: {"/a\\0b": 1.5}\ntransitions: {}\nexit_points: []\n')  # a NUL in a key
    line = _one_line_error(run_cli("run", str(nul), *MAX, "--sessions", "1", "--sink", "null"))
    assert "/a\\x00b" in line and "\x00" not in line
    odd = tmp_path / "new\nline.yaml"
    odd.write_text("entry_points: 5\n")
    proc = run_cli("check", str(odd))
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    assert lines and all(x.startswith(str(tmp_path)) for x in lines), lines


# ------------------------------------------------------------------ the validator's input handling


def test_one_odd_first_line_does_not_decide_the_format(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    assert run_cli("run", ECOM, *MAX, "--sessions", "300", "--sink", f"file:{events}").returncode == 0
    mixed = tmp_path / "m.jsonl"
    mixed.write_bytes(b'{"resourceSpans": 5}\n' + events.read_bytes())
    proc = run_cli("validate", ECOM, "--source", str(mixed))
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert "format: jsonl" in proc.stderr.decode()
    assert "1 malformed" in proc.stdout.decode()


@pytest.mark.parametrize(("field", "value"), [("seq", "-5"), ("seq", str(2**63)), ("attempt", "0"), ("attempt", "-1")])
def test_records_outside_the_schema_are_malformed(tmp_path: Path, field: str, value: str) -> None:
    events = tmp_path / "e.jsonl"
    assert run_cli("run", ECOM, *MAX, "--sessions", "300", "--sink", f"file:{events}").returncode == 0
    lines = events.read_bytes().splitlines()
    import json

    bad = json.loads(lines[10])
    bad[field] = int(value)
    bad["session_id"] = "ffffffffffffffff"
    lines.insert(11, json.dumps(bad).encode())
    src = tmp_path / "bad.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    proc = run_cli("validate", ECOM, "--source", str(src))
    assert proc.returncode == 0, proc.stdout.decode()
    assert "1 malformed" in proc.stdout.decode()


def test_usage_problems_exit_2_and_empty_input_exits_3(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert "--min-samples" in _one_line_error(run_cli("validate", ECOM, "--source", str(empty), "--min-samples", "-1"))
    proc = run_cli("validate", ECOM, "--source", str(empty))
    assert proc.returncode == 3, proc.stdout.decode()
    assert "NO DATA" in proc.stdout.decode()


def test_random_faults_beyond_what_a_run_holds_are_refused(tmp_path: Path) -> None:
    """A run draws its random faults before it starts; more than 64 in all (a bit each on every event) is one
    line naming them, not faults silently cut at 64 (nor a traceback beside the cascade preset)."""
    scenario = tmp_path / "many.yaml"
    scenario.write_text(
        f"name: many\nworkflow: {WORKFLOWS / 'ecommerce.yaml'}\nload: {{arrival_rate: 20}}\nduration: 2h\n"
        "random_faults:\n  - {id: blip, rate_per_hour: 600, kind: errors, targets: [{service: cart}], "
        "duration: 2s, rate: 0.5, status: 503}\ncascade_failure_rate: 0.05\n"
    )
    proc = run_cli("run", str(scenario), "--sink", "null", "--speed", "max", cwd=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "random_faults: blip at 600/h over the run's 7200 s draws more faults than a run can hold" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    short = run_cli(
        "run", str(scenario), "--sink", "null", "--speed", "max", "--duration", "3m", "--seed", "1", cwd=tmp_path
    )
    assert short.returncode == 0, short.stderr.decode()  # 30 faults on average over 3 min: they fit
