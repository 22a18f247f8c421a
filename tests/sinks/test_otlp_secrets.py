"""The OTLP sink's TLS settings and its care with credentials, without a receiver (the real one: the
integration tests in tests/integration/test_otelcol_secure.py)."""

from __future__ import annotations

import asyncio

import pytest

from emitter.errors import ConfigError
from emitter.sinks.base import SinkError, open_sink, redact_uri
from emitter.sinks.otlp import OtlpSink, _status_message, parse_otlp_uri

TOKEN = "s3cr3t-t0ken-value"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (
            f"otlp+grpcs://h:1?certificate=/ca.pem&headers=authorization=Bearer%20{TOKEN}&timeout=5",
            "otlp+grpcs://h:1?certificate=/ca.pem&headers=***&timeout=5",
        ),
        (
            f"kafka://user:{TOKEN}@h:9093/t?sasl.password={TOKEN}&acks=1",
            "kafka://user:***@h:9093/t?sasl.password=***&acks=1",
        ),
        (f"x://h?api_token={TOKEN}#frag", "x://h?api_token=***#frag"),
        ("otlp+http://[::1", "otlp+http://[::1"),
        ("file:/tmp/out.jsonl", "file:/tmp/out.jsonl"),
    ],
)
def test_redact_uri(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


@pytest.mark.parametrize(
    "uri",
    [
        f"otlp+https://h:4320?compression=br&headers=authorization=Bearer%20{TOKEN}",
        f"otlp+https://h:4320?headers=authorization:Bearer%20{TOKEN}",
        f"otlp+https://h:4320?headers=authorization=Bearer%20{TOKEN}&colour=red",
        f"otlpx+https://h:4320?headers=authorization=Bearer%20{TOKEN}",
    ],
)
def test_errors_never_show_a_header_value(uri: str) -> None:
    with pytest.raises(ConfigError) as e:
        open_sink(uri)
    assert TOKEN not in str(e.value)


def test_env_headers_errors_never_show_the_value() -> None:
    with pytest.raises(ConfigError, match=r"OTEL_EXPORTER_OTLP_HEADERS: headers: .*part 1 of 1 has no =") as e:
        parse_otlp_uri("otlp+grpcs://h:4319", {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization Bearer {TOKEN}"})
    assert TOKEN not in str(e.value)


def test_tls_schemes() -> None:
    g = parse_otlp_uri(f"otlp+grpcs://127.0.0.1:4319?certificate=/ca.pem&headers=authorization=Bearer%20{TOKEN}", {})
    assert (g.protocol, g.endpoint, g.tls, g.certificate) == ("grpc", "127.0.0.1:4319", True, "/ca.pem")
    assert g.headers == {"authorization": f"Bearer {TOKEN}"}
    assert g.describe().startswith("otlp+grpcs://127.0.0.1:4319 (grpc") and TOKEN not in g.describe()
    h = parse_otlp_uri("otlp+https://127.0.0.1:4320", {"OTEL_EXPORTER_OTLP_CERTIFICATE": "/ca.pem"})
    assert (h.endpoint, h.tls, h.certificate, h.hostport) == (
        "https://127.0.0.1:4320/v1/traces",
        True,
        "/ca.pem",
        "127.0.0.1:4320",
    )
    assert h.describe().startswith("otlp+https://127.0.0.1:4320/v1/traces (http/protobuf")
    assert not parse_otlp_uri("otlp://127.0.0.1:4317", {}).tls
    assert not parse_otlp_uri("otlp+http://127.0.0.1:4318", {}).tls


@pytest.mark.parametrize("scheme", ["otlp+grpcs", "otlp+https"])
def test_an_unreadable_ca_file_is_one_line(scheme: str) -> None:
    sink = open_sink(f"{scheme}://127.0.0.1:1?certificate=/nonexistent/ca.pem")
    assert isinstance(sink, OtlpSink)
    with pytest.raises(SinkError, match=r"^otlp: certificate /nonexistent/ca.pem: No such file or directory$"):
        asyncio.run(sink.start())


def test_status_message_of_an_otlp_http_error_body() -> None:
    msg = b"provided authorization does not match expected scheme or token"
    body = bytes([0x08, 16, 0x12, len(msg)]) + msg  # google.rpc.Status{code: 16, message: ...}
    assert _status_message(body) == msg.decode()
    assert _status_message(b"\x08\x10") == ""  # a code, no message: the caller shows the body instead
    with pytest.raises(ValueError):
        _status_message(b"\x12\x10abc")  # a message field cut short
