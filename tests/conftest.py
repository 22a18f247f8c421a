from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ("tests.browser.fixtures",)  # the browser, for the report tests (also the live ones)

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "workflows"
START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def run_cli(
    *args: str,
    input: bytes | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run the real ``emitter`` command in a subprocess (as a user would)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "emitter", *args],
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        env=e,
        check=False,
    )


@pytest.fixture
def ecommerce_path() -> Path:
    return WORKFLOWS / "ecommerce.yaml"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests against the real servers share them: with pytest-xdist they all run on one worker, in order,
    while the other workers take the unit tests (``--dist loadgroup``)."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.xdist_group("servers"))


@pytest.fixture(autouse=True)
def _no_metrics_from_the_developers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """EMITTER_METRICS_PORT / EMITTER_METRICS_OTLP set in a shell would make every run in the tests serve or push."""
    monkeypatch.delenv("EMITTER_METRICS_PORT", raising=False)
    monkeypatch.delenv("EMITTER_METRICS_OTLP", raising=False)
