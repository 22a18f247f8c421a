"""Reading what is scored: the truth file, the detections and the events (one ConfigError per bad line)."""

from __future__ import annotations

import datetime as dt
import gzip
import re
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from ..errors import ConfigError

REPORT_VERSION = 1
TRUTH_SCHEMA_VERSION = 1
_I64_MAX = int(np.iinfo(np.int64).max)

# --------------------------------------------------------------------------------------------- timestamps

_TS_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_day_cache: dict[str, int] = {}
_second_cache: dict[str, int] = {}  # "2026-01-01T00:20:00" -> seconds since the epoch


def parse_ts(text: object) -> int:
    """RFC 3339 timestamp with an explicit offset -> microseconds since the Unix epoch (UTC); ValueError if not."""
    if type(text) is str and len(text) == 27 and text[26] == "Z" and text[19] == ".":
        # fast path for the emitter's own form, once its second has been seen (and validated) before
        secs = _second_cache.get(text[:19])
        frac = text[20:26]
        if secs is not None and frac.isdigit() and frac.isascii():
            return secs * 1_000_000 + int(frac)
    if not isinstance(text, str):
        raise ValueError(f"expected an RFC 3339 timestamp string, got {_kind(text)}")  # noqa: TRY004 - one error type for callers
    m = _TS_RE.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp with a UTC offset (like 2026-01-01T00:20:00.000000Z): {text!r}")
    date_key = text[:10]
    days = _day_cache.get(date_key)
    if days is None:
        try:
            days = dt.date(int(m[1]), int(m[2]), int(m[3])).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            raise ValueError(f"no such date: {text!r}") from None
        if len(_day_cache) > 4096:
            _day_cache.clear()
        _day_cache[date_key] = days
    h, mi, s = int(m[4]), int(m[5]), int(m[6])
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(f"no such time of day: {text!r}")
    secs = days * 86400 + h * 3600 + mi * 60 + s
    if m[9] is not None:  # an offset; m[8] is Z
        oh, om = int(m[10]), int(m[11])
        if oh > 23 or om > 59:
            raise ValueError(f"no such UTC offset: {text!r}")
        off = (oh * 60 + om) * 60
        secs -= off if m[9] == "+" else -off
    elif len(text) == 27 and m[7] is not None:
        if len(_second_cache) > 100_000:
            _second_cache.clear()
        _second_cache[text[:19]] = secs
    frac = m[7]
    us = int((frac + "00000")[:6]) if frac else 0
    return secs * 1_000_000 + us


def format_ts(us: int) -> str:
    """Microseconds since the epoch -> ``2026-01-01T00:20:00.000000Z``."""
    t = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _kind(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


# --------------------------------------------------------------------------------------------- reading lines


def _source_name(path: str | Path) -> str:
    return "standard input" if str(path) == "-" else str(path)


def _lines(path: str | Path, role: str) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line) for every non-blank line; open and read errors become ConfigError."""
    src = _source_name(path)
    if str(path) == "-":
        for n, line in enumerate(sys.stdin.buffer, 1):
            if line.strip():
                yield n, line
        return
    try:
        raw = Path(path).open("rb")  # noqa: SIM115 - closed below, and the generator may be abandoned
    except FileNotFoundError:
        raise ConfigError.one(src, (), f"{role} file not found") from None
    except OSError as exc:
        raise ConfigError.one(src, (), f"cannot read the {role} file: {exc.strerror}") from None
    n = 0
    try:
        with raw:
            head = raw.read(2)
            raw.seek(0)
            stream: Any = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
            for n, line in enumerate(stream, 1):
                if line.strip():
                    yield n, line
    except (OSError, EOFError) as exc:
        raise ConfigError.one(src, (f"line {n + 1}",), f"cannot read the {role} file: {exc}") from None


def _bad(src: str, n: int, message: str, *fields: str | int) -> ConfigError:
    return ConfigError.one(src, (f"line {n}", *fields), message)


def _decode_object(src: str, n: int, line: bytes) -> dict[str, Any]:
    try:
        obj = msgspec.json.decode(line)
    except msgspec.DecodeError as exc:
        raise _bad(src, n, f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _bad(src, n, f"expected a JSON object, got {_kind(obj)}")
    return obj


def _ts_field(src: str, n: int, obj: dict[str, Any], key: str) -> int:
    if key not in obj:
        raise _bad(src, n, "missing (required)", key)
    try:
        return parse_ts(obj[key])
    except ValueError as exc:
        raise _bad(src, n, str(exc), key) from None


# --------------------------------------------------------------------------------------------- truth


@dataclass(frozen=True)
class Fault:
    """One fault interval from the truth file. Times in microseconds since the epoch; ``end_us`` None = open."""

    id: str
    interval: int  # 0-based position among the records with this id, in file order
    kind: str
    target: dict[str, Any]
    start_us: int
    end_us: int | None
    affected_services: tuple[str, ...]
    line: int

    @property
    def label(self) -> str:
        return self.id if self.interval == 0 else f"{self.id}#{self.interval}"


@dataclass(frozen=True)
class Truth:
    run_id: str | None
    seed: Any
    start_us: int | None
    faults: tuple[Fault, ...]
    ignored_records: int


def _str_list(src: str, n: int, obj: dict[str, Any], key: str) -> tuple[str, ...] | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _bad(src, n, f"expected an array of strings, got {_kind(v)}", key)
    return tuple(v)


def _read_fault(src: str, n: int, obj: dict[str, Any], seen: dict[str, int]) -> Fault:
    fid = obj.get("id")
    if not isinstance(fid, str) or not fid:
        raise _bad(src, n, f"expected a non-empty string, got {_kind(fid)}", "id")
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise _bad(src, n, f"expected a non-empty string, got {_kind(kind)}", "kind")
    target = obj.get("target", {})
    if not isinstance(target, dict):
        raise _bad(src, n, f"expected an object, got {_kind(target)}", "target")
    start = _ts_field(src, n, obj, "start")
    end: int | None = None
    if obj.get("end") is not None:
        end = _ts_field(src, n, obj, "end")
        if end < start:
            raise _bad(src, n, f"ends before it starts ({obj['end']} < {obj['start']})", "end")
    services = _str_list(src, n, obj, "affected_services")
    if services is None:
        svc = target.get("service")
        services = (svc,) if isinstance(svc, str) else ()
    k = seen.get(fid, 0)
    seen[fid] = k + 1
    return Fault(fid, k, kind, target, start, end, services, n)


def read_truth(path: str | Path) -> Truth:
    src = _source_name(path)
    manifest: dict[str, Any] | None = None
    start_us: int | None = None
    faults: list[Fault] = []
    ignored = 0
    seen: dict[str, int] = {}
    for n, line in _lines(path, "truth"):
        obj = _decode_object(src, n, line)
        typ = obj.get("type")
        if not isinstance(typ, str):
            raise _bad(src, n, f"expected a record type string (manifest, fault), got {_kind(typ)}", "type")
        if manifest is None:
            if typ != "manifest":
                raise _bad(src, n, f"the first record must be the manifest, got type {typ!r}", "type")
            version = obj.get("schema_version", TRUTH_SCHEMA_VERSION)
            if version != TRUTH_SCHEMA_VERSION or isinstance(version, bool):
                raise _bad(
                    src, n, f"unsupported schema_version {version!r} (this scorer reads version 1)", "schema_version"
                )
            run_id = obj.get("run_id")
            if run_id is not None and not isinstance(run_id, str):
                raise _bad(src, n, f"expected a string, got {_kind(run_id)}", "run_id")
            if obj.get("start") is not None:
                start_us = _ts_field(src, n, obj, "start")
            manifest = obj
        elif typ == "manifest":
            raise _bad(src, n, "a second manifest (a truth file has exactly one, first)", "type")
        elif typ == "fault":
            faults.append(_read_fault(src, n, obj, seen))
        else:
            ignored += 1
    if manifest is None:
        raise ConfigError.one(src, (), "the truth file is empty (expected a manifest record first)")
    return Truth(manifest.get("run_id"), manifest.get("seed"), start_us, tuple(faults), ignored)


# --------------------------------------------------------------------------------------------- detections

_EVENT_ID_RE = re.compile(r"[0-9a-fA-F]{16}\Z")


@dataclass(frozen=True)
class Detections:
    flagged: dict[int, int]  # event id (as an integer) -> line of its first mention
    event_lines: int  # event-form lines
    starts: npt.NDArray[np.int64]  # interval form, in file order
    ends: npt.NDArray[np.int64]
    services: tuple[str | None, ...]
    lines: tuple[int, ...]

    @property
    def n_intervals(self) -> int:
        return len(self.services)


def read_detections(path: str | Path) -> Detections:
    src = _source_name(path)
    flagged: dict[int, int] = {}
    n_event = 0
    starts: list[int] = []
    ends: list[int] = []
    services: list[str | None] = []
    lines: list[int] = []
    for n, line in _lines(path, "detections"):
        obj = _decode_object(src, n, line)
        has_interval = "start" in obj or "end" in obj
        if "event_id" in obj:
            if has_interval:
                raise _bad(src, n, "has both event_id and start/end: a detection is either an event or an interval")
            eid = obj["event_id"]
            if not isinstance(eid, str) or not _EVENT_ID_RE.match(eid):
                shown = repr(eid) if isinstance(eid, str) else _kind(eid)
                raise _bad(src, n, f"expected 16 hex digits, got {shown}", "event_id")
            flagged.setdefault(int(eid, 16), n)
            n_event += 1
        elif has_interval:
            s = _ts_field(src, n, obj, "start")
            e = _ts_field(src, n, obj, "end")
            if e < s:
                raise _bad(src, n, f"ends before it starts ({obj['end']} < {obj['start']})", "end")
            svc = obj.get("service")
            if svc is not None and (not isinstance(svc, str) or not svc):
                raise _bad(src, n, f"expected a service name (or no service = any), got {_kind(svc)}", "service")
            starts.append(s)
            ends.append(e)
            services.append(svc)
            lines.append(n)
        else:
            raise _bad(
                src,
                n,
                'not a detection: expected {"event_id": ...} or {"start": ..., "end": ..., "service": ...}',
            )
    return Detections(
        flagged,
        n_event,
        np.array(starts, np.int64),
        np.array(ends, np.int64),
        tuple(services),
        tuple(lines),
    )


# --------------------------------------------------------------------------------------------- events


class _Labels(msgspec.Struct):
    anomalous: bool
    faults: list[str] = []
    role: str = "none"


class _Event(msgspec.Struct):
    event_id: str
    timestamp: str
    labels: _Labels
    run_id: str | None = None


_event_decoder = msgspec.json.Decoder(_Event)


@dataclass
class _Events:
    read: int
    ts: npt.NDArray[np.int64]
    anomalous: npt.NDArray[np.bool_]
    flagged: npt.NDArray[np.bool_]
    combo: npt.NDArray[np.int32]  # index into combos
    role: npt.NDArray[np.int8]  # index into roles
    combos: list[tuple[str, ...]]
    roles: list[str]
    found: set[int]  # flagged ids that occur in the file


def _read_events(path: str | Path, flagged_ids: dict[int, int], run_id: str | None) -> _Events:
    src = _source_name(path)
    ids = array("Q")
    ts = array("q")
    anom = array("b")
    flag = array("b")
    combo = array("i")
    role = array("b")
    combos: dict[tuple[str, ...], int] = {}
    roles: dict[str, int] = {}
    decode = _event_decoder.decode
    for n, line in _lines(path, "events"):
        try:
            ev = decode(line)
        except msgspec.ValidationError as exc:
            raise _bad(src, n, f"not an event: {exc}") from None
        except msgspec.DecodeError as exc:
            raise _bad(src, n, f"invalid JSON: {exc}") from None
        if not _EVENT_ID_RE.match(ev.event_id):
            raise _bad(src, n, f"expected 16 hex digits, got {ev.event_id!r}", "event_id")
        if run_id is not None and ev.run_id is not None and ev.run_id != run_id:
            raise _bad(
                src,
                n,
                f"run_id {ev.run_id!r} is not the truth file's {run_id!r} (events from another run?)",
                "run_id",
            )
        try:
            t = parse_ts(ev.timestamp)
        except ValueError as exc:
            raise _bad(src, n, str(exc), "timestamp") from None
        eid = int(ev.event_id, 16)
        lab = ev.labels
        key = tuple(lab.faults)
        ci = combos.get(key)
        if ci is None:
            ci = combos[key] = len(combos)
        ri = roles.get(lab.role)
        if ri is None:
            if len(roles) >= 127:
                raise _bad(src, n, f"too many distinct roles (at {lab.role!r})", "labels", "role")
            ri = roles[lab.role] = len(roles)
        ids.append(eid)
        ts.append(t)
        anom.append(lab.anomalous)
        flag.append(eid in flagged_ids)
        combo.append(ci)
        role.append(ri)
    read = len(ids)
    ids_a = np.frombuffer(ids, np.uint64) if read else np.zeros(0, np.uint64)
    keep: npt.NDArray[np.intp] | slice = slice(None)
    if read:
        _, first = np.unique(ids_a, return_index=True)
        if len(first) != read:
            keep = np.sort(first)
    found = set(ids_a[np.frombuffer(flag, np.int8) != 0].tolist()) if read else set()

    def arr(a: array[int], dtype: Any) -> Any:
        return (np.frombuffer(a, dtype) if read else np.zeros(0, dtype))[keep].copy()

    return _Events(
        read,
        arr(ts, np.int64),
        arr(anom, np.int8).astype(bool),
        arr(flag, np.int8).astype(bool),
        arr(combo, np.int32),
        arr(role, np.int8),
        list(combos),
        list(roles),
        found,
    )


# --------------------------------------------------------------------------------------------- metrics
