"""The process's own metrics, for watching a fleet of emitters: OpenTelemetry instruments, served to Prometheus.

``--metrics-port [HOST:]PORT`` starts :class:`SelfMetrics`: an OpenTelemetry SDK ``MeterProvider`` whose
reader is OpenTelemetry's Prometheus exporter, on a registry of its own that also holds prometheus_client's
process collector (resident memory, open descriptors, CPU seconds). prometheus_client's HTTP server serves
it at ``/metrics``. Every instrument is *observable*: its value is read from the run's own counters when
Prometheus scrapes, so the figures are the ones the summary prints, never a second count that could drift.

:func:`watch_run` defines a run's instruments (names as OpenTelemetry gives them; Prometheus sees dots as
underscores, counters with ``_total`` and seconds with ``_seconds``):

- ``emitter.events``: events handed to the sinks; ``emitter.events.late``: sent more than 1 s late;
- ``emitter.sink.sent`` / ``.acknowledged`` / ``.failed`` / ``.dropped`` (counters) and ``.pending``
  (events awaiting acknowledgement), each with a ``sink`` attribute;
- ``emitter.sessions.started`` / ``.ended`` (counters) and ``emitter.sessions.active``;
- ``emitter.schedule.lag`` (seconds; ``stat`` = last, max, p50, p99) and ``emitter.simulated.time``
  (simulated seconds since the start).

The service's resource says which process it is (``service.instance.id``: host and pid) so several emitters
behind one Prometheus are told apart.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigError, one_line, redact_uri
from .runner import LagStats, RunView

__all__ = ["Instrument", "SelfMetrics", "observe_all", "one", "parse_metrics_address", "watch_run"]


def parse_metrics_address(text: str, source: str = "--metrics-port") -> tuple[str, int]:
    """``PORT`` (every interface) or ``HOST:PORT``; port 0 picks a free one (the log line says which)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ConfigError.one(_where(source), (source,), f"expected [HOST:]PORT (0-65535), got {text!r}")
    return host, number


def _where(source: str) -> str:
    return "environment" if source.startswith("EMITTER_") else "command line"


class _SdkLog(logging.Handler):
    """The OpenTelemetry SDK's own log records (an unreachable OTLP endpoint retries, then fails, each time
    it exports) as ``emitter: own metrics:`` lines: one per kind of message, never a traceback."""

    MAX_LINES = 5

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        text = one_line(record.getMessage())
        kind = re.sub(r"[\d.]+", "#", text)  # ("retrying in 0.98s", "... in 1.9s": one kind)
        if kind in self.seen or len(self.seen) > self.MAX_LINES:
            return
        self.seen.add(kind)
        line = "further messages are not shown" if len(self.seen) > self.MAX_LINES else text
        print(f"emitter: own metrics: {line}", file=sys.stderr, flush=True)


@functools.cache
def _route_sdk_logs() -> None:
    log = logging.getLogger("opentelemetry")
    log.addHandler(_SdkLog())
    log.propagate = False
    log.setLevel(logging.WARNING)


class _Serialised:
    """A registry collected by one scrape at a time: OpenTelemetry's Prometheus reader is not safe for two
    at once (prometheus_client's server is threaded), which gives one page duplicates and the other none."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self._lock = threading.Lock()

    def collect(self) -> list[Any]:
        with self._lock:
            return list(self._registry.collect())


class SelfMetrics:
    """A meter whose instruments are served at ``http://HOST:PORT/metrics`` (``port``) and/or pushed over
    OTLP every ``interval_s`` (``otlp``: an ``otlp://`` or ``otlp+http://`` URI, as the OTLP sink takes),
    until :meth:`close` (which pushes once more: the final figures). ``sources`` names where each setting
    came from in messages (the flag, or the environment variable)."""

    def __init__(
        self,
        port: str | None = None,
        otlp: str | None = None,
        interval_s: float = 10.0,
        service: str = "emitter",
        sources: tuple[str, str] = ("--metrics-port", "--metrics-otlp"),
    ) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        from .._version import __version__

        if not interval_s > 0:
            raise ConfigError.one(
                "command line", ("--metrics-interval",), f"expected a positive duration, got {interval_s}"
            )
        # every setting is checked before anything listens or connects
        address = parse_metrics_address(port, sources[0]) if port is not None else None
        exporter = _otlp_exporter(otlp, sources[1]) if otlp is not None else None
        _route_sdk_logs()
        readers: list[MetricReader] = []
        self._server: Any = None
        self.url = ""
        if exporter is not None:
            readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=interval_s * 1000))
        if address is not None:
            readers.append(self._serve(*address, sources[0]))
        resource = Resource.create(
            {
                "service.name": service,
                "service.version": __version__,
                "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
            }
        )
        self._provider = MeterProvider(metric_readers=readers, resource=resource)
        self.meter = self._provider.get_meter("emitter", __version__)

    def _serve(self, host: str, port: int, source: str) -> Any:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

        registry = CollectorRegistry()
        ProcessCollector(registry=registry)  # (Linux: from /proc)
        reader = PrometheusMetricReader(registry=registry, scope_info_enabled=False)
        try:
            self._server, _ = start_http_server(port, host, registry=_Serialised(registry))
        except OSError as exc:
            raise ConfigError.one(
                _where(source), (source,), f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{int(self._server.server_address[1])}/metrics"
        return reader

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._provider.shutdown(timeout_millis=5000)


def _otlp_exporter(uri: str, source: str = "--metrics-otlp") -> Any:
    """The SDK's OTLP metric exporter for ``uri`` (its endpoint, TLS, headers, compression and timeout read as
    the OTLP sink reads them)."""
    from ..sinks.otlp import parse_otlp_uri

    scheme = uri.partition("://")[0].lower()
    if scheme not in ("otlp", "otlp+grpc", "otlp+grpcs", "otlp+http", "otlp+https") or "://" not in uri:
        raise ConfigError.one(
            _where(source), (source,), f"expected otlp://HOST:PORT or otlp+http://HOST:PORT, got {redact_uri(uri)!r}"
        )
    s = parse_otlp_uri(uri, source=source)

    def read(path: str | None) -> bytes | None:
        if not path:
            return None
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise ConfigError.one(source, (redact_uri(uri),), f"cannot read {path!r}: {exc.strerror}") from None

    if s.protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

        creds = None
        if s.tls:
            creds = grpc.ssl_channel_credentials(read(s.certificate), read(s.client_key), read(s.client_certificate))
        return GrpcExporter(
            endpoint=s.endpoint,
            insecure=s.insecure,
            credentials=creds,
            headers=s.headers,
            timeout=s.timeout_s,
            compression=grpc.Compression.Gzip if s.compression == "gzip" else grpc.Compression.NoCompression,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

    for path in (s.certificate, s.client_key, s.client_certificate):
        read(path)  # (a missing file is one line here, not the exporter's traceback later)
    url = s.endpoint[: -len("/v1/traces")] + "/v1/metrics" if s.endpoint.endswith("/v1/traces") else s.endpoint
    return HttpExporter(
        endpoint=url,
        certificate_file=s.certificate or None,
        client_key_file=s.client_key or None,
        client_certificate_file=s.client_certificate or None,
        headers=s.headers,
        timeout=s.timeout_s,
        compression=HttpCompression.Gzip if s.compression == "gzip" else HttpCompression.NoCompression,
    )


Reading = Callable[[], Iterable[tuple[float, dict[str, str]]]]
Instrument = tuple[str, str, str, Reading]  # name, unit, description, what it reads


def observe_all(meter: Any, counters: list[Instrument], gauges: list[Instrument]) -> None:
    """Observable counters and gauges on ``meter``, each reading its figures when Prometheus scrapes."""
    from opentelemetry.metrics import Observation

    def callback(read: Reading) -> Callable[[Any], Iterable[Any]]:
        return lambda _options: [Observation(v, attrs) for v, attrs in read()]

    for name, unit, doc, read in counters:
        meter.create_observable_counter(name, callbacks=[callback(read)], unit=unit, description=doc)
    for name, unit, doc, read in gauges:
        meter.create_observable_gauge(name, callbacks=[callback(read)], unit=unit, description=doc)


def one(read: Callable[[], float]) -> Reading:
    """A reading of one unlabelled figure."""
    return lambda: [(read(), {})]


def watch_run(meter: Any, runner: RunView) -> None:
    """A run's instruments on ``meter``, each read from ``runner`` (its stats and its sinks') at scrape time."""
    st = runner.stats
    sinks = [(redact_uri(s.name), s) for s in runner.sinks]

    def per_sink(field: str) -> Reading:
        return lambda: [(max(0, getattr(s.stats, field)), {"sink": name}) for name, s in sinks]

    def lag() -> list[tuple[float, dict[str, str]]]:
        snap = LagStats(st.lag.edges, st.lag.counts.copy(), st.lag.max, st.lag.last)  # (the loop goes on adding)
        out = [(snap.last, {"stat": "last"}), (snap.max, {"stat": "max"})]
        return out + [(snap.quantile(p), {"stat": name}) for p, name in ((0.5, "p50"), (0.99, "p99"))]

    session = "{session}"
    event = "{event}"
    observe_all(
        meter,
        counters=[
            ("emitter.events", event, "events handed to the sinks", one(lambda: st.events)),
            ("emitter.events.late", event, "events sent more than 1 s late", one(lambda: st.lag.late_events)),
            ("emitter.sink.sent", event, "events a sink has sent", per_sink("sent")),
            ("emitter.sink.acknowledged", event, "events a sink's destination acknowledged", per_sink("acked")),
            ("emitter.sink.failed", event, "events a sink could not deliver", per_sink("failed")),
            ("emitter.sink.dropped", event, "events a sink dropped by its policy", per_sink("dropped")),
            (
                "emitter.sessions.started",
                session,
                "sessions whose first call was sent",
                one(lambda: st.sessions_started),
            ),
            ("emitter.sessions.ended", session, "sessions whose last call was sent", one(lambda: st.sessions_ended)),
        ],
        gauges=[
            ("emitter.sink.pending", event, "events sent and awaiting acknowledgement", per_sink("pending")),
            (
                "emitter.sessions.active",
                session,
                "sessions started and not ended",
                one(lambda: max(0, st.active_sessions)),
            ),
            ("emitter.schedule.lag", "s", "how late sends are against the schedule (paced runs)", lag),
            ("emitter.simulated.time", "s", "simulated time of the last event sent", one(lambda: st.sim_us / 1e6)),
        ],
    )
