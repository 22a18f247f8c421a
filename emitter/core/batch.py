"""Columnar batches of events: what the core yields and every sink consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from .ids import event_key, mix64
from .model import Model

__all__ = ["COLUMNS", "SCHEMA_VERSION", "EventBatch", "RunContext"]

SCHEMA_VERSION = 1
ROLES = ("none", "root", "propagated")

I64 = npt.NDArray[np.int64]

COLUMNS: dict[str, Any] = {
    "t": np.int64,  # event time: µs since the run's start (the request's start)
    "sess": np.int64,  # session number, in order of session start
    "user": np.int64,  # user number
    "utype": np.int16,  # index into Model.user_types
    "seq": np.int32,  # position of the logical call in its session
    "attempt": np.int16,  # 1 for the first try
    "state": np.int16,  # index into Model.states
    "status": np.int16,  # HTTP status code
    "latency": np.int64,  # µs
    "end": np.int8,  # END_* (0: the session goes on)
    "anomalous": np.bool_,
    "role": np.int8,  # index into ROLES
    "faults": np.uint64,  # bit i set: fault i touched this call
}


@dataclass(frozen=True)
class RunContext:
    """What turns a batch's numbers into an event: the model, the run's ids and its start time."""

    model: Model
    run_id: str
    start_us: int  # simulated start, µs since the Unix epoch (UTC)
    keys: tuple[int, ...]  # id keys drawn from the run's seed
    fault_ids: tuple[str, ...] = ()
    user_width: int = 6  # digits in user ids ("user-000042")

    @property
    def key_event(self) -> int:
        return self.keys[0]

    @property
    def key_trace(self) -> tuple[int, int]:
        return self.keys[1], self.keys[2]

    @property
    def key_span(self) -> int:
        return self.keys[3]

    @property
    def key_session(self) -> int:
        return self.keys[4]

    @property
    def key_user_type(self) -> int:
        return self.keys[5]


@dataclass
class EventBatch:
    """Events in time order, one numpy array per column (see :data:`COLUMNS`), plus ``params`` [slots, n]."""

    ctx: RunContext
    cols: dict[str, npt.NDArray[Any]]
    params: I64 = field(default_factory=lambda: np.zeros((0, 0), np.int64))

    def __len__(self) -> int:
        return len(self.cols["t"])

    def __getattr__(self, name: str) -> npt.NDArray[Any]:
        try:
            return self.__dict__["cols"][name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(name) from None

    def slice(self, start: int, stop: int) -> EventBatch:
        return EventBatch(self.ctx, {k: v[start:stop] for k, v in self.cols.items()}, self.params[:, start:stop])

    # ---- derived identifiers (deterministic by seed) ----
    @cached_property
    def ekey(self) -> npt.NDArray[np.uint64]:
        return event_key(self.cols["sess"], self.cols["seq"], self.cols["attempt"])

    @cached_property
    def event_id(self) -> npt.NDArray[np.uint64]:
        return mix64(self.ekey, self.ctx.key_event)

    @cached_property
    def trace_hi(self) -> npt.NDArray[np.uint64]:
        return mix64(self.ekey, self.ctx.key_trace[0])

    @cached_property
    def trace_lo(self) -> npt.NDArray[np.uint64]:
        return mix64(self.ekey, self.ctx.key_trace[1])

    @cached_property
    def span_id(self) -> npt.NDArray[np.uint64]:
        return mix64(self.ekey, self.ctx.key_span)

    @cached_property
    def session_key(self) -> npt.NDArray[np.uint64]:
        return mix64(self.cols["sess"], self.ctx.key_session)

    @cached_property
    def end_us(self) -> I64:
        return self.cols["t"] + self.cols["latency"]  # type: ignore[no-any-return]


def concat(batches: list[EventBatch]) -> EventBatch:
    ctx = batches[0].ctx
    cols = {k: np.concatenate([b.cols[k] for b in batches]) for k in batches[0].cols}
    params = np.concatenate([b.params for b in batches], axis=1)
    return EventBatch(ctx, cols, params)
