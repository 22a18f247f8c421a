"""Several validators' statistics summed and judged as one (the broker-free half of ``validate --merge``)."""

from __future__ import annotations

import json
import zlib

import pytest

from emitter.errors import EmitterError
from emitter.inputs.workflow import load_workflow
from emitter.validate.assemble import Assembler
from emitter.validate.merge import merged_report, stats_of
from emitter.validate.report import build_report
from emitter.validate.sources import feed_lines

from ..conftest import WORKFLOWS
from ..helpers import ecommerce
from .test_validator import lines_of, shifted


def _split(lines: list[bytes], parts: int) -> list[list[bytes]]:
    """Lines as a topic keyed by session would spread them over ``parts`` partitions."""
    out: list[list[bytes]] = [[] for _ in range(parts)]
    for ln in lines:
        try:
            sid = json.loads(ln)["session_id"]
        except ValueError:  # a malformed record lands somewhere too
            sid = ""
        out[zlib.crc32(sid.encode()) % parts].append(ln)
    return out


def _published(wf, shares: list[list[bytes]]) -> list[dict]:  # type: ignore[no-untyped-def]
    out = []
    for k, share in enumerate(shares):
        asm = Assembler(wf)
        bad = feed_lines(asm, iter(share))
        st = stats_of(
            asm, group="g", member=f"m{k}", topic="t", partitions=[k], live={"records": len(share), "malformed": bad}
        )
        out.append(json.loads(json.dumps(st)))  # (as the topic carries it)
    return out


def _judged(rep) -> dict:  # type: ignore[no-untyped-def]
    return {k: v for k, v in rep.data.items() if k not in ("source", "merged")}


@pytest.mark.parametrize("drift", [False, True], ids=["true chain", "drifted chain"])
def test_the_merge_of_shares_is_the_whole_streams_report(drift: bool) -> None:
    wf = ecommerce()
    made = shifted(wf, "/api/cart", "/api/checkout", "/api/browse", 0.03) if drift else wf
    lines = lines_of(made, 7, 20_000)
    lines.insert(100, b"{not an event")
    whole = Assembler(wf)
    bad = feed_lines(whole, iter(lines))
    want = build_report(whole, malformed=bad)
    got = merged_report(wf, _published(wf, _split(lines, 3)), alpha=0.01, min_samples=30, source="t")
    assert _judged(got) == _judged(want)
    assert got.consistent is (not drift)  # the drifted stream must still be rejected after the merge
    assert got.data["merged"]["validators"] == 3 and got.data["merged"]["partitions"] == [0, 1, 2]


def test_a_partition_read_by_two_validators_is_refused() -> None:
    wf = ecommerce()
    parts = _published(wf, _split(lines_of(wf, 3, 500), 2))
    parts[1]["partitions"] = [0, 1]
    with pytest.raises(EmitterError, match="partition 0 was read by two validators"):
        merged_report(wf, parts, alpha=0.01, min_samples=30, source="t")


def test_another_workflows_counts_are_refused() -> None:
    wf = ecommerce()
    parts = _published(wf, _split(lines_of(wf, 3, 500), 2))
    other = load_workflow(str(WORKFLOWS / "microservices.yaml"))
    with pytest.raises(EmitterError, match="counted for workflow 'ecommerce'"):
        merged_report(other, parts, alpha=0.01, min_samples=30, source="t")
    with pytest.raises(EmitterError, match="no validator's statistics"):
        merged_report(wf, [], alpha=0.01, min_samples=30, source="t")
