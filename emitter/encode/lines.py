"""Encoded lines moved as bytes: where a buffer's lines end, and lines gathered from a buffer in a given
order (a ``--workers`` run's parent merges its workers' JSON lines with it, never holding a line as an
object of its own)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._native import SLACK, _addr, _jit, _memcpy, buffer

__all__ = ["gather_lines", "line_ends"]

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]


def line_ends(data: bytes | U8) -> I64:
    """The offset of every newline in ``data`` (each line's last byte)."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    return np.flatnonzero(buf == 10).astype(np.int64, copy=False)


@_jit
def _gather_kernel(out: U8, addrs: I64, lens: I64, order: I64) -> int:  # pragma: no cover - compiled
    o = _addr(out)
    pos = 0
    for k in range(order.shape[0]):
        i = order[k]
        n = lens[i]
        _memcpy(o + pos, addrs[i], n)
        pos += n
    return pos


def gather_lines(parts: list[tuple[U8, I64]], order: I64) -> memoryview:
    """Lines of several buffers, end to end in ``order``: ``parts`` are (buffer, ends) pairs, each buffer
    holding whole lines and ``ends`` their newlines' offsets; ``order`` indexes the parts' lines counted
    one part after another. The result is a view of a scratch buffer: valid until the next call."""
    addrs = []
    lens = []
    for buf, ends in parts:
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        addrs.append(starts + buf.ctypes.data)
        lens.append(ends - starts + 1)
    a, n = np.concatenate(addrs), np.concatenate(lens)
    total = int(n.sum())
    out = buffer("gather_lines", total + SLACK)
    used = _gather_kernel(out, a, n, np.ascontiguousarray(order, np.int64))
    return out.data[:used]
