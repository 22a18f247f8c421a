"""Parquet sink beside the JSON-lines file sink, on the same run: events/s end to end at --speed max.

Each run simulates the same sessions (same seed, same start) into ``parquet:PATH`` (zstd, row groups of
131,072, nested labels: the defaults) and, as the anchor, into ``file:PATH`` (JSON lines, written straight
to the OS). The goal is at least 0.8x the file sink. Both files land in a temporary directory on the same
disk and are checked afterwards (the Parquet file's row count; the JSON file's line count).

    python -m bench.bench_parquet [--runs 5] [--sessions 200000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from emitter.inputs.workflow import load_workflow
from emitter.sinks.base import open_sink

from .common import compare, run_at_max_speed

START = 1_767_225_600_000_000


def one(kind: str, sessions: int, workflow: str, options: str) -> int:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("e.parquet" if kind == "parquet" else "e.jsonl")
        sink = open_sink(f"{kind}:{path}" + (f"?{options}" if options and kind == "parquet" else ""))
        st = run_at_max_speed(load_workflow(workflow), sink, sessions, 7, START)
        if kind == "parquet":
            assert pq.ParquetFile(path).metadata.num_rows == st.events
        else:
            assert path.read_bytes().count(b"\n") == st.events
        return int(st.events)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=200_000, help="sessions per run (~8.4 events each)")
    ap.add_argument("--workflow", default="workflows/ecommerce.yaml")
    ap.add_argument("--options", default="", help="the Parquet sink's query, e.g. compression=snappy")
    a = ap.parse_args()
    name = "parquet_sink" + ("_" + a.options.replace("=", "-").replace("&", "_") if a.options else "")
    compare(
        name,
        lambda: one("parquet", a.sessions, a.workflow, a.options),
        lambda: one("file", a.sessions, a.workflow, a.options),
        a.runs,
        "events/s",
        "JSON-lines file sink",
    )


if __name__ == "__main__":
    main()
