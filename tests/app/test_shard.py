"""``--shard I/N`` through the real command line: the N shards' events together are the unsharded run's, byte
for byte once ordered, for open, closed, dataset and fault scenarios and any N; one truth per run; what cannot
be split refused.

Every run here spans at least seven blocks of sessions (8,192 each; for the closed model, of users: 131,072
each), so that every shard of 7 walks some.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ..conftest import WORKFLOWS, run_cli

ECOM = str(WORKFLOWS / "ecommerce.yaml")
SCENARIO = str(WORKFLOWS / "scenarios" / "payment-slowdown.yaml")
BASE = ["--seed", "12", "--start", "2026-01-01T00:00:00Z", "--speed", "max", "--progress", "off"]
CASES = {
    "open": [ECOM, "--sessions", "60000"],
    "dataset": [ECOM, "--num-users", "20000", "--sessions-per-user", "3,2", "--date-range", "2d"],
    "faults": [SCENARIO, "--arrival-rate", "40", "--duration", "25m"],
    # blocks of 131,072 users: seven and more; sessions start for 3 s (a short run of a large population)
    "closed": [ECOM, "--users", "920000", "--duration", "3s"],
}


def _ordered(lines: list[bytes]) -> list[bytes]:
    """Events ordered by (timestamp, event_id), as the issue defines equality."""
    evs = [json.loads(ln) for ln in lines]
    key = [(e["timestamp"], e["event_id"]) for e in evs]
    return [ln for _, ln in sorted(zip(key, lines, strict=True))]


def _run(args: list[str], out: Path, *extra: str) -> str:
    proc = run_cli("run", *args, *BASE, "--sink", f"file:{out}", *extra, cwd=out.parent, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stderr.decode()


@pytest.fixture(scope="module", params=sorted(CASES))
def whole(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[bytes]]:
    d = tmp_path_factory.mktemp(f"whole-{request.param}")
    out = d / "all.jsonl"
    err = _run(CASES[request.param], out, "--truth", f"file:{d / 'truth.jsonl'}")
    sessions = int(re.search(r"([\d,]+) sessions started", err)[1].replace(",", ""))
    assert sessions > 6 * 8192 or request.param == "closed", sessions  # seven blocks at least (closed: of users)
    return request.param, _ordered(out.read_bytes().splitlines())


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_the_shards_together_are_the_unsharded_run(whole: tuple[str, list[bytes]], n: int, tmp_path: Path) -> None:
    case, want = whole
    union: list[bytes] = []
    truths = []
    for i in range(n):
        out = tmp_path / f"s{i}.jsonl"
        truth = tmp_path / f"truth{i}.jsonl"
        err = _run(CASES[case], out, "--shard", f"{i}/{n}", "--truth", f"file:{truth}")
        assert (f"shard {i}/{n}" in err) == (n > 1), err
        part = out.read_bytes().splitlines()
        assert part, f"shard {i}/{n} emitted nothing"
        union += part
        truths.append(truth.exists())
    assert len(union) == len(want)
    assert _ordered(union) == want  # the same events, byte for byte
    assert truths == [True] + [False] * (n - 1), "one truth per run, written by shard 0"


def test_a_shard_keeps_its_sessions_whole_and_in_order(tmp_path: Path) -> None:
    out = tmp_path / "s1.jsonl"
    _run(CASES["open"], out, "--shard", "1/3")
    seen: dict[str, list[tuple[int, int]]] = {}
    last = ""
    for line in out.read_bytes().splitlines():
        ev = json.loads(line)
        assert ev["timestamp"] >= last  # a shard's own stream is in time order
        last = ev["timestamp"]
        seen.setdefault(ev["session_id"], []).append((ev["seq"], ev["attempt"]))
    for calls in seen.values():
        assert calls[0] == (0, 1) and calls == sorted(calls)


def test_closed_runs_that_cannot_be_split_and_bad_shards_are_refused_in_one_line(tmp_path: Path) -> None:
    for extra, words in (
        (["--users", "90000", "--duration", "1m", "--shard", "0/2"], "needs 262,144 users or more"),
        (["--users", "20000", "--sessions", "500", "--shard", "0/2"], "cannot be split with --sessions"),
        (["--sessions", "5", "--shard", "2/2"], "expected I/N with 0 <= I < N"),
        (["--sessions", "5", "--shard", "x"], "expected I/N"),
    ):
        proc = run_cli("run", ECOM, *BASE, "--sink", "null", *extra, cwd=tmp_path)
        err = proc.stderr.decode()
        assert proc.returncode == 2, err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
