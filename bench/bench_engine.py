"""Engine -> null sink (every event encoded to JSON) at --speed max, beside a bare heap-of-generators loop.

The anchor: 10,000 Python generators yielding exponential delays, stepped through ``heapq`` (pop the
earliest, push its next time), building no event. The goal is at least 1.0x that loop.

    python -m bench.bench_engine [--runs 5] [--events 2000000]
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections.abc import Iterator

from emitter.inputs.workflow import load_workflow
from emitter.sinks.basic import NullSink

from .common import compare, run_at_max_speed

START = 1_767_225_600_000_000


def heap_of_generators(steps: int, n_gen: int = 10_000) -> int:
    rng = random.Random(1)

    def agent() -> Iterator[float]:
        while True:
            yield rng.expovariate(1.0)

    gens = [agent() for _ in range(n_gen)]
    heap = [(next(g), i) for i, g in enumerate(gens)]
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush
    for _ in range(steps):
        t, i = pop(heap)
        push(heap, (t + next(gens[i]), i))
    return steps


def engine(sessions: int, workflow: str) -> int:
    sink = NullSink()
    st = run_at_max_speed(load_workflow(workflow), sink, sessions, 7, START)
    assert sink.stats.bytes > 0
    return int(st.events)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=200_000, help="engine sessions per run (~8.4 events each)")
    ap.add_argument("--steps", type=int, default=2_000_000, help="anchor steps per run")
    ap.add_argument("--workflow", default="workflows/ecommerce.yaml")
    a = ap.parse_args()
    compare(
        "engine_null_sink",
        lambda: engine(a.sessions, a.workflow),
        lambda: heap_of_generators(a.steps),
        a.runs,
        "events/s",
        "heap-of-generators loop",
    )


if __name__ == "__main__":
    main()
