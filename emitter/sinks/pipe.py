"""A ``--workers`` worker's side of one ordered stream: its batches' JSON lines and order keys, sent to the
parent process over a pipe (the parent merges the workers' lines into the stream the single run writes).

Messages are tuples, pickled by :mod:`multiprocessing`: ``("data", keys, ends)`` for a batch (``keys``: the
five int64 columns the stream is ordered by, ``ends``: where each of its lines ends), followed by the
batch's encoded JSON lines as raw bytes; and ``("through", t_us)`` when a paced worker waits (nothing
earlier than ``t_us`` is still to come from it).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..core.batch import EventBatch
from ..encode.lines import line_ends
from .base import Sink, SinkError
from .basic import jsonl_of

__all__ = ["PipeSink", "order_keys"]

THROUGH_EVERY = 0.01  # seconds: a waiting worker tells the parent how far it got at most this often


def order_keys(batch: EventBatch, workflows: int) -> np.ndarray:
    """The stream's total order as one (5, n) int64 array, compared column after column: time, workflow
    (a multi-workflow run breaks time ties by workflow first), session, seq, attempt."""
    c = batch.cols
    sess = c["sess"].astype(np.int64, copy=False)
    return np.stack(
        [
            c["t"].astype(np.int64, copy=False),
            sess % workflows,
            sess,
            c["seq"].astype(np.int64),
            c["attempt"].astype(np.int64),
        ]
    )


class PipeSink(Sink):
    """Sends each batch to the parent; acknowledged once the pipe took it (the parent's sink acknowledges
    the events themselves, and the parent's summary counts those)."""

    uri = "worker-pipe"

    def __init__(self, conn: Any, workflows: int = 1) -> None:
        super().__init__()
        self.conn = conn
        self.workflows = max(1, workflows)
        self._last_through = 0.0

    def _send(self, msg: tuple[Any, ...], raw: bytes | None = None) -> None:
        try:
            self.conn.send(msg)
            if raw is not None:
                self.conn.send_bytes(raw)  # (after its header, as is: no pickled copy of the lines)
        except (OSError, ValueError) as exc:
            raise SinkError(f"worker pipe: the parent process is gone ({exc.__class__.__name__})") from None

    async def send(self, batch: EventBatch) -> None:
        n = len(batch)
        data = jsonl_of(batch)
        self.stats.sent += n
        self._send(("data", order_keys(batch, self.workflows), line_ends(data)), data)
        self.stats.acked += n
        self.stats.bytes += len(data)

    async def advance(self, t_us: int) -> None:
        now = time.monotonic()
        if now - self._last_through >= THROUGH_EVERY:
            self._last_through = now
            self._send(("through", t_us))
