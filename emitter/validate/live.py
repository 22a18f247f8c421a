"""The live validator: a Kafka consumer that rebuilds sessions as events arrive and judges as it goes.

Repeated looks at a growing stream inflate false alarms, so live verdicts are only taken at fixed
checkpoints (event counts doubling from ``first_look``) with alpha spending: look k tests at
``alpha / 2**(k+1)``, so every live alarm of a run together stays under ``alpha``. Each checkpoint also
tests the window since the previous one, which is how a chain that changes mid-run (drift) shows up.
The final report is the fixed-sample test of everything read, as for a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import msgspec

from ..clients.kafka import parse_kafka_uri
from ..core.spec import Workflow
from .assemble import Assembler, Counts, ObservedEvent
from .otlp import Sessionizer, root_calls_from_proto
from .readers import open_reader
from .report import Report, build_report

__all__ = ["LiveOptions", "LiveResult", "validate_kafka"]

_decode = msgspec.json.Decoder(ObservedEvent).decode
JOIN_GRACE_S = 60.0  # --until-idle counts from the first partition assignment, or after this long


class _SessionOnly(msgspec.Struct):
    session_id: str


_decode_sid = msgspec.json.Decoder(_SessionOnly).decode


@dataclass
class LiveOptions:
    group: str | None = None
    max_events: int | None = None
    until_idle: float | None = None
    alpha: float = 0.01
    min_samples: int = 30
    first_look: int = 10_000
    interval: float = 5.0  # seconds between status lines
    max_open: int = 1_000_000  # sessions kept open before the idlest is evicted
    from_beginning: bool = True
    run_id: str | None = None  # judge only this run's records
    format: str = "auto"  # jsonl (events), otlp (OTLP protobuf requests), or auto (sniffed per record)


@dataclass
class Look:
    events: int
    alpha: float
    cumulative: str
    window: str
    rejected_rows: list[str] = field(default_factory=list)


@dataclass
class LiveResult:
    report: Report
    looks: list[Look]
    records: int
    malformed: int
    key_mismatch: int
    keys_checked: int
    stopped_by: str
    seconds: float

    @property
    def alarms(self) -> list[Look]:
        return [lk for lk in self.looks if lk.cumulative == "rejected" or lk.window == "rejected"]


def _window(now: Counts, prev: Counts | None) -> Counts:
    """The counts since ``prev`` (same workflow and groups), for the window test."""
    if prev is None:
        return now
    return Counts(
        now.groups, now.states, now.entry - prev.entry, now.trans - prev.trans, abandon=now.abandon - prev.abandon
    )


async def validate_kafka(
    wf: Workflow,
    uri: str,
    opts: LiveOptions,
    *,
    out: TextIO | None = None,
    on_status: Callable[[str], None] | None = None,
) -> LiveResult:
    err = out or sys.stderr
    s = parse_kafka_uri(uri, source="--source", defaults={}, extra_keys=("client",))
    reader = open_reader(s, s.extra.get("client", "auto"), opts.group, opts.from_beginning)
    await reader.start()

    asm = Assembler(wf, max_open=opts.max_open, run_id=opts.run_id)
    sessionizer = Sessionizer(asm, max_open=opts.max_open)
    looks: list[Look] = []
    records = malformed = key_mismatch = 0
    next_look = opts.first_look
    prev_counts: Counts | None = None
    stop = asyncio.Event()
    stopped_by = ""
    loop = asyncio.get_running_loop()
    installed = []
    for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):

        def handler(name: str = name) -> None:
            nonlocal stopped_by
            stopped_by = stopped_by or name
            stop.set()

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
    live = None
    if on_status is None and err.isatty():  # a refreshing table on a terminal, periodic lines otherwise
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        live = Live(console=Console(file=err), auto_refresh=False, transient=True)
        live.start()
        opts.interval = min(opts.interval, 2.0)
    t0 = last_data = last_line = time.monotonic()
    pending = asyncio.ensure_future(reader.poll_sampled(50_000, 0.2))
    keys_checked = 0
    try:
        while not stop.is_set():
            values, sample = await pending
            pending = asyncio.ensure_future(reader.poll_sampled(50_000, 0.2))  # fetch the next meanwhile
            now = time.monotonic()
            got = len(values)
            if not got and not reader.ready() and now - t0 < JOIN_GRACE_S:
                last_data = now  # still joining the consumer group: not idle yet
            for raw in values:
                value = raw or b""
                if opts.format == "otlp" or (opts.format == "auto" and value[:1] not in (b"{", b" ", b"")):
                    try:
                        sessionizer.add(root_calls_from_proto(value))
                    except ValueError:
                        malformed += 1
                    continue
                try:
                    ev = _decode(value)
                except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
                    malformed += 1
                    continue
                asm.add(ev)
            for key, raw in sample:  # Kafka keys should be the session ids: checked on a sample
                if key is None or not raw or raw[:1] != b"{":
                    continue
                keys_checked += 1
                try:
                    if key != _decode_sid(raw).session_id.encode():
                        key_mismatch += 1
                except (msgspec.DecodeError, msgspec.ValidationError):
                    pass
            records += got
            if got:
                last_data = now
            if records >= next_look:  # one look per checkpoint reached (a poll may pass several)
                while next_look <= records:
                    next_look *= 2
                k = len(looks)
                a = opts.alpha / 2 ** (k + 1)
                now_counts = asm.counts
                cum = build_report(asm, alpha=a, min_samples=opts.min_samples, counts=now_counts)
                win = build_report(asm, alpha=a, min_samples=opts.min_samples, counts=_window(now_counts, prev_counts))
                prev_counts = now_counts
                look = Look(
                    records,
                    a,
                    cum.verdict,
                    win.verdict,
                    [r["state"] for r in (*cum.rows, *win.rows) if r["verdict"] == "REJECTED"],
                )
                looks.append(look)
                print(
                    f"validate: look {k + 1} at {records:,} events (alpha {a:.2g}): cumulative {cum.verdict}, "
                    f"last window {win.verdict}"
                    + (f" ({', '.join(look.rejected_rows)})" if look.rejected_rows else ""),
                    file=err,
                    flush=True,
                )
            if opts.max_events is not None and records >= opts.max_events:
                stopped_by = f"--max-events {opts.max_events}"
                break
            if opts.until_idle is not None and now - last_data >= opts.until_idle:
                stopped_by = f"--until-idle {opts.until_idle:g}"
                break
            if now - last_line >= opts.interval:
                last_line = now
                line = (
                    f"validate: {records:,} records ({records / max(now - t0, 1e-9):,.0f}/s), "
                    f"{asm.sessions:,} sessions ({asm.open_sessions:,} open), {malformed:,} malformed, "
                    f"{asm.duplicates:,} duplicates"
                )
                if on_status:
                    on_status(line)
                elif live is not None:
                    table = build_report(asm, alpha=opts.alpha, min_samples=opts.min_samples).render()
                    live.update(
                        Text(
                            f"{line}\n(live table: a fixed-sample view; verdicts only "
                            f"at the checkpoints above)\n{table}"
                        ),
                        refresh=True,
                    )
                else:
                    print(line, file=err, flush=True)
    finally:
        if live is not None:
            live.stop()
        with contextlib.suppress(Exception):
            await pending
        for sig in installed:
            loop.remove_signal_handler(sig)
        await reader.stop()
    sessionizer.flush_all()
    rep = build_report(asm, alpha=opts.alpha, min_samples=opts.min_samples, malformed=malformed, source=uri)
    rep.data["live"] = {
        "records": records,
        "malformed": malformed,
        "key_mismatch": key_mismatch,
        "keys_checked": keys_checked,
        "stopped_by": stopped_by,
        "looks": [lk.__dict__ for lk in looks],
        "note": "live looks at doubling checkpoints spend alpha/2^(k+1) each; the verdict is the fixed-sample test",
    }
    return LiveResult(rep, looks, records, malformed, key_mismatch, keys_checked, stopped_by, time.monotonic() - t0)
