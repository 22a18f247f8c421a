"""Deterministic identifiers: bijective 64-bit mixes of event keys, keyed by the run.

A bijection keeps ids unique within a run by construction; the keys make them differ between runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["event_key", "mix64"]

U64 = npt.NDArray[np.uint64]
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

SEQ_BITS = 16
ATTEMPT_BITS = 8
MAX_SEQ = (1 << SEQ_BITS) - 1
MAX_ATTEMPT = (1 << ATTEMPT_BITS) - 1


def mix64(x: npt.NDArray[Any], key: int) -> U64:
    """SplitMix64's finaliser applied to ``x ^ key``: a bijection of 64-bit integers."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) ^ np.uint64(key)
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        out: U64 = z ^ (z >> np.uint64(31))
        return out


def event_key(sess: npt.NDArray[Any], seq: npt.NDArray[Any], attempt: npt.NDArray[Any]) -> U64:
    """One integer per (session, seq, attempt), increasing in that order."""
    out: U64 = np.bitwise_or(
        np.bitwise_or(
            sess.astype(np.uint64) << np.uint64(SEQ_BITS + ATTEMPT_BITS),
            seq.astype(np.uint64) << np.uint64(ATTEMPT_BITS),
        ),
        attempt.astype(np.uint64),
    )
    return out
