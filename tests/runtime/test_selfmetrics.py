"""``--metrics-port``: the run's own metrics scraped over HTTP while it runs, and after it, equal to its summary."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
ECOMMERCE = str(ROOT / "workflows" / "ecommerce.yaml")


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample (name, labels without the scope's) -> value, read with prometheus_client's own parser."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if not k.startswith("otel_scope")))
            out[(s.name, labels)] = s.value
    return out


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen[bytes], limit_s: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        m = re.search(pattern, path.read_text())
        if m:
            return m
        assert proc.poll() is None, path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not seen in {limit_s} s: {path.read_text()}")


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_metrics_while_running_and_after_equal_the_summary(tmp_path: Path) -> None:
    err = tmp_path / "stderr.txt"
    out = tmp_path / "events.jsonl"
    argv = [sys.executable, "-m", "emitter", "run", ECOMMERCE, "--seed", "3", "--start", "2026-01-01T00:00:00Z"]
    argv += ["--sessions", "400", "--speed", "40", "--sink", f"file:{out}", "--progress", "off"]
    argv += ["--metrics-port", "127.0.0.1:0", "--metrics-hold", "60s"]
    with err.open("w") as fh:
        proc = subprocess.Popen(argv, stderr=fh, stdout=subprocess.DEVNULL, cwd=tmp_path)
    try:
        url = _wait_for(err, r"Prometheus at (http://\S+/metrics)", proc).group(1)
        events = "emitter_events_total", ()
        seen: list[float] = []
        while "emitter: done" not in err.read_text():
            assert proc.poll() is None, err.read_text()
            got = _scrape(url)
            seen.append(got.get(events, 0.0))
            time.sleep(0.2)
        assert seen == sorted(seen), "a counter went down between scrapes"
        summary = err.read_text()
        total = _number(re.search(r"done: ([\d,]+) events, ([\d,]+) sessions started, ([\d,]+) ended", summary)[1])
        assert any(0 < v < total for v in seen), (seen[:5], total)  # scraped mid-run, not only at the end

        final = _scrape(url)
        m = re.search(r"done: ([\d,]+) events, ([\d,]+) sessions started, ([\d,]+) ended", summary)
        assert m is not None
        assert final[events] == _number(m[1])
        assert final[("emitter_sessions_started_total", ())] == _number(m[2]) == 400
        assert final[("emitter_sessions_ended_total", ())] == _number(m[3])
        assert final[("emitter_sessions_active", ())] == 0
        sink = re.search(
            r"sink (\S+): ([\d,]+) sent, ([\d,]+) acknowledged, ([\d,]+) failed, ([\d,]+) dropped", summary
        )
        assert sink is not None
        label = (("sink", sink[1]),)
        for i, name in enumerate(("sent", "acknowledged", "failed", "dropped"), start=2):
            assert final[(f"emitter_sink_{name}_total", label)] == _number(sink[i]), name
        assert final[("emitter_sink_sent_total", label)] == len(out.read_bytes().splitlines())
        lag = re.search(r"lag p50 ([\d.]+) s, p99 ([\d.]+) s, max ([\d.]+) s", summary)
        assert lag is not None
        assert final[("emitter_schedule_lag_seconds", (("stat", "p99"),))] == pytest.approx(float(lag[2]), abs=5e-5)
        assert final[("emitter_schedule_lag_seconds", (("stat", "max"),))] == pytest.approx(float(lag[3]), abs=5e-5)
        assert final[("process_resident_memory_bytes", ())] > 10 << 20
        # the hold ends at a signal; the run's own outcome (done) stands
        _wait_for(err, r"serving the final metrics", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_bad_or_taken_metrics_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for where, words in (
            (f"127.0.0.1:{port}", "cannot listen on"),
            ("99999", "expected [HOST:]PORT"),
            ("x", "PORT"),
        ):
            argv = [sys.executable, "-m", "emitter", "run", ECOMMERCE, "--sessions", "3", "--speed", "max"]
            argv += ["--sink", "null", "--progress", "off", "--metrics-port", where]
            res = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path)
            assert res.returncode == 2, (where, res.stderr)
            errors = [ln for ln in res.stderr.splitlines() if "error" in ln]
            assert len(errors) == 1 and "--metrics-port" in errors[0] and words in errors[0], res.stderr
            assert "Traceback" not in res.stderr


def test_the_environment_names_the_metrics_port(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "emitter", "run", ECOMMERCE, "--sessions", "3", "--speed", "max"]
    argv += ["--sink", "null", "--progress", "off"]
    env = os.environ | {"EMITTER_METRICS_PORT": "127.0.0.1:0"}
    res = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert re.search(r"Prometheus at http://127\.0\.0\.1:\d+/metrics", res.stderr), res.stderr


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--metrics-otlp", "kafka://127.0.0.1:9092/t"], "--metrics-otlp: expected otlp://HOST:PORT"),
        (["--metrics-otlp", "otlp://127.0.0.1:4317", "--metrics-interval", "0s"], "--metrics-interval"),
        (["--metrics-otlp", "otlp+http://127.0.0.1:4318?compression=zip"], "compression"),
    ],
    ids=["scheme", "interval", "option"],
)
def test_a_bad_metrics_otlp_setting_is_one_line_and_exit_2(flags: list[str], words: str, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "emitter", "run", ECOMMERCE, "--sessions", "3", "--speed", "max"]
    argv += ["--sink", "null", "--progress", "off", *flags]
    res = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and words in errors[0], res.stderr
    assert "Traceback" not in res.stderr


def test_the_environments_metrics_port_does_not_stop_an_offline_validation(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    run = [sys.executable, "-m", "emitter", "run", ECOMMERCE, "--sessions", "50", "--speed", "max", "--seed", "1"]
    res = subprocess.run(
        [*run, "--sink", f"file:{events}", "--progress", "off"], check=False, capture_output=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    env = os.environ | {"EMITTER_METRICS_PORT": "127.0.0.1:0"}
    argv = [sys.executable, "-m", "emitter", "validate", ECOMMERCE, "--source", str(events)]
    res = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode in (0, 1) and "metrics" not in res.stderr, res.stderr
    res = subprocess.run([*argv, "--metrics-port", "0"], check=False, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--metrics-port: only a live validation" in res.stderr, res.stderr


def test_a_bad_port_from_the_environment_is_named_as_such(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "emitter", "run", ECOMMERCE, "--sessions", "3", "--sink", "null", "--progress", "off"]
    env = os.environ | {"EMITTER_METRICS_PORT": "nope"}
    res = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert res.returncode == 2 and "environment: EMITTER_METRICS_PORT: expected [HOST:]PORT" in res.stderr, res.stderr


def test_a_hold_without_a_page_is_refused(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "emitter", "run", ECOMMERCE, "--sessions", "3", "--sink", "null", "--progress", "off"]
    res = subprocess.run(
        [*argv, "--metrics-hold", "5s"], check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert res.returncode == 2 and "--metrics-hold: needs --metrics-port" in res.stderr, res.stderr
