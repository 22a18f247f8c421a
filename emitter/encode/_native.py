"""What every compiled kernel of the package is made of: raw memory moves and a pool of strings.

numba reference-counts arrays passed to inlined functions, and those atomic increments (in an inner loop)
cost more than the encoding itself; so kernels turn arrays into addresses once (:func:`_addr`) and the
helpers take addresses and integers only. Memory is read and written through the intrinsics ``_ld1``,
``_ld8``, ``_st1``, ``_st8``, ``_cp32`` and ``_memcpy`` (unaligned, unchecked: the callers size their
buffers with ``SLACK`` bytes to spare). Strings that do not vary per event live in one byte pool with an
offsets array (:class:`PoolBuilder`); :func:`_put` appends one of them.

Kernels are compiled with numba's on-disk cache (``__pycache__`` beside the module, or ``NUMBA_CACHE_DIR``);
numba notices edits to a kernel's own file only, so after changing the helpers here, clear the cache.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic as _intrinsic

__all__ = ["SLACK", "PoolBuilder", "buffer", "col"]

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

SLACK = 96  # bytes past the end of the pool and of every buffer that block copies may read or write


_jit = numba.njit(cache=True, nogil=True)
_inline = numba.njit(cache=True, nogil=True, inline="always")
intrinsic: Any = _intrinsic  # (typed by numba in a way that does not describe the decorated functions' calls)
_raw_memcpy: Any = cgutils.raw_memcpy


def _i8p(builder: Any, addr: Any) -> Any:
    return builder.inttoptr(addr, ir.IntType(8).as_pointer())


def _as_i64(context: Any, builder: Any, value: Any, ty: Any) -> Any:
    return context.cast(builder, value, ty, numba.types.int64)


@intrinsic  # type: ignore[untyped-decorator]
def _addr(typingctx: Any, arr: Any) -> Any:
    """The address of ``arr``'s first byte."""
    sig = numba.types.int64(arr)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.ptrtoint(data, ir.IntType(64))

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def _cp32(typingctx: Any, dst: Any, src: Any) -> Any:
    """Copy 32 bytes from address ``src`` to address ``dst`` (one unaligned vector move)."""
    sig = numba.types.void(dst, src)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        d = _i8p(builder, _as_i64(context, builder, args[0], signature.args[0]))
        s = _i8p(builder, _as_i64(context, builder, args[1], signature.args[1]))
        _raw_memcpy(builder, d, s, ir.Constant(ir.IntType(64), 32), 1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def _st8(typingctx: Any, dst: Any, value: Any) -> Any:
    """Store ``value`` at address ``dst`` as 8 little-endian bytes (unaligned)."""
    sig = numba.types.void(dst, value)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i64 = ir.IntType(64)
        p = builder.inttoptr(_as_i64(context, builder, args[0], signature.args[0]), i64.as_pointer())
        builder.store(_as_i64(context, builder, args[1], signature.args[1]), p, align=1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def _st1(typingctx: Any, dst: Any, value: Any) -> Any:
    """Store the low byte of ``value`` at address ``dst``."""
    sig = numba.types.void(dst, value)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        v = builder.trunc(_as_i64(context, builder, args[1], signature.args[1]), ir.IntType(8))
        builder.store(v, _i8p(builder, _as_i64(context, builder, args[0], signature.args[0])))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def _ld8(typingctx: Any, src: Any) -> Any:
    """The 8 little-endian bytes at address ``src``, as an int64 (unaligned)."""
    sig = numba.types.int64(src)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i64 = ir.IntType(64)
        p = builder.inttoptr(_as_i64(context, builder, args[0], signature.args[0]), i64.as_pointer())
        return builder.load(p, align=1)

    return sig, codegen


@_jit
def _copy_long(o: int, src: int, n: int) -> None:
    """Bytes 64 and on of a string longer than 64 bytes (rare: not inlined)."""
    for x in range(64, n, 32):
        _cp32(o + x, src + x)


@_inline
def _put(o: int, pool: int, off: int, k: int) -> int:
    """Append string ``k`` of the pool at address ``o``; the next address.

    Copies 64 bytes whatever the length (no branch for the usual short strings): the pool and the output
    have _SLACK bytes to spare at their ends.
    """
    a = _ld8(off + 8 * k)
    n = _ld8(off + 8 * k + 8) - a
    _cp32(o, pool + a)
    _cp32(o + 32, pool + a + 32)
    if n > 64:
        _copy_long(o, pool + a, n)
    return o + n  # type: ignore[no-any-return]


@intrinsic  # type: ignore[untyped-decorator]
def _bswap(typingctx: Any, x: Any) -> Any:
    """The 8 bytes of ``x`` in the other order (ids are big-endian on the wire, stored with _st8)."""
    sig = numba.types.int64(x)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bswap(_as_i64(context, builder, args[0], signature.args[0]))

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def _wmul(typingctx: Any, a: Any, b: Any) -> Any:
    """``a * b`` modulo 2**64 (numba's own int64 product is 'no signed wrap', undefined on overflow)."""
    sig = numba.types.int64(a, b)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        x = _as_i64(context, builder, args[0], signature.args[0])
        y = _as_i64(context, builder, args[1], signature.args[1])
        return builder.mul(x, y)

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def _memcpy(typingctx: Any, dst: Any, src: Any, n: Any) -> Any:
    """Copy exactly ``n`` bytes from address ``src`` to address ``dst``."""
    sig = numba.types.void(dst, src, n)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        d = _i8p(builder, _as_i64(context, builder, args[0], signature.args[0]))
        s = _i8p(builder, _as_i64(context, builder, args[1], signature.args[1]))
        _raw_memcpy(builder, d, s, _as_i64(context, builder, args[2], signature.args[2]), 1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def _ld1(typingctx: Any, src: Any) -> Any:
    """The byte at address ``src``."""
    sig = numba.types.int64(src)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        v = builder.load(_i8p(builder, _as_i64(context, builder, args[0], signature.args[0])))
        return builder.zext(v, ir.IntType(64))

    return sig, codegen


@_inline
def _len(off: int, k: int) -> int:
    """The length of string ``k`` of a pool whose offsets array is at address ``off``."""
    return _ld8(off + 8 * k + 8) - _ld8(off + 8 * k)  # type: ignore[no-any-return]


class PoolBuilder:
    def __init__(self) -> None:
        self.items: list[bytes] = []
        self.base: list[int] = []

    def table(self, items: Sequence[bytes]) -> int:
        """Add a table; returns its longest string's length."""
        self.base.append(len(self.items))
        self.items.extend(items)
        return max([0, *(len(x) for x in items)])

    def build(self) -> tuple[U8, I64, I64]:
        off = np.zeros(len(self.items) + 1, np.int64)
        off[1:] = np.cumsum([len(x) for x in self.items])
        pool = np.frombuffer(b"".join(self.items) + bytes(SLACK), np.uint8).copy()
        return pool, off, np.array(self.base, np.int64)


_scratch = threading.local()
_KEEP_BYTES = 64 << 20  # buffers up to this size are kept for the thread's next batch


def buffer(name: str, size: int) -> U8:
    """A scratch buffer of at least ``size`` bytes: this thread's ``name`` one, reused while it is not too big.

    Fresh memory costs a page fault per 4 KiB on first write, about as much as encoding into it.
    """
    buf: U8 | None = getattr(_scratch, name, None)
    if buf is not None and len(buf) >= size:
        return buf
    buf = np.empty(size, np.uint8)
    if size <= _KEEP_BYTES:
        setattr(_scratch, name, buf)
    return buf


def col(x: npt.NDArray[Any], dtype: Any) -> npt.NDArray[Any]:
    """A column as the kernels take it: contiguous, of one dtype."""
    return np.ascontiguousarray(x, dtype=dtype)
