"""Reading a topic back with an independent consumer (aiokafka, no group, from the beginning)."""

from __future__ import annotations

import asyncio
from typing import Any


async def _read(bootstrap: str, topic: str, idle: float) -> list[Any]:
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None, enable_auto_commit=False
    )
    await c.start()
    out: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while loop.time() - last < idle:
            got = await c.getmany(timeout_ms=300, max_records=20000)
            for recs in got.values():
                out.extend(recs)
                if recs:
                    last = loop.time()
    finally:
        await c.stop()
    return out


def read_topic(bootstrap: str, topic: str, idle: float = 3.0) -> list[Any]:
    return asyncio.run(_read(bootstrap, topic, idle))


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await p.start()
    try:
        for v in values:
            await p.send(topic, v)
        await p.flush()
    finally:
        await p.stop()


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    asyncio.run(_produce(bootstrap, topic, values))


def sink_counts(stderr: str, prefix: str) -> dict[str, int]:
    """The counts of the summary line of the sink whose description starts with ``prefix``."""
    import re

    line = next(x for x in stderr.splitlines() if f"sink {prefix}" in x)
    found = re.findall(r"([\d,]+) (sent|acknowledged|failed|dropped)\b", line.split("): ", 1)[-1])
    return {word: int(num.replace(",", "")) for num, word in found}
