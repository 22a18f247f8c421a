"""Kafka producer settings by Kafka's own property names, from the sink URI's query or a properties file.

``kafka://HOST:PORT[,HOST:PORT]/TOPIC?acks=all&compression.type=lz4&config=producer.properties``

Secrets never travel in the URI in clear: a value ``env:NAME`` reads an environment variable and
``file:PATH`` reads a file; descriptions of the sink print ``***`` in their place.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EmitterError, one_line, redact_uri

__all__ = [
    "AUTHORIZATION_CODES",
    "KafkaSettings",
    "authorization_text",
    "diagnose",
    "parse_kafka_uri",
    "route_client_logs",
    "unreachable_text",
]

SECRET_KEYS = {"sasl.password", "ssl.key.password", "sasl.jaas.config"}


def _bool(v: str) -> bool:
    t = str(v).lower()
    if t in ("true", "1", "yes"):
        return True
    if t in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true or false, got {v!r}")


# Kafka property -> (aiokafka keyword, converter)
_PRODUCER: dict[str, tuple[str, Any]] = {
    "acks": ("acks", lambda v: v if v == "all" else int(v)),
    "enable.idempotence": ("enable_idempotence", _bool),
    "compression.type": ("compression_type", lambda v: None if v == "none" else v),
    "linger.ms": ("linger_ms", int),
    "batch.size": ("max_batch_size", int),
    "max.request.size": ("max_request_size", int),
    "request.timeout.ms": ("request_timeout_ms", int),
    "retry.backoff.ms": ("retry_backoff_ms", int),
    "metadata.max.age.ms": ("metadata_max_age_ms", int),
    "connections.max.idle.ms": ("connections_max_idle_ms", int),
    "client.id": ("client_id", str),
    "security.protocol": ("security_protocol", str),
    "sasl.mechanism": ("sasl_mechanism", str),
    "sasl.username": ("sasl_plain_username", str),
    "sasl.password": ("sasl_plain_password", str),
    "transactional.id": ("transactional_id", str),
    "transaction.timeout.ms": ("transaction_timeout_ms", int),
}
# settings of the sink itself (not passed to the client)
_SINK_KEYS = {
    "partitions": int,
    "retention.ms": int,
    "replication.factor": int,
    "buffer.memory": int,
    "max.block.ms": int,
    "on.full": str,
    "startup.wait.ms": int,
    "close.timeout.ms": int,
    "transaction.interval.ms": int,
    "create.topic": str,
    "config": str,
    "ssl.ca.location": str,
    "ssl.certificate.location": str,
    "ssl.key.location": str,
    "ssl.key.password": str,
}
VALID_COMPRESSION = {"none", "gzip", "snappy", "lz4", "zstd"}


def _secret(value: str, source: str, key: str) -> str:
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError.one(source, (key,), f"environment variable {name!r} is not set")
        return os.environ[name]
    if value.startswith("file:"):
        try:
            return Path(value[5:]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError.one(source, (key,), f"cannot read secret file {value[5:]!r}: {exc.strerror}") from None
    return value


def read_properties(path: str, source: str) -> dict[str, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError.one(source, ("config",), f"cannot read {path!r}: {exc.strerror}") from None
    out: dict[str, str] = {}
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith(("#", "!")):
            continue
        sep = min((p for p in (s.find("="), s.find(":")) if p > 0), default=-1)
        if sep < 0:
            raise ConfigError.one(path, (f"line {i}",), f"expected key=value, got {s!r}")
        out[s[:sep].strip()] = s[sep + 1 :].strip()
    return out


@dataclass
class KafkaSettings:
    bootstrap: list[str]
    topic: str
    producer: dict[str, Any] = field(default_factory=dict)
    partitions: int = 6
    replication_factor: int = 1
    retention_ms: int | None = None  # topic config when the sink creates the topic
    create_topic: bool = True
    buffer_memory: int = 64 << 20
    max_block_ms: int = 60_000
    on_full: str = "block"
    startup_wait_ms: int = 0
    close_timeout_ms: int = 10_000
    transaction_interval_ms: int = 100  # transactional sink: how long a transaction stays open before commit
    ssl: dict[str, str] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)  # for describe(): secrets masked
    extra: dict[str, str] = field(default_factory=dict)  # keys a caller asked for (e.g. the validator's client)
    source: str = "--sink"  # the option or key the URI came from, for error messages

    def describe(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.shown.items())
        return f"kafka://{','.join(self.bootstrap)}/{self.topic}" + (f"?{q}" if q else "")

    def connection_kwargs(self) -> dict[str, Any]:
        """The aiokafka keywords about reaching the cluster (for admin clients and consumers)."""
        keep = (
            "bootstrap_servers",
            "security_protocol",
            "sasl_mechanism",
            "sasl_plain_username",
            "sasl_plain_password",
            "ssl_context",
            "client_id",
            "request_timeout_ms",
        )
        return {k: v for k, v in self.client_kwargs().items() if k in keep}

    def client_kwargs(self) -> dict[str, Any]:
        kw = {"bootstrap_servers": self.bootstrap, **self.producer}
        if self.ssl or kw.get("security_protocol", "PLAINTEXT").upper() in ("SSL", "SASL_SSL"):
            import ssl

            key = "ssl.ca.location"
            try:
                ctx = ssl.create_default_context(cafile=self.ssl.get(key))
                if "ssl.certificate.location" in self.ssl:
                    key = "ssl.certificate.location"
                    ctx.load_cert_chain(
                        self.ssl["ssl.certificate.location"],
                        self.ssl.get("ssl.key.location"),
                        self.ssl.get("ssl.key.password"),
                    )
            except (OSError, ssl.SSLError) as exc:
                what = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
                raise ConfigError.one(
                    self.source, (self.describe(), key), f"cannot load {self.ssl.get(key)!r}: {what}"
                ) from None
            kw["ssl_context"] = ctx
        return kw


DEFAULTS = {
    "acks": "all",
    "enable.idempotence": "true",
    "linger.ms": "5",
    "batch.size": "262144",
    "compression.type": "none",
}


def parse_kafka_uri(
    uri: str, *, source: str = "--sink", defaults: dict[str, str] | None = None, extra_keys: tuple[str, ...] = ()
) -> KafkaSettings:
    """``kafka://host:port[,host:port]/topic?prop=value...``: every problem is a one-line ConfigError."""
    parsed = urllib.parse.urlsplit(uri)
    shown = redact_uri(uri)  # messages show the URI with its secrets masked
    if parsed.scheme != "kafka" or not parsed.netloc:
        raise ConfigError.one(source, (shown,), "expected kafka://HOST:PORT/TOPIC")
    topic = parsed.path.lstrip("/")
    if not topic or "/" in topic:
        raise ConfigError.one(source, (shown,), "expected one topic name after the host: kafka://HOST:PORT/TOPIC")
    bootstrap = []
    for hp in parsed.netloc.split(","):
        host, _, port = hp.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError.one(source, (shown,), f"expected HOST:PORT, got {hp!r}")
        bootstrap.append(hp)
    props: dict[str, str] = dict(defaults if defaults is not None else DEFAULTS)
    query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    if "config" in query:
        props.update(read_properties(query["config"], source))
    props.update(query)
    props.pop("config", None)
    s = KafkaSettings(bootstrap, topic, source=source)
    for key, raw in props.items():
        value = _secret(raw, source, key) if key in SECRET_KEYS else raw
        s.shown[key] = "***" if key in SECRET_KEYS else raw
        try:
            if key in _PRODUCER:
                kw, conv = _PRODUCER[key]
                s.producer[kw] = conv(value)
            elif key == "partitions":
                s.partitions = int(value)
            elif key == "retention.ms":
                s.retention_ms = int(value)
            elif key == "replication.factor":
                s.replication_factor = int(value)
            elif key == "create.topic":
                s.create_topic = _bool(value)
            elif key == "buffer.memory":
                s.buffer_memory = int(value)
            elif key == "max.block.ms":
                s.max_block_ms = int(value)
            elif key == "on.full":
                if value not in ("block", "drop"):
                    raise ConfigError.one(source, (shown, key), f"expected block or drop, got {value!r}")
                s.on_full = value
            elif key == "startup.wait.ms":
                s.startup_wait_ms = int(value)
            elif key == "close.timeout.ms":
                s.close_timeout_ms = int(value)
            elif key == "transaction.interval.ms":
                s.transaction_interval_ms = int(value)
            elif key.startswith("ssl."):
                s.ssl[key] = value
            elif key in extra_keys:
                s.extra[key] = value
            else:
                known = ", ".join(sorted([*_PRODUCER, *_SINK_KEYS, *extra_keys]))
                raise ConfigError.one(source, (shown, key), f"unknown Kafka property {key!r} (known: {known})")
        except ValueError as exc:
            msg = str(exc) if "expected" in str(exc) else f"invalid value {s.shown[key]!r}"
            raise ConfigError.one(source, (shown, key), msg) from None
    comp = s.producer.get("compression_type")
    if comp is not None and comp not in VALID_COMPRESSION:
        raise ConfigError.one(
            source, (shown, "compression.type"), f"expected one of {', '.join(sorted(VALID_COMPRESSION))}, got {comp!r}"
        )
    if "acks" in s.producer and s.producer["acks"] not in ("all", 0, 1, -1):
        raise ConfigError.one(source, (shown, "acks"), f"expected all, 0, 1 or -1, got {props['acks']!r}")
    if s.producer.get("enable_idempotence") and s.producer.get("acks") not in ("all", -1):
        raise ConfigError.one(source, (shown, "enable.idempotence"), "idempotence needs acks=all")
    if "transactional_id" in s.producer:
        if not s.producer["transactional_id"]:
            raise ConfigError.one(source, (shown, "transactional.id"), "expected a non-empty id")
        if s.producer.get("acks") not in ("all", -1) or s.producer.get("enable_idempotence") is False:
            raise ConfigError.one(source, (shown, "transactional.id"), "transactions need acks=all and idempotence")
        s.producer["enable_idempotence"] = True
    if s.transaction_interval_ms < 1:
        raise ConfigError.one(
            source, (shown, "transaction.interval.ms"), f"expected a positive integer, got {s.transaction_interval_ms}"
        )
    if s.partitions < 1:
        raise ConfigError.one(source, (shown, "partitions"), f"expected a positive integer, got {s.partitions}")
    return s


# ----------------------------------------------------------------------------- why a client cannot connect

AUTHORIZATION_CODES = frozenset((29, 30, 31, 53))  # Kafka's *_AUTHORIZATION_FAILED error codes
_AUTHZ = {
    29: ("TOPIC_AUTHORIZATION_FAILED", "topic"),
    30: ("GROUP_AUTHORIZATION_FAILED", "consumer group"),
    31: ("CLUSTER_AUTHORIZATION_FAILED", "cluster"),
    53: ("TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "transactional id"),
}


def authorization_text(s: KafkaSettings, exc_or_code: BaseException | int, action: str, resource: str) -> str | None:
    """One line for an authorization failure (ACL denial), or None when it is not one."""
    code = exc_or_code if isinstance(exc_or_code, int) else getattr(exc_or_code, "errno", None)
    if code not in _AUTHZ:
        return None
    name, kind = _AUTHZ[code]
    user = s.producer.get("sasl_plain_username")
    who = f"user {user!r}" if user else "this client"
    return f"kafka: not authorized to {action} {resource} ({name}): the broker's ACLs do not allow {who} on this {kind}"


async def diagnose(s: KafkaSettings) -> tuple[bool, str | None]:
    """Why the cluster cannot be reached: connect once to each bootstrap server the way the clients do and
    return ``(fatal, reason)``, reason None when one of them answers. Fatal reasons (credentials, TLS trust,
    SASL mechanism) are not cured by waiting, so callers stop at once instead of retrying."""
    import ssl

    from aiokafka.conn import create_conn
    from aiokafka.errors import (
        KafkaConnectionError,
        KafkaError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )

    kw = s.connection_kwargs()
    kw.pop("bootstrap_servers", None)
    kw["request_timeout_ms"] = min(int(kw.get("request_timeout_ms", 10_000)), 10_000)
    reasons: list[tuple[bool, str]] = []
    for hp in s.bootstrap:
        host, _, port = hp.rpartition(":")
        try:
            conn = await create_conn(host.strip("[]"), int(port), **kw)
        except SaslAuthenticationFailed:
            user = s.producer.get("sasl_plain_username")
            mech = s.producer.get("sasl_mechanism", "PLAIN")
            reasons.append(
                (True, f"authentication failed for user {user!r} ({mech}): check sasl.username and sasl.password")
            )
        except UnsupportedSaslMechanismError:
            reasons.append((True, f"the broker does not accept sasl.mechanism={s.producer.get('sasl_mechanism')}"))
        except ssl.SSLCertVerificationError as exc:
            ca = s.ssl.get("ssl.ca.location", "the system's CA store")
            reasons.append(
                (True, f"TLS: the broker's certificate is not trusted ({exc.verify_message}; ssl.ca.location: {ca})")
            )
        except ssl.SSLError as exc:
            reasons.append((True, f"TLS handshake failed: {exc.reason or exc}"))
        except KafkaConnectionError as exc:
            text = str(exc)
            if text.endswith("closed") and kw.get("security_protocol", "PLAINTEXT") == "PLAINTEXT":
                # a listener that hangs up on a plain request wants TLS or SASL: waiting will not help
                reasons.append((True, f"{text}: does the listener expect TLS or SASL? set security.protocol"))
            else:
                reasons.append((False, text))
        except (KafkaError, OSError, TimeoutError) as exc:
            reasons.append((False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__))
        else:
            conn.close()
            return False, None
    fatal = [r for f, r in reasons if f]
    if fatal:
        return True, fatal[0]
    return False, reasons[0][1] if reasons else "no bootstrap server"


async def unreachable_text(
    s: KafkaSettings, exc: BaseException | None = None, action: str = "use", resource: str = "the cluster"
) -> tuple[bool, str]:
    """``(fatal, line)``: the one line a client that failed to start reports. An ACL denial in ``exc`` is said
    as not being authorized to ``action`` ``resource``; anything else is diagnosed by connecting."""
    if exc is not None:
        if getattr(exc, "errno", None) == 31 and s.producer.get("enable_idempotence"):
            action, resource = "start an idempotent producer on", "the cluster"
        denied = authorization_text(s, exc, action, resource)
        if denied:
            return True, denied
    fatal, reason = await diagnose(s)
    if reason is None:  # a server answers: the client's own error says what went wrong
        if exc is None:
            reason = "a bootstrap server answers, but the client could not start"
        else:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    verb = "cannot connect to" if fatal else "cannot reach a broker at"
    return fatal, f"kafka: {verb} {','.join(s.bootstrap)}: {reason}"


class _ClientLog(logging.Handler):
    """aiokafka's own warnings, each distinct message once as an ``emitter: kafka client:`` line on stderr (a
    lost broker otherwise repeats the same line for every request until the cluster heals)."""

    MAX_LINES = 20

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text in self.seen or len(self.seen) > self.MAX_LINES:
            return
        self.seen.add(text)
        more = len(self.seen) > self.MAX_LINES
        line = "further messages of the Kafka client are not shown" if more else one_line(text)
        print(f"emitter: kafka client: {line}", file=sys.stderr, flush=True)


@functools.cache
def route_client_logs() -> _ClientLog:
    """Send aiokafka's log records through one :class:`_ClientLog` (once per process)."""
    out = _ClientLog()
    log = logging.getLogger("aiokafka")
    log.addHandler(out)
    log.propagate = False
    log.setLevel(logging.WARNING)
    return out


async def write_compacted(s: KafkaSettings, records: list[tuple[bytes, bytes]], action: str, prefix: str) -> None:
    """(key, value) records onto ``s.topic``, a compacted topic made if missing (one partition), in one
    transaction when the URI names a transactional id. A failure is one :class:`EmitterError` line,
    ``prefix: ...`` (``action`` says what could not be done: "write the truth to")."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

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
            if "transactional_id" in kw:  # all records in one transaction
                await p.begin_transaction()
            for key, value in records:
                await p.send_and_wait(s.topic, value, key=key)
            if "transactional_id" in kw:
                await p.commit_transaction()
        finally:
            await p.stop()
    except (KafkaError, OSError) as exc:
        fatal, line = await unreachable_text(s, exc, action, f"topic {s.topic!r}")
        if not fatal and isinstance(exc, KafkaError) and not isinstance(exc, KafkaConnectionError):
            line = f"kafka: cannot write to topic {s.topic!r}: {type(exc).__name__}: {exc}"
        raise EmitterError(f"{prefix}: {line}") from None
