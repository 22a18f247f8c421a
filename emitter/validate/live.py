"""The live validator: a Kafka consumer that rebuilds sessions as events arrive and judges as it goes.

Repeated looks at a growing stream inflate false alarms, so live verdicts are only taken at fixed
checkpoints (event counts doubling from ``first_look``) with alpha spending: look k tests at
``alpha / 2**(k+1)``, so every live alarm of a run together stays under ``alpha``. Each checkpoint also
tests the window since the previous one, which is how a chain that changes mid-run (drift) shows up.
The final report is the fixed-sample test of everything read, as for a file.

The parts: :func:`open_reader` picks the Kafka client, :class:`_Ingest` decodes records (events or OTLP
requests) into the assembler and checks keys on a sample, :class:`_Looks` keeps the checkpoint
schedule, :class:`_Display` shows progress, and :func:`validate_kafka` runs them until a stop condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import msgspec

from ..clients.kafka import KafkaSettings, parse_kafka_uri, route_client_logs
from ..core.spec import Workflow
from ..errors import EmitterError, redact_uri
from .assemble import Assembler, Counts, ObservedEvent
from .otlp import Sessionizer, root_calls_from_proto
from .readers import AiokafkaReader, ConfluentReader, Reader
from .report import Report, build_report
from .stats import max_error_band

__all__ = ["LiveOptions", "LiveResult", "open_reader", "validate_kafka"]

JOIN_GRACE_S = 60.0  # --until-idle counts from the first partition assignment, or after this long
POLL_RECORDS = 50_000
POLL_TIMEOUT_S = 0.2


class _SessionOnly(msgspec.Struct):
    session_id: str


_decode = msgspec.json.Decoder(ObservedEvent).decode
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
    publish: str | None = None  # kafka://HOST:PORT/TOPIC: this validator's statistics go there at its end


@dataclass
class Look:
    events: int
    alpha: float
    cumulative: str
    window: str
    rejected_rows: list[str] = field(default_factory=list)
    max_abs_error: float | None = None  # the learned matrix's worst cell so far (cumulative)
    row_n: dict[str, int] = field(default_factory=dict)  # departures per judged row ("group|state"), for the band


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


def error_band(rep: Report, looks: list[Look]) -> list[dict[str, float]]:
    """Per look, the 2.5 %, 50 % and 97.5 % points of the worst cell's error a stream following the workflow
    would show with that look's row counts (:func:`~.stats.max_error_band`, seeded per look)."""
    declared = {
        f"{r['group']}|{r['state']}": [c["declared"] for c in r["cells"] if c["declared"] > 0] for r in rep.rows
    }
    out = []
    for k, lk in enumerate(looks):
        rows = [(n, declared[key]) for key, n in lk.row_n.items() if declared.get(key)]
        if not rows:
            continue
        lo, mid, hi = max_error_band(rows, seed=k)
        out.append({"events": lk.events, "lo": lo, "median": mid, "hi": hi})
    return out


def open_reader(s: KafkaSettings, client: str, group: str | None, from_beginning: bool) -> Reader:
    """``auto``: the raw reader without a group (fastest, see BENCHMARKS.md), else confluent-kafka;
    ``raw``, ``confluent`` or ``aiokafka`` by name."""
    if client not in ("auto", "raw", "confluent", "aiokafka"):
        raise EmitterError(f"kafka: unknown client {client!r} (expected auto, raw, confluent or aiokafka)")
    if client in ("raw", "auto") and group is None:
        from .rawkafka import RawReader

        return RawReader(s, from_beginning)
    if client == "raw":
        print(
            f"validate: note: client=raw reads without a consumer group; with --group {group} "
            "the default client reads instead (offsets committed)",
            file=sys.stderr,
        )
    if client == "aiokafka":
        return AiokafkaReader(s, group, from_beginning)
    return ConfluentReader(s, group, from_beginning)


class _Ingest:
    """Records into the assembler: JSON events, or OTLP requests (root spans) through a sessionizer."""

    def __init__(self, asm: Assembler, opts: LiveOptions) -> None:
        self.asm = asm
        self.format = opts.format
        self.sessionizer = Sessionizer(asm, max_open=opts.max_open)
        self.records = self.malformed = self.key_mismatch = self.keys_checked = 0

    def values(self, values: list[bytes | None]) -> None:
        add = self.asm.add
        for raw in values:
            value = raw or b""
            if self.format == "otlp" or (self.format == "auto" and value[:1] not in (b"{", b" ", b"")):
                try:
                    self.sessionizer.add(root_calls_from_proto(value))
                except ValueError:
                    self.malformed += 1
                continue
            try:
                ev = _decode(value)
            except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
                self.malformed += 1
                continue
            add(ev)
        self.records += len(values)

    def keys(self, sample: list[tuple[bytes | None, bytes | None]]) -> None:
        """Kafka keys should be the session ids: checked on a sample."""
        for key, raw in sample:
            if key is None or not raw or raw[:1] != b"{":
                continue
            self.keys_checked += 1
            try:
                if key != _decode_sid(raw).session_id.encode():
                    self.key_mismatch += 1
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass


def _window(now: Counts, prev: Counts | None) -> Counts:
    """The counts since ``prev`` (same workflow and groups), for the window test."""
    if prev is None:
        return now
    return Counts(
        now.groups, now.states, now.entry - prev.entry, now.trans - prev.trans, abandon=now.abandon - prev.abandon
    )


class _Looks:
    """Checkpoints at ``first_look`` records, then doubling; look k tests at alpha / 2^(k+1)."""

    def __init__(self, opts: LiveOptions) -> None:
        self.opts = opts
        self.next = opts.first_look
        self.looks: list[Look] = []
        self._prev: Counts | None = None

    def due(self, records: int) -> bool:
        return records >= self.next

    def take(self, asm: Assembler, records: int) -> Look:
        while self.next <= records:  # one look per checkpoint reached (a poll may pass several)
            self.next *= 2
        a = self.opts.alpha / 2 ** (len(self.looks) + 1)
        now = asm.counts
        cum = build_report(asm, alpha=a, min_samples=self.opts.min_samples, counts=now)
        win = build_report(asm, alpha=a, min_samples=self.opts.min_samples, counts=_window(now, self._prev))
        self._prev = now
        look = Look(
            records,
            a,
            cum.verdict,
            win.verdict,
            [r["state"] for r in (*cum.rows, *win.rows) if r["verdict"] == "REJECTED"],
            cum.data["summary"]["max_abs_error"],
            {f"{r['group']}|{r['state']}": r["n"] for r in cum.rows if not r["thin"] and r["n"]},
        )
        self.looks.append(look)
        return look


class _Display:
    """Status every ``interval`` seconds: to ``on_status``, a refreshing table on a terminal, or lines."""

    def __init__(self, err: TextIO, opts: LiveOptions, on_status: Callable[[str], None] | None) -> None:
        self.err = err
        self.opts = opts
        self.on_status = on_status
        self.live: Any = None
        if on_status is None and err.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(file=err), auto_refresh=False, transient=True)
            self.live.start()
            opts.interval = min(opts.interval, 2.0)

    def look(self, k: int, look: Look) -> None:
        print(
            f"validate: look {k} at {look.events:,} events (alpha {look.alpha:.2g}): cumulative {look.cumulative}, "
            f"last window {look.window}" + (f" ({', '.join(look.rejected_rows)})" if look.rejected_rows else ""),
            file=self.err,
            flush=True,
        )

    def status(self, ing: _Ingest, rate: float) -> None:
        asm = ing.asm
        line = (
            f"validate: {ing.records:,} records ({rate:,.0f}/s), {asm.sessions:,} sessions "
            f"({asm.open_sessions:,} open), {ing.malformed:,} malformed, {asm.duplicates:,} duplicates"
        )
        if self.on_status:
            self.on_status(line)
        elif self.live is not None:
            from rich.text import Text

            table = build_report(asm, alpha=self.opts.alpha, min_samples=self.opts.min_samples).render()
            note = "(live table: a fixed-sample view; verdicts only at the checkpoints above)"
            self.live.update(Text(f"{line}\n{note}\n{table}"), refresh=True)
        else:
            print(line, file=self.err, flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event, why: list[str]) -> Iterator[None]:
    """SIGINT and SIGTERM end the read (the report is still made); the first one's name goes to ``why``."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):

        def handler(name: str = name) -> None:
            why.append(name)
            stop.set()

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


@dataclass
class LiveState:
    """A running validation's figures so far (what its ``/metrics`` reads while it runs)."""

    ingest: _Ingest
    checkpoints: _Looks
    asm: Assembler

    @property
    def looks(self) -> int:
        return len(self.checkpoints.looks)

    @property
    def alarms(self) -> int:
        return sum(lk.cumulative == "rejected" or lk.window == "rejected" for lk in self.checkpoints.looks)


async def validate_kafka(
    wf: Workflow,
    uri: str,
    opts: LiveOptions,
    *,
    out: TextIO | None = None,
    on_status: Callable[[str], None] | None = None,
    on_start: Callable[[LiveState], None] | None = None,
) -> LiveResult:
    """Read ``uri`` until a stop condition (``max_events``, ``until_idle``, a signal); judge as it goes.
    ``on_start`` is given the live figures once reading starts (the process's own metrics watch them)."""
    s = parse_kafka_uri(uri, source="--source", defaults={}, extra_keys=("client",))
    route_client_logs()
    reader = open_reader(s, s.extra.get("client", "auto"), opts.group, opts.from_beginning)
    await reader.start()
    asm = Assembler(wf, max_open=opts.max_open, run_id=opts.run_id)
    ing = _Ingest(asm, opts)
    looks = _Looks(opts)
    if on_start is not None:
        on_start(LiveState(ing, looks, asm))
    display = _Display(out or sys.stderr, opts, on_status)
    stop = asyncio.Event()
    why: list[str] = []
    assigned: set[int] = set()  # every partition this validator read records on (a merge checks them)
    reading: list[int] = []
    t0 = last_data = last_line = time.monotonic()
    pending = asyncio.ensure_future(reader.poll_sampled(POLL_RECORDS, POLL_TIMEOUT_S))
    try:
        with _stop_on_signals(stop, why):
            while not stop.is_set():
                values, sample = await pending
                pending = asyncio.ensure_future(
                    reader.poll_sampled(POLL_RECORDS, POLL_TIMEOUT_S)
                )  # the next, meanwhile
                now = time.monotonic()
                if not values and not reader.ready() and now - t0 < JOIN_GRACE_S:
                    last_data = now  # still joining the consumer group: not idle yet
                ing.values(values)
                ing.keys(sample)
                if opts.group is not None:
                    now_reading: list[int] = getattr(reader, "partitions", list)()
                    if now_reading != reading:  # a consumer group's share changed: say so (a rebalance shows)
                        reading = now_reading
                        shown = ", ".join(map(str, reading)) or "none"
                        print(f"validate: group {opts.group}: reading partitions {shown}", file=out or sys.stderr)
                    if values:  # (the partitions it read records from: a merge checks that no two overlap)
                        assigned.update(reading)
                if values:
                    last_data = now
                if looks.due(ing.records):
                    display.look(len(looks.looks) + 1, looks.take(asm, ing.records))
                if opts.max_events is not None and ing.records >= opts.max_events:
                    why.append(f"--max-events {opts.max_events}")
                    break
                if opts.until_idle is not None and now - last_data >= opts.until_idle:
                    why.append(f"--until-idle {opts.until_idle:g}")
                    break
                if now - last_line >= opts.interval:
                    last_line = now
                    display.status(ing, ing.records / max(now - t0, 1e-9))
    finally:
        display.close()
        with contextlib.suppress(Exception):
            await pending
        await reader.stop()
    ing.sessionizer.flush_all()
    stopped_by = why[0] if why else ""
    rep = build_report(asm, alpha=opts.alpha, min_samples=opts.min_samples, malformed=ing.malformed, source=uri)
    rep.data["live"] = {
        "records": ing.records,
        "malformed": ing.malformed,
        "key_mismatch": ing.key_mismatch,
        "keys_checked": ing.keys_checked,
        "stopped_by": stopped_by,
        "looks": [lk.__dict__ for lk in looks.looks],
        "note": "live looks at doubling checkpoints spend alpha/2^(k+1) each; the verdict is the fixed-sample test",
        "band": error_band(rep, looks.looks),
    }
    if opts.publish:
        from .merge import new_member, publish_stats, stats_of

        live = {"records": ing.records, "malformed": ing.malformed, "key_mismatch": ing.key_mismatch}
        member = new_member()
        await publish_stats(
            opts.publish,
            stats_of(asm, group=opts.group or "", member=member, topic=s.topic, partitions=sorted(assigned), live=live),
        )
        rep.data["live"]["published"] = {
            "to": redact_uri(opts.publish),
            "member": member,
            "partitions": sorted(assigned),
        }
        shown = ", ".join(map(str, sorted(assigned))) or "none"
        print(
            f"validate: statistics of {ing.records:,} records (partitions {shown}) published as {opts.group}/{member}",
            file=out or sys.stderr,
            flush=True,
        )
    return LiveResult(
        rep,
        looks.looks,
        ing.records,
        ing.malformed,
        ing.key_mismatch,
        ing.keys_checked,
        stopped_by,
        time.monotonic() - t0,
    )
