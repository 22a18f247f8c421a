"""bench/soak.py's own parts, without a broker: the emitter's progress and summary lines read back, the ramp's
integral, and the claim that the schedule it simulates in process is the child's stream (the real run of the
tool against Kafka is ``python -m bench.soak --smoke``)."""

from __future__ import annotations

import numpy as np

from bench import soak

from ..conftest import WORKFLOWS, run_cli

PROGRESS = (
    "emitter:    14.7s wall | sim 00:00:14 | 19,315 events (1,314/s) | 7,944 active sessions | "
    "lag 0.003s (max 0.019s) | pending 10 dropped 0 failed 2"
)
SUMMARY = [
    "emitter: stopped by SIGINT: 454,336 events, 54,120 sessions started, 26,492 ended, in 125.10 s wall "
    "(3,632 events/s)",
    "emitter: simulated 00:02:04 from 2026-12-03T12:23:04Z at speed realtime; effective arrival rate 600 sessions/s "
    "(configured: open model); 3,664.0 events per simulated second",
    "emitter: emit time vs schedule: lag p50 0.007 s, p99 0.007 s, max 0.023 s; 0 events sent more than 1 s late",
    "emitter: sink kafka://127.0.0.1:9092/t?partitions=6 (acks=all, idempotence=True, on.full=block, "
    "buffer.memory=67108864): 454,336 sent, 454,330 acknowledged, 6 failed, 0 dropped; a note",
    "emitter: error: kafka: delivery failed",
]


def test_progress_line_fields() -> None:
    p = soak.parse_progress(PROGRESS, 3.5)
    assert p is not None
    assert (p.t, p.wall, p.events, p.active, p.sim_s) == (3.5, 14.7, 19_315, 7_944, 14)
    assert (p.lag_last, p.lag_max, p.pending, p.dropped, p.failed) == (0.003, 0.019, 10, 0, 2)
    # an unpaced run has no lag field; the rest is still read
    q = soak.parse_progress(PROGRESS.replace(" | lag 0.003s (max 0.019s)", ""))
    assert q is not None
    assert (q.lag_last, q.failed) == (None, 2)
    assert soak.parse_progress(SUMMARY[0]) is None
    assert soak.parse_progress("emitter: workflow 'ecommerce', open model") is None


def test_summary_figures() -> None:
    s = soak.parse_summary(SUMMARY)
    assert s["outcome"] == "stopped by SIGINT"
    assert (s["events"], s["sessions_started"], s["wall_s"]) == (454_336, 54_120, 125.10)
    assert (s["lag_p50_s"], s["lag_p99_s"], s["lag_max_s"], s["late_events"]) == (0.007, 0.007, 0.023, 0)
    assert s["effective_arrival_rate"] == 600
    [k] = s["sinks"]
    assert (k["sent"], k["acked"], k["failed"], k["dropped"]) == (454_336, 454_330, 6, 0)
    assert k["sink"].startswith("kafka://127.0.0.1:9092/t")
    assert s["errors"] == ["kafka: delivery failed"]


def test_ramp_integral_and_schedule_interpolation() -> None:
    offsets = np.array([0.0, 0.0, 10.0, 30.0])  # a quarter of the events 30 s into their session
    assert soak.ramp_integral(offsets, 0.0) == 0.0
    assert soak.ramp_integral(offsets, 10.0) == 5.0  # F = 1/2 on [0, 10)
    assert soak.ramp_integral(offsets, 100.0) == 100.0 - 40.0 / 4  # w - mean offset once past the ramp
    cum = np.cumsum(np.array([10, 0, 20]))  # events per 10 ms bin
    assert soak.scheduled_by(cum, 0.0) == 0.0
    assert soak.scheduled_by(cum, 0.005) == 5.0
    assert soak.scheduled_by(cum, 0.025) == 20.0
    assert soak.scheduled_by(cum, 9.0) == 30.0


def test_in_process_schedule_is_the_cli_stream() -> None:
    """The same argv simulated here and run by the CLI (at max speed, into null) gives the same events."""
    argv = [
        "run", str(WORKFLOWS / "ecommerce.yaml"), "--arrival-rate", "40.5", "--duration", "20s", "--seed", "5",
        "--start", "2026-12-03T12:00:00Z", "--speed", "max", "--sink", "null", "--progress", "off",
    ]  # fmt: skip
    counts, total = soak.schedule(argv, 3600.0)  # past every session's end
    proc = run_cli(*argv)
    assert proc.returncode == 0, proc.stderr.decode()
    summary = soak.parse_summary(proc.stderr.decode().splitlines())
    assert summary["events"] == total == int(counts.sum()) > 0
    shape = soak.workflow_shape(WORKFLOWS / "ecommerce.yaml", sessions=2_000)
    assert 5 < shape["events_per_session"] < 12
    assert np.all(np.diff(shape["offsets_s"]) >= 0)
