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

import os
import socket
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigError
from .runner import Runner

__all__ = ["Instrument", "SelfMetrics", "observe_all", "one", "parse_metrics_address", "watch_run"]


def parse_metrics_address(text: str) -> tuple[str, int]:
    """``PORT`` (every interface) or ``HOST:PORT``; port 0 picks a free one (the log line says which)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ConfigError.one("command line", ("--metrics-port",), f"expected [HOST:]PORT (0-65535), got {text!r}")
    return host, number


class SelfMetrics:
    """A meter whose instruments are served at ``http://HOST:PORT/metrics`` (``port``) and/or pushed over
    OTLP every ``interval_s`` (``otlp``: an ``otlp://`` or ``otlp+http://`` URI, as the OTLP sink takes),
    until :meth:`close` (which pushes once more: the final figures)."""

    def __init__(
        self, port: str | None = None, otlp: str | None = None, interval_s: float = 10.0, service: str = "emitter"
    ) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        from .._version import __version__

        if not interval_s > 0:
            raise ConfigError.one(
                "command line", ("--metrics-interval",), f"expected a positive duration, got {interval_s}"
            )
        readers: list[MetricReader] = []
        self._server: Any = None
        self.url = ""
        if port is not None:
            readers.append(self._serve(port))
        if otlp is not None:
            readers.append(
                PeriodicExportingMetricReader(_otlp_exporter(otlp), export_interval_millis=interval_s * 1000)
            )
        resource = Resource.create(
            {
                "service.name": service,
                "service.version": __version__,
                "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
            }
        )
        self._provider = MeterProvider(metric_readers=readers, resource=resource)
        self.meter = self._provider.get_meter("emitter", __version__)

    def _serve(self, where: str) -> Any:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

        host, port = parse_metrics_address(where)
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        reader = PrometheusMetricReader(registry=self.registry)
        try:
            self._server, _ = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise ConfigError.one(
                "command line", ("--metrics-port",), f"cannot listen on {where!r}: {exc.strerror or exc}"
            ) from None
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{shown}:{int(self._server.server_address[1])}/metrics"
        return reader

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._provider.shutdown()


def _otlp_exporter(uri: str) -> Any:
    """The SDK's OTLP metric exporter for ``uri`` (its settings read as the OTLP sink reads them)."""
    from ..sinks.otlp import parse_otlp_uri

    scheme = uri.partition("://")[0].lower()
    if scheme not in ("otlp", "otlp+grpc", "otlp+grpcs", "otlp+http", "otlp+https") or "://" not in uri:
        raise ConfigError.one(
            "command line", ("--metrics-otlp",), f"expected otlp://HOST:PORT or otlp+http://HOST:PORT, got {uri!r}"
        )
    s = parse_otlp_uri(uri, source="--metrics-otlp")
    if s.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

        creds = None
        if s.certificate:
            import grpc

            with open(s.certificate, "rb") as fh:
                creds = grpc.ssl_channel_credentials(fh.read())
        return GrpcExporter(
            endpoint=s.endpoint, insecure=s.insecure, credentials=creds, headers=s.headers, timeout=s.timeout_s
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

    url = s.endpoint[: -len("/v1/traces")] + "/v1/metrics" if s.endpoint.endswith("/v1/traces") else s.endpoint
    return HttpExporter(endpoint=url, certificate_file=s.certificate or None, headers=s.headers, timeout=s.timeout_s)


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


def watch_run(meter: Any, runner: Runner) -> None:
    """A run's instruments on ``meter``, each read from ``runner`` (its stats and its sinks') at scrape time."""
    st = runner.stats
    sinks = [(s.describe(), s) for s in runner.sinks]

    def per_sink(field: str) -> Reading:
        return lambda: [(getattr(s.stats, field), {"sink": name}) for name, s in sinks]

    def lag() -> list[tuple[float, dict[str, str]]]:
        q = st.lag.quantile
        return [(st.lag.last, {"stat": "last"}), (st.lag.max, {"stat": "max"})] + [
            (q(p), {"stat": name}) for p, name in ((0.5, "p50"), (0.99, "p99"))
        ]

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
            ("emitter.sessions.active", session, "sessions started and not ended", one(lambda: st.active_sessions)),
            ("emitter.schedule.lag", "s", "how late sends are against the schedule (paced runs)", lag),
            ("emitter.simulated.time", "s", "simulated time of the last event sent", one(lambda: st.sim_us / 1e6)),
        ],
    )
