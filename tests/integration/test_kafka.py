"""Against the real broker: round trip, crash and restart, no broker, garbage in the topic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ..conftest import ROOT, WORKFLOWS, run_cli
from .kafka_util import produce, read_topic, sink_counts

pytestmark = pytest.mark.kafka
ECOM = str(WORKFLOWS / "ecommerce.yaml")
BASE = ["--seed", "3", "--start", "2026-01-01T00:00:00Z", "--progress", "off"]


def test_round_trip_keys_order_and_validator(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    out = tmp_path / "same-run.jsonl"
    proc = run_cli(
        "run",
        ECOM,
        *BASE,
        "--sessions",
        "2000",
        "--speed",
        "max",
        "--sink",
        f"file:{out}",
        "--sink",
        f"kafka://{kafka_bootstrap}/{topic}?partitions=4&retention.ms=-1",
    )
    assert proc.returncode == 0, proc.stderr.decode()
    emitted = [json.loads(x) for x in out.read_bytes().splitlines()]
    recs = read_topic(kafka_bootstrap, topic)
    assert sorted(json.loads(r.value)["event_id"] for r in recs) == sorted(e["event_id"] for e in emitted)
    assert len(recs) == len(emitted)
    per_session: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for r in recs:
        ev = json.loads(r.value)
        assert r.key == ev["session_id"].encode()
        assert dict(r.headers)["emitter.run_id"] == ev["run_id"].encode()
        assert dict(r.headers)["content-type"] == b"application/json"
        partitions_of[ev["session_id"]].add(r.partition)
        per_session[ev["session_id"]].append((r.offset, ev["seq"], ev["attempt"]))
    assert all(len(p) == 1 for p in partitions_of.values())  # a session lives on one partition
    for calls in per_session.values():
        calls.sort()
        assert [(s, a) for _, s, a in calls] == sorted((s, a) for _, s, a in calls)  # order kept
    assert len({p for ps in partitions_of.values() for p in ps}) == 4
    v = run_cli("validate", ECOM, "--source", f"kafka://{kafka_bootstrap}/{topic}", "--until-idle", "3")
    assert v.returncode == 0, v.stdout.decode() + v.stderr.decode()
    assert "verdict: CONSISTENT" in v.stdout.decode()
    assert f"read {len(emitted):,} records" in v.stderr.decode()


def test_record_timestamps_are_event_times(kafka_bootstrap: str, topic: str) -> None:
    import datetime as dt

    proc = run_cli(
        "run", ECOM, *BASE, "--sessions", "50", "--speed", "max", "--sink", f"kafka://{kafka_bootstrap}/{topic}"
    )
    assert proc.returncode == 0, proc.stderr.decode()
    for r in read_topic(kafka_bootstrap, topic, idle=2):
        ts = json.loads(r.value)["timestamp"]
        ms = int(dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000 // 1)
        assert abs(r.timestamp - ms) <= 1


def test_no_broker_fails_clearly() -> None:
    proc = run_cli("run", ECOM, *BASE, "--sessions", "10", "--speed", "max", "--sink", "kafka://127.0.0.1:1/x")
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "kafka: cannot reach a broker at 127.0.0.1:1" in err
    assert "Traceback" not in err
    v = run_cli("validate", ECOM, "--source", "kafka://127.0.0.1:1/x", "--until-idle", "1")
    assert v.returncode == 1 and "cannot reach a broker" in v.stderr.decode() and b"Traceback" not in v.stderr


def test_bad_kafka_options_are_one_line(kafka_bootstrap: str) -> None:
    proc = run_cli("run", ECOM, "--sessions", "1", "--sink", f"kafka://{kafka_bootstrap}/t?acks=2")
    assert proc.returncode == 2
    assert "acks: expected all, 0, 1 or -1, got '2'" in proc.stderr.decode()
    proc = run_cli("run", ECOM, "--sessions", "1", "--sink", f"kafka://{kafka_bootstrap}/t?lingr.ms=2")
    assert proc.returncode == 2 and "unknown Kafka property 'lingr.ms'" in proc.stderr.decode()


def test_validator_survives_garbage(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    proc = run_cli("run", ECOM, *BASE, "--sessions", "500", "--speed", "max", "--sink", f"file:{out}")
    assert proc.returncode == 0
    good = out.read_bytes().splitlines()
    garbage = [b"", b"\x00\xff\xfe", b"{", b"[1,2,3]", b'{"session_id": 5}', b"null", "é".encode("latin-1")] * 5
    produce(kafka_bootstrap, topic, good[:1000] + garbage + good[1000:])
    v = run_cli(
        "validate",
        ECOM,
        "--source",
        f"kafka://{kafka_bootstrap}/{topic}",
        "--until-idle",
        "3",
        "--report",
        str(tmp_path / "r.json"),
    )
    assert v.returncode == 0, v.stdout.decode() + v.stderr.decode()
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["live"]["malformed"] == len(garbage)
    assert rep["live"]["records"] == len(good) + len(garbage)
    assert rep["verdict"] == "consistent"


@pytest.mark.slow
def test_broker_killed_and_restarted_nothing_acknowledged_is_lost_or_duplicated(tmp_path: Path) -> None:
    """A separate broker (own ports and state) is SIGKILLed and restarted while the emitter runs."""
    env = dict(
        os.environ,
        KAFKA_PORT="19192",
        KAFKA_CONTROLLER_PORT="19193",
        EMITTER_LOCAL_DIR=str(ROOT / ".local" / "crash-test"),
    )
    script = str(ROOT / "deploy/local/kafka.sh")
    subprocess.run([script, "reset"], env=env, check=False, capture_output=True)
    subprocess.run([script, "start"], env=env, check=True, capture_output=True)
    bootstrap = "127.0.0.1:19192"
    topic = "crash"
    try:
        out = tmp_path / "all.jsonl"
        emitter = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emitter",
                "run",
                ECOM,
                *BASE,
                "--sessions",
                "2000",
                "--arrival-rate",
                "100",
                "--speed",
                "10",
                "--sink",
                f"file:{out}",
                "--sink",
                f"kafka://{bootstrap}/{topic}?acks=all&enable.idempotence=true&partitions=3&linger.ms=20&retention.ms=-1",
            ],
            stderr=subprocess.PIPE,
        )
        time.sleep(5)
        subprocess.run([script, "kill"], env=env, check=True, capture_output=True)
        time.sleep(2)
        subprocess.run([script, "start"], env=env, check=True, capture_output=True)
        _, err = emitter.communicate(timeout=240)
        text = err.decode()
        assert "Traceback" not in text, text
        counts = sink_counts(text, "kafka://")
        acked, failed = counts["acknowledged"], counts["failed"]
        recs = read_topic(bootstrap, topic, idle=4)
        ids = [json.loads(r.value)["event_id"] for r in recs]
        assert len(set(ids)) == acked, (len(set(ids)), acked, failed, text)  # nothing acknowledged is lost
        emitted = {json.loads(x)["event_id"] for x in out.read_bytes().splitlines()}
        assert set(ids) <= emitted
        # Duplicates: none from the emitter. But the broker can write a copy of the batch that was in flight
        # when it was SIGKILLed: the batch reached its log, the answer never came back, and the producer's
        # retry (same producer id and sequence) is appended after its restart, which sometimes fails to
        # recognise it (seen in about 1 run in 5, on the base commit too). So the only duplicates allowed
        # are whole copies of one batch per partition, appended right after the original.
        _at_most_one_retried_batch_per_partition(recs)
        assert acked + failed == len(emitted)
        assert emitter.returncode in (0, 1)
        assert acked > 0.9 * len(emitted)
    finally:
        subprocess.run([script, "stop"], env=env, check=False, capture_output=True)


def _at_most_one_retried_batch_per_partition(recs: list[Any]) -> None:
    by_part: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for r in recs:
        by_part[r.partition].append((r.offset, json.loads(r.value)["event_id"]))
    for part, rows in by_part.items():
        rows.sort()
        first: dict[str, int] = {}
        copies = []
        for k, (_, eid) in enumerate(rows):
            if eid in first:
                copies.append((first[eid], k))
            else:
                first[eid] = k
        if not copies:
            continue
        orig = [a for a, _ in copies]
        dup = [b for _, b in copies]
        n = len(copies)
        # one run of n originals, then at once its n copies in the same order
        assert orig == list(range(orig[0], orig[0] + n)), (part, orig)
        assert dup == list(range(orig[0] + n, orig[0] + 2 * n)), (part, dup)


def test_sigterm_flushes_and_the_summary_matches_the_topic(kafka_bootstrap: str, topic: str) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emitter",
            "run",
            ECOM,
            "--seed",
            "5",
            "--arrival-rate",
            "40",
            "--speed",
            "20",
            "--progress",
            "off",
            "--sink",
            f"kafka://{kafka_bootstrap}/{topic}?acks=all&linger.ms=50",
        ],
        stderr=subprocess.PIPE,
    )
    time.sleep(4)
    t0 = time.monotonic()
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    text = err.decode()
    assert time.monotonic() - t0 < 5, text
    assert proc.returncode == 143 and "stopped by SIGTERM" in text and "Traceback" not in text
    acked = sink_counts(text, "kafka://")["acknowledged"]
    assert acked > 0
    assert len(read_topic(kafka_bootstrap, topic)) == acked


def test_truth_goes_to_a_compacted_topic(kafka_bootstrap: str, topic: str) -> None:
    truth_topic = f"{topic}.truth"
    proc = run_cli(
        "run",
        str(WORKFLOWS / "scenarios" / "inventory-outage.yaml"),
        "--progress",
        "off",
        "--sessions",
        "100",
        "--sink",
        "null",
        "--truth",
        f"kafka://{kafka_bootstrap}/{truth_topic}",
    )
    assert proc.returncode == 0, proc.stderr.decode()
    recs = read_topic(kafka_bootstrap, truth_topic, idle=2)
    by_key = {r.key.decode(): json.loads(r.value) for r in recs}
    assert set(by_key) == {"manifest", "fault:inventory-down"}
    assert by_key["fault:inventory-down"]["kind"] == "outage"
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async def cleanup_policy() -> str:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            res = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, truth_topic)])
            for _, _, _, _, entries in res[0].resources:
                for name, value, *_ in entries:
                    if name == "cleanup.policy":
                        return str(value)
        finally:
            await admin.close()
        return ""

    assert asyncio.run(cleanup_policy()) == "compact"


def test_live_validator_sees_drift_in_a_window(
    kafka_bootstrap: str, topic: str, tmp_path: Path, open_report: Any
) -> None:
    """The chain changes mid-stream: the window looks catch it, and the verdict rejects."""
    text = (WORKFLOWS / "ecommerce.yaml").read_text()
    drifted = tmp_path / "drifted.yaml"
    drifted.write_text(
        text.replace("    /api/checkout: 0.50\n    /api/browse: 0.30", "    /api/checkout: 0.30\n    /api/browse: 0.50")
    )
    lines = []
    for wf, seed in ((ECOM, "1"), (str(drifted), "2")):
        out = tmp_path / f"{seed}.jsonl"
        proc = run_cli(
            "run",
            wf,
            "--seed",
            seed,
            "--start",
            "2026-01-01T00:00:00Z",
            "--progress",
            "off",
            "--sessions",
            "6000",
            "--speed",
            "max",
            "--sink",
            f"file:{out}",
        )
        assert proc.returncode == 0
        lines += out.read_bytes().splitlines()
    produce(kafka_bootstrap, topic, lines)
    v = run_cli(
        "validate",
        ECOM,
        "--source",
        f"kafka://{kafka_bootstrap}/{topic}",
        "--until-idle",
        "3",
        "--report",
        str(tmp_path / "r.json"),
        "--html",
        str(tmp_path / "r.html"),
    )
    assert v.returncode == 1
    rep = json.loads((tmp_path / "r.json").read_text())
    looks = rep["live"]["looks"]
    assert looks[0]["window"] == "consistent"  # the first 10,000 records come from the declared chain
    assert any(lk["window"] == "rejected" and "/api/cart" in lk["rejected_rows"] for lk in looks)
    # the worst cell's error: inside the sampling band while the stream follows the workflow, above it
    # once half of it has drifted (the band is the 95 % range of that error under the declared chain)
    band = {b["events"]: b for b in rep["live"]["band"]}
    first, last = looks[0], looks[-1]
    assert band[first["events"]]["lo"] <= first["max_abs_error"] <= band[first["events"]]["hi"]
    assert last["max_abs_error"] > 2 * band[last["events"]]["hi"]
    page = open_report(tmp_path / "r.html")
    assert page.messages == []
    assert "convergence" in page.names()
    ys = page.series("convergence", "max |learned - declared|")
    assert ys == pytest.approx([lk["max_abs_error"] for lk in looks], rel=1e-5)  # drawn to 6 digits
    page.shot("validation-report-live")


def test_backpressure_drop_policy_counts_and_reports(
    kafka_bootstrap: str, topic: str, tmp_path: Path, open_report: Any
) -> None:
    """A buffer far smaller than the stream: with on.full=drop, drops are counted, reported, and never sent;
    the run report marks where they happened and says how many."""
    proc = run_cli(
        "run",
        ECOM,
        *BASE,
        "--sessions",
        "20000",
        "--speed",
        "max",
        "--sink",
        f"kafka://{kafka_bootstrap}/{topic}?on.full=drop&buffer.memory=200000&acks=all&linger.ms=50",
        "--report",
        str(tmp_path / "r.html"),
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    nums = sink_counts(err, "kafka://")
    line = next(x for x in err.splitlines() if "sink kafka://" in x)
    assert nums["dropped"] > 0 and "buffer.memory full" in line
    assert nums["acknowledged"] + nums["dropped"] + nums["failed"] == nums["sent"]
    assert len(read_topic(kafka_bootstrap, topic)) == nums["acknowledged"]
    page = open_report(tmp_path / "r.html")
    assert page.messages == []
    assert f"{nums['dropped']:,} / {nums['failed']:,}" in page.page.inner_text("#identity")
    drops = page.chart("emit_rate", "return m.renderers.filter(r => r.name == 'drops').map(r => r.data_source.data.x);")
    assert len(drops) == 1 and len(drops[0]) >= 1  # crosses where the drop count grew
    page.shot("run-report-drops")


def test_live_validator_serves_its_own_metrics(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """``validate --metrics-port``: scraped while it reads, the figures reach what its last line says."""
    import re
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    proc = run_cli(
        "run", ECOM, *BASE, "--sessions", "300", "--speed", "max", "--sink", f"kafka://{kafka_bootstrap}/{topic}"
    )
    assert proc.returncode == 0, proc.stderr.decode()
    events = int(re.search(r"done: ([\d,]+) events", proc.stderr.decode())[1].replace(",", ""))
    err = tmp_path / "validate.err"
    argv = [sys.executable, "-m", "emitter", "validate", ECOM, "--source", f"kafka://{kafka_bootstrap}/{topic}"]
    argv += ["--until-idle", "6", "--metrics-port", "127.0.0.1:0"]
    with err.open("w") as fh:
        v = subprocess.Popen(argv, stderr=fh, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            m = re.search(r"Prometheus at (http://\S+/metrics)", err.read_text())
            url = m[1] if m else None
            time.sleep(0.05)
        assert url, err.read_text()
        got: dict[str, float] = {}
        while time.monotonic() < deadline and v.poll() is None:
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
            got = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
            if got.get("emitter_validator_records_total") == events:
                break
            time.sleep(0.2)
        assert got.get("emitter_validator_records_total") == events, (got, err.read_text())
        assert got["emitter_validator_sessions_total"] <= 300
        assert got["emitter_validator_malformed_total"] == 0
        assert got["process_resident_memory_bytes"] > 10 << 20
        assert v.wait(timeout=60) == 0, err.read_text()
        assert f"read {events:,} records" in err.read_text()
    finally:
        if v.poll() is None:
            v.kill()
            v.wait()


@pytest.mark.parametrize("txn", ["", "&transactional.id=workers-{worker}"], ids=["plain", "transactional"])
def test_workers_fill_a_topic_with_exactly_the_single_runs_events(
    kafka_bootstrap: str, topic: str, tmp_path: Path, txn: str
) -> None:
    """--workers 2: a producer per worker; the topic then holds the single run's events, each once."""
    args = ["run", ECOM, *BASE, "--sessions", "20000", "--speed", "max"]
    single = tmp_path / "single.jsonl"
    assert run_cli(*args, "--sink", f"file:{single}").returncode == 0
    uri = f"kafka://{kafka_bootstrap}/{topic}?partitions=3&retention.ms=-1{txn}"
    proc = run_cli(*args, "--workers", "2", "--sink", uri, timeout=300)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    want = single.read_bytes().splitlines()
    assert sink_counts(err, f"kafka://{kafka_bootstrap}/{topic}") == {
        "sent": len(want),
        "acknowledged": len(want),
        "failed": 0,
        "dropped": 0,
    }
    recs = read_topic(kafka_bootstrap, topic)
    assert len(recs) == len(want)
    assert sorted(r.value for r in recs) == sorted(want)  # the same events, byte for byte, none twice
    assert all(r.key == json.loads(r.value)["session_id"].encode() for r in recs[:1000])


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    async def go() -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs={"retention.ms": "-1"})])
        finally:
            await admin.close()

    import asyncio

    asyncio.run(go())


def _judged(report: Path) -> dict[str, Any]:
    """What a verdict is made of: everything but where it was read from and how."""
    data = json.loads(report.read_text())
    return {k: v for k, v in data.items() if k not in ("source", "live", "merged")}


def test_validators_in_a_group_merge_to_one_validators_verdict(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """Two validators in one consumer group each read their partitions and publish their counts; the merge
    of the two is, row for row, the verdict of one validator that read the whole topic."""
    import re
    import uuid

    _create_topic(kafka_bootstrap, topic, 4)
    group, stats = f"g-{uuid.uuid4().hex[:8]}", f"{topic}-stats"
    src = f"kafka://{kafka_bootstrap}/{topic}"
    errs = [tmp_path / f"v{k}.err" for k in range(2)]
    procs = []
    for k in range(2):
        argv = [sys.executable, "-m", "emitter", "validate", ECOM, "--source", src, "--group", group]
        argv += ["--publish", f"kafka://{kafka_bootstrap}/{stats}", "--until-idle", "8"]
        argv += ["--report", str(tmp_path / f"v{k}.json")]
        with errs[k].open("w") as fh:
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=fh))
    try:
        deadline = time.monotonic() + 90
        while True:  # both have joined and split the partitions: only then does the traffic start
            shares = [re.findall(r"reading partitions ([\d, ]+)\n", e.read_text()) for e in errs]
            last = [set(map(int, s[-1].split(", "))) for s in shares if s]
            if len(last) == 2 and not last[0] & last[1] and last[0] | last[1] == {0, 1, 2, 3}:
                break
            assert time.monotonic() < deadline, [e.read_text() for e in errs]
            assert all(p.poll() is None for p in procs), [e.read_text() for e in errs]
            time.sleep(0.3)
        run = run_cli("run", ECOM, *BASE, "--sessions", "3000", "--speed", "max", "--sink", src)
        assert run.returncode == 0, run.stderr.decode()
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    logs = [e.read_text() for e in errs]
    assert codes == [0, 0], logs
    assert all("published as " + group in log for log in logs), logs
    parts = [json.loads((tmp_path / f"v{k}.json").read_text())["events"]["read"] for k in range(2)]
    assert all(parts), parts  # each read a share

    merged = run_cli(
        "validate", ECOM, "--merge", f"kafka://{kafka_bootstrap}/{stats}", "--group", group, "--parts", "2",
        "--report", str(tmp_path / "merged.json"),
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr.decode()
    assert "merged the statistics of 2 validators" in merged.stderr.decode()
    assert "verdict: CONSISTENT" in merged.stdout.decode()
    single = run_cli("validate", ECOM, "--source", src, "--until-idle", "3", "--report", str(tmp_path / "one.json"))
    assert single.returncode == 0, single.stderr.decode()
    want = _judged(tmp_path / "one.json")
    assert want["events"]["read"] == sum(parts)
    assert _judged(tmp_path / "merged.json") == want  # the same rows, counts, tests and verdict
    assert json.loads((tmp_path / "merged.json").read_text())["merged"]["partitions"] == [0, 1, 2, 3]

    # counts of another workflow are refused, and so is a merge that waits for more validators than published
    other = run_cli("validate", str(WORKFLOWS / "microservices.yaml"), "--merge", f"kafka://{kafka_bootstrap}/{stats}")
    assert other.returncode == 1 and "counted for workflow 'ecommerce'" in other.stderr.decode(), other.stderr
    three = run_cli(
        "validate", ECOM, "--merge", f"kafka://{kafka_bootstrap}/{stats}", "--group", group, "--parts", "3",
        "--until-idle", "2",
    )  # fmt: skip
    assert three.returncode == 1 and "2 validators published statistics" in three.stderr.decode(), three.stderr
