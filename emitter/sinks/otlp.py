"""The OTLP sink: traces to an OpenTelemetry receiver over gRPC (``otlp://HOST:4317``) or HTTP/protobuf
(``otlp+http://HOST:4318``); over TLS with ``otlp+grpcs://HOST:PORT`` or ``otlp+https://HOST:PORT``.

Settings follow the OTLP exporter conventions: the standard ``OTEL_EXPORTER_OTLP_*`` environment variables
(the ``TRACES_`` ones first, then the generic ones) fill in whatever the sink URI does not say; the URI's
own host and query win. Query keys: ``headers`` (``k=v,k2=v2``), ``compression`` (``gzip``|``none``),
``timeout`` (ms), ``insecure``, ``certificate``, ``client.key``, ``client.certificate``, ``queue.size``
(requests), ``on.full`` (``block``|``drop``), ``max.block.ms``, ``batch.events``, ``environment``,
``startup.wait.ms``. Requests wait in a bounded queue for two senders; a full queue blocks (up to
``max.block.ms``) or drops and counts. Retryable failures (gRPC UNAVAILABLE and friends, HTTP 429/502/503/
504, a connection refused or reset) are retried with exponential backoff (0.5 s doubling, at most 8 s apart)
for up to 3 x ``timeout`` (at least 30 s) per request; the run's summary says how many requests were
retried. A request that fails for good fails the run, and the requests queued behind it are then tried once
each, not retried: a receiver that stays down does not hold the run's end for a retry window per request.
Across a receiver's restart a request it wrote but whose answer was lost is sent again (OTLP has no request
id to deduplicate by): see tests/integration/test_otelcol_restart.py.

Credentials (``headers=authorization=Bearer%20TOKEN`` or ``OTEL_EXPORTER_OTLP_HEADERS``) never appear in
what the sink prints: header values are not echoed in errors, and a sink URI in a message has them masked.
A refused credential (gRPC UNAUTHENTICATED or PERMISSION_DENIED, HTTP 401 or 403) and a TLS failure (a
certificate not trusted by ``certificate=CA.pem`` or the system's CAs, a handshake with a plain receiver)
are not retried: the startup check reports them in one line, before any event is generated.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..core.batch import EventBatch
from ..encode.otlp import OtlpRequest, encode_otlp
from ..errors import ConfigError, one_line, redact_uri
from .base import Sink, SinkError

__all__ = ["OtlpSettings", "OtlpSink", "otlp_sink", "parse_otlp_uri"]

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRYABLE_HTTP = {429, 502, 503, 504}


@dataclass
class OtlpSettings:
    protocol: str  # "grpc" or "http/protobuf"
    endpoint: str  # grpc: host:port; http: full URL of the traces path
    insecure: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    compression: str = "none"
    timeout_s: float = 10.0
    certificate: str | None = None
    client_key: str | None = None
    client_certificate: str | None = None
    queue_size: int = 64
    on_full: str = "block"
    max_block_ms: int = 60_000
    batch_events: int = 512
    environment: str = "emitter"
    resource: dict[str, str] = field(default_factory=dict)
    startup_wait_ms: int = 0
    senders: int = 2

    @property
    def tls(self) -> bool:
        if self.protocol == "grpc":
            return not self.insecure
        return self.endpoint.startswith("https://")

    @property
    def hostport(self) -> str:
        return self.endpoint if self.protocol == "grpc" else urllib.parse.urlsplit(self.endpoint).netloc

    def describe(self) -> str:
        if self.protocol == "grpc":
            scheme = "otlp+grpcs" if self.tls else "otlp"
        else:
            scheme = "otlp+https" if self.tls else "otlp+http"
        return (
            f"{scheme}://{self.endpoint.split('://', 1)[-1]} ({self.protocol}, compression={self.compression}, "
            f"queue={self.queue_size} requests, on.full={self.on_full})"
        )


def _env(name: str, environ: dict[str, str]) -> str | None:
    for key in (f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        v = environ.get(key)
        if v is not None and v.strip() != "":
            return v.strip()
    return None


def _headers(text: str, source: str, what: str = "headers") -> dict[str, str]:
    """``k=v,k2=v2`` (each part URL-decoded). A bad part is named by its position, never shown: headers carry
    credentials."""
    out = {}
    parts = text.split(",")
    for i, part in enumerate(parts, 1):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            raise ConfigError.one(
                source,
                (what,),
                f"expected key=value pairs separated by commas: part {i} of {len(parts)} has "
                f"{'no key' if sep else 'no ='} (values are not shown: they may be credentials)",
            )
        out[urllib.parse.unquote(k.strip()).lower()] = urllib.parse.unquote(v.strip())
    return out


def _bool(v: str, source: str, key: str) -> bool:
    t = v.lower()
    if t in ("true", "1", "yes"):
        return True
    if t in ("false", "0", "no"):
        return False
    raise ConfigError.one(source, (key,), f"expected true or false, got {v!r}")


def parse_otlp_uri(uri: str, environ: dict[str, str] | None = None, source: str = "--sink") -> OtlpSettings:
    env = dict(os.environ if environ is None else environ)
    parsed = urllib.parse.urlsplit(uri)
    shown = redact_uri(uri)  # what error messages show of the URI: its headers masked
    scheme = parsed.scheme.lower()
    q = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    env_proto = _env("PROTOCOL", env)
    if scheme in ("otlp+http", "otlp+https"):
        protocol = "http/protobuf"
    elif scheme in ("otlp+grpc", "otlp+grpcs"):
        protocol = "grpc"
    elif not parsed.netloc and env_proto:
        protocol = env_proto
    else:
        protocol = "grpc"
    if protocol not in ("grpc", "http/protobuf"):
        raise ConfigError.one("OTEL_EXPORTER_OTLP_PROTOCOL", (), f"expected grpc or http/protobuf, got {protocol!r}")
    tls = scheme.endswith("s") and scheme not in ("otlp",)
    if parsed.netloc:
        host = parsed.netloc
        if protocol == "grpc":
            endpoint = host
            insecure = not tls
        else:
            path = parsed.path if parsed.path not in ("", "/") else "/v1/traces"
            endpoint = f"{'https' if tls else 'http'}://{host}{path}"
            insecure = not tls
    else:
        specific = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        generic = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        default = "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"
        if protocol == "grpc":
            url = specific or generic or default
            u = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
            endpoint = u.netloc
            insecure = u.scheme != "https"
        else:
            endpoint = specific or ((generic or default).rstrip("/") + "/v1/traces")
            insecure = endpoint.startswith("http://")
    s = OtlpSettings(protocol, endpoint, insecure)
    if "insecure" in q:
        s.insecure = _bool(q.pop("insecure"), source, "insecure")
    elif (v := _env("INSECURE", env)) is not None and not parsed.netloc:
        s.insecure = _bool(v, "OTEL_EXPORTER_OTLP_INSECURE", "")
    hdr = _env("HEADERS", env)
    if hdr:
        s.headers.update(_headers(hdr, "OTEL_EXPORTER_OTLP_HEADERS"))
    if "headers" in q:
        s.headers.update(_headers(q.pop("headers"), source))
    comp = q.pop("compression", None) or _env("COMPRESSION", env) or "none"
    if comp not in ("gzip", "none"):
        raise ConfigError.one(source, (shown, "compression"), f"expected gzip or none, got {comp!r}")
    s.compression = comp
    tmo = q.pop("timeout", None) or _env("TIMEOUT", env)
    if tmo is not None:
        try:
            s.timeout_s = float(tmo) / 1000
        except ValueError:
            raise ConfigError.one(source, (shown, "timeout"), f"expected milliseconds, got {tmo!r}") from None
    s.certificate = q.pop("certificate", None) or _env("CERTIFICATE", env)
    s.client_key = q.pop("client.key", None) or _env("CLIENT_KEY", env)
    s.client_certificate = q.pop("client.certificate", None) or _env("CLIENT_CERTIFICATE", env)
    for key, attr in (
        ("queue.size", "queue_size"),
        ("max.block.ms", "max_block_ms"),
        ("batch.events", "batch_events"),
        ("startup.wait.ms", "startup_wait_ms"),
    ):
        if key in q:
            raw = q.pop(key)
            minimum = 1 if key in ("queue.size", "batch.events") else 0
            val = int(raw) if raw.strip().isdigit() else -1
            if val < minimum:
                raise ConfigError.one(source, (shown, key), f"expected an integer >= {minimum}, got {raw!r}")
            setattr(s, attr, val)
    if "on.full" in q:
        v = q.pop("on.full")
        if v not in ("block", "drop"):
            raise ConfigError.one(source, (shown, "on.full"), f"expected block or drop, got {v!r}")
        s.on_full = v
    if "environment" in q:
        s.environment = q.pop("environment")
    ra = env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if ra.strip():
        s.resource.update(
            {k: v for k, v in _headers(ra, "OTEL_RESOURCE_ATTRIBUTES", "attributes").items() if k != "service.name"}
        )
    if q:
        raise ConfigError.one(
            source,
            (shown, next(iter(q))),
            f"unknown OTLP option {next(iter(q))!r} (known: headers, "
            "compression, timeout, insecure, certificate, client.key, client.certificate, "
            "queue.size, on.full, max.block.ms, batch.events, environment, startup.wait.ms)",
        )
    return s


class _Outcome(NamedTuple):
    """One export attempt. ``final`` is a complete one-line error when neither waiting nor retrying can help
    (credentials refused, TLS not trusted)."""

    ok: bool
    retry: bool = False
    msg: str = ""
    final: str | None = None


_AUTH_HINT = "set it with ?headers=authorization=Bearer%20TOKEN or OTEL_EXPORTER_OTLP_HEADERS"


def _refused(s: OtlpSettings, what: str) -> str:
    """Credentials refused (gRPC UNAUTHENTICATED/PERMISSION_DENIED, HTTP 401/403): said without them."""
    if "authorization" in s.headers:
        return f"otlp: the receiver at {s.hostport} refused the credentials (the authorization header): {what}"
    return f"otlp: the receiver at {s.hostport} wants credentials, and none were sent ({_AUTH_HINT}): {what}"


def _not_trusted(s: OtlpSettings, reason: str) -> str:
    trust = f"trusting only {s.certificate}" if s.certificate else "trusting the system's CAs; ?certificate=CA.pem"
    return f"otlp: TLS certificate of {s.hostport} not trusted ({trust}): {reason or 'verification failed'}"


def _handshake_failed(s: OtlpSettings, reason: str) -> str:
    plain = "otlp://" if s.protocol == "grpc" else "otlp+http://"
    return (
        f"otlp: TLS handshake with {s.hostport} failed (a receiver without TLS takes {plain}): "
        f"{reason or 'handshake failed'}"
    )


def _grpc_tls(s: OtlpSettings, details: str) -> str | None:
    """A TLS failure in a gRPC error's details (grpc only says UNAVAILABLE), as a one-line error."""
    if s.insecure:
        return None
    m = re.search(r"CERTIFICATE_VERIFY_FAILED:?\s*([^:(]*)", details)
    if m:
        return _not_trusted(s, m.group(1).strip())
    m = re.search(r"Peer name (\S+) is not in peer certificate", details)
    if m:
        return _not_trusted(s, f"it is not for {m.group(1)}")
    if "andshake" in details or "SSL_ERROR" in details:
        m = re.search(r"OPENSSL_internal:([A-Z_]+)", details)
        return _handshake_failed(s, m.group(1) if m else details)
    return None


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, ssl.SSLError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _status_message(body: bytes) -> str:
    """The message of the google.rpc.Status an OTLP/HTTP receiver sends with an error."""
    from google.protobuf.message import DecodeError
    from google.rpc.status_pb2 import Status

    try:
        return str(Status.FromString(body).message)
    except DecodeError:
        raise ValueError("not a google.rpc.Status") from None


def _http_detail(r: Any) -> str:
    ctype = r.headers.get("content-type", "")
    text = ""
    try:
        if "protobuf" in ctype:
            text = _status_message(r.content)
        elif "json" in ctype:
            text = str(json.loads(r.content).get("message", ""))
    except (ValueError, AttributeError):
        text = ""
    if not text:
        text = "".join(c for c in r.text if c.isprintable() or c == " ")
    return text.strip()[:200]


def _tls_context(s: OtlpSettings) -> ssl.SSLContext:
    """The client's TLS context, from the CA and client certificate files: a file that is missing or not
    PEM is a one-line error now, not a handshake failure later."""
    what = "certificate"
    try:
        ctx = ssl.create_default_context(cafile=s.certificate)
        if s.client_key and not s.client_certificate:
            raise SinkError("otlp: client.key without client.certificate")
        if s.client_certificate:
            what = "client.certificate"
            ctx.load_cert_chain(s.client_certificate, s.client_key)
    except OSError as exc:
        path = s.certificate if what == "certificate" else s.client_certificate
        reason = exc.strerror or str(exc)
        if isinstance(exc, ssl.SSLError):
            reason = f"not a PEM certificate{'' if what == 'certificate' else ' and key'} ({exc.reason or exc})"
        raise SinkError(one_line(f"otlp: {what} {path}: {reason}")) from None
    return ctx


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as fh:
        return fh.read()


class _Transport:
    async def start(self) -> None: ...
    async def export(self, body: bytes) -> _Outcome:
        raise NotImplementedError

    async def close(self) -> None: ...


class _Grpc(_Transport):
    def __init__(self, s: OtlpSettings) -> None:
        self.s = s
        self.channel: Any = None
        self.call: Any = None

    async def start(self) -> None:
        # gRPC's core logs a failed TLS handshake to stderr at info level; the sink's own error says it
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        import grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        s = self.s
        opts = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        comp = grpc.Compression.Gzip if s.compression == "gzip" else grpc.Compression.NoCompression
        if s.insecure:
            self.channel = grpc.aio.insecure_channel(s.endpoint, options=opts, compression=comp)
        else:
            _tls_context(s)  # checks the files
            try:
                ca, cert = _read(s.certificate), _read(s.client_certificate)
                key = _read(s.client_key) if s.client_key else cert  # a client PEM may hold both
            except OSError as exc:
                raise SinkError(one_line(f"otlp: {exc.filename}: {exc.strerror}")) from None
            creds = grpc.ssl_channel_credentials(ca, key if cert else None, cert)
            self.channel = grpc.aio.secure_channel(s.endpoint, creds, options=opts, compression=comp)
        self.call = self.channel.unary_unary(
            EXPORT_METHOD, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
        )
        self._grpc = grpc

    async def export(self, body: bytes) -> _Outcome:
        grpc = self._grpc
        try:
            resp = await self.call(body, timeout=self.s.timeout_s, metadata=list(self.s.headers.items()) or None)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            details = exc.details() or ""
            msg = f"{code.name}: {details}"
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                return _Outcome(False, False, msg, _refused(self.s, msg))
            tls = _grpc_tls(self.s, details)
            if tls:
                return _Outcome(False, False, msg, tls)
            retry = code in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.ABORTED,
                grpc.StatusCode.CANCELLED,
                grpc.StatusCode.OUT_OF_RANGE,
                grpc.StatusCode.DATA_LOSS,
            )
            return _Outcome(False, retry, msg)
        rejected = resp.partial_success.rejected_spans if resp.HasField("partial_success") else 0
        return _Outcome(
            True, False, f"{rejected} spans rejected: {resp.partial_success.error_message}" if rejected else ""
        )

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()


class _Http(_Transport):
    def __init__(self, s: OtlpSettings) -> None:
        self.s = s
        self.client: Any = None

    async def start(self) -> None:
        import httpx

        s = self.s
        verify: ssl.SSLContext | bool = _tls_context(s) if s.tls else True
        self.client = httpx.AsyncClient(
            timeout=s.timeout_s, verify=verify, limits=httpx.Limits(max_connections=s.senders + 1)
        )
        self.headers = {"content-type": "application/x-protobuf", **self.s.headers}
        if s.compression == "gzip":
            self.headers["content-encoding"] = "gzip"

    async def export(self, body: bytes) -> _Outcome:
        import httpx

        s = self.s
        data = gzip.compress(body, 6) if s.compression == "gzip" else body
        try:
            r = await self.client.post(s.endpoint, content=data, headers=self.headers)
        except httpx.HTTPError as exc:
            msg = f"{type(exc).__name__}: {exc}"
            err = _ssl_cause(exc)
            if isinstance(err, ssl.SSLCertVerificationError):
                return _Outcome(False, False, msg, _not_trusted(s, err.verify_message or err.reason or ""))
            if err is not None:
                return _Outcome(False, False, msg, _handshake_failed(s, err.reason or str(err)))
            return _Outcome(False, True, msg)
        if r.status_code == 200:
            return _Outcome(True)
        msg = f"HTTP {r.status_code}: {_http_detail(r)}"
        if r.status_code in (401, 403):
            return _Outcome(False, False, msg, _refused(s, msg))
        if r.status_code == 400 and "HTTPS server" in msg:  # Go's answer to plain HTTP on a TLS port
            return _Outcome(False, False, msg, f"otlp: {s.hostport} wants TLS: use otlp+https:// ({msg})")
        return _Outcome(False, r.status_code in RETRYABLE_HTTP, msg)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


class OtlpSink(Sink):
    def __init__(self, settings: OtlpSettings) -> None:
        super().__init__()
        self.settings = settings
        self.uri = settings.describe()
        self.transport: _Transport = _Grpc(settings) if settings.protocol == "grpc" else _Http(settings)
        self._queue: asyncio.Queue[OtlpRequest | None] = asyncio.Queue(settings.queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self.spans_sent = 0
        self.spans_acked = 0
        self.requests_retried = 0  # requests that needed more than one attempt
        self.retries = 0  # attempts after the first, over all requests
        self._longest_retry_s = 0.0  # the longest a retried request took to be acknowledged
        self._last_retry = ""  # the last retryable failure's message
        self._gave_up = False  # a request exhausted its retries, and none has been acknowledged since
        self._error: str | None = None
        # the retry clock (a test's own in tests/sinks/test_otlp_retry.py)
        self._now: Callable[[], float] = time.monotonic
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def describe(self) -> str:
        return self.settings.describe()

    def _clean(self, text: str) -> str:
        """One line, and no header value in it (a receiver could echo a token back)."""
        for v in self.settings.headers.values():
            for secret in (v, v.split(" ", 1)[-1]):
                if len(secret) >= 4:
                    text = text.replace(secret, "***")
        return one_line(text)

    async def start(self) -> None:
        await self.transport.start()
        s = self.settings
        deadline = time.monotonic() + s.startup_wait_ms / 1000
        while True:  # an empty request proves the receiver answers before any event is generated
            out = await self.transport.export(b"")
            if out.ok:
                break
            if out.final or not out.retry or time.monotonic() >= deadline:
                await self.transport.close()
                raise SinkError(self._clean(out.final or self._unready(out.msg, out.retry)))
            await asyncio.sleep(0.5)
        self._workers = [asyncio.create_task(self._sender()) for _ in range(s.senders)]
        await super().start()

    def _unready(self, msg: str, retry: bool) -> str:
        s = self.settings
        if not retry:
            return f"otlp: the OTLP receiver at {s.endpoint} refused the request: {msg}"
        if s.protocol == "grpc" and s.insecure and "Socket closed" in msg:
            hint = " (closed at once: if the receiver wants TLS, use otlp+grpcs://)"
        else:
            hint = "" if s.startup_wait_ms else " (add ?startup.wait.ms=30000 to wait)"
        return f"otlp: cannot reach an OTLP receiver at {s.endpoint}: {msg}{hint}"

    async def send(self, batch: EventBatch) -> None:
        if self._error:
            raise SinkError(self._error)
        s = self.settings
        for req in encode_otlp(batch, environment=s.environment, resource=s.resource, max_events=s.batch_events):
            self.stats.sent += req.events
            self.spans_sent += req.spans
            self.stats.bytes += len(req.body)
            if s.on_full == "drop":
                try:
                    self._queue.put_nowait(req)
                except asyncio.QueueFull:
                    self.stats.dropped += req.events
                    self._note("queue full: requests dropped (on.full=drop)")
                continue
            try:
                await asyncio.wait_for(self._queue.put(req), timeout=s.max_block_ms / 1000)
            except TimeoutError:
                raise SinkError(
                    f"otlp: the queue stayed full for max.block.ms ({s.max_block_ms} ms): the receiver "
                    "is too slow or unreachable"
                ) from None

    def _note(self, text: str) -> None:
        if text not in self.stats.notes:
            self.stats.notes.append(text)

    async def _sender(self) -> None:
        while True:
            req = await self._queue.get()
            try:
                if req is None:
                    return
                await self._export(req)
            finally:
                self._queue.task_done()

    async def _export(self, req: OtlpRequest) -> None:
        """Send one request, retrying a retryable failure with backoff within its window. Each request is
        counted exactly once: acknowledged when the receiver answered OK, else failed."""
        t0 = self._now()
        deadline = t0 + max(self.settings.timeout_s * 3, 30.0)
        backoff = 0.5
        tries = 0
        while True:
            out = await self.transport.export(req.body)
            if out.ok:
                self._gave_up = False
                self.stats.acked += req.events
                self.spans_acked += req.spans
                if tries:
                    self._longest_retry_s = max(self._longest_retry_s, self._now() - t0)
                if out.msg:
                    self._note(self._clean(out.msg))
                return
            expired = self._now() + backoff > deadline
            if out.final or not out.retry or expired or self._gave_up:
                self._gave_up = self._gave_up or (out.retry and expired)
                self.stats.failed += req.events
                self._error = self._error or self._clean(out.final or f"otlp: export failed: {out.msg}")
                why = " (not retried: an earlier request had failed for good)" if out.retry and not expired else ""
                self._note(self._clean(f"export failed: {out.msg}{why}"))
                return
            if not tries:
                self.requests_retried += 1
            tries += 1
            self.retries += 1
            self._last_retry = out.msg
            await self._sleep(backoff)
            backoff = min(backoff * 2, 8.0)

    async def flush(self) -> None:
        if self._workers:
            await self._queue.join()

    async def _close(self) -> None:
        for _ in self._workers:
            await self._queue.put(None)
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        await self.transport.close()
        if self.requests_retried:
            # worded so that no count is followed by sent/acknowledged/failed/dropped: those are the line's own
            longest = f", the slowest through {self._longest_retry_s:.1f} s after its first try" * (
                self._longest_retry_s > 0
            )
            self._note(
                self._clean(
                    f"{self.requests_retried:,} request{'s' * (self.requests_retried != 1)} retried "
                    f"({self.retries:,} retr{'ies' if self.retries != 1 else 'y'}{longest}; "
                    f"last retryable error: {self._last_retry})"
                )
            )
        self._note(f"{self.spans_acked:,} of {self.spans_sent:,} spans acknowledged")


def otlp_sink(uri: str, options: dict[str, Any]) -> Sink:
    return OtlpSink(parse_otlp_uri(uri))
