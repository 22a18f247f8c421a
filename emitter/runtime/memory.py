"""The allocator settings of a long run: memory that stays flat for hours instead of creeping up.

glibc's malloc serves a large block from ``mmap`` until a block of that size is freed, then raises its
threshold (up to 32 MiB) so that blocks like it come from the heap, and lets the heap keep twice that
unreturned. A run allocates the pool's runs and their compacted copies in every size up to tens of MiB,
long-lived and short-lived ones interleaved, so with the moving threshold the heap fragments: a paced
run to Kafka at 50 k events/s grew 7 % in an hour with the sessions in flight flat (BENCHMARKS.md). Fixing
the threshold at 16 MiB sends only the largest blocks to ``mmap`` (returned to the system when freed);
fixing the trim threshold at 256 MiB keeps the heap from being given back and faulted in again on every
large free, which is what made a fixed mmap threshold alone cost a third of the throughput.

Applied by the ``run`` command only (a notebook's process is left alone), on glibc only, and never over
the user's own ``MALLOC_*`` or ``GLIBC_TUNABLES`` settings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_allocator"]

MMAP_THRESHOLD = 16 << 20
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def tune_allocator(env: Mapping[str, str] | None = None) -> bool:
    """Fix glibc's mmap and trim thresholds for this process (and the processes it forks). True when set;
    False on another platform or C library, or when the environment already says how malloc should
    behave."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or any(k in env for k in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl has no such symbol, nor these options)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
