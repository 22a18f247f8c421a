"""Against the real collector's secured receiver (otlp/secure: TLS and a bearer token, deploy/local/otelcol.sh):
spans sent with the right CA and token arrive whole; a wrong or missing token, an untrusted certificate and
plain text to the TLS port each end the run within seconds with one clear error line, and no token is ever
printed."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from ..conftest import WORKFLOWS, run_cli
from .conftest import _otelcol_paths
from .test_otelcol import collector_spans

pytestmark = [pytest.mark.otelcol]
MICRO = str(WORKFLOWS / "microservices.yaml")
QUICK = 15.0  # seconds: a refused run must end well within this


@pytest.fixture(scope="session")
def secure(otelcol: dict[str, str]) -> dict[str, str]:
    """The secured receiver's endpoints, CA files and token (otelcol.sh start makes them; paths prints them)."""
    paths = _otelcol_paths()
    tls = Path(paths.get("tls", ""))
    token_file = Path(paths.get("token", ""))
    for f in (tls / "ca.pem", tls / "other-ca.pem", token_file):
        if not f.is_file():
            pytest.fail(f"{f} is missing: restart the collector (deploy/local/otelcol.sh restart) to make it")
    token = token_file.read_text().split()[0]
    assert len(token) >= 32
    # the running collector must be the one with otlp/secure (an older one has no TLS port)
    probe = run_cli(
        "run",
        MICRO,
        "--sessions",
        "1",
        "--speed",
        "max",
        "--progress",
        "off",
        "--sink",
        f"otlp+grpcs://{paths['grpcs']}?certificate={tls / 'ca.pem'}&headers=authorization=Bearer%20{token}",
        "--sink",
        "null",
    )
    if probe.returncode != 0:
        pytest.fail(
            "the collector's secured receiver does not take the right token: restart it with "
            f"deploy/local/otelcol.sh restart ({probe.stderr.decode().strip().splitlines()[-1:]})"
        )
    return {
        "traces": otelcol["traces"],
        "grpcs": paths["grpcs"],
        "https": paths["https"],
        "ca": str(tls / "ca.pem"),
        "other_ca": str(tls / "other-ca.pem"),
        "token": token,
    }


def _run(*sink_args: str, env: dict[str, str] | None = None, sessions: int = 10) -> tuple[int, str, float]:
    t0 = time.monotonic()
    proc = run_cli(
        "run",
        MICRO,
        "--speed",
        "max",
        "--sessions",
        str(sessions),
        "--progress",
        "off",
        *sink_args,
        env=env,
        timeout=60,
    )
    elapsed = time.monotonic() - t0
    return proc.returncode, proc.stdout.decode() + proc.stderr.decode(), elapsed


def _no_secret(out: str, *tokens: str) -> None:
    for t in tokens:
        assert t not in out, "a token was printed"


def _fails_clearly(code: int, out: str, elapsed: float, needle: str) -> str:
    """Exit 1 within seconds; nothing but the emitter's own lines, one of them the error, no traceback."""
    assert code == 1, out
    assert elapsed < QUICK, f"took {elapsed:.1f} s: {out}"
    assert "Traceback" not in out, out
    lines = out.splitlines()
    assert all(x.startswith("emitter: ") for x in lines), out  # e.g. no line logged by gRPC's core
    errors = [x for x in lines if x.startswith("emitter: error:")]
    assert len(errors) == 1, out
    assert needle in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("how", ["query", "env"])
@pytest.mark.parametrize("proto", ["grpc", "http"])
def test_spans_arrive_whole_over_tls_with_the_token(
    secure: dict[str, str], proto: str, how: str, tmp_path: Path
) -> None:
    scheme, endpoint = ("otlp+grpcs", secure["grpcs"]) if proto == "grpc" else ("otlp+https", secure["https"])
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "", "OTEL_EXPORTER_OTLP_CERTIFICATE": ""}
    if how == "query":
        sink = f"{scheme}://{endpoint}?certificate={secure['ca']}&headers=authorization=Bearer%20{secure['token']}"
    else:  # the standard OTLP exporter variables
        sink = f"{scheme}://{endpoint}"
        env = {
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{secure['token']}",
            "OTEL_EXPORTER_OTLP_CERTIFICATE": secure["ca"],
        }
    events_file = tmp_path / "events.jsonl"
    code, out, _ = _run("--sink", sink, "--sink", f"file:{events_file}", env=env, sessions=200)
    _no_secret(out, secure["token"])
    assert code == 0, out
    line = next(x for x in out.splitlines() if f"sink {scheme}://" in x)
    acked, of = line.rsplit("; ", 1)[1].split(" spans")[0].replace(",", "").split(" of ")
    events = [json.loads(x) for x in events_file.read_text().splitlines()]
    assert f"{len(events):,} sent, {len(events):,} acknowledged, 0 failed" in line
    assert int(acked) == int(of) > len(events) > 0
    spans = collector_spans(secure["traces"], {e["trace_id"] for e in events}, int(acked))
    assert len(spans) == int(acked)
    assert len({sp["spanId"] for sp in spans}) == len(spans)
    roots = {sp["traceId"]: sp for sp in spans if not sp.get("parentSpanId")}
    assert {e["trace_id"]: e["span_id"] for e in events} == {t: sp["spanId"] for t, sp in roots.items()}


@pytest.mark.parametrize("proto", ["grpc", "http"])
@pytest.mark.parametrize("how", ["query", "env"])
def test_a_wrong_token_is_one_line_and_quick(secure: dict[str, str], proto: str, how: str) -> None:
    scheme, endpoint = ("otlp+grpcs", secure["grpcs"]) if proto == "grpc" else ("otlp+https", secure["https"])
    wrong = secrets.token_hex(20)
    sink = f"{scheme}://{endpoint}?certificate={secure['ca']}"
    env = {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{wrong}"}
    if how == "query":
        sink += f"&headers=authorization=Bearer%20{wrong}"
        env = {"OTEL_EXPORTER_OTLP_HEADERS": ""}
    code, out, elapsed = _run("--sink", sink, env=env)
    _no_secret(out, wrong, secure["token"])
    err = _fails_clearly(code, out, elapsed, f"otlp: the receiver at {endpoint} refused the credentials")
    assert ("UNAUTHENTICATED" if proto == "grpc" else "HTTP 401") in err
    assert "0 sent" in out  # refused at the startup check, before any event


@pytest.mark.parametrize("proto", ["grpc", "http"])
def test_no_token_says_credentials_are_wanted(secure: dict[str, str], proto: str) -> None:
    scheme, endpoint = ("otlp+grpcs", secure["grpcs"]) if proto == "grpc" else ("otlp+https", secure["https"])
    code, out, elapsed = _run("--sink", f"{scheme}://{endpoint}?certificate={secure['ca']}")
    _no_secret(out, secure["token"])
    _fails_clearly(code, out, elapsed, f"otlp: the receiver at {endpoint} wants credentials, and none were sent")


@pytest.mark.parametrize("proto", ["grpc", "http"])
def test_an_untrusted_certificate_is_a_clear_tls_error(secure: dict[str, str], proto: str) -> None:
    scheme, endpoint = ("otlp+grpcs", secure["grpcs"]) if proto == "grpc" else ("otlp+https", secure["https"])
    sink = f"{scheme}://{endpoint}?certificate={secure['other_ca']}&headers=authorization=Bearer%20{secure['token']}"
    code, out, elapsed = _run("--sink", sink)
    _no_secret(out, secure["token"])
    err = _fails_clearly(code, out, elapsed, f"otlp: TLS certificate of {endpoint} not trusted")
    assert f"trusting only {secure['other_ca']}" in err and "unable to get local issuer certificate" in err


@pytest.mark.parametrize("proto", ["grpc", "http"])
def test_plain_text_to_the_tls_port_fails_clearly(secure: dict[str, str], proto: str) -> None:
    if proto == "grpc":
        sink, needle = f"otlp://{secure['grpcs']}", "if the receiver wants TLS, use otlp+grpcs://"
    else:
        sink, needle = f"otlp+http://{secure['https']}", f"otlp: {secure['https']} wants TLS: use otlp+https://"
    code, out, elapsed = _run("--sink", f"{sink}?headers=authorization=Bearer%20{secure['token']}")
    _no_secret(out, secure["token"])
    _fails_clearly(code, out, elapsed, needle)


def test_tls_to_a_plain_port_fails_clearly(secure: dict[str, str], otelcol: dict[str, str]) -> None:
    code, out, elapsed = _run("--sink", f"otlp+grpcs://{otelcol['grpc']}?certificate={secure['ca']}")
    _fails_clearly(code, out, elapsed, f"otlp: TLS handshake with {otelcol['grpc']} failed")
    code, out, elapsed = _run("--sink", f"otlp+https://{otelcol['http']}?certificate={secure['ca']}")
    _fails_clearly(code, out, elapsed, f"otlp: TLS handshake with {otelcol['http']} failed")


def test_a_token_in_a_bad_sink_uri_is_not_echoed(secure: dict[str, str]) -> None:
    base = f"otlp+https://{secure['https']}?certificate={secure['ca']}"
    for sink in (
        f"{base}&compression=br&headers=authorization=Bearer%20{secure['token']}",
        f"{base}&headers=authorization:Bearer%20{secure['token']}",
        f"otlpx+https://{secure['https']}?headers=authorization=Bearer%20{secure['token']}",
    ):
        code, out, _ = _run("--sink", sink)
        assert code == 2 and "emitter: error: --sink" in out and "Traceback" not in out, out
        _no_secret(out, secure["token"])
    code, out, _ = _run(
        "--sink", f"{base}", env={"OTEL_EXPORTER_OTLP_HEADERS": f"authorization Bearer {secure['token']}"}
    )
    assert code == 2 and "OTEL_EXPORTER_OTLP_HEADERS" in out, out
    _no_secret(out, secure["token"])


def test_a_missing_ca_file_is_one_line(secure: dict[str, str], tmp_path: Path) -> None:
    for scheme, endpoint in (("otlp+grpcs", secure["grpcs"]), ("otlp+https", secure["https"])):
        missing = tmp_path / "nope.pem"
        code, out, elapsed = _run("--sink", f"{scheme}://{endpoint}?certificate={missing}")
        _fails_clearly(code, out, elapsed, f"otlp: certificate {missing}: No such file or directory")
        code, out, elapsed = _run("--sink", f"{scheme}://{endpoint}?certificate={MICRO}")
        _fails_clearly(code, out, elapsed, f"otlp: certificate {MICRO}: not a PEM certificate")
