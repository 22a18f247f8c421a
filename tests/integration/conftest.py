"""Integration tests talk to the real servers that scripts/test.sh starts with the project's own scripts."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from ..conftest import ROOT

KAFKA = os.environ.get("EMITTER_TEST_KAFKA", "127.0.0.1:9092")


def kafka_up() -> bool:
    env = dict(os.environ, KAFKA_PORT=KAFKA.rsplit(":", 1)[1])
    return (
        subprocess.run(
            [str(ROOT / "deploy/local/kafka.sh"), "status"], env=env, capture_output=True, check=False
        ).returncode
        == 0
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    if not kafka_up():
        pytest.fail(
            f"no Kafka broker answers on {KAFKA}: start it with deploy/local/kafka.sh start "
            "(scripts/test.sh does this), or deselect these tests with -m 'not kafka'"
        )
    return KAFKA


@pytest.fixture
def topic() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def _otelcol_paths() -> dict[str, str]:
    out = subprocess.run([str(ROOT / "deploy/local/otelcol.sh"), "paths"], capture_output=True, text=True, check=False)
    paths = {}
    for line in out.stdout.splitlines():
        k, _, v = line.partition(":")
        paths[k.strip()] = v.strip()
    return paths


@pytest.fixture(scope="session")
def otelcol() -> dict[str, str]:
    """The real collector started by deploy/local/otelcol.sh: its traces file and endpoints."""
    st = subprocess.run([str(ROOT / "deploy/local/otelcol.sh"), "status"], capture_output=True, check=False)
    if st.returncode != 0:
        pytest.fail(
            "no OpenTelemetry Collector is running: start it with deploy/local/otelcol.sh start "
            "(scripts/test.sh does this), or deselect these tests with -m 'not otelcol'"
        )
    paths = _otelcol_paths()
    return {"traces": paths["traces"], "metrics": paths["metrics"], "grpc": "127.0.0.1:4317", "http": "127.0.0.1:4318"}


JAEGER_QUERY = os.environ.get("EMITTER_TEST_JAEGER", "127.0.0.1:16686")


@pytest.fixture(scope="session")
def jaeger() -> dict[str, str]:
    """The real Jaeger started by deploy/local/jaeger.sh: its OTLP endpoint and query API."""
    st = subprocess.run([str(ROOT / "deploy/local/jaeger.sh"), "status"], capture_output=True, check=False)
    if st.returncode != 0:
        pytest.fail(
            "no Jaeger is running: start it with deploy/local/jaeger.sh start (scripts/test.sh does this), "
            "or deselect these tests with -m 'not jaeger'"
        )
    return {"otlp": "127.0.0.1:14317", "query": f"http://{JAEGER_QUERY}"}
