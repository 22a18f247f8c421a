"""Against the real three-node cluster (deploy/local/kafka-cluster.sh): the leader of a partition is killed
mid-run (acks=all, min.insync.replicas=2, idempotence); nothing acknowledged is lost and nothing duplicated,
checked by event ids read back with Kafka's own console consumer. The transactional sink (transactional.id)
gives a read_committed consumer every event exactly once, through a leader kill, and hides a killed emitter's
open transaction."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ..conftest import ROOT, WORKFLOWS, run_cli
from .kafka_util import sink_counts

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.xdist_group("kafka-cluster")]
CLUSTER = str(ROOT / "deploy/local/kafka-cluster.sh")
ECOM = str(WORKFLOWS / "ecommerce.yaml")
BASE = ["--seed", "11", "--start", "2026-03-01T00:00:00Z", "--progress", "off"]


def _healthy(timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Wait until every node answers (a node restarted by an earlier test may still be rejoining)."""
    deadline = time.monotonic() + timeout
    while True:
        st = subprocess.run([CLUSTER, "status"], capture_output=True, check=False)
        if st.returncode == 0 or time.monotonic() >= deadline:
            return st
        time.sleep(1)


@pytest.fixture
def cluster() -> str:
    st = _healthy(90)
    if st.returncode != 0:
        pytest.fail(
            "the three-node Kafka cluster is not running: start it with deploy/local/kafka-cluster.sh start "
            "(scripts/test.sh does this), or deselect these tests with -m 'not kafka'\n" + st.stderr.decode()
        )
    return subprocess.run([CLUSTER, "bootstrap"], capture_output=True, text=True, check=True).stdout.strip()


def _leader(bootstrap: str, topic: str, timeout: float = 30.0) -> int:
    """The node that leads partition 0 of ``topic``, once the topic exists."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def ask() -> int | None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            # (describing a topic that does not exist yet would have the broker auto-create it, with default
            # settings, before the sink creates it with its own)
            if topic not in await admin.list_topics():
                return None
            d = await admin.describe_topics([topic])
            parts = d[0]["partitions"] if d and not d[0]["error_code"] else []
            p0 = [p for p in parts if p["partition"] == 0]
            return int(p0[0]["leader"]) if p0 and p0[0]["leader"] >= 0 else None
        finally:
            await admin.close()

    from aiokafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            leader = asyncio.run(ask())
        except (KafkaError, OSError) as exc:  # a node still rejoining after the last test's kill: ask again
            leader, last = None, exc
        if leader is not None:
            return leader
        time.sleep(0.3)
    raise AssertionError(f"topic {topic} has no leader after {timeout} s (last error: {last!r})")


def _console_read(bootstrap: str, topic: str, committed: bool) -> list[str]:
    """Every value in the topic, read by Kafka's own Java console consumer (independent of our clients)."""
    isolation = "read_committed" if committed else "read_uncommitted"
    out = subprocess.run(
        [
            str(ROOT / "deploy/local/kafka.sh"),
            "run",
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--from-beginning",
            "--timeout-ms",
            "10000",
            "--consumer-property",
            f"isolation.level={isolation}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    assert lines or out.returncode == 0, out.stderr[-2000:]
    return [json.loads(x)["event_id"] for x in lines]


def _start_run(
    bootstrap: str, topic: str, copy: Path, extra: str = "", sessions: int = 1500
) -> subprocess.Popen[bytes]:
    uri = f"kafka://{bootstrap}/{topic}?replication.factor=3&partitions=3&retention.ms=-1{extra}"
    args = [*BASE, "--arrival-rate", "100", "--sessions", str(sessions), "--speed", "20"]
    return subprocess.Popen(
        [sys.executable, "-m", "emitter", "run", ECOM, *args, "--sink", f"file:{copy}", "--sink", uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )


@pytest.mark.parametrize("mode", ["idempotent", "transactional"])
def test_leader_killed_mid_run_loses_and_duplicates_nothing(cluster: str, tmp_path: Path, mode: str) -> None:
    topic = f"fo-{uuid.uuid4().hex[:10]}"
    copy = tmp_path / "events.jsonl"
    extra = f"&transactional.id=tx-{uuid.uuid4().hex[:8]}" if mode == "transactional" else ""
    proc = _start_run(cluster, topic, copy, extra)
    killed = None
    try:
        leader = _leader(cluster, topic)
        time.sleep(3)  # well into the run (about 17 s of wall time)
        assert proc.poll() is None, "the run ended before the leader was killed"
        subprocess.run([CLUSTER, "kill", str(leader)], check=True, capture_output=True)
        killed = leader
        _, err_b = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
        if killed is not None:
            subprocess.run([CLUSTER, "start", str(killed)], check=True, capture_output=True)
            _healthy(90)
    err = err_b.decode()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    emitted = [json.loads(x)["event_id"] for x in copy.read_bytes().splitlines()]
    counts = sink_counts(err, "kafka://")
    assert counts["acknowledged"] == counts["sent"] == len(emitted) > 5000, counts
    assert counts["failed"] == counts["dropped"] == 0
    got = _console_read(cluster, topic, committed=mode == "transactional")
    assert len(got) == len(set(got)), f"{len(got) - len(set(got))} duplicates"
    assert sorted(got) == sorted(emitted)


def test_a_killed_emitters_open_transaction_stays_invisible(cluster: str, tmp_path: Path) -> None:
    topic = f"tx-{uuid.uuid4().hex[:10]}"
    txid = f"tx-{uuid.uuid4().hex[:8]}"
    first = tmp_path / "first.jsonl"
    # long transactions, so that one is surely open when the emitter is killed
    proc = _start_run(cluster, topic, first, f"&transactional.id={txid}&transaction.interval.ms=2000")
    try:
        _leader(cluster, topic)
        time.sleep(4)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    # the same transactional.id again: the new producer fences the old one, whose open transaction is aborted
    second = tmp_path / "second.jsonl"
    again = run_cli(
        "run",
        ECOM,
        *BASE[:2],
        "--start",
        "2026-03-02T00:00:00Z",
        "--progress",
        "off",
        "--sessions",
        "200",
        "--speed",
        "max",
        "--sink",
        f"file:{second}",
        "--sink",
        f"kafka://{cluster}/{topic}?transactional.id={txid}",
        timeout=120,
    )
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    emitted_first = {json.loads(x)["event_id"] for x in first.read_bytes().splitlines()}
    emitted_second = [json.loads(x)["event_id"] for x in second.read_bytes().splitlines()]
    committed = _console_read(cluster, topic, committed=True)
    everything = _console_read(cluster, topic, committed=False)
    assert len(committed) == len(set(committed))
    assert set(emitted_second) <= set(committed)  # the second run committed everything
    from_first = [e for e in committed if e in emitted_first]
    assert from_first and len(from_first) == len(committed) - len(emitted_second)
    # what the killed run had written but not committed is in the log, and a read_committed consumer skips it
    assert len(everything) > len(committed)
    assert set(everything) - set(committed) <= emitted_first
