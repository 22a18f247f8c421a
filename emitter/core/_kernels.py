"""Small compiled kernels for the engine's hot loops (numba, compiled on first use and cached on disk).

``categorical(u, cum, rows)``: for each i, the number of entries of ``cum[rows[i]]`` that are <= ``u[i]``
(the index drawn from a cumulative row). ``categorical_sparse(u, ptr, cum, target, rows)``: the same
draw from rows kept sparse (row r is ``cum[ptr[r]:ptr[r + 1]]`` over columns ``target[...]``, the cells
with p > 0): the first column whose cumulative probability passes ``u[i]``, which is the dense draw's
column (a cell with p = 0 never passes what its predecessor did not).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["categorical", "categorical_sparse"]

_kernel: list[Callable[..., npt.NDArray[np.int64]]] = []
_sparse: list[Callable[..., npt.NDArray[np.int64]]] = []


def _compile() -> Callable[..., npt.NDArray[np.int64]]:
    import numba

    @numba.njit(cache=True, nogil=True)
    def kernel(u: Any, cum: Any, rows: Any) -> Any:
        n = u.shape[0]
        k = cum.shape[1]
        out = np.empty(n, np.int64)
        for i in range(n):
            r = rows[i]
            x = u[i]
            c = 0
            while c < k and cum[r, c] <= x:
                c += 1
            out[i] = c
        return out

    return kernel


def categorical(
    u: npt.NDArray[np.float64], cum: npt.NDArray[np.float64], rows: npt.NDArray[Any]
) -> npt.NDArray[np.int64]:
    if not _kernel:
        _kernel.append(_compile())
    return _kernel[0](
        np.ascontiguousarray(u),
        np.ascontiguousarray(cum.reshape(-1, cum.shape[-1])),
        np.ascontiguousarray(rows, dtype=np.int64),
    )


def _compile_sparse() -> Callable[..., npt.NDArray[np.int64]]:
    import numba

    @numba.njit(cache=True, nogil=True)
    def kernel(u: Any, ptr: Any, cum: Any, target: Any, rows: Any) -> Any:
        n = u.shape[0]
        out = np.empty(n, np.int64)
        for i in range(n):
            r = rows[i]
            j = ptr[r]
            end = ptr[r + 1] - 1  # the last cell's cumulative probability is past 1
            x = u[i]
            while j < end and cum[j] <= x:
                j += 1
            out[i] = target[j]
        return out

    return kernel


def categorical_sparse(
    u: npt.NDArray[np.float64],
    ptr: npt.NDArray[np.int64],
    cum: npt.NDArray[np.float64],
    target: npt.NDArray[np.int64],
    rows: npt.NDArray[Any],
) -> npt.NDArray[np.int64]:
    if not _sparse:
        _sparse.append(_compile_sparse())
    return _sparse[0](np.ascontiguousarray(u), ptr, cum, target, np.ascontiguousarray(rows, dtype=np.int64))
