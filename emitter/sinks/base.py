"""The sink interface and the URI registry (``stdout``, ``file:PATH``, ``parquet:PATH``, ``null``, ``kafka://…``,
``otlp://…``)."""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ..core.batch import EventBatch
from ..errors import ConfigError, EmitterError, redact_uri

__all__ = ["PipeClosed", "Sink", "SinkError", "SinkStats", "open_sink", "sink_schemes"]


class SinkError(EmitterError):
    """A sink cannot go on (its destination is unreachable, closed, or refused the data)."""


class PipeClosed(SinkError):
    """Standard output's reader went away (``emitter run | head``): the run stops, quietly."""


@dataclass
class SinkStats:
    """Counts a sink keeps; ``acked`` are events its destination has confirmed (written, acknowledged)."""

    sent: int = 0  # handed to the sink
    acked: int = 0  # confirmed by the destination
    failed: int = 0  # the destination refused them, or they could not be delivered
    dropped: int = 0  # discarded by the sink's backpressure policy
    bytes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return self.sent - self.acked - self.failed - self.dropped


class Sink(abc.ABC):
    """Lifecycle: ``await start()``; ``await send(batch)`` any number of times; ``await flush()``;
    ``await stop()`` (idempotent; flushes first). Usable as ``async with``."""

    uri: str = ""

    def __init__(self) -> None:
        self.stats = SinkStats()
        self._started = False
        self._stopped = False

    @property
    def name(self) -> str:
        return self.uri or type(self).__name__

    async def start(self) -> None:
        self._started = True

    @abc.abstractmethod
    async def send(self, batch: EventBatch) -> None: ...

    async def flush(self) -> None:  # noqa: B027 - optional hook
        pass

    async def advance(self, t_us: int) -> None:  # noqa: B027 - optional hook
        """A paced run is waiting: every event earlier than ``t_us`` (µs since the start) has been sent."""

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            if self._started:
                await self.flush()
        finally:  # (also when the flush fails or is cancelled: connections close, losses are counted)
            await self._close()

    async def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    def describe(self) -> str:
        return self.name

    async def __aenter__(self) -> Sink:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


SinkFactory = Callable[[str, dict[str, Any]], Sink]

_SCHEMES: dict[str, str] = {
    "stdout": "emitter.sinks.basic:stdout_sink",
    "file": "emitter.sinks.basic:file_sink",
    "parquet": "emitter.sinks.parquet:parquet_sink",
    "null": "emitter.sinks.basic:null_sink",
    "kafka": "emitter.sinks.kafka:kafka_sink",
    "otlp": "emitter.sinks.otlp:otlp_sink",
    "otlp+grpc": "emitter.sinks.otlp:otlp_sink",
    "otlp+grpcs": "emitter.sinks.otlp:otlp_sink",
    "otlp+http": "emitter.sinks.otlp:otlp_sink",
    "otlp+https": "emitter.sinks.otlp:otlp_sink",
}


def sink_schemes() -> list[str]:
    return list(_SCHEMES)


def scheme_of(uri: str) -> str:
    if uri in ("-", "stdout"):
        return "stdout"
    if uri == "null":
        return "null"
    if "://" in uri:
        return uri.split("://", 1)[0].lower()
    if ":" in uri:
        return uri.split(":", 1)[0].lower()
    return uri.lower()


def open_sink(uri: str, options: dict[str, Any] | None = None, *, source: str = "--sink") -> Sink:
    """Build the sink a URI names; an unknown scheme is a :class:`ConfigError` naming the known ones."""
    scheme = scheme_of(uri)
    target = _SCHEMES.get(scheme)
    shown = redact_uri(uri)
    if target is None:
        raise ConfigError.one(
            source,
            (shown,),
            f"unknown sink {shown!r} (expected one of: stdout, file:PATH, parquet:PATH, null, "
            "kafka://HOST:PORT/TOPIC, otlp://HOST:4317, otlp+http://HOST:4318, otlp+grpcs://HOST:PORT, "
            "otlp+https://HOST:PORT)",
        )
    mod_name, fn_name = target.split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        raise ConfigError.one(
            source,
            (shown,),
            f"sink {scheme!r} is not available in this build ({exc.name} missing; "
            'reinstall with: pip install -e ".[dev]")',
        ) from None
    factory: SinkFactory = getattr(mod, fn_name)
    return factory(uri, dict(options or {}))
