"""Start-up stays light: importing the package, or checking a file, loads no compiled kernel, no scipy and no
Kafka client (they come when a run, a validation or a sink needs them). Timings are in bench/bench_startup.py."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT

HEAVY = (
    "scipy",
    "numba",
    "llvmlite",
    "aiokafka",
    "confluent_kafka",
    "grpc",
    "httpx",
    "rich",
    "asyncio",
    "pyarrow",
    "pandas",
)


def _loaded(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    names: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return names


def test_import_emitter_is_light() -> None:
    assert _loaded("import emitter") == []


def test_checking_files_is_light() -> None:
    code = (
        "import sys; from emitter.cli import main\n"
        "main(['check', 'workflows/ecommerce.yaml', 'workflows/scenarios/payment-slowdown.yaml'])"
    )
    assert _loaded(code) == []


def test_the_probe_sees_heavy_imports() -> None:
    """(The test above can fail: a run does load the kernels.)"""
    code = "from emitter.encode.jsonl import encode_jsonl"
    assert "numba" in _loaded(code)
