"""``emitter fit`` throughput in spans/s, beside the validator's ingest of the same data.

The data: the microservices workflow (about 5 spans per call) sent over OTLP/gRPC into a private real
collector (bench_otlp's: the same binary and configuration as deploy/local/otelcol.sh, file exporter only),
whose OTLP-JSON file is then read by both, alternating, in this process:

* anchor: the validator's file ingest (``emitter validate --source FILE``'s reading: OTLP-JSON lines to root
  calls, sessions rebuilt, counted), which reads every span but keeps only the roots;
* ours: ``emitter fit``'s reading and fitting (every span kept: roots become calls, children give the
  service graph and own times), to the written YAML.

Both rates are spans in the file / wall seconds. The goal, as for every reader here: report the ratio.

    python -m bench.bench_fit [--runs 5] [--sessions 4000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from emitter.fit import FitOptions, fit, read_traffic
from emitter.inputs.workflow import load_workflow
from emitter.sinks.otlp import otlp_sink
from emitter.validate.assemble import Assembler
from emitter.validate.sources import read_file_source

from .bench_otlp import SEED, START, Collector, collector_binary
from .common import compare, run_at_max_speed

WORKFLOW = "workflows/microservices.yaml"


def make_traces(sessions: int, workdir: Path) -> tuple[Path, int]:
    out = workdir / "otlp.jsonl"
    (workdir / "col").mkdir()
    with Collector(collector_binary(), workdir / "col", settle_s=1.0) as col:
        sink = otlp_sink(f"otlp://{col.endpoint}", {})
        run_at_max_speed(load_workflow(WORKFLOW), sink, sessions, SEED, START)
        col.settled()
        spans, _ = col.count_spans()
        out.write_bytes(col.file.read_bytes())
    return out, spans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=4000)
    a = ap.parse_args()
    wf = load_workflow(WORKFLOW)
    with tempfile.TemporaryDirectory() as d:
        traces, spans = make_traces(a.sessions, Path(d))
        mb = traces.stat().st_size / 1e6
        print(f"data: {spans:,} spans from {a.sessions:,} sessions in {mb:.1f} MB of OTLP-JSON")

        def ours() -> int:
            calls, sp, _, _ = read_traffic(traces, "otlp-json")
            res = fit(calls, sp, FitOptions(name="bench"))
            (Path(d) / "fitted.yaml").write_text(res.yaml)
            assert res.report["spans"] == spans
            return spans

        def anchor() -> int:
            asm = Assembler(wf)
            read_file_source(asm, str(traces), "otlp-json")
            assert asm.events > 0
            return spans

        compare("fit_otlp_json", ours, anchor, a.runs, "spans/s", "validator ingest (same file)")


if __name__ == "__main__":
    main()
