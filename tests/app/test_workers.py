"""``--workers W`` through the real command line: the single run's bytes as they are in one ordered stream,
its events in a file per worker, for open, dataset, fault and multi-workflow runs, as fast as possible and
paced; one summary that adds up, one truth; stops, a lost worker and refused settings.

Runs span at least three blocks of sessions (8,192 each), so that each of three workers walks some.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import WORKFLOWS, run_cli

ECOM = str(WORKFLOWS / "ecommerce.yaml")
BASE = ["--seed", "12", "--start", "2026-01-01T00:00:00Z", "--progress", "off"]
MULTI = """\
name: multi
workflows:
  - {{path: {ecom}, weight: 3}}
  - {{path: {micro}, weight: 1}}
load: {{arrival_rate: 500}}
sessions: 30000
"""
CASES = {
    "open": [ECOM, "--sessions", "30000", "--speed", "max"],
    "dataset": [ECOM, "--num-users", "9000", "--sessions-per-user", "3,2", "--date-range", "2d", "--speed", "max"],
    "faults": [
        str(WORKFLOWS / "scenarios" / "payment-slowdown.yaml"),
        "--arrival-rate",
        "40",
        "--duration",
        "12m",
        "--speed",
        "max",
    ],
    "multi": ["MULTI", "--speed", "max"],
    "paced": [ECOM, "--sessions", "20000", "--arrival-rate", "2000", "--speed", "40"],
    "closed": [ECOM, "--users", "400000", "--duration", "6s", "--speed", "max"],  # (four blocks of users)
}


def _args(case: str, d: Path) -> list[str]:
    args = list(CASES[case])
    if args[0] == "MULTI":
        path = d / "multi.yaml"
        path.write_text(MULTI.format(ecom=ECOM, micro=WORKFLOWS / "microservices.yaml"))
        args[0] = str(path)
    return args


def _run(args: list[str], d: Path, *extra: str, code: int = 0) -> str:
    proc = run_cli("run", *args, *BASE, *extra, cwd=d, timeout=300)
    assert proc.returncode == code, proc.stderr.decode()
    return proc.stderr.decode()


def _counts(err: str, sink: str) -> dict[str, int]:
    line = next(x for x in err.splitlines() if f"sink {sink}" in x)
    found = re.findall(r"([\d,]+) (sent|acknowledged|failed|dropped)\b", line.rsplit("): ", 1)[-1])
    return {word: int(num.replace(",", "")) for num, word in found}


def _events(err: str) -> int:
    return int(re.search(r"(?:done|stopped[^:]*): ([\d,]+) events", err)[1].replace(",", ""))


@pytest.fixture(scope="module", params=sorted(CASES))
def single(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, bytes]:
    d = tmp_path_factory.mktemp(f"single-{request.param}")
    err = _run(_args(request.param, d), d, "--sink", f"file:{d / 'all.jsonl'}", "--truth", f"file:{d / 't.jsonl'}")
    sessions = int(re.search(r"([\d,]+) sessions started", err)[1].replace(",", ""))
    assert sessions > 2 * 8192, sessions  # three blocks at least
    return request.param, d, (d / "all.jsonl").read_bytes()


@pytest.mark.parametrize("w", [2, 3])
def test_workers_write_the_single_runs_bytes_and_a_file_each(
    single: tuple[str, Path, bytes], w: int, tmp_path: Path
) -> None:
    case, d, want = single
    err = _run(
        _args(case, tmp_path),
        tmp_path,
        "--workers",
        str(w),
        "--sink",
        f"file:{tmp_path / 'merged.jsonl'}",
        "--sink",
        f"file:{tmp_path / 'part-{worker}.jsonl'}",
        "--truth",
        f"file:{tmp_path / 't.jsonl'}",
    )
    assert f"{w} workers" in err
    assert (tmp_path / "merged.jsonl").read_bytes() == want  # one ordered stream: the single run's bytes
    parts = [(tmp_path / f"part-{k}.jsonl").read_bytes().splitlines() for k in range(w)]
    assert all(parts), [len(p) for p in parts]  # every worker had a share
    assert sorted(ln for p in parts for ln in p) == sorted(want.splitlines())  # a file each: the same events
    assert (tmp_path / "t.jsonl").read_bytes() == (d / "t.jsonl").read_bytes()  # one truth, the single run's
    n = len(want.splitlines())
    assert _events(err) == n
    assert _counts(err, "file:" + str(tmp_path / "merged.jsonl")) == {
        "sent": n,
        "acknowledged": n,
        "failed": 0,
        "dropped": 0,
    }
    per = _counts(err, "file:" + str(tmp_path / "part-{worker}.jsonl"))
    assert per == {"sent": n, "acknowledged": n, "failed": 0, "dropped": 0}, err  # the workers' counts, summed
    if case == "paced":
        assert "emit time vs schedule" in err and "ordered stream (merged by the parent) vs schedule" in err


def test_workers_inside_a_shard_emit_that_shard(tmp_path: Path) -> None:
    """A pod running W workers over --shard I/N emits exactly shard I/N."""
    args = [ECOM, "--sessions", "60000", "--speed", "max"]
    _run(args, tmp_path, "--shard", "1/2", "--sink", f"file:{tmp_path / 'shard.jsonl'}")
    err = _run(args, tmp_path, "--shard", "1/2", "--workers", "2", "--sink", f"file:{tmp_path / 'w.jsonl'}")
    assert "shards 1/4, 3/4" in err
    assert (tmp_path / "w.jsonl").read_bytes() == (tmp_path / "shard.jsonl").read_bytes()


def test_a_worker_without_sessions_does_not_hold_the_run(tmp_path: Path) -> None:
    """600 sessions are one block: the second worker has nothing to do, and the first is not kept waiting."""
    args = [ECOM, "--sessions", "600", "--arrival-rate", "200", "--speed", "100"]
    _run(args, tmp_path, "--sink", f"file:{tmp_path / 'a.jsonl'}")
    err = _run(args, tmp_path, "--workers", "2", "--sink", f"file:{tmp_path / 'b.jsonl'}")
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()
    assert "0 events sent more than 1 s late" in err


LONG = ["--sessions", "400000", "--arrival-rate", "4000", "--speed", "20"]


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "emitter", "run", ECOM, *BASE, *LONG, "--workers", "2", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )


def _wait_for_events(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not (path.exists() and path.stat().st_size > 100_000):
        assert proc.poll() is None and time.monotonic() < deadline, "no events came"
        time.sleep(0.2)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_every_worker_cleanly(tmp_path: Path, sig: int, code: int) -> None:
    out = tmp_path / "m.jsonl"
    proc = _start(tmp_path, "--sink", f"file:{out}")
    _wait_for_events(out, proc)
    proc.send_signal(sig)
    _, err_b = proc.communicate(timeout=60)
    err = err_b.decode()
    assert proc.returncode == code, err
    assert f"stopped by {signal.Signals(sig).name}" in err
    lines = out.read_bytes().splitlines()
    assert lines and _counts(err, f"file:{out}")["acknowledged"] == len(lines) == _events(err)
    times = [json.loads(ln)["timestamp"] for ln in lines]
    assert times == sorted(times)  # what was written is in the stream's order
    assert "Traceback" not in err


def test_a_lost_worker_fails_the_run_without_a_hang(tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    proc = _start(tmp_path, "--sink", f"file:{out}")
    _wait_for_events(out, proc)
    kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, check=False)
    pids = [int(p) for p in kids.stdout.split()]
    assert len(pids) == 2, kids
    os.kill(pids[-1], signal.SIGKILL)
    _, err_b = proc.communicate(timeout=60)
    err = err_b.decode()
    assert proc.returncode == 1, err
    assert re.search(r"error: worker \d ended without finishing \(signal 9\)", err), err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (
            ["--users", "50", "--duration", "1m"],
            "--workers: the closed model (--users) cannot be split into 2 parts with 50 users",
        ),
        (
            ["--users", "20000", "--sessions", "9"],
            "--workers: the closed model (--users) cannot be split with --sessions",
        ),
        (["--report", "r.html"], "--workers: --report is not available with --workers"),
        (["--sink", "parquet:out.parquet"], "put {worker} in its path"),
        (["--sink", "kafka://127.0.0.1:1/t?transactional.id=run"], "transactional.id: with --workers"),
        (["--sink", "bogus:x"], "unknown sink"),
        (["--workers", "0"], "expected a number of processes from 1 to 1024 or auto, got '0'"),
    ],
)
def test_refused_settings_are_one_line(tmp_path: Path, extra: list[str], says: str) -> None:
    bound = ["--sessions", "10"] if "--users" not in extra else []
    proc = run_cli("run", ECOM, *BASE, *bound, "--workers", "2", *extra, cwd=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert says in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.glob("*.jsonl"))


def test_one_worker_is_the_plain_run(tmp_path: Path) -> None:
    args = [ECOM, "--sessions", "3000", "--speed", "max"]
    err = _run(args, tmp_path, "--workers", "1", "--sink", f"file:{tmp_path / 'a.jsonl'}")
    assert "workers" not in err.splitlines()[0]
    _run(args, tmp_path, "--sink", f"file:{tmp_path / 'b.jsonl'}")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_the_fleets_metrics_are_the_summed_summary(tmp_path: Path) -> None:
    """--metrics-port on a --workers run serves the workers' figures summed: mid-run, and after the run
    exactly the summary's."""
    from ..runtime.test_selfmetrics import _scrape, _wait_for

    err = tmp_path / "stderr.txt"
    argv = [sys.executable, "-m", "emitter", "run", ECOM, *BASE, "--sessions", "20000", "--arrival-rate", "2000"]
    argv += ["--speed", "40", "--workers", "2", "--sink", "null", "--metrics-port", "127.0.0.1:0"]
    argv += ["--metrics-hold", "60s"]
    with err.open("w") as fh:
        proc = subprocess.Popen(argv, stderr=fh, stdout=subprocess.DEVNULL, cwd=tmp_path)
    try:
        url = _wait_for(err, r"Prometheus at (http://\S+/metrics)", proc).group(1)
        seen: list[float] = []
        while "emitter: done" not in err.read_text():
            assert proc.poll() is None, err.read_text()
            seen.append(_scrape(url).get(("emitter_events_total", ()), 0.0))
            time.sleep(0.2)
        summary = err.read_text()
        total = _events(summary)
        assert seen == sorted(seen) and any(0 < v < total for v in seen), (seen[:5], total)
        _wait_for(err, r"serving the final metrics", proc)
        final = _scrape(url)
        assert final[("emitter_events_total", ())] == total
        assert final[("emitter_sessions_started_total", ())] == 20000
        counts = _counts(summary, "null")
        for name, word in (("sent", "sent"), ("acknowledged", "acknowledged"), ("failed", "failed")):
            assert final[(f"emitter_sink_{name}_total", (("sink", "null"),))] == counts[word], name
        lag = re.search(r"lag p50 ([\d.]+) s, p99 ([\d.]+) s, max ([\d.]+) s", summary)
        assert lag is not None
        assert final[("emitter_schedule_lag_seconds", (("stat", "max"),))] == pytest.approx(float(lag[3]), abs=5e-5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_worker_that_cannot_reach_its_destination_fails_the_run_in_one_line(tmp_path: Path) -> None:
    proc = run_cli("run", ECOM, *BASE, "--sessions", "30000", "--speed", "max", "--workers", "2",
                   "--sink", "kafka://127.0.0.1:1/t", cwd=tmp_path, timeout=120)  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert len(errors) == 1 and re.search(
        r"error: worker \d: kafka: cannot reach a broker at 127\.0\.0\.1:1", errors[0]
    )
    assert "Traceback" not in err
