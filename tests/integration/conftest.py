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
