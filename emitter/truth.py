"""The truth channel: a run manifest and one record per fault interval, for scoring detectors.

Written before the first event (every fault is known in advance, random ones included) to
``file:PATH`` (JSON lines) or ``kafka://HOST:PORT/TOPIC`` (a compacted topic keyed by record id).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .core.calls import CallTrees
from .core.faults import Dynamics
from .errors import ConfigError, EmitterError
from .workflow import Workflow

__all__ = ["truth_records", "write_truth"]


def iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def truth_records(
    *,
    run_id: str,
    seed: int,
    start_us: int,
    speed: str,
    workflows: list[tuple[Workflow, float]],
    dynamics: Dynamics,
    load: str,
    scenario: str | None = None,
    scenario_digest: str | None = None,
) -> list[dict[str, Any]]:
    manifest = {
        "type": "manifest",
        "schema_version": 1,
        "run_id": run_id,
        "seed": seed,
        "start": iso(start_us),
        "speed": speed,
        "scenario": scenario,
        "scenario_digest": scenario_digest,
        "workflows": [{"name": wf.name, "digest": wf.digest, "weight": w} for wf, w in workflows],
        "load": load,
        "faults": list(dynamics.fault_ids),
        "retry": {**asdict(dynamics.retry), "on": list(dynamics.retry.on)},
        "reactions": asdict(dynamics.reactions),
        "cascade_failure_rate": dynamics.cascade.rate,
    }
    out: list[dict[str, Any]] = [manifest]
    trees = [(wf, CallTrees(wf)) for wf, _ in workflows]
    for f in dynamics.faults:
        services: set[str] = set()
        edges: set[tuple[str, str]] = set()
        endpoints: list[str] = []
        names = []
        for wf, tr in trees:
            s, e, ep = tr.affected(f)
            if ep:
                names.append(wf.name)
            services |= set(s)
            edges |= set(e)
            endpoints += ep
        target = f.target_label()
        if f.endpoint is not None:
            target["service"] = next(
                (wf.endpoints[f.endpoint].service for wf, _ in workflows if f.endpoint in wf.endpoints), ""
            )
        out.append(
            {
                "type": "fault",
                "id": f.id,
                "kind": f.kind,
                "target": target,
                "params": f.params(),
                "start": iso(start_us + f.start_us),
                "end": iso(start_us + f.end_us),
                "ramp_in_s": f.ramp_in_us / 1e6,
                "ramp_out_s": f.ramp_out_us / 1e6,
                "affected_services": sorted(services),
                "affected_edges": [list(e) for e in sorted(edges)],
                "affected_endpoints": endpoints,
                "workflows": names,
            }
        )
    c = dynamics.cascade
    if c.rate > 0:
        out.append(
            {
                "type": "fault",
                "id": c.id,
                "kind": "cascade",
                "target": {"sessions": f"{c.rate:g} of sessions"},
                "params": {
                    "rate": c.rate,
                    "slow": c.slow,
                    "slow_factor": list(c.slow_factor),
                    "timeout": c.timeout,
                    "timeout_ms": list(c.timeout_ms),
                    "unavailable": c.unavailable,
                    "duplicate": c.duplicate,
                },
                "start": iso(start_us),
                "end": None,
                "affected_services": sorted({e.service for wf, _ in workflows for e in wf.endpoints.values()}),
                "affected_edges": [],
                "affected_endpoints": sorted({s for wf, _ in workflows for s in wf.states}),
                "workflows": [wf.name for wf, _ in workflows],
            }
        )
    return out


async def write_truth(uri: str, records: list[dict[str, Any]]) -> str:
    """Write the records; returns where they went (for the run's first line)."""
    if uri.startswith("kafka://"):
        return await _to_kafka(uri, records)
    path = uri[5:] if uri.startswith("file:") else uri
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:  # noqa: ASYNC230 - a few records, once
            for r in records:
                fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    except OSError as exc:
        raise ConfigError.one("--truth", (uri,), f"cannot write: {exc.strerror}") from None
    return path


async def _to_kafka(uri: str, records: list[dict[str, Any]]) -> str:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError

    from .sinks.kafka_config import parse_kafka_uri

    s = parse_kafka_uri(uri, source="--truth")
    kw = s.client_kwargs()
    try:
        admin = AIOKafkaAdminClient(**s.connection_kwargs())
        await admin.start()
        try:
            if s.topic not in await admin.list_topics():
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [NewTopic(s.topic, 1, s.replication_factor, topic_configs={"cleanup.policy": "compact"})]
                    )
        finally:
            await admin.close()
        p = AIOKafkaProducer(**kw)
        await p.start()
        try:
            for r in records:
                key = "manifest" if r["type"] == "manifest" else f"fault:{r['id']}"
                await p.send_and_wait(s.topic, json.dumps(r, separators=(",", ":")).encode(), key=key.encode())
        finally:
            await p.stop()
    except (KafkaError, OSError) as exc:
        raise EmitterError(f"truth: cannot write to {uri}: {type(exc).__name__}: {exc}") from None
    return uri
