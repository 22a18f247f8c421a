"""Score an anomaly detector against the faults the emitter injected (``emitter score``).

Inputs (all JSON lines: one object per line, blank lines skipped, gzip read transparently, ``-`` means
standard input for at most one of them):

truth file (written by the emitter)
    ``{"type": "manifest", "schema_version": 1, "run_id": ..., "seed": ..., "start": ts, ...}`` first, exactly
    once, then one ``{"type": "fault", "id", "kind", "target", "params", "start", "end", "affected_services",
    "affected_edges", "affected_endpoints"}`` per fault interval. ``end`` null (or absent) means "until the end
    of the run". Unknown fields and unknown record types are ignored (counted in ``truth.ignored_records``);
    a ``schema_version`` other than 1 is refused. ``affected_services`` defaults to ``[target.service]``.
    The same fault ``id`` may appear on several records (a fault that recurs); each record is one row.

detections (written by the detector under test); each line is one of
    event form     ``{"event_id": "9f3a2c1b7e4d5a60"}`` (an optional ``"score"`` and other fields ignored):
                   "this event is anomalous". Needs the events file. Flagging an event twice counts once.
    interval form  ``{"start": ts, "end": ts, "service": "payment"}``: "something was wrong in [start, end]",
                   ``service`` absent or null = any service. ``end`` must not precede ``start``.
    The two forms may be mixed in one file; a line carrying both ``event_id`` and ``start``/``end`` is refused.

events (optional; the emitter's event stream)
    Read: ``event_id`` (16 hex digits), ``timestamp``, ``labels.anomalous``, ``labels.faults``,
    ``labels.role`` and ``run_id`` (checked against the manifest's). A repeated ``event_id`` (an at-least-once
    delivery duplicate) is ignored after its first occurrence. A flagged ``event_id`` missing from the events
    file is an error (detections and events from different runs).

Timestamps: RFC 3339 with an explicit offset (``2026-01-01T00:20:00.000000Z``, ``2026-01-01T00:20:00Z``,
``2026-01-01T00:20:00+00:00``; other offsets are converted to UTC); fractions below a microsecond are cut.

Event level (computed when an events file is given, unless every detection is in interval form): truth is
``labels.anomalous``. TP = flagged and anomalous, FP = flagged and not, FN = anomalous and not flagged, TN =
the rest. Per fault interval: the events whose ``labels.faults`` carries its id (when an id has several
intervals an event goes to the last one starting at or before its timestamp, else the first), how many were
flagged, recall = flagged / events, ``onset_s`` = first carrying event's timestamp minus the fault's start,
``delay_s`` = first *flagged* carrying event's timestamp minus the fault's start. Both are clamped at 0 (a
request that started just before the fault can still be touched by it); ``delay_s`` is null if no carrying
event was flagged. A perfect detector's delay is the onset, which is 0 when a touched request starts at the
fault's start.

Interval level (computed when there are interval-form detections, or no detections at all): fault window =
``[start, end + grace]``, closed on both sides, so intervals that merely touch overlap. A fault with end null
ends at the end of the run: the largest event timestamp when an events file with events is given (never
before the fault's start), else +infinity. A detection matches a fault when the intervals overlap and its
service is absent or in the fault's ``affected_services``. Recall = detected faults / faults; precision =
detections matching at least one fault / detections; per fault ``delay_s`` = max(0, earliest matching
detection's start - fault start), null if not detected.

Corner cases (both levels):
    * no detections: precision is undefined -> null; F1 = 0; recall = 0 (if there is anything to find).
    * nothing to find (no faults; at event level no anomalous events): recall null and F1 null; precision is
      still reported (0 if there are detections: every one is a false positive).
    * precision = recall = 0: F1 = 0.
    * a perfect detector (interval form: one detection per fault window; event form: exactly the anomalous
      events) gets P = R = F1 = 1 and delay 0 (event level: delay = onset, see above).
    * averages of delays (``mean_delay_s``, ``max_delay_s``) are over detected faults only; null if none.

Any malformed line is a :class:`~emitter.errors.ConfigError` naming the file, the line and the problem.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import re
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from .errors import ConfigError

__all__ = ["Detections", "Fault", "ScoreReport", "Truth", "format_ts", "parse_ts", "score"]

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


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if recall is None:
        return None
    if precision is None or precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _delay_stats(delays: Sequence[float | None]) -> dict[str, float | None]:
    got = [d for d in delays if d is not None]
    return {"mean_delay_s": sum(got) / len(got) if got else None, "max_delay_s": max(got) if got else None}


def _event_level(truth: Truth, ev: _Events, rows: list[dict[str, Any]]) -> dict[str, Any]:
    a, f = ev.anomalous, ev.flagged
    tp = int(np.count_nonzero(a & f))
    fp = int(np.count_nonzero(~a & f))
    fn = int(np.count_nonzero(a & ~f))
    tn = len(a) - tp - fp - fn
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    by_role = {}
    for ri, name in enumerate(ev.roles):
        m = ev.role == ri
        by_role[name] = {
            "events": int(np.count_nonzero(m)),
            "anomalous": int(np.count_nonzero(m & a)),
            "flagged": int(np.count_nonzero(m & f)),
            "recall": _ratio(int(np.count_nonzero(m & a & f)), int(np.count_nonzero(m & a))),
        }
    by_id: dict[str, list[int]] = {}
    for i, flt in enumerate(truth.faults):
        by_id.setdefault(flt.id, []).append(i)
    for fid, idxs in by_id.items():
        has = np.array([fid in c for c in ev.combos], bool)
        carrying = has[ev.combo] if len(ev.combos) else np.zeros(0, bool)
        t = ev.ts[carrying]
        fl = f[carrying]
        if len(idxs) == 1:
            which = np.zeros(len(t), np.intp)
        else:
            order = sorted(idxs, key=lambda i: truth.faults[i].start_us)
            starts = np.array([truth.faults[i].start_us for i in order], np.int64)
            which = np.maximum(np.searchsorted(starts, t, side="right") - 1, 0)
            idxs = order
        for k, i in enumerate(idxs):
            flt = truth.faults[i]
            sel = which == k
            tk, fk = t[sel], fl[sel]
            n_flagged = int(np.count_nonzero(fk))
            onset = max(0, int(tk.min()) - flt.start_us) / 1e6 if len(tk) else None
            delay = max(0, int(tk[fk].min()) - flt.start_us) / 1e6 if n_flagged else None
            rows[i]["event_level"] = {
                "events": len(tk),
                "flagged": n_flagged,
                "recall": _ratio(n_flagged, len(tk)),
                "onset_s": onset,
                "delay_s": delay,
            }
    delays = [r["event_level"]["delay_s"] for r in rows]
    return {
        "events": len(a),
        "anomalous": tp + fn,
        "flagged": tp + fp,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "faults_detected": sum(d is not None for d in delays),
        **_delay_stats(delays),
        "by_role": by_role,
    }


def _interval_level(
    truth: Truth, det: Detections, run_end_us: int | None, grace_us: int, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    ds, de = det.starts, det.ends
    names = sorted({s for s in det.services if s is not None})
    code = {s: i for i, s in enumerate(names)}
    svc = np.array([-1 if s is None else code[s] for s in det.services], np.int64)
    matched_any = np.zeros(len(ds), bool)
    delays: list[float | None] = []
    for i, flt in enumerate(truth.faults):
        end = flt.end_us if flt.end_us is not None else run_end_us
        we = _I64_MAX if end is None else min(max(end, flt.start_us) + grace_us, _I64_MAX)
        allowed = [code[s] for s in flt.affected_services if s in code]
        svc_ok = (svc == -1) | np.isin(svc, allowed)
        m = (ds <= we) & (de >= flt.start_us) & svc_ok
        matched_any |= m
        n = int(np.count_nonzero(m))
        delay = max(0, int(ds[m].min()) - flt.start_us) / 1e6 if n else None
        delays.append(delay)
        rows[i]["interval_level"] = {"detected": n > 0, "detections": n, "delay_s": delay}
    n_faults = len(truth.faults)
    detected = sum(d is not None for d in delays)
    true_det = int(np.count_nonzero(matched_any))
    precision = _ratio(true_det, len(ds))
    recall = _ratio(detected, n_faults)
    return {
        "faults": n_faults,
        "faults_detected": detected,
        "detections": len(ds),
        "detections_matching": true_det,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        **_delay_stats(delays),
    }


# --------------------------------------------------------------------------------------------- report


@dataclass
class ScoreReport:
    """The scores: ``data`` is plain JSON (see the module docstring); ``render`` is the readable table."""

    data: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2)

    def render(self) -> str:
        d = self.data
        n = len(d["faults"])
        head = f"run {d['run_id'] or '?'} (seed {d['seed']}): {n} fault interval{'' if n == 1 else 's'}"
        if any(r["end"] is None for r in d["faults"]):
            head += f"; open-ended ones end at {d['run_end'] or 'infinity (no events given)'}"
        lines = [head]
        ev = d["event_level"]
        if ev is not None:
            lines += [
                "",
                f"event level: {ev['events']:,} events, {ev['anomalous']:,} anomalous, {ev['flagged']:,} flagged"
                + (f" ({d['events']['duplicates']:,} duplicate events ignored)" if d["events"]["duplicates"] else ""),
                f"  TP {ev['tp']:,}  FP {ev['fp']:,}  FN {ev['fn']:,}  TN {ev['tn']:,}",
                f"  precision {_num(ev['precision'])}  recall {_num(ev['recall'])}  F1 {_num(ev['f1'])}",
                f"  faults detected {ev['faults_detected']}/{len(d['faults'])}; delay mean "
                f"{_sec(ev['mean_delay_s'])}, max {_sec(ev['max_delay_s'])}",
            ]
            for name, r in ev["by_role"].items():
                lines.append(
                    f"  role {name:<11} {r['events']:>9,} events {r['anomalous']:>9,} anomalous "
                    f"{r['flagged']:>9,} flagged  recall {_num(r['recall'])}"
                )
        iv = d["interval_level"]
        if iv is not None:
            lines += [
                "",
                f"interval level: {iv['detections']:,} detections, {iv['faults']} faults, grace {d['grace_s']:g} s",
                f"  detections matching a fault {iv['detections_matching']:,}/{iv['detections']:,}; "
                f"faults detected {iv['faults_detected']}/{iv['faults']}",
                f"  precision {_num(iv['precision'])}  recall {_num(iv['recall'])}  F1 {_num(iv['f1'])}",
                f"  delay mean {_sec(iv['mean_delay_s'])}, max {_sec(iv['max_delay_s'])}",
            ]
        if d["faults"]:
            head = f"{'fault':<24} {'kind':<8} {'target':<24} {'start':<27} {'end':<27}"
            if ev is not None:
                head += f" {'events':>8} {'flagged':>8} {'recall':>7} {'onset':>9} {'delay':>9}"
            if iv is not None:
                head += f" {'detected':>8} {'delay':>9}"
            lines += ["", head]
            for r in d["faults"]:
                t = r["target"]
                if t.get("endpoint") and t.get("service"):
                    target = f"{t['endpoint']} ({t['service']})"
                else:
                    target = ", ".join(str(v) for v in t.values())
                row = (
                    f"{_short(r['label'], 24):<24} {_short(r['kind'], 8):<8} {_short(target, 24):<24} "
                    f"{r['start']:<27} {r['end'] or '(end of run)':<27}"
                )
                if ev is not None:
                    e = r["event_level"]
                    row += (
                        f" {e['events']:>8,} {e['flagged']:>8,} {_num(e['recall']):>7} {_sec(e['onset_s']):>9} "
                        f"{_sec(e['delay_s']):>9}"
                    )
                if iv is not None:
                    i = r["interval_level"]
                    row += f" {'yes' if i['detected'] else 'no':>8} {_sec(i['delay_s']):>9}"
                lines.append(row)
        return "\n".join(lines)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _sec(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}s"


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def score(
    truth_path: str | Path,
    detections_path: str | Path,
    events_path: str | Path | None = None,
    grace_s: float = 0.0,
) -> ScoreReport:
    """Score the detections against the truth file (and the events file, for event-form detections)."""
    if isinstance(grace_s, bool) or not isinstance(grace_s, int | float) or not math.isfinite(grace_s) or grace_s < 0:
        raise ConfigError.one("command line", ("--grace",), f"expected a number of seconds >= 0, got {grace_s!r}")
    stdin_users = [p for p in (truth_path, detections_path, events_path) if p is not None and str(p) == "-"]
    if len(stdin_users) > 1:
        raise ConfigError.one("command line", ("-",), "only one input can be read from standard input")
    grace_us = round(grace_s * 1_000_000)
    truth = read_truth(truth_path)
    det = read_detections(detections_path)
    if det.flagged and events_path is None:
        first = min(det.flagged.values())
        raise _bad(
            _source_name(detections_path),
            first,
            "an event-form detection (event_id) needs the events file to score against",
            "event_id",
        )
    events: _Events | None = None
    if events_path is not None:
        events = _read_events(events_path, det.flagged, truth.run_id)
        missing = [i for i in det.flagged if i not in events.found]
        if missing:
            first_line = min(det.flagged[i] for i in missing)
            eid_txt = next(f"{i:016x}" for i in missing if det.flagged[i] == first_line)
            raise _bad(
                _source_name(detections_path),
                first_line,
                f"{eid_txt} is not in the events file {_source_name(events_path)} "
                f"({len(missing):,} flagged event ids are not; events from another run?)",
                "event_id",
            )
    run_end = int(events.ts.max()) if events is not None and len(events.ts) else None

    rows: list[dict[str, Any]] = [
        {
            "id": f.id,
            "interval": f.interval,
            "label": f.label,
            "kind": f.kind,
            "target": f.target,
            "start": format_ts(f.start_us),
            "end": None if f.end_us is None else format_ts(f.end_us),
            "affected_services": list(f.affected_services),
            "event_level": None,
            "interval_level": None,
        }
        for f in truth.faults
    ]
    event_level = None
    if events is not None and (det.event_lines > 0 or det.n_intervals == 0):
        event_level = _event_level(truth, events, rows)
    interval_level = None
    if det.n_intervals > 0 or det.event_lines == 0:
        interval_level = _interval_level(truth, det, run_end, grace_us, rows)

    known = {f.id for f in truth.faults}
    unknown = sorted({fid for c in events.combos for fid in c} - known) if events is not None else []
    data: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "run_id": truth.run_id,
        "seed": truth.seed,
        "run_start": None if truth.start_us is None else format_ts(truth.start_us),
        "run_end": None if run_end is None else format_ts(run_end),
        "grace_s": float(grace_s),
        "inputs": {
            "truth": str(truth_path),
            "detections": str(detections_path),
            "events": None if events_path is None else str(events_path),
        },
        "truth": {"faults": len(truth.faults), "ignored_records": truth.ignored_records},
        "detections": {
            "event_form": det.event_lines,
            "event_ids": len(det.flagged),
            "interval_form": det.n_intervals,
        },
        "events": None
        if events is None
        else {
            "read": events.read,
            "distinct": len(events.ts),
            "duplicates": events.read - len(events.ts),
            "unknown_fault_ids": unknown,
        },
        "event_level": event_level,
        "interval_level": interval_level,
        "faults": rows,
    }
    return ScoreReport(data)
