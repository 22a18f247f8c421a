"""Emitter -> OTLP/gRPC spans/s into a real OpenTelemetry Collector, beside telemetrygen, into the same collector.

Both senders talk to the same collector build and configuration: ``deploy/local/otelcol.sh``'s binary run
with ``config.yaml`` + ``config-nokafka.yaml`` (OTLP gRPC receiver -> batch -> file exporter, no Kafka, so
no broker is the bottleneck). The benchmark runs its own private instance on free ports with its output
file in a temporary directory: it never stops, restarts or reads the shared collector of ``otelcol.sh``
(which may be in use). A fresh collector is started for every measurement, so each starts from an empty
file and the same warm-up.

What is counted: spans RECEIVED by the collector, i.e. the spans in the collector's file output (one
OTLP-JSON request per line, parsed after the run), never the sender's own count: telemetrygen reports
traces *generated*, and its SDK drops most of them at ``--rate 0`` (its batch span processor's queue is
full). The rate is spans in the file / (time of the last write to the file - start of sending); the
last write is the file's mtime once the file has stopped growing for ``--settle`` seconds (the batch
processor's 200 ms timeout and the exporter's 100 ms flush are inside that window for both tools).

* anchor: ``telemetrygen traces --otlp-insecure --rate 0 --duration D --workers W --batch-size B`` (2
  spans per trace: a parent and one child). Start of sending = the process being spawned. ``--tune``
  first sweeps workers x batch size and keeps the best. Measured on the 2-core dev box (10 s each,
  spans/s received): workers 1: 139k / 176k / 169k at batch 512 / 2048 / 8192; workers 2: 68k / 111k /
  86k; workers 4: 36k / 71k / 44k. More workers only burn CPU making spans the SDK then drops, so the
  default is the best, ``--workers 1 --batch-size 2048``. A finite ``--rate`` is far worse (1 worker at
  ``--rate 100000``: ~5.5k spans/s), so ``--rate 0``.
* emitter: the OTLP sink (``otlp://HOST:PORT``, default settings: 512 calls per request, 2 senders, queue
  of 64 requests) driven in-process by the Runner at ``--speed max``. Start of sending = the sink having
  connected (the simulation is built before, off the clock). Every run also checks that the collector
  received exactly the spans the sink says were acknowledged.

Emitter workflows (``--workflows``, comma separated; each is its own result, sharing the anchor's runs):
``3span`` (the default and headline: ecommerce's Markov chain with every endpoint on service ``frontend``
calling ``backend``, so each call is one trace of 3 spans: SERVER, CLIENT, SERVER -- the closest to
telemetrygen's 2), ``ecommerce`` (1 span per trace), ``microservices`` (~5 spans per trace), or a path.

The order within a round is telemetrygen, then each workflow; ``--runs`` rounds; figures are medians and
the ratio is of medians. The goal is >= 1.0x.

    python -m bench.bench_otlp [--runs 5] [--workflows 3span,ecommerce,microservices] [--tune] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
import yaml

from emitter.core.engine import Simulation
from emitter.core.load import Load
from emitter.core.model import Model
from emitter.core.spec import Workflow
from emitter.encode.otlp import encode_otlp
from emitter.inputs.workflow import load_workflow
from emitter.sinks.otlp import OtlpSettings, OtlpSink, parse_otlp_uri

from .common import print_profile, run_at_max_speed, write_result

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / "deploy" / "local"
OTELCOL_SH = LOCAL / "otelcol.sh"
TELEMETRYGEN_SH = LOCAL / "telemetrygen.sh"
CONFIGS = [LOCAL / "otelcol" / "config.yaml", LOCAL / "otelcol" / "config-nokafka.yaml"]
READY_LINE = "Everything is ready"
START = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SEED = 7
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the collector


def collector_binary() -> Path:
    """The collector built by otelcol.sh (built first if needed); the shared instance is not touched."""
    out = subprocess.run([str(OTELCOL_SH), "paths"], capture_output=True, text=True, check=True).stdout
    binary = Path(re.search(r"^binary:\s*(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    if not binary.exists():
        subprocess.run([str(OTELCOL_SH), "build"], check=True)
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a running process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Collector:
    """A private collector (same binary and config as otelcol.sh's, file exporter only) for one measurement."""

    def __init__(self, binary: Path, workdir: Path, settle_s: float) -> None:
        self.binary, self.workdir, self.settle_s = binary, workdir, settle_s
        self.file = workdir / "traces.jsonl"
        self.log = workdir / "otelcol.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def __enter__(self) -> Collector:
        grpc_port, http_port = free_port(), free_port()
        self.endpoint = f"127.0.0.1:{grpc_port}"
        # the config's secured receiver (otlp/secure) gets its own ports, certificate and token too
        tls = self.workdir / "tls"
        subprocess.run([str(LOCAL / "tls.sh"), str(tls)], check=True, stdout=subprocess.DEVNULL)
        token = tls / "token"
        if not token.exists():
            token.write_text(os.urandom(16).hex())
        env = {
            **os.environ,
            "OTELCOL_OTLP_GRPC_ENDPOINT": self.endpoint,
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
            "OTELCOL_OTLP_SECURE_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
            "OTELCOL_OTLP_SECURE_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
            "OTELCOL_TLS_DIR": str(tls),
            "OTELCOL_TOKEN_FILE": str(token),
            "OTELCOL_FILE_PATH": str(self.file),
        }
        self.file.unlink(missing_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), *(f"--config={c}" for c in CONFIGS)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while READY_LINE not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._stop()
                raise RuntimeError(f"collector did not start:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        self.cpu0 = proc_cpu_s(self.proc.pid)
        return self

    def settled(self) -> tuple[float, float]:
        """Wait until the output file stops growing; (wall time of its last write, collector CPU s used)."""
        last_size, last_change = -1, time.monotonic()
        while True:
            size = self.file.stat().st_size if self.file.exists() else 0
            now = time.monotonic()
            if size != last_size:
                last_size, last_change = size, now
            elif now - last_change >= self.settle_s:
                break
            time.sleep(0.05)
        assert self.proc is not None
        t_last = self.file.stat().st_mtime_ns / 1e9 if self.file.exists() else time.time()
        return t_last, proc_cpu_s(self.proc.pid) - self.cpu0

    def count_spans(self) -> tuple[int, int]:
        """(spans, requests) in the output file: one OTLP-JSON ExportTraceServiceRequest per line."""
        spans = lines = 0
        if not self.file.exists():
            return 0, 0
        with self.file.open("rb") as f:
            for line in f:
                if not line.strip():
                    continue
                lines += 1
                for rs in msgspec.json.decode(line).get("resourceSpans", ()):
                    for ss in rs.get("scopeSpans", ()):
                        spans += len(ss.get("spans", ()))
        return spans, lines

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self._stop()
        self.file.unlink(missing_ok=True)


def measure(col: Collector, t0: float) -> dict[str, Any]:
    t_last, col_cpu = col.settled()
    spans, requests = col.count_spans()
    window = t_last - t0
    size = col.file.stat().st_size if col.file.exists() else 0
    return {
        "spans_received": spans,
        "collector_batches": requests,
        "json_bytes_per_span": size / max(spans, 1),
        "window_s": window,
        "rate": spans / window,
        "collector_cpu_s": col_cpu,
        "collector_cores": col_cpu / window,
    }


# --------------------------------------------------------------------------- telemetrygen


def telemetrygen_binary() -> Path:
    out = subprocess.run([str(TELEMETRYGEN_SH)], capture_output=True, text=True, check=True).stdout
    return Path(out.strip().splitlines()[-1])


_GENERATED = re.compile(r'"traces":\s*(\d+)')


def telemetrygen(
    binary: Path, col: Collector, workers: int, batch_size: int, duration_s: float, rate: float = 0
) -> dict[str, Any]:
    cmd = [str(binary), "traces", "--otlp-endpoint", col.endpoint, "--otlp-insecure", "--workers", str(workers)]
    cmd += ["--rate", f"{rate:g}", "--duration", f"{duration_s:g}s", "--batch-size", str(batch_size)]
    log = col.workdir / "telemetrygen.log"
    with log.open("wb") as out:
        t0 = time.time()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    t_exit = time.time()
    text = log.read_text(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"telemetrygen failed ({p.returncode}): {' '.join(cmd)}\n{text[-3000:]}")
    res = measure(col, t0)
    generated = 2 * sum(
        int(m.group(1)) for ln in text.splitlines() if "traces generated" in ln for m in [_GENERATED.search(ln)] if m
    )
    res |= {
        "spans_generated": generated,
        "sender_s": t_exit - t0,
        "sender_cpu_s": usage.ru_utime + usage.ru_stime,
        "settings": {"workers": workers, "batch_size": batch_size, "duration_s": duration_s, "rate": rate},
    }
    return res


# --------------------------------------------------------------------------- the emitter


def three_span_workflow(dest: Path) -> Path:
    """ecommerce.yaml with every endpoint on ``frontend``, which calls ``backend``: 3 spans per call."""
    wf = yaml.safe_load((ROOT / "workflows" / "ecommerce.yaml").read_text())
    wf["name"] = "ecommerce-3span"
    eps = set(wf["entry_points"]) | set(wf["transitions"]) | set(wf["exit_points"])
    for targets in wf["transitions"].values():
        eps |= set(targets)
    wf["endpoints"] = {e: {"service": "frontend"} for e in sorted(eps)}
    wf["services"] = {"frontend": {"calls": ["backend"]}, "backend": {}}
    path = dest / "ecommerce-3span.yaml"
    path.write_text(yaml.safe_dump(wf, sort_keys=False))
    return path


def resolve_workflow(label: str, tmp: Path) -> Path:
    if label == "3span":
        return three_span_workflow(tmp)
    if label in ("ecommerce", "microservices"):
        return ROOT / "workflows" / f"{label}.yaml"
    return Path(label)


def span_sample(wf: Workflow, sessions: int = 5_000) -> tuple[float, float]:
    """(spans per session, spans per trace) of the OTLP encoding, from a short run."""
    sim = Simulation(Model(wf), SEED, Load(sessions=sessions), START)
    events = spans = 0
    for b in sim.batches():
        for req in encode_otlp(b):
            events += req.events
            spans += req.spans
    return spans / sessions, spans / events


class TimedOtlpSink(OtlpSink):
    """The OTLP sink, noting when it has connected and when its flush has every request acknowledged."""

    def __init__(self, settings: OtlpSettings) -> None:
        super().__init__(settings)
        self.t_ready = self.t_flushed = 0.0
        self.threads0: dict[str, float] = {}
        self.threads1: dict[str, float] = {}

    async def start(self) -> None:
        await super().start()
        self.t_ready = time.time()
        self.threads0 = thread_cpu()

    async def flush(self) -> None:
        await super().flush()
        if not self.t_flushed:  # before the runner's worker threads end, so their CPU time is still readable
            self.t_flushed = time.time()
            self.threads1 = thread_cpu()


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's live threads, by thread (Python name, else the OS name, e.g. gRPC's)."""
    names = {t.native_id: re.sub(r"_\d+$", "", t.name) for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(task.name)) or f"{comm} (not Python)"
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def emitter_run(
    wf: Workflow, col: Collector, sessions: int, query: str, profile: cProfile.Profile | None = None
) -> dict[str, Any]:
    sink = TimedOtlpSink(parse_otlp_uri(f"otlp://{col.endpoint}{query}", environ={}))
    cpu0 = time.process_time()
    st = run_at_max_speed(wf, sink, sessions, SEED, START, profile)
    cpu = time.process_time() - cpu0
    ss = sink.stats
    res = measure(col, sink.t_ready)
    if res["spans_received"] != sink.spans_acked:
        raise RuntimeError(f"collector wrote {res['spans_received']:,} spans, the sink had {sink.spans_acked:,} acked")
    res |= {
        "events": st.events,
        "spans_acked": sink.spans_acked,
        "requests_bytes": ss.bytes,
        "sender_s": sink.t_flushed - sink.t_ready,
        "sender_rate": sink.spans_acked / (sink.t_flushed - sink.t_ready),
        "whole_run_s": st.wall_s,
        "sender_cpu_s": cpu,
        "thread_cpu_s": {
            k: round(v - sink.threads0.get(k, 0.0), 2)
            for k, v in sink.threads1.items()
            if v - sink.threads0.get(k, 0.0) > 0.005
        },
    }
    return res


# --------------------------------------------------------------------------- reporting


def breakdown(wf: Workflow, sessions: int, main_thread_cpu_s: float) -> dict[str, float]:
    """Without the profiler: CPU s of the engine alone and of encode_otlp alone over the same run's batches;
    the main thread's remainder (its CPU in the real run - encode) is the gRPC transport and asyncio."""
    sim = Simulation(Model(wf), SEED, Load(sessions=sessions), START)
    t = time.process_time()
    batches = list(sim.batches())
    engine = time.process_time() - t
    t = time.process_time()
    spans = sum(req.spans for b in batches for req in encode_otlp(b))
    encode = time.process_time() - t
    return {
        "spans": spans,
        "engine_cpu_s": engine,
        "encode_otlp_cpu_s": encode,
        "main_thread_cpu_s": main_thread_cpu_s,
        "transport_and_loop_cpu_s": main_thread_cpu_s - encode,
        "engine_us_per_span": engine / spans * 1e6,
        "encode_us_per_span": encode / spans * 1e6,
        "transport_us_per_span": (main_thread_cpu_s - encode) / spans * 1e6,
    }


def tune(col_bin: Path, binary: Path, workdir: Path, settle: float, duration: float) -> tuple[int, int]:
    best = (0.0, 1, 2048)
    print("telemetrygen sweep (spans/s received):", file=sys.stderr)
    for workers in (1, 2, 4):
        for batch in (512, 2048, 8192):
            with Collector(col_bin, workdir, settle) as col:
                r = telemetrygen(binary, col, workers, batch, duration)
            print(f"  workers {workers} batch {batch}: {r['rate']:,.0f}", file=sys.stderr)
            best = max(best, (r["rate"], workers, batch))
    print(f"  best: workers {best[1]}, batch size {best[2]}", file=sys.stderr)
    return best[1], best[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workflows", default="3span,ecommerce,microservices", help="comma separated (see above)")
    ap.add_argument("--spans", type=int, default=1_500_000, help="target spans per emitter run (sets --sessions)")
    ap.add_argument("--duration", type=float, default=10.0, help="telemetrygen --duration, seconds")
    ap.add_argument("--tg-workers", type=int, default=1, help="telemetrygen --workers (best measured here: 1)")
    ap.add_argument("--tg-batch-size", type=int, default=2048, help="telemetrygen --batch-size")
    ap.add_argument("--tune", action="store_true", help="sweep telemetrygen workers x batch size first")
    ap.add_argument("--sink-query", default="", help="appended to the emitter's otlp:// URI, e.g. ?batch.events=2048")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds without growth = the collector is done")
    ap.add_argument("--profile", action="store_true", help="cProfile one more emitter run (first workflow)")
    a = ap.parse_args()

    col_bin = collector_binary()
    tg = telemetrygen_binary()
    tmp = Path(tempfile.mkdtemp(prefix="bench-otlp-"))
    try:
        labels = [w.strip() for w in a.workflows.split(",") if w.strip()]
        wfs: dict[str, Workflow] = {}
        sessions: dict[str, int] = {}
        for label in labels:
            wfs[label] = load_workflow(resolve_workflow(label, tmp))
            per_session, per_trace = span_sample(wfs[label])
            sessions[label] = max(1000, round(a.spans / per_session))
            print(
                f"bench_otlp: workflow {label}: {per_trace:.2f} spans per trace, {per_session:.1f} per session, "
                f"{sessions[label]:,} sessions per run",
                file=sys.stderr,
            )

        # warm-up (not counted): imports, numba, gRPC, the page cache for both binaries
        with Collector(col_bin, tmp, a.settle) as col:
            telemetrygen(tg, col, 1, 512, 1.0)
        for label in labels:
            with Collector(col_bin, tmp, a.settle) as col:
                emitter_run(wfs[label], col, 2_000, a.sink_query)

        workers, batch = tune(col_bin, tg, tmp, a.settle, a.duration) if a.tune else (a.tg_workers, a.tg_batch_size)
        print(
            f"bench_otlp: telemetrygen --workers {workers} --rate 0 --batch-size {batch} --duration {a.duration:g}s; "
            f"emitter otlp://HOST:PORT{a.sink_query} in-process at --speed max; {a.runs} rounds",
            file=sys.stderr,
        )
        anchor: list[dict[str, Any]] = []
        ours: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
        for i in range(a.runs):
            with Collector(col_bin, tmp, a.settle) as col:
                anchor.append(telemetrygen(tg, col, workers, batch, a.duration))
            r = anchor[-1]
            print(
                f"  run {i + 1}/{a.runs}: telemetrygen {r['rate']:,.0f} spans/s ({r['spans_received']:,} of "
                f"{r['spans_generated']:,} generated spans received in {r['window_s']:.2f} s; its CPU "
                f"{r['sender_cpu_s']:.1f} s, collector {r['collector_cores']:.2f} cores)",
                file=sys.stderr,
            )
            for label in labels:
                with Collector(col_bin, tmp, a.settle) as col:
                    ours[label].append(emitter_run(wfs[label], col, sessions[label], a.sink_query))
                r = ours[label][-1]
                print(
                    f"           emitter {label}: {r['rate']:,.0f} spans/s ({r['spans_received']:,} spans in "
                    f"{r['window_s']:.2f} s; CPU {r['sender_cpu_s']:.1f} s, collector {r['collector_cores']:.2f} "
                    f"cores)",
                    file=sys.stderr,
                )
        prof_info: dict[str, Any] = {}
        if a.profile:
            label = labels[0]
            main_cpu = statistics.median(r["thread_cpu_s"].get("MainThread", 0.0) for r in ours[label])
            prof_info = breakdown(wfs[label], sessions[label], main_cpu)
            prof = cProfile.Profile()
            with Collector(col_bin, tmp, a.settle) as col:
                r = emitter_run(wfs[label], col, sessions[label], a.sink_query, prof)
            print_profile(
                prof,
                f"one emitter {label} run ({r['rate']:,.0f} spans/s under the profiler)",
                top=30,
                also=r"encode_otlp|otlp\.py.*export|_send|batches|_step|runner",
            )
            prof_info["profiled_thread_cpu_s"] = r["thread_cpu_s"]
            b = prof_info
            print(
                f"emitter {label}, CPU per span without the profiler: engine {b['engine_us_per_span']:.2f} us "
                f"(its own thread), encode_otlp {b['encode_us_per_span']:.2f} us, gRPC transport + asyncio "
                f"{b['transport_us_per_span']:.2f} us (main thread {b['main_thread_cpu_s']:.2f} s in a real run "
                f"- encode alone {b['encode_otlp_cpu_s']:.2f} s)",
                file=sys.stderr,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    an = statistics.median(r["rate"] for r in anchor)
    for label in labels:
        o = statistics.median(r["rate"] for r in ours[label])
        name = f"otlp_grpc_{label}" if label in ("3span", "ecommerce", "microservices") else "otlp_grpc_custom"
        res = {
            "benchmark": name,
            "unit": "spans/s received by the collector",
            "runs": a.runs,
            "anchor": "telemetrygen traces",
            "anchor_median": an,
            "emitter_median": o,
            "ratio": o / an,
            "goal": 1.0,
            "anchor_runs": [r["rate"] for r in anchor],
            "emitter_runs": [r["rate"] for r in ours[label]],
            "emitter_sender_rate_median": statistics.median(r["sender_rate"] for r in ours[label]),
            "emitter_spans_per_cpu_s_median": statistics.median(
                r["spans_received"] / r["sender_cpu_s"] for r in ours[label]
            ),
            "anchor_spans_per_cpu_s_median": statistics.median(r["spans_received"] / r["sender_cpu_s"] for r in anchor),
            "profile": prof_info if label == labels[0] else {},
            "anchor_details": anchor,
            "emitter_details": ours[label],
            "settings": {
                "workflow": label,
                "sessions_per_run": sessions[label],
                "sink_query": a.sink_query,
                "telemetrygen": {"workers": workers, "batch_size": batch, "rate": 0, "duration_s": a.duration},
                "collector": "otelcol.sh binary, config.yaml + config-nokafka.yaml, private instance per run",
                "settle_s": a.settle,
            },
        }
        print(
            f"{name}: emitter {o:,.0f} spans/s vs telemetrygen {an:,.0f} spans/s received by the collector "
            f"(medians of {a.runs}): ratio {o / an:.2f}x (goal >= 1.0x)"
        )
        write_result(name, res)


if __name__ == "__main__":
    main()
