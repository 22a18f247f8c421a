"""What a run did, aggregated while it runs: counts, errors and latency histograms per service and per
interval of simulated time, and the schedule against the wall clock. Memory is fixed (a bounded number of
time bins: when a run outgrows them, neighbouring bins merge and the width doubles), so a report of a
billion events is the size of a report of a thousand.

Latencies are counted in log-spaced buckets (:data:`LAT_EDGES_US`, 16 % wide), so a quantile read back is
the bucket's geometric middle: within 8 % of the exact value. Everything here is plain numbers; the
runtime hands each batch it sent to :meth:`RunRecorder.observe`, the report reader hands recorded events
to :meth:`RunRecorder.add_calls` and :meth:`RunRecorder.add_roots`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.batch import EventBatch
from ..core.calls import CallTrees
from ..core.model import END_ABANDON, Model

__all__ = ["LAT_EDGES_US", "RunRecorder", "TimeBins", "quantiles"]

LAT_EDGES_US = np.concatenate(([0.0], np.geomspace(100.0, 300e6, 101)))  # 0.1 ms .. 300 s; bucket i: [e_i, e_i+1)
N_LAT = len(LAT_EDGES_US)  # the last bucket holds everything above 300 s
_LAT_EDGES_INT = np.ceil(LAT_EDGES_US).astype(np.int64)  # for whole µs: x >= e exactly when x >= ceil(e)
MAX_BINS = 400  # time bins per axis; past this the width doubles

I64 = npt.NDArray[np.int64]


@dataclass
class TimeBins:
    """Arrays whose first axis is time, in bins of ``width`` (µs or s); merged in pairs when outgrown.

    ``how`` says how two bins merge: ``sum`` (counts) or ``max`` (the worst lag; running totals, which
    only grow)."""

    width: float
    arrays: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)
    used: int = 0  # bins that saw data (the highest index + 1)

    def add_array(self, name: str, tail: tuple[int, ...] = (), dtype: Any = np.int64, how: str = "sum") -> None:
        self.arrays[name] = np.zeros((MAX_BINS, *tail), dtype)
        self.how[name] = how

    def index(self, t: npt.NDArray[Any]) -> I64:
        """Bin indices of times ``t`` (>= 0), coarsening first until the latest fits."""
        if not len(t):
            return np.zeros(0, np.int64)
        hi = float(np.max(t))
        while hi // self.width >= MAX_BINS:
            self._coarsen()
        if t.dtype.kind == "i" and float(self.width).is_integer():  # µs bins: integer division, no floats
            b: I64 = np.maximum(t, 0) // int(self.width)
        else:
            b = (np.maximum(t, 0) // self.width).astype(np.int64)
        self.used = max(self.used, int(b.max()) + 1)
        return b

    def _coarsen(self) -> None:
        self.width *= 2
        for name, a in self.arrays.items():
            pairs = a.reshape(MAX_BINS // 2, 2, *a.shape[1:])
            how = self.how[name]
            merged = pairs.sum(1) if how == "sum" else pairs.max(1)
            out = np.zeros_like(a)
            out[: MAX_BINS // 2] = merged
            self.arrays[name] = out
        self.used = (self.used + 1) // 2

    def grow(self, name: str, axis1: int) -> None:
        """Widen the second axis of ``name`` to at least ``axis1`` (a new service appeared)."""
        a = self.arrays[name]
        if a.shape[1] >= axis1:
            return
        new = np.zeros((a.shape[0], max(axis1, 2 * a.shape[1]), *a.shape[2:]), a.dtype)
        new[:, : a.shape[1]] = a
        self.arrays[name] = new

    def view(self, name: str) -> npt.NDArray[Any]:
        return self.arrays[name][: self.used]


def _accumulate(a: npt.NDArray[Any], flat: I64) -> None:
    """``a.ravel()[flat] += 1`` for every index in ``flat``, counting only the span the indices cover."""
    if not len(flat):
        return
    lo = int(flat.min())
    cnt = np.bincount(flat - lo)
    a.reshape(-1)[lo : lo + len(cnt)] += cnt


def quantiles(hist: npt.NDArray[np.int64], q: float) -> npt.NDArray[np.float64]:
    """The ``q`` quantile (µs) of each histogram along the last axis (buckets of LAT_EDGES_US): the geometric
    middle of the bucket it falls in; NaN where a histogram is empty."""
    cum = np.cumsum(hist, axis=-1)
    tot = cum[..., -1:]
    k = np.minimum(np.sum(cum < q * tot, axis=-1), N_LAT - 1)
    lo = LAT_EDGES_US[k]
    hi = np.where(k + 1 < N_LAT, LAT_EDGES_US[np.minimum(k + 1, N_LAT - 1)], LAT_EDGES_US[-1] * 1.16)
    mid = np.where(lo > 0, np.sqrt(lo * hi), hi / 2)
    return np.where(tot[..., 0] > 0, mid, np.nan)


class RunRecorder:
    """Aggregates a run: per service and simulated-time bin, calls, server errors (status >= 500) and a
    latency histogram (each service's SERVER span); per bin, the API calls, sessions started and ended,
    retries, abandoned sessions, anomalous calls and the calls each fault touched; per wall-clock bin (paced
    runs), the events due against the events sent, the worst lag, and the sinks' drops and failures."""

    def __init__(self, factor: float | None = None, n_faults: int = 0) -> None:
        self.factor = factor  # simulated seconds per wall second; None: as fast as possible
        self.n_faults = n_faults
        self.services: list[str] = []
        self._svc_index: dict[str, int] = {}
        self._maps: dict[int, tuple[Model, I64, int]] = {}  # id(model) -> (model, [S, K] global service, K)
        sim = self.sim = TimeBins(width=1_000_000.0)  # µs
        for name in ("events", "sessions_started", "sessions_ended", "retries", "abandoned", "anomalous"):
            sim.add_array(name)
        sim.add_array("root_errors")
        sim.add_array("lag_max", (), np.float64, how="max")
        sim.add_array("lost", how="max")  # the sinks' drops and failures so far, at the last event sent
        sim.add_array("fault_calls", (max(1, n_faults),))
        sim.add_array("calls", (8,))
        sim.add_array("errors", (8,))
        sim.add_array("lat", (8, N_LAT), np.int64)
        wall = self.wall = TimeBins(width=0.25 if factor is not None else 0.02)  # s; a run at max is short
        wall.add_array("sent")
        wall.add_array("due")
        wall.add_array("lag_max", (), np.float64, how="max")
        wall.add_array("dropped", how="max")
        wall.add_array("failed", how="max")
        self.events = 0
        self.wall_s = 0.0
        self.dropped = 0
        self.failed = 0

    # ---- services ----
    def service(self, name: str) -> int:
        i = self._svc_index.get(name)
        if i is None:
            i = self._svc_index[name] = len(self.services)
            self.services.append(name)
            for a in ("calls", "errors", "lat"):
                self.sim.grow(a, i + 1)
        return i

    def _map(self, model: Model) -> tuple[I64, int]:
        got = self._maps.get(id(model))
        if got is None:
            trees = CallTrees(model.workflow)
            local = np.array([self.service(s) for s in trees.services], np.int64)
            glob = np.where(trees.valid, local[trees.svc], -1)
            got = self._maps[id(model)] = (model, glob, trees.K)
        return got[1], got[2]

    # ---- feeding ----
    def observe(
        self, part: EventBatch, lag: float = 0.0, wall_s: float = 0.0, dropped: int = 0, failed: int = 0
    ) -> None:
        """One batch as the runtime sent it, ``wall_s`` seconds after the schedule's start, ``lag`` late."""
        c = part.cols
        t = c["t"]
        if not len(t):
            return
        svc, K = self._map(part.ctx.model)
        b = self.sim.index(t)  # the bins of this batch (the width fits its latest event from here on)
        state = c["state"].astype(np.int64)
        if K > 1 and "node_dur" in c:
            dur = c["node_dur"]
            node_svc = svc[state]
            ran = (node_svc >= 0) & ((dur > 0) | (np.arange(K) == 0))
            node_bins = np.broadcast_to(b[:, None], dur.shape)[ran]  # a node's call starts in its event's bin
            self.add_calls(node_bins, node_svc[ran], dur[ran], c["node_status"][ran], bins=node_bins)
        else:
            self.add_calls(t, svc[state, 0], c["latency"], c["status"], bins=b)
        faults = c["faults"] if self.n_faults else None
        self.add_roots(t, c["seq"], c["attempt"], c["end"], c["status"], c["anomalous"], faults, bins=b)
        if lag > 0:
            sb = np.unique(b)
            a = self.sim.arrays["lag_max"]
            a[sb] = np.maximum(a[sb], lag)
        if dropped or failed:
            lost = self.sim.arrays["lost"]
            lost[b[-1]] = max(lost[b[-1]], dropped + failed)
        self._wall(t, lag, wall_s, len(t), dropped, failed)

    def add_calls(
        self, t_us: I64, svc: I64, latency_us: I64, status: npt.NDArray[Any], *, bins: I64 | None = None
    ) -> None:
        """Service calls (SERVER spans): start time, service index (:meth:`service`), duration, status;
        ``bins``: the times' bins when already known (:meth:`observe`)."""
        if not len(t_us):
            return
        b = self.sim.index(t_us) if bins is None else bins
        sim = self.sim
        S = sim.arrays["calls"].shape[1]
        flat = b * S + svc
        _accumulate(sim.arrays["calls"], flat)
        _accumulate(sim.arrays["errors"], flat[np.asarray(status) >= 500])
        lat = np.asarray(latency_us)
        edges = _LAT_EDGES_INT if lat.dtype.kind == "i" else LAT_EDGES_US
        k = np.searchsorted(edges, lat, side="right") - 1
        _accumulate(sim.arrays["lat"], flat * N_LAT + k)

    def add_roots(
        self,
        t_us: I64,
        seq: npt.NDArray[Any],
        attempt: npt.NDArray[Any],
        end: npt.NDArray[Any],
        status: npt.NDArray[Any],
        anomalous: npt.NDArray[Any],
        faults: npt.NDArray[np.uint64] | None = None,
        *,
        bins: I64 | None = None,
    ) -> None:
        """API calls (the events): what they say about sessions, retries, errors and faults."""
        if not len(t_us):
            return
        b = self.sim.index(t_us) if bins is None else bins
        sim = self.sim
        self.events += len(b)

        def count(name: str, mask: npt.NDArray[np.bool_] | None = None) -> None:
            _accumulate(sim.arrays[name], b if mask is None else b[mask])

        count("events")
        attempt = np.asarray(attempt)
        end = np.asarray(end)
        count("sessions_started", (np.asarray(seq) == 0) & (attempt == 1))
        count("sessions_ended", end > 0)
        count("retries", attempt > 1)
        count("abandoned", end == END_ABANDON)
        count("anomalous", np.asarray(anomalous, bool))
        count("root_errors", np.asarray(status) >= 500)
        if faults is not None and self.n_faults:
            f = np.asarray(faults, np.uint64)
            fc = sim.arrays["fault_calls"]
            F = fc.shape[1]
            for i in range(min(self.n_faults, 64)):
                hit = ((f >> np.uint64(i)) & np.uint64(1)).astype(bool)
                _accumulate(fc, b[hit] * F + i)

    def _wall(self, t_us: I64, lag: float, wall_s: float, n: int, dropped: int, failed: int) -> None:
        wall = self.wall
        self.wall_s = max(self.wall_s, wall_s)
        self.dropped, self.failed = dropped, failed
        if self.factor is not None:
            due = wall.index(t_us / 1e6 / self.factor)
            _accumulate(wall.arrays["due"], due)
        w = int(wall.index(np.array([wall_s]))[0])
        wall.arrays["sent"][w] += n
        wall.arrays["lag_max"][w] = max(wall.arrays["lag_max"][w], lag)
        wall.arrays["dropped"][w] = dropped
        wall.arrays["failed"][w] = failed

    def finish(self, wall_s: float, dropped: int, failed: int) -> None:
        """The run's end: the final wall time and the sinks' final drop and failure totals."""
        self.wall_s = max(self.wall_s, wall_s)
        self.dropped, self.failed = dropped, failed
        w = int(self.wall.index(np.array([self.wall_s]))[0])
        self.wall.arrays["dropped"][w] = max(self.wall.arrays["dropped"][w], dropped)
        self.wall.arrays["failed"][w] = max(self.wall.arrays["failed"][w], failed)

    # ---- reading ----
    def service_series(self) -> dict[str, npt.NDArray[Any]]:
        """Per service (columns, in :attr:`services` order) and bin: calls, error rate, p50 and p99 (ms)."""
        S = len(self.services)
        calls = self.sim.view("calls")[:, :S]
        errors = self.sim.view("errors")[:, :S]
        lat = self.sim.view("lat")[:, :S]
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(calls > 0, errors / np.maximum(calls, 1), np.nan)
        return {
            "calls": calls,
            "error_rate": rate,
            "p50_ms": quantiles(lat, 0.5) / 1000,
            "p99_ms": quantiles(lat, 0.99) / 1000,
        }
