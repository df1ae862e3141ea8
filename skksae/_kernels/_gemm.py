"""Matrix products: SciPy's single-threaded BLAS on blocks of rows, on Numba's threads.

On a small machine BLAS's own spinning worker threads and Numba's would otherwise
fight over the cores between every two kernels.
"""

import numpy as np
from llvmlite import binding as llvm_binding
from numba import get_num_threads, njit, prange, types
from numba.extending import get_cython_function_address

from . import _threads
from ._threads import _cap_threads, _serial, parallel_kernel


# SciPy's BLAS, reached by symbol name so that the kernels that call it can be cached
# (a ctypes function object would be a per-process global, which Numba cannot cache).
# Every argument of the Fortran interface is a pointer, passed here as an intp.
for _name in ("sgemm", "dgemm"):
    llvm_binding.add_symbol(
        f"skksae_{_name}", get_cython_function_address("scipy.linalg.cython_blas", _name)
    )
_GEMM_SIG = types.void(*([types.intp] * 13))
_sgemm = types.ExternalFunction("skksae_sgemm", _GEMM_SIG)
_dgemm = types.ExternalFunction("skksae_dgemm", _GEMM_SIG)
_N, _T = ord("N"), ord("T")


@njit(cache=True)
def _gemm_block(A, trans_a, B, trans_b, C, beta, r0, r1, c0, c1):
    """Block ``C[r0:r1, c0:c1]`` of ``C = op(A) @ op(B) + beta * C`` by one BLAS call.

    Row-major operands are handed to the column-major BLAS as their transposes:
    ``C.T = op(B).T @ op(A).T``; a block of C is a pointer offset with the full row
    length as leading dimension.
    """
    m = C.shape[1]
    flags = np.empty(2, dtype=np.uint8)
    flags[0] = _T if trans_b else _N
    flags[1] = _T if trans_a else _N
    ints = np.empty(6, dtype=np.int32)
    ints[0] = c1 - c0
    ints[1] = r1 - r0
    ints[2] = A.shape[0] if trans_a else A.shape[1]
    ints[3] = B.shape[1]
    ints[4] = A.shape[1]
    ints[5] = m
    scalars = np.empty(2, dtype=C.dtype)
    scalars[0] = 1.0
    scalars[1] = beta
    a_block = A[:, r0:] if trans_a else A[r0:]
    b_block = B[c0:] if trans_b else B[:, c0:]
    c_block = C[r0:, c0:]
    args = (
        flags[0:].ctypes.data,
        flags[1:].ctypes.data,
        ints[0:].ctypes.data,
        ints[1:].ctypes.data,
        ints[2:].ctypes.data,
        scalars[0:].ctypes.data,
        b_block.ctypes.data,
        ints[3:].ctypes.data,
        a_block.ctypes.data,
        ints[4:].ctypes.data,
        scalars[1:].ctypes.data,
        c_block.ctypes.data,
        ints[5:].ctypes.data,
    )
    if C.itemsize == 4:
        _sgemm(*args)
    else:
        _dgemm(*args)


@parallel_kernel()
def gemm(A, trans_a, B, trans_b, C, beta, n_threads):
    """``C = op(A) @ op(B) + beta * C`` for C-contiguous float arrays of one dtype.

    ``op(A)`` is ``A.T`` when ``trans_a`` (likewise B).  C is split along its longer
    side into ``n_threads`` blocks (``numba.get_num_threads()``; read inside a kernel
    it would keep the kernel from being cached), each computed by a single-threaded
    BLAS call: use it inside :data:`single_threaded_blas`.  Splitting the columns of a
    short, wide product (a mini-batch times the weights) lets each thread read only
    its share of the weights.
    """
    n, m = C.shape
    inner = A.shape[0] if trans_a else A.shape[1]
    if n == 0 or m == 0 or inner == 0:
        C *= beta
        return
    by_rows = n >= m
    n_blocks = max(1, min(n_threads, (n if by_rows else m) // 32))
    for blk in prange(n_blocks):
        # one call with int64 bounds: a literal 0 in a call would type _gemm_block
        # once more (a literal is a type of its own)
        r0, r1, c0, c1 = np.int64(0), n, np.int64(0), m
        if by_rows:
            r0, r1 = blk * n // n_blocks, (blk + 1) * n // n_blocks
        else:
            c0, c1 = blk * m // n_blocks, (blk + 1) * m // n_blocks
        _gemm_block(A, trans_a, B, trans_b, C, beta, r0, r1, c0, c1)


def matmul(A, trans_a, B, trans_b, C, beta=0.0):
    """``C = op(A) @ op(B) + beta * C`` by :func:`gemm` (split into as many blocks as
    Numba has threads, whichever version runs)."""
    _cap_threads()
    n_threads = get_num_threads()
    if _serial():
        gemm.serial(A, trans_a, B, trans_b, C, beta, n_threads)
        return C
    with _threads.lock():
        gemm.parallel(A, trans_a, B, trans_b, C, beta, n_threads)
    return C
