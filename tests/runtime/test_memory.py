"""The run command's allocator settings (runtime/memory.py), seen in where glibc puts a large block."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from emitter.runtime import memory

# In a fresh process: malloc 20 MiB, free it, malloc 20 MiB again, and say whether the second block lies in
# the heap ([heap] in /proc/self/maps) or in a mapping of its own. With glibc's moving threshold, freeing the
# first (mmapped) block raises the threshold above it, so the second comes from the heap; with the run's
# fixed 16 MiB threshold every such block is mmapped and handed back to the system when freed.
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from emitter.runtime.memory import tune_allocator
    if sys.argv[1] == "tuned":
        assert tune_allocator(), "not applied"
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    libc.free(libc.malloc(20 << 20))
    p = libc.malloc(20 << 20)
    heap = None
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            heap = (lo, hi)
    print("heap" if heap and heap[0] <= p < heap[1] else "mmap")
    """
)


def _where(mode: str) -> str:
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* of the caller's
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux only")
def test_a_large_block_is_mmapped_after_tuning_and_from_the_heap_without():
    assert _where("default") == "heap"  # the behaviour the setting exists to stop (this case must differ)
    assert _where("tuned") == "mmap"


def test_the_users_own_malloc_settings_are_left_alone():
    for key in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        assert memory.tune_allocator({key: "1"}) is False


def test_other_platforms_are_left_alone(monkeypatch):
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.tune_allocator({}) is False
