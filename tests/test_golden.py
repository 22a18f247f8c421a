"""Golden files: the byte-identity claim, held to stored output.

For each bundled workflow (and one scenario that exercises every fault kind, retries, reactions, random
faults and the cascade preset) a small run's JSON lines, written by the real CLI, and its OTLP request
bodies must equal the files under ``tests/golden``. A change to the bytes must be deliberate: rerun with
``EMITTER_UPDATE_GOLDEN=1``, explain it in CHANGELOG.md, and commit the new files.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import pytest

from .conftest import ROOT, run_cli

GOLDEN = Path(__file__).resolve().parent / "golden"
START = "2026-01-01T00:00:00Z"

CASES: dict[str, tuple[str, ...]] = {
    "ecommerce": ("workflows/ecommerce.yaml", "--seed", "7", "--sessions", "60"),
    "microservices": ("workflows/microservices.yaml", "--seed", "7", "--sessions", "60"),
    "microservices-closed": ("workflows/microservices.yaml", "--seed", "3", "--users", "20", "--duration", "40s"),
    "faults": ("tests/golden/faults.yaml",),
}


def _update() -> bool:
    return os.environ.get("EMITTER_UPDATE_GOLDEN") == "1"


def _compare(path: Path, data: bytes) -> None:
    if _update():
        with gzip.GzipFile(path, "wb", mtime=0) as fh:
            fh.write(data)
    assert path.exists(), f"{path} is missing: create it with EMITTER_UPDATE_GOLDEN=1"
    want = gzip.decompress(path.read_bytes())
    if data != want:
        got_lines, want_lines = data.splitlines(), want.splitlines()
        first = next(
            (i for i, (a, b) in enumerate(zip(got_lines, want_lines, strict=False)) if a != b),
            min(len(got_lines), len(want_lines)),
        )
        pytest.fail(
            f"{path.name}: output differs from the golden file ({len(data)} vs {len(want)} bytes; first at "
            f"line/record {first}); if the change is deliberate, rerun with EMITTER_UPDATE_GOLDEN=1"
        )


@pytest.mark.parametrize("name", sorted(CASES))
def test_json_lines_equal_the_golden_file(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    proc = run_cli(
        "run", *CASES[name], "--speed", "max", "--start", START, "--sink", f"file:{out}", "--progress", "off", cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr.decode()
    _compare(GOLDEN / f"{name}.jsonl.gz", out.read_bytes())


@pytest.mark.parametrize("name", sorted(CASES))
def test_otlp_bodies_equal_the_golden_file(name: str) -> None:
    from .otlp_golden import otlp_bodies

    bodies = otlp_bodies(CASES[name], START)
    data = b"".join(struct.pack(">I", len(b)) + b for b in bodies)
    _compare(GOLDEN / f"{name}.otlp.gz", data)
