"""Small compiled kernels for the engine's hot loops, with numpy twins that give the same results.

``categorical(u, cum, rows)``: for each i, the number of entries of ``cum[rows[i]]`` that are <= ``u[i]``
(the index drawn from a cumulative row). numba compiles it when it is importable (and
``EMITTER_NO_NUMBA`` is unset); otherwise the numpy expression does the same comparisons.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["categorical", "categorical_numpy"]


def categorical_numpy(
    u: npt.NDArray[np.float64], cum: npt.NDArray[np.float64], rows: npt.NDArray[Any]
) -> npt.NDArray[np.int64]:
    out: npt.NDArray[np.int64] = (u[:, None] >= cum[rows]).sum(axis=1)
    return out


def _compile() -> Callable[..., npt.NDArray[np.int64]] | None:
    if os.environ.get("EMITTER_NO_NUMBA"):
        return None
    try:
        import numba
    except (ImportError, RuntimeError, OSError):
        return None

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


_kernel: list[Callable[..., npt.NDArray[np.int64]] | None] = []


def categorical(
    u: npt.NDArray[np.float64], cum: npt.NDArray[np.float64], rows: npt.NDArray[Any]
) -> npt.NDArray[np.int64]:
    if not _kernel:
        _kernel.append(_compile())
    fn = _kernel[0]
    if fn is None or len(u) < 64:
        return categorical_numpy(u, cum, rows)
    return fn(
        np.ascontiguousarray(u),
        np.ascontiguousarray(cum.reshape(-1, cum.shape[-1])),
        np.ascontiguousarray(rows, dtype=np.int64),
    )
