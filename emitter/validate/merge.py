"""Several validators, one verdict: each publishes its sufficient statistics, one merge judges their sum.

Validators in one consumer group (``--group G``) split a topic's partitions between them. Events are keyed
by session, so each validator sees whole sessions, and what it counts (entries, transitions, leaves,
abandons, violations, and the bookkeeping figures) adds up: the sum of the validators' counts is what one
validator reading every partition would count. ``--publish kafka://HOST:PORT/STATS`` writes a validator's
counts to a compacted topic at its end, keyed by group and member; ``emitter validate WF --merge
kafka://HOST:PORT/STATS`` reads the latest record of each member, sums them and builds the one report from
the sum, with the same tests as :func:`~emitter.validate.report.build_report` on one validator's counts.

A rebalance in the middle of the stream would hand a partition (and the sessions half read on it) from one
validator to another: their counts would no longer be one validator's. Each validator records every
partition it was ever assigned, and the merge refuses a set of members whose partitions overlap.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..clients.kafka import parse_kafka_uri, write_compacted
from ..core.spec import Workflow
from ..errors import EmitterError
from .assemble import Assembler
from .report import Report, build_report

__all__ = ["STATS_VERSION", "Published", "merged_report", "publish_stats", "read_stats", "stats_of"]

STATS_VERSION = 1
_COUNTERS = ("events", "duplicates", "retries", "late", "sessions", "sessions_complete", "sessions_evicted_open")


def stats_of(
    asm: Assembler, *, group: str, member: str, topic: str, partitions: list[int], live: dict[str, int]
) -> dict[str, Any]:
    """A validator's sufficient statistics as one JSON-able record."""
    return {
        "type": "emitter.validator.stats",
        "version": STATS_VERSION,
        "workflow": asm.workflow.name,
        "workflow_digest": asm.workflow.digest,
        "run_id": asm.run_id,
        "group": group,
        "member": member,
        "topic": topic,
        "partitions": sorted(partitions),
        "groups": list(asm.groups),
        "states": list(asm.states),
        "entry": list(asm._entry),
        "trans": list(asm._trans),
        "abandon": list(asm._abandon),
        "violations": [[list(k), v] for k, v in sorted(asm._violations.items())],
        "counters": {k: getattr(asm, k) for k in _COUNTERS} | {"other_runs": asm.other_runs},
        "ended_by": dict(asm.ended_by),
        "live": dict(live),
        "at": time.time(),
    }


def _absorb(asm: Assembler, st: dict[str, Any], where: str) -> None:
    wf = asm.workflow
    if st.get("version") != STATS_VERSION or st.get("type") != "emitter.validator.stats":
        raise EmitterError(f"validate --merge: {where}: not a validator's statistics record (version {STATS_VERSION})")
    if st["workflow_digest"] != wf.digest or st["groups"] != list(asm.groups) or st["states"] != list(asm.states):
        raise EmitterError(
            f"validate --merge: {where}: counted for workflow {st['workflow']!r} (digest {st['workflow_digest']}), "
            f"not for {wf.name!r} (digest {wf.digest})"
        )
    for name in ("entry", "trans", "abandon"):
        mine: list[int] = getattr(asm, f"_{name}")
        theirs = st[name]
        if len(theirs) != len(mine):
            raise EmitterError(f"validate --merge: {where}: {name} has {len(theirs)} counts, expected {len(mine)}")
        for i, v in enumerate(theirs):
            mine[i] += int(v)
    for key, v in st["violations"]:
        asm._violations[tuple(key)] += int(v)
    for k in _COUNTERS:
        setattr(asm, k, getattr(asm, k) + int(st["counters"][k]))
    asm.other_runs += int(st["counters"]["other_runs"])
    asm.ended_by.update(Counter({k: int(v) for k, v in st["ended_by"].items()}))


@dataclass
class Published:
    """The latest statistics record of each member, as read from the topic."""

    records: dict[str, dict[str, Any]]  # by key (group/member)
    read: int  # records read in all (earlier ones of a member are replaced)
    skipped: int  # records that were not statistics (counted, ignored)


def merged_report(
    wf: Workflow,
    parts: list[dict[str, Any]],
    *,
    alpha: float,
    min_samples: int,
    source: str,
    run_id: str | None = None,
) -> Report:
    """One report from several validators' statistics: their counts summed, then judged as one."""
    if not parts:
        raise EmitterError(f"validate --merge: {source}: no validator's statistics found")
    topics = {p["topic"] for p in parts}
    if len(topics) > 1:
        raise EmitterError(f"validate --merge: {source}: the validators read different topics: {sorted(topics)}")
    seen: dict[int, str] = {}
    for p in parts:
        for part in p["partitions"]:
            if part in seen:
                raise EmitterError(
                    f"validate --merge: {source}: partition {part} was read by two validators ({seen[part]} and "
                    f"{p['member']}): a rebalance moved it mid-stream, so the sessions on it may be counted "
                    "twice or split; start the validators before the traffic, or validate again"
                )
            seen[part] = p["member"]
    asm = Assembler(wf, run_id=run_id)
    for p in parts:
        _absorb(asm, p, f"{p['group']}/{p['member']}")
    malformed = sum(int(p["live"].get("malformed", 0)) for p in parts)
    rep = build_report(asm, alpha=alpha, min_samples=min_samples, malformed=malformed, source=source)
    rep.data["merged"] = {
        "validators": len(parts),
        "members": sorted(p["member"] for p in parts),
        "group": sorted({p["group"] for p in parts}),
        "topic": next(iter(topics)),
        "partitions": sorted(seen),
        "records": sum(int(p["live"].get("records", 0)) for p in parts),
    }
    return rep


async def publish_stats(uri: str, stats: dict[str, Any]) -> None:
    """One record on a compacted topic (created if missing), keyed by group and member."""
    s = parse_kafka_uri(uri, source="--publish")
    key = f"{stats['group']}/{stats['member']}".encode()
    value = json.dumps(stats, separators=(",", ":")).encode()
    await write_compacted(s, [(key, value)], "publish the statistics to", "validate --publish")


async def read_stats(uri: str, *, group: str | None, parts: int | None, until_idle: float) -> Published:
    """Every member's latest statistics on the topic (of ``group``, when given): read from the beginning
    until ``parts`` members are there, or nothing came for ``until_idle`` seconds."""
    from .rawkafka import RawReader

    s = parse_kafka_uri(uri, source="--merge", defaults={})
    reader = RawReader(s, True)
    await reader.start()
    latest: dict[str, dict[str, Any]] = {}
    read = skipped = 0
    try:
        last = time.monotonic()
        while time.monotonic() - last < until_idle:
            pairs = await reader.poll(10_000, 0.2)
            if pairs:
                last = time.monotonic()
            for _key, value in pairs:
                read += 1
                try:
                    st = json.loads(value or b"")
                except ValueError:
                    skipped += 1
                    continue
                if not isinstance(st, dict) or st.get("type") != "emitter.validator.stats":
                    skipped += 1
                    continue
                if group is not None and st.get("group") != group:
                    continue
                latest[f"{st.get('group')}/{st.get('member')}"] = st
            if parts is not None and len(latest) >= parts and not pairs:
                break
            await asyncio.sleep(0)
    finally:
        await reader.stop()
    return Published(latest, read, skipped)


def new_member() -> str:
    return uuid.uuid4().hex[:12]
