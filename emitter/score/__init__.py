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

from .metrics import score
from .read import Detections, Fault, Truth, format_ts, parse_ts
from .render import ScoreReport

__all__ = ["Detections", "Fault", "ScoreReport", "Truth", "format_ts", "parse_ts", "score"]
