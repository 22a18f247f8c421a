"""Known answers for the anomaly-detector scorer on small hand-made runs."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest

from emitter.errors import ConfigError
from emitter.score import format_ts, parse_ts, score

RUN_ID = "00112233445566aa"

MANIFEST = {"type": "manifest", "schema_version": 1, "run_id": RUN_ID, "seed": 7, "start": "2026-01-01T00:00:00Z"}


def ts(hms: str) -> str:
    return f"2026-01-01T{hms}.000000Z"


def fault(
    fid: str, kind: str, target: dict[str, str], start: str, end: str | None, services: list[str]
) -> dict[str, Any]:
    return {
        "type": "fault",
        "id": fid,
        "kind": kind,
        "target": target,
        "params": {},
        "start": ts(start),
        "end": None if end is None else ts(end),
        "affected_services": services,
        "affected_edges": [],
        "affected_endpoints": [],
    }


FAULTS = [
    fault("payment-slow", "latency", {"service": "payment"}, "00:10:00", "00:20:00", ["payment", "checkout"]),
    fault(
        "search-errors", "errors", {"endpoint": "/api/search", "service": "search"}, "00:30:00", "00:35:00", ["search"]
    ),
    fault("db-outage", "outage", {"service": "db"}, "00:50:00", None, ["db", "orders"]),
]

# (id, time, anomalous, faults, role)
EVENTS = [
    ("e01", "00:05:00", False, [], "none"),
    ("e02", "00:10:00", True, ["payment-slow"], "root"),
    ("e03", "00:12:00", True, ["payment-slow"], "propagated"),
    ("e04", "00:15:00", False, [], "none"),
    ("e05", "00:19:30", True, ["payment-slow"], "root"),
    ("e06", "00:25:00", False, [], "none"),
    ("e07", "00:30:00", True, ["search-errors"], "root"),
    ("e08", "00:33:00", True, ["search-errors"], "root"),
    ("e09", "00:40:00", False, [], "none"),
    ("e10", "00:50:00", True, ["db-outage"], "root"),
    ("e11", "00:55:00", True, ["db-outage"], "propagated"),
    ("e12", "01:00:00", False, [], "none"),
]
ANOMALOUS = [e[0] for e in EVENTS if e[2]]


def eid(name: str) -> str:
    """A 16-hex-digit event id for a short test name like ``e07``."""
    return f"{int(name[1:]):016x}"


def event(name: str, hms: str, anomalous: bool, faults: list[str], role: str, run_id: str = RUN_ID) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": eid(name),
        "run_id": run_id,
        "timestamp": ts(hms),
        "service": "svc",
        "labels": {"anomalous": anomalous, "faults": faults, "role": role},
    }


def write(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture
def truth(tmp_path: Path) -> Path:
    return write(tmp_path / "truth.jsonl", [MANIFEST, *FAULTS])


@pytest.fixture
def events(tmp_path: Path) -> Path:
    return write(tmp_path / "events.jsonl", [event(*e) for e in EVENTS])


def detections(tmp_path: Path, records: list[Any], name: str = "det.jsonl") -> Path:
    return write(tmp_path / name, records)


def iv(start: str, end: str, service: str | None = None) -> dict[str, str]:
    d = {"start": ts(start), "end": ts(end)}
    if service is not None:
        d["service"] = service
    return d


def rows(report: Any, level: str) -> dict[str, Any]:
    return {r["label"]: r[level] for r in report.data["faults"]}


# --------------------------------------------------------------------------------------------- event level


def test_event_level_perfect_detector(tmp_path: Path, truth: Path, events: Path) -> None:
    det = detections(tmp_path, [{"event_id": eid(n), "score": 0.9} for n in ANOMALOUS])
    r = score(truth, det, events)
    ev = r.data["event_level"]
    assert (ev["precision"], ev["recall"], ev["f1"]) == (1.0, 1.0, 1.0)
    assert (ev["tp"], ev["fp"], ev["fn"], ev["tn"]) == (7, 0, 0, 5)
    per = rows(r, "event_level")
    assert [per[f]["delay_s"] for f in ("payment-slow", "search-errors", "db-outage")] == [0.0, 0.0, 0.0]
    assert all(p["recall"] == 1.0 for p in per.values())
    assert ev["faults_detected"] == 3 and ev["mean_delay_s"] == 0.0 and ev["max_delay_s"] == 0.0
    assert r.data["interval_level"] is None  # every detection is in event form
    json.dumps(r.data)  # plain JSON


def test_event_level_empty_detector(tmp_path: Path, truth: Path, events: Path) -> None:
    r = score(truth, detections(tmp_path, []), events)
    ev = r.data["event_level"]
    assert ev["precision"] is None and ev["recall"] == 0.0 and ev["f1"] == 0.0
    assert (ev["tp"], ev["fp"], ev["fn"], ev["tn"]) == (0, 0, 7, 5)
    assert all(p["delay_s"] is None and p["flagged"] == 0 for p in rows(r, "event_level").values())
    iv_ = r.data["interval_level"]  # no detections at all: both levels are reported
    assert iv_["precision"] is None and iv_["recall"] == 0.0 and iv_["f1"] == 0.0
    assert ev["mean_delay_s"] is None


def test_event_level_half_right_detector(tmp_path: Path, truth: Path, events: Path) -> None:
    flagged = ["e03", "e05", "e08", "e01", "e04", "e09", "e03"]  # 3 TP, 3 FP (e03 twice counts once)
    det = detections(tmp_path, [{"event_id": eid(n)} for n in flagged])
    r = score(truth, det, events)
    ev = r.data["event_level"]
    assert (ev["tp"], ev["fp"], ev["fn"], ev["tn"]) == (3, 3, 4, 2)
    assert ev["precision"] == 0.5
    assert ev["recall"] == pytest.approx(3 / 7)
    assert ev["f1"] == pytest.approx(6 / 13)
    assert r.data["detections"] == {"event_form": 7, "event_ids": 6, "interval_form": 0}
    per = rows(r, "event_level")
    assert per["payment-slow"] == pytest.approx(
        {"events": 3, "flagged": 2, "recall": 2 / 3, "onset_s": 0.0, "delay_s": 120.0}
    )
    assert per["search-errors"] == {"events": 2, "flagged": 1, "recall": 0.5, "onset_s": 0.0, "delay_s": 180.0}
    assert per["db-outage"] == {"events": 2, "flagged": 0, "recall": 0.0, "onset_s": 0.0, "delay_s": None}
    assert ev["faults_detected"] == 2 and ev["mean_delay_s"] == 150.0 and ev["max_delay_s"] == 180.0
    roles = ev["by_role"]
    assert roles["root"] == {"events": 5, "anomalous": 5, "flagged": 2, "recall": 0.4}
    assert roles["propagated"] == {"events": 2, "anomalous": 2, "flagged": 1, "recall": 0.5}
    assert roles["none"] == {"events": 5, "anomalous": 0, "flagged": 3, "recall": None}
    text = r.render()
    assert "precision 0.500  recall 0.429  F1 0.462" in text
    assert "payment-slow" in text and "120.000s" in text


def test_event_delay_and_onset_exact_and_clamped(tmp_path: Path) -> None:
    truth = write(
        tmp_path / "t.jsonl",
        [MANIFEST, fault("f", "latency", {"service": "a"}, "00:10:00", "00:20:00", ["a"])],
    )
    evs = write(
        tmp_path / "e.jsonl",
        [
            event("e1", "00:09:59", True, ["f"], "root"),  # in flight when the fault began
            event("e2", "00:12:34", True, ["f"], "root"),
            {**event("e3", "00:15:00", True, ["f"], "root"), "timestamp": "2026-01-01T00:15:00.250000Z"},
        ],
    )
    r = score(truth, detections(tmp_path, [{"event_id": eid("e3")}]), evs)
    assert rows(r, "event_level")["f"] == {
        "events": 3,
        "flagged": 1,
        "recall": pytest.approx(1 / 3),
        "onset_s": 0.0,
        "delay_s": 300.25,
    }
    r = score(truth, detections(tmp_path, [{"event_id": eid("e1")}, {"event_id": eid("e2")}]), evs)
    assert rows(r, "event_level")["f"]["delay_s"] == 0.0  # clamped: never negative


def test_repeated_fault_id_split_by_interval(tmp_path: Path) -> None:
    truth = write(
        tmp_path / "t.jsonl",
        [
            MANIFEST,
            fault("flap", "errors", {"service": "a"}, "00:10:00", "00:12:00", ["a"]),
            fault("flap", "errors", {"service": "a"}, "00:20:00", "00:22:00", ["a"]),
        ],
    )
    evs = write(
        tmp_path / "e.jsonl",
        [event("e1", "00:11:00", True, ["flap"], "root"), event("e2", "00:21:00", True, ["flap"], "root")],
    )
    r = score(truth, detections(tmp_path, [{"event_id": eid("e2")}]), evs)
    per = rows(r, "event_level")
    assert per["flap"] == {"events": 1, "flagged": 0, "recall": 0.0, "onset_s": 60.0, "delay_s": None}
    assert per["flap#1"] == {"events": 1, "flagged": 1, "recall": 1.0, "onset_s": 60.0, "delay_s": 60.0}


def test_duplicate_events_are_counted_once(tmp_path: Path, truth: Path) -> None:
    evs = write(tmp_path / "e.jsonl", [event(*e) for e in EVENTS] + [event(*EVENTS[1])])
    r = score(truth, detections(tmp_path, [{"event_id": eid(n)} for n in ANOMALOUS]), evs)
    assert r.data["events"]["read"] == 13 and r.data["events"]["duplicates"] == 1
    assert r.data["event_level"]["tp"] == 7 and r.data["event_level"]["events"] == 12


def test_unknown_fault_ids_in_events_are_reported(tmp_path: Path, truth: Path) -> None:
    evs = write(tmp_path / "e.jsonl", [event("e1", "00:01:00", True, ["ghost"], "root")])
    r = score(truth, detections(tmp_path, []), evs)
    assert r.data["events"]["unknown_fault_ids"] == ["ghost"]


# --------------------------------------------------------------------------------------------- interval level


def test_interval_level_perfect_detector(tmp_path: Path, truth: Path) -> None:
    det = detections(
        tmp_path,
        [iv("00:10:00", "00:20:00", "payment"), iv("00:30:00", "00:35:00", "search"), iv("00:50:00", "01:00:00", "db")],
    )
    r = score(truth, det)
    lv = r.data["interval_level"]
    assert (lv["precision"], lv["recall"], lv["f1"]) == (1.0, 1.0, 1.0)
    assert all(p == {"detected": True, "detections": 1, "delay_s": 0.0} for p in rows(r, "interval_level").values())
    assert r.data["event_level"] is None and r.data["run_end"] is None


def test_interval_level_empty_detector(tmp_path: Path, truth: Path) -> None:
    r = score(truth, detections(tmp_path, []))
    lv = r.data["interval_level"]
    assert lv["precision"] is None and lv["recall"] == 0.0 and lv["f1"] == 0.0
    assert lv["faults_detected"] == 0 and lv["mean_delay_s"] is None
    assert r.data["event_level"] is None  # no events file
    assert "n/a" in r.render()


def test_interval_level_half_right_detector(tmp_path: Path, truth: Path) -> None:
    det = detections(
        tmp_path,
        [
            iv("00:12:00", "00:14:00", "checkout"),  # payment-slow via an affected service, delay 120 s
            iv("00:31:30", "00:32:00", "payment"),  # during search-errors but the wrong service: false
            iv("00:40:00", "00:45:00"),  # no fault then: false
            iv("00:52:30", "00:53:00", "orders"),  # db-outage (open-ended), delay 150 s
        ],
    )
    r = score(truth, det)
    lv = r.data["interval_level"]
    assert (lv["detections"], lv["detections_matching"], lv["faults"], lv["faults_detected"]) == (4, 2, 3, 2)
    assert lv["precision"] == 0.5
    assert lv["recall"] == pytest.approx(2 / 3)
    assert lv["f1"] == pytest.approx(4 / 7)
    assert lv["mean_delay_s"] == 135.0 and lv["max_delay_s"] == 150.0
    per = rows(r, "interval_level")
    assert per["payment-slow"] == {"detected": True, "detections": 1, "delay_s": 120.0}
    assert per["search-errors"] == {"detected": False, "detections": 0, "delay_s": None}
    assert per["db-outage"] == {"detected": True, "detections": 1, "delay_s": 150.0}


@pytest.mark.parametrize(
    ("start", "end", "grace", "detected", "delay"),
    [
        ("00:20:00", "00:25:00", 0.0, True, 600.0),  # starts exactly at the fault's end: touching counts
        ("00:05:00", "00:10:00", 0.0, True, 0.0),  # ends exactly at the fault's start; delay clamped at 0
        ("00:05:00", "00:09:59", 0.0, False, None),  # ends just before
        ("00:21:00", "00:22:00", 0.0, False, None),  # after the end, no grace
        ("00:21:00", "00:22:00", 60.0, True, 660.0),  # grace reaches exactly its start
        ("00:21:00", "00:22:00", 59.5, False, None),  # grace half a second short
        ("00:00:00", "00:59:00", 0.0, True, 0.0),  # covers the whole fault
    ],
)
def test_interval_overlap_edges(
    tmp_path: Path, truth: Path, start: str, end: str, grace: float, detected: bool, delay: float | None
) -> None:
    r = score(truth, detections(tmp_path, [iv(start, end, "payment")]), grace_s=grace)
    assert rows(r, "interval_level")["payment-slow"] == {
        "detected": detected,
        "detections": int(detected),
        "delay_s": delay,
    }


def test_interval_overlap_one_microsecond(tmp_path: Path, truth: Path) -> None:
    after = {"start": "2026-01-01T00:20:00.000001Z", "end": "2026-01-01T00:21:00Z", "service": "payment"}
    r = score(truth, detections(tmp_path, [after]))
    assert rows(r, "interval_level")["payment-slow"]["detected"] is False
    r = score(truth, detections(tmp_path, [after]), grace_s=0.000001)
    assert rows(r, "interval_level")["payment-slow"]["delay_s"] == 600.000001


@pytest.mark.parametrize(
    ("service", "detected"),
    [("search", False), ("payment", True), ("checkout", True), (None, True), ("PAYMENT", False)],
)
def test_interval_service_rule(tmp_path: Path, truth: Path, service: str | None, detected: bool) -> None:
    r = score(truth, detections(tmp_path, [iv("00:11:00", "00:12:00", service)]))
    assert rows(r, "interval_level")["payment-slow"]["detected"] is detected
    assert r.data["interval_level"]["precision"] == (1.0 if detected else 0.0)


def test_service_null_means_any(tmp_path: Path, truth: Path) -> None:
    r = score(truth, detections(tmp_path, [{**iv("00:11:00", "00:12:00"), "service": None}]))
    assert rows(r, "interval_level")["payment-slow"]["detected"] is True


def test_open_ended_fault_ends_at_last_event(tmp_path: Path, truth: Path, events: Path) -> None:
    late = {"start": "2026-01-01T01:00:00.000001Z", "end": "2026-01-01T02:00:00Z", "service": "db"}
    r = score(truth, detections(tmp_path, [late]))  # no events: the run never ends
    assert rows(r, "interval_level")["db-outage"] == {"detected": True, "detections": 1, "delay_s": 600.000001}
    r = score(truth, detections(tmp_path, [late]), events)  # the run ends at the last event, 01:00:00
    assert r.data["run_end"] == "2026-01-01T01:00:00.000000Z"
    assert rows(r, "interval_level")["db-outage"]["detected"] is False
    assert r.data["event_level"] is None  # interval-form detections only
    r = score(truth, detections(tmp_path, [iv("01:00:00", "02:00:00", "db")]), events)  # touching
    assert rows(r, "interval_level")["db-outage"]["detected"] is True
    r = score(truth, detections(tmp_path, [late]), events, grace_s=1)
    assert rows(r, "interval_level")["db-outage"]["detected"] is True


def test_one_detection_matching_two_faults_counts_once(tmp_path: Path, truth: Path) -> None:
    r = score(truth, detections(tmp_path, [iv("00:00:00", "02:00:00")]))
    lv = r.data["interval_level"]
    assert (lv["precision"], lv["recall"], lv["f1"]) == (1.0, 1.0, 1.0)
    assert rows(r, "interval_level")["search-errors"]["delay_s"] == 0.0


def test_mixed_forms_score_both_levels(tmp_path: Path, truth: Path, events: Path) -> None:
    det = detections(tmp_path, [{"event_id": eid("e02")}, iv("00:30:00", "00:31:00", "search")])
    r = score(truth, det, events)
    assert r.data["event_level"]["tp"] == 1 and r.data["event_level"]["fp"] == 0
    assert r.data["interval_level"]["recall"] == pytest.approx(1 / 3)
    assert r.data["interval_level"]["precision"] == 1.0
    text = r.render()
    assert "event level" in text and "interval level" in text


def test_no_faults(tmp_path: Path) -> None:
    truth = write(tmp_path / "t.jsonl", [MANIFEST])
    r = score(truth, detections(tmp_path, [iv("00:00:00", "00:01:00")]))
    lv = r.data["interval_level"]
    assert lv["recall"] is None and lv["precision"] == 0.0 and lv["f1"] is None
    r = score(truth, detections(tmp_path, []))
    lv = r.data["interval_level"]
    assert lv["recall"] is None and lv["precision"] is None and lv["f1"] is None
    r.render()


def test_gzip_and_unknown_records_and_fields(tmp_path: Path) -> None:
    recs = [
        {**MANIFEST, "future_field": [1, 2]},
        {**FAULTS[0], "extra": True},
        {"type": "summary", "whatever": 1},
    ]
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in recs).encode()))
    r = score(path, detections(tmp_path, ["", iv("00:10:00", "00:20:00", "payment"), "   "]))
    assert r.data["truth"] == {"faults": 1, "ignored_records": 1}
    assert r.data["interval_level"]["recall"] == 1.0
    assert r.data["run_id"] == RUN_ID and r.data["seed"] == 7


# --------------------------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "text",
    ["2026-01-01T00:20:00.000000Z", "2026-01-01T00:20:00Z", "2026-01-01T00:20:00+00:00", "2026-01-01T01:20:00+01:00"],
)
def test_timestamp_forms(text: str) -> None:
    assert parse_ts(text) == 1_767_225_600_000_000 + 20 * 60 * 1_000_000
    assert format_ts(parse_ts(text)) == "2026-01-01T00:20:00.000000Z"


@pytest.mark.parametrize(
    "text", ["2026-01-01T00:20:00", "2026-01-01", "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z", "yesterday", 5]
)
def test_timestamp_rejects(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_ts(text)


# --------------------------------------------------------------------------------------------- malformed input


def _error(call: Any) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    return str(info.value)


def test_malformed_truth_lines(tmp_path: Path) -> None:
    det = detections(tmp_path, [])
    t = write(tmp_path / "t.jsonl", [MANIFEST, FAULTS[0], "{not json"])
    msg = _error(lambda: score(t, det))
    assert msg.startswith(f"{t}: line 3: invalid JSON")

    bad_start = {**FAULTS[1], "start": "2026-01-01 00:30"}
    t = write(tmp_path / "t.jsonl", [MANIFEST, bad_start])
    assert _error(lambda: score(t, det)).startswith(f"{t}: line 2 -> start: not an RFC 3339 timestamp")

    no_start = {k: v for k, v in FAULTS[1].items() if k != "start"}
    t = write(tmp_path / "t.jsonl", [MANIFEST, no_start])
    assert _error(lambda: score(t, det)) == f"{t}: line 2 -> start: missing (required)"

    backwards = {**FAULTS[0], "end": ts("00:05:00")}
    t = write(tmp_path / "t.jsonl", [MANIFEST, backwards])
    assert "line 2 -> end: ends before it starts" in _error(lambda: score(t, det))

    t = write(tmp_path / "t.jsonl", [FAULTS[0], MANIFEST])
    assert (
        _error(lambda: score(t, det)) == f"{t}: line 1 -> type: the first record must be the manifest, got type 'fault'"
    )

    t = write(tmp_path / "t.jsonl", [MANIFEST, MANIFEST])
    assert "line 2 -> type: a second manifest" in _error(lambda: score(t, det))

    t = write(tmp_path / "t.jsonl", [{**MANIFEST, "schema_version": 2}])
    assert "line 1 -> schema_version: unsupported schema_version 2" in _error(lambda: score(t, det))

    t = write(tmp_path / "t.jsonl", [MANIFEST, [1, 2]])
    assert _error(lambda: score(t, det)) == f"{t}: line 2: expected a JSON object, got an array"

    t = write(tmp_path / "t.jsonl", [MANIFEST, {**FAULTS[0], "affected_services": "payment"}])
    assert "line 2 -> affected_services: expected an array of strings" in _error(lambda: score(t, det))

    t = write(tmp_path / "t.jsonl", [])
    assert "the truth file is empty" in _error(lambda: score(t, det))

    missing = tmp_path / "nope.jsonl"
    assert _error(lambda: score(missing, det)) == f"{missing}: (top level): truth file not found"


def test_malformed_detection_lines(tmp_path: Path, truth: Path, events: Path) -> None:
    cases = [
        ({"something": 1}, "line 2: not a detection"),
        ({"start": ts("00:01:00")}, "line 2 -> end: missing (required)"),
        ({"start": ts("00:02:00"), "end": ts("00:01:00")}, "line 2 -> end: ends before it starts"),
        ({"start": ts("00:01:00"), "end": "soon"}, "line 2 -> end: not an RFC 3339 timestamp"),
        ({**iv("00:01:00", "00:02:00"), "service": 3}, "line 2 -> service: expected a service name"),
        ({"event_id": "xyz"}, "line 2 -> event_id: expected 16 hex digits, got 'xyz'"),
        ({"event_id": eid("e01"), "start": ts("00:01:00")}, "line 2: has both event_id and start/end"),
        ('{"event_id": ', "line 2: invalid JSON"),
        ({"event_id": "ffffffffffffffff"}, "line 2 -> event_id: ffffffffffffffff is not in the events file"),
    ]
    for bad, expected in cases:
        det = detections(tmp_path, [iv("00:00:00", "00:01:00"), bad])
        assert _error(lambda det=det: score(truth, det, events)).startswith(f"{det}: {expected}"), bad


def test_event_form_needs_events_file(tmp_path: Path, truth: Path) -> None:
    det = detections(tmp_path, [iv("00:00:00", "00:01:00"), {"event_id": eid("e01")}])
    msg = _error(lambda: score(truth, det))
    assert (
        msg == f"{det}: line 2 -> event_id: an event-form detection (event_id) needs the events file to score against"
    )


def test_malformed_event_lines(tmp_path: Path, truth: Path) -> None:
    det = detections(tmp_path, [])
    good = event(*EVENTS[0])
    cases = [
        ({**good, "labels": {"anomalous": "yes", "faults": []}}, "line 2: not an event: Expected `bool`, got `str`"),
        (
            {k: v for k, v in good.items() if k != "labels"},
            "line 2: not an event: Object missing required field `labels`",
        ),
        ({**good, "timestamp": "2026-01-01T00:00:00"}, "line 2 -> timestamp: not an RFC 3339 timestamp"),
        ({**good, "event_id": "g" * 16}, "line 2 -> event_id: expected 16 hex digits"),
        ({**good, "run_id": "ffffffffffffffff"}, "line 2 -> run_id: run_id 'ffffffffffffffff' is not the truth file's"),
        ("[]", "line 2: not an event: Expected `object`, got `array`"),
        ("nope", "line 2: invalid JSON"),
    ]
    for bad, expected in cases:
        evs = write(tmp_path / "e.jsonl", [good, bad])
        assert _error(lambda evs=evs: score(truth, det, evs)).startswith(f"{evs}: {expected}"), bad


def test_bad_grace(tmp_path: Path, truth: Path) -> None:
    det = detections(tmp_path, [])
    assert "--grace: expected a number of seconds >= 0, got -1" in _error(lambda: score(truth, det, grace_s=-1))
    assert "--grace" in _error(lambda: score(truth, det, grace_s=float("nan")))


def test_timestamp_fast_path_matches_full_parse() -> None:
    base = parse_ts("2026-03-04T05:06:07.000000Z")  # warms the per-second cache
    assert parse_ts("2026-03-04T05:06:07.123456Z") == base + 123_456
    assert parse_ts("2026-03-04T05:06:07.5Z") == base + 500_000
    assert parse_ts("2026-03-04T05:06:07.123456789Z") == base + 123_456  # cut to microseconds
    with pytest.raises(ValueError):
        parse_ts("2026-03-04T05:06:07.12345xZ")


def test_detections_from_standard_input(tmp_path: Path, truth: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (json.dumps(iv("00:10:00", "00:20:00", "payment")) + "\n").encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    r = score(truth, "-")
    assert r.data["interval_level"]["faults_detected"] == 1
    assert "only one input" in _error(lambda: score("-", "-"))
