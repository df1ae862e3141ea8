"""Numba kernels for the autoencoders' hot paths.

The engine hands the kernels arrays it allocated itself (C-contiguous, writable,
float32 or float64), so most kernels compile one specialisation per floating dtype;
the encoder product also sees the caller's input, which may add a read-only
specialisation.  ``cache=True`` keeps them all on disk.

Matrix products run on Numba's threads, each calling single-threaded BLAS on a block
of rows (:func:`gemm`): on a small machine BLAS's own spinning worker threads and
Numba's would otherwise fight over the cores between every two kernels.

Every kernel that runs on Numba's threads is compiled from one source twice
(:class:`_Kernel`): with ``parallel=True``, and serially.  Compiling the parallel
version costs several times more (Numba builds and optimises three wrappers around
each parallel loop, each holding the loop's whole code), which only pays on data
large enough to keep the threads busy; the two give the same bits, since every
kernel splits its work into blocks that do not depend on the thread count.  The
engine says how much work an operation holds (:func:`work`), and :func:`call` runs
the serial versions below :data:`PARALLEL_MIN_WORK`, so a first fit on a small data
set compiles only the cheap ones.

Numba's default ``workqueue`` threading layer aborts the process when two Python
threads enter a parallel region at once.  The parallel kernels are therefore called
through :func:`call` (or :func:`matmul`), which hold a module-level lock.  In a task of
a Dask worker they also cap the calling thread's Numba threads at the worker's thread
count (:func:`_cap_threads`), so that workers sharing the cores do not oversubscribe
them.
"""

import contextlib
import os
import sys
import threading
import types as pytypes

import numpy as np
import threadpoolctl
from llvmlite import binding as llvm_binding
from numba import get_num_threads, njit, prange, set_num_threads, types  # noqa: F401
from numba.extending import get_cython_function_address, overload
from threadpoolctl import ThreadpoolController

_LOCK = threading.Lock()


def _reset_lock_after_fork():  # pragma: no cover - exercised only in forked children
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


_THREAD = threading.local()


def _cap_threads():
    """In a task thread of a Dask worker, lower this thread's Numba thread count to the
    worker's ``nthreads`` (checked once per thread; Numba's setting is thread-local).

    A worker started with ``threads_per_worker=t`` then runs the kernels on at most t
    threads (the module lock lets one parallel region run at a time, and the BLAS calls
    inside the kernels are single-threaded).  Elsewhere nothing changes, and the check
    costs one attribute lookup.  ``distributed`` is never imported here: a process that
    runs a worker has imported it already.
    """
    if getattr(_THREAD, "checked", False) or "distributed" not in sys.modules:
        return
    _THREAD.checked = True
    try:
        nthreads = sys.modules["distributed"].get_worker().state.nthreads
    except (AttributeError, ValueError):  # not a worker's task thread
        return
    if 0 < nthreads < get_num_threads():
        set_num_threads(nthreads)


# Below this many multiply-adds in an operation (rows times weights: about 30 ms of
# arithmetic on one core) the serial kernels run: the parallel ones would gain less
# than their extra compile time costs a first call.
PARALLEL_MIN_WORK = 2**26


@contextlib.contextmanager
def work(multiply_adds):
    """Context manager: inside it, in this thread, :func:`call` and :func:`matmul` run
    the serial kernels when ``multiply_adds`` (the operation's size, e.g. rows times
    weights) is below :data:`PARALLEL_MIN_WORK`, and the parallel ones otherwise.
    Outside any such block the parallel kernels run; inside one, a nested block (a
    chunk of the operation) keeps the enclosing decision."""
    previous = getattr(_THREAD, "serial", None)
    if previous is None:
        _THREAD.serial = multiply_adds < PARALLEL_MIN_WORK
    try:
        yield
    finally:
        _THREAD.serial = previous


def _serial():
    """Whether :func:`call` runs serial kernels now: in a small operation, or when
    Numba has one thread anyway."""
    return bool(getattr(_THREAD, "serial", None)) or get_num_threads() == 1


class _Kernel:
    """A kernel compiled from one source twice: ``parallel`` (``prange`` loops on
    Numba's threads) and ``serial`` (the same loops in one thread, releasing the
    GIL).  Both are cached; the serial one under its own name, since Numba's cache
    tells functions apart by name and code, not by compile options.  Calling the
    kernel calls the parallel version (use :func:`call`, which chooses)."""

    def __init__(self, fn, options):
        self.py_func = fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.parallel = njit(parallel=True, cache=True, **options)(fn)
        # Numba compiles a parallel loop's body with NumPy's error model (a division
        # by zero gives inf, it raises nothing), which lets its loops vectorise; the
        # serial twin gets the same
        self.serial = _compiled_copy(fn, "_serial", nogil=True, error_model="numpy",
                                     **options)

    def __call__(self, *args):
        return self.parallel(*args)

    def __repr__(self):
        return f"<skksae kernel {self.__name__}>"


def _compiled_copy(fn, suffix, **options):
    """``fn`` compiled (and cached) with ``options`` under the name ``fn`` +
    ``suffix``: Numba's cache tells functions apart by name and code, not by compile
    options, so two compilations of one source need two names."""
    copy = pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__,
                                fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__module__ = fn.__module__
    copy.__doc__ = fn.__doc__
    return njit(cache=True, **options)(copy)


def parallel_kernel(**options):
    """Decorator: a :class:`_Kernel` compiled with the Numba ``options`` given
    (``fastmath``, ...)."""
    return lambda fn: _Kernel(fn, options)


def call(kernel, *args):
    """Call a kernel: a :class:`_Kernel`'s serial or parallel version (see
    :func:`work`), the parallel one while holding the module lock."""
    _cap_threads()
    if isinstance(kernel, _Kernel):
        if _serial():
            return kernel.serial(*args)
        kernel = kernel.parallel
    with _LOCK:
        return kernel(*args)


def matmul(A, trans_a, B, trans_b, C, beta=0.0):
    """``C = op(A) @ op(B) + beta * C`` by :func:`gemm` (split into as many blocks as
    Numba has threads, whichever version runs)."""
    _cap_threads()
    n_threads = get_num_threads()
    if _serial():
        gemm.serial(A, trans_a, B, trans_b, C, beta, n_threads)
        return C
    with _LOCK:
        gemm.parallel(A, trans_a, B, trans_b, C, beta, n_threads)
    return C


def _release_blas_control():
    """Let any Python thread change OpenBLAS's thread count next.

    threadpoolctl 3.8 lets one Python thread at a time change the count of an
    OpenBLAS built with pthreads (one process-wide pool): a thread that sets a limit
    outside a ``with`` block of its own keeps that right for as long as it lives, and
    limits set from other threads are then ignored without a word (BLAS inside
    :func:`gemm`'s threads would run two threads each, and a product's bits would
    depend on the calling thread).  With a threadpoolctl that has no such owner
    nothing is done."""
    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None),
                    "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


def set_blas_limit(controller, **limits):
    """``controller.limit(**limits)`` from any Python thread; returns the limiter, to
    be handed to :func:`restore_blas_limit`.  The caller pairs the two itself (not
    necessarily in one thread), so threadpoolctl's owning thread is released around
    each change (:func:`_release_blas_control`)."""
    _release_blas_control()
    limiter = controller.limit(**limits)
    _release_blas_control()
    return limiter


def restore_blas_limit(limiter):
    """Undo :func:`set_blas_limit`, from any Python thread."""
    _release_blas_control()
    limiter.restore_original_limits()
    _release_blas_control()


class _SingleThreadedBlas:
    """Context manager: BLAS libraries limited to one thread while any user is inside.

    :func:`gemm` splits a product across Numba's threads, each calling BLAS on its
    block of rows; BLAS must not start threads of its own then (on two cores the
    spinning BLAS workers slow every kernel several-fold).  Re-entrant and thread
    safe: the first entrant sets the limit, the last one to leave restores it.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._limiter = None
        self._controller = None

    def __enter__(self):
        with self._lock:
            if self._users == 0:
                if self._controller is None:
                    self._controller = ThreadpoolController()
                self._limiter = set_blas_limit(self._controller, limits=1, user_api="blas")
            self._users += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._users -= 1
            if self._users == 0:
                restore_blas_limit(self._limiter)
                self._limiter = None


single_threaded_blas = _SingleThreadedBlas()

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


@njit(cache=True)
def _sum_in_order(a):
    """``sum(a)`` of a 1-D array, added from the first entry to the last.  A parallel
    kernel's ``a.sum()`` would become a reduction split across Numba's threads, whose
    result depends on their number and differs from the serial twin's."""
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    return s


# Activation codes shared with the Python side.
LINEAR, RELU, SIGMOID = 0, 1, 2
ACTIVATIONS = {"linear": LINEAR, "relu": RELU, "sigmoid": SIGMOID}


def _fill_keys(cv, c, keys):
    """``keys[q]`` = an integer that orders like ``cv[q]`` (non-NaN floats; -0 and
    +0 get the same key), for q < c; returns the smallest and largest key.  Compiled
    per dtype through :func:`_fill_keys_impl` (the float's bits read as an integer)."""
    raise NotImplementedError  # only its Numba implementation runs


@overload(_fill_keys, jit_options={"cache": True})
def _fill_keys_impl(cv, c, keys):
    bits_type, magnitude = ((np.int32, 0x7FFFFFFF) if cv.dtype == types.float32 else
                            (np.int64, 0x7FFFFFFFFFFFFFFF))

    def impl(cv, c, keys):
        bits = cv.view(bits_type)
        lo = np.int64(np.iinfo(np.int64).max)
        hi = np.int64(np.iinfo(np.int64).min)
        for q in range(c):
            b = np.int64(bits[q])
            # sign and magnitude to two's complement: negative floats count down
            key = b if b >= 0 else -(b & magnitude)
            keys[q] = key
            lo = min(lo, key)
            hi = max(hi, key)
        return lo, hi

    return impl


@njit(cache=True)
def _kth_key(cv, c, k, keys):
    """The key (:func:`_fill_keys`, written to ``keys``) of the k-th largest of
    ``cv[:c]`` (non-NaN, c >= k), and how many keys exceed it: bisection over the
    integers, each step one branch-free, vectorised count of the keys that reach the
    midpoint (at most 64 steps, a few cycles each for the ~2 k candidates of a row)."""
    lo, hi = _fill_keys(cv, c, keys)
    hi += 1
    above = 0  # count(keys >= lo) >= k > count(keys >= hi) = above
    while lo + 1 < hi:  # (not hi - lo: it can overflow)
        # floor((lo + hi) / 2) without overflow (float64 keys span the int64 range)
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)
        n = 0
        for q in range(c):
            n += keys[q] >= mid
        if n == k:
            # exactly k keys reach mid: the k-th is the least of them (usually after
            # 7-10 steps, not 23-32: the gap between the k-th and the next is wide)
            kth = hi
            for q in range(c):
                key = keys[q]
                kth = min(kth, key if key >= mid else hi)
            ties = 0
            for q in range(c):
                ties += keys[q] == kth
            return kth, k - ties
        if n > k:
            lo = mid
        else:
            hi = mid
            above = n
    return lo, above  # hi = lo + 1: the keys >= hi are those above lo


@njit(cache=True, fastmath={"nnan", "nsz", "reassoc"})
def _block_max_bound(z, bias, k):
    """The smallest of the maxima of k blocks of ``z + bias``: a lower bound on the
    k-th largest entry.  Vectorised (fastmath); with NaN in the row the bound is
    meaningless, which the caller detects by counting what it admits."""
    m = z.shape[0]
    thr = np.inf
    for blk in range(k):
        lo = blk * m // k
        hi = (blk + 1) * m // k
        mx = z[lo] + bias[lo]
        for j in range(lo + 1, hi):
            mx = max(mx, z[j] + bias[j])
        thr = min(mx, thr)
    return thr


@njit(cache=True)
def _admit(z, bias, guess, cv, ci):
    """Append, in column order, every entry of ``z + bias`` that reaches ``guess``
    (every non-NaN entry when ``guess`` is -inf) to ``cv, ci``; return the count.
    Branch-free: every entry is written at the next free place and the place
    advances only when the entry got in (``cv, ci`` hold ``len(z)`` entries)."""
    g = z.dtype.type(guess)
    c = 0
    for j in range(z.shape[0]):
        v = z[j] + bias[j]
        cv[c] = v
        ci[c] = j
        c += v >= g
    return c


@njit(cache=True, inline="always")
def _activate(v, activation, one):
    """The activation of ``v``; ``one`` is 1 in the data's precision (a float64
    constant would promote a float32 computation)."""
    if activation == RELU:
        return v if v > 0 else v * 0
    if activation == SIGMOID:
        return one / (one + np.exp(-v))
    return v


@njit(cache=True, inline="always")
def _exp32(x):
    """``exp(x)`` in float32 without a library call, so that loops calling it
    vectorise: ``x = n log 2 + r`` with ``|r| <= log(2) / 2`` (log 2 split in two parts
    for an exact reduction), a degree-6 polynomial for ``exp(r)`` (Cephes' ``expf``
    coefficients) and ``2**n`` built in the exponent bits.  Within 2 ulp of the C
    library's ``expf`` for arguments in [-87, 88], which it is clamped to (so the
    result is never 0, inf or subnormal); NaN stays NaN."""
    one = np.float32(1.0)
    if x > np.float32(88.0):
        x = np.float32(88.0)
    if x < np.float32(-87.0):
        x = np.float32(-87.0)
    n = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))
    if n != n:  # NaN: keep the integer conversion below defined (the result is NaN)
        n = np.float32(0.0)
    r = x - n * np.float32(0.693359375)
    r = r - n * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + one
    return p * np.int32((np.int32(n) + np.int32(127)) << np.int32(23)).view(np.float32)


@njit(cache=True, inline="always")
def _flush32(v):
    """v, or 0 where v is subnormal (as a processor's flush-to-zero mode would give):
    products on subnormal numbers take a slow path in every later matrix product.
    NaN stays NaN."""
    return v if abs(v) >= np.float32(1.1754944e-38) else v * np.float32(0.0)


@njit(cache=True, inline="always")
def _log1p_unit32(u):
    """``log1p(u)`` in float32 for ``u`` in [0, 1], without a library call:
    ``2 atanh(s)`` with ``s = u / (2 + u) <= 1/3``, its series to the s**13 term
    (truncation below 2e-8 relative)."""
    s = u / (np.float32(2.0) + u)
    w = s * s
    p = np.float32(1.0 / 13.0)
    p = p * w + np.float32(1.0 / 11.0)
    p = p * w + np.float32(1.0 / 9.0)
    p = p * w + np.float32(1.0 / 7.0)
    p = p * w + np.float32(1.0 / 5.0)
    p = p * w + np.float32(1.0 / 3.0)
    p = p * w + np.float32(1.0)
    return np.float32(2.0) * s * p


@njit(cache=True)
def _fill_nan(z, bias, idx_row, val_row, p):
    """Complete a row of the top-k output with columns whose value is NaN, in order."""
    k = idx_row.shape[0]
    for j in range(z.shape[0]):
        if p == k:
            break
        v = z[j] + bias[j]
        if v != v:
            idx_row[p] = j
            val_row[p] = v
            p += 1


@njit(cache=True)
def _topk_row(z, bias, k, guess, keys, cv, ci, out_i, out_v):
    """The k best entries of ``z + bias`` (raw values, ties to the lower column) in
    column order into ``out_i, out_v``.  Returns the threshold value and how many
    candidates ``guess`` let in (0 without a guess), to adapt the next guess.

    One branch-free pass admits every entry that reaches a threshold; if at least k
    got in, they include the k best: a bisection over the candidates' integer keys
    finds the k-th largest (:func:`_kth_key`), and one more branch-free pass keeps,
    in order, those above it and the first of those equal to it.  The threshold is
    ``guess`` (adapted from the previous rows) when finite; if that admits fewer
    than k, the smallest of k block maxima (a lower bound on the k-th largest); if
    NaN defeats that too, every non-NaN entry, and NaN-valued columns fill the rest.
    The result never depends on the guess.  ``keys, cv, ci`` hold at least
    ``len(z)`` entries (:func:`_selection_buffers`).
    """
    c = 0
    if guess > -np.inf:
        c = _admit(z, bias, guess, cv, ci)
    admitted_by_guess = c
    if c < k:
        bound = _block_max_bound(z, bias, k)
        c = _admit(z, bias, bound if bound > -np.inf else -np.inf, cv, ci)
    if c < k:
        c = _admit(z, bias, -np.inf, cv, ci)
    if c < k:  # fewer than k non-NaN entries
        for q in range(c):
            out_i[q] = ci[q]
            out_v[q] = cv[q]
        _fill_nan(z, bias, out_i, out_v, c)
        return np.nan, admitted_by_guess
    t, above = _kth_key(cv, c, k, keys)
    ties = k - above  # how many entries equal to the k-th are kept
    # compact the kept candidates to the front, in place (p <= q)
    p = 0
    tv = cv[0]
    for q in range(c):
        key = keys[q]
        tie = key == t
        if tie:
            tv = cv[q]
        keep = (key > t) | (tie & (ties > 0))
        ties -= tie
        cv[p] = cv[q]
        ci[p] = ci[q]
        p += keep
    for q in range(k):
        out_i[q] = ci[q]
        out_v[q] = cv[q]
    return tv, admitted_by_guess


@njit(cache=True, inline="always")
def _next_guess(tv, n_candidates, k, slack):
    """Adapt the admission threshold for the next row of a block (rows of one batch
    have similar k-th values): aim at 1.3 k to 2 k candidates.  Returns the next
    guess and slack."""
    if n_candidates < k:  # no guess yet, or it admitted too few: widen
        slack = max(2.0 * slack, 0.25 * abs(tv) + 1e-30)
    elif n_candidates > 2 * k:
        slack *= 0.7
    elif n_candidates < 1.3 * k:
        slack *= 1.3
    guess = tv - slack
    if not guess > -np.inf:  # NaN or -inf threshold: go the robust way next time
        guess = -np.inf
    return guess, slack


@njit(cache=True)
def _selection_buffers(m, k, like):
    """Scratch space for :func:`_topk_row` on rows of length m (dtype of ``like``):
    the candidates' keys, values and columns, and a (k,) output."""
    return (np.empty(m, dtype=np.int64), np.empty(m, dtype=like.dtype),
            np.empty(m, dtype=np.int64), np.empty(k, dtype=np.int64),
            np.empty(k, dtype=like.dtype))


@njit(cache=True, inline="always")
def _row_blocks(n):
    """How many blocks of rows a top-k kernel spreads over the threads: at least 64
    rows each (every block allocates its scratch space and starts without a guess),
    at most 16 blocks.  Results never depend on it."""
    return max(1, min(16, n // 64))


@njit(cache=True)
def _topk_block(Z, bias, k, activation, lo, hi, idx, vals):
    """:func:`_topk_row` for rows lo:hi, the guess carried from row to row."""
    keys, cv, ci, _, _ = _selection_buffers(Z.shape[1], k, Z)
    one = vals.dtype.type(1)
    guess, slack = -np.inf, 0.0
    for i in range(lo, hi):
        tv, n_cand = _topk_row(Z[i], bias, k, guess, keys, cv, ci, idx[i], vals[i])
        guess, slack = _next_guess(tv, n_cand, k, slack)
        if activation != LINEAR:
            for p in range(k):
                vals[i, p] = _activate(vals[i, p], activation, one)


@parallel_kernel()
def topk_rows(Z, bias, k, activation, idx, vals):
    """Per row of ``Z + bias`` keep the k largest entries.

    Writes their column indices, in increasing order, to ``idx`` (n, k) and the
    activated values to ``vals`` (n, k).  Ties are broken by the lower column index,
    so the result is deterministic.
    """
    n = Z.shape[0]
    n_blocks = _row_blocks(n)
    for blk in prange(n_blocks):
        _topk_block(Z, bias, k, activation, blk * n // n_blocks, (blk + 1) * n // n_blocks,
                    idx, vals)


@njit(cache=True)
def _topk_dense_rows(Z, bias, k, activation, lo, hi, keys, cv, ci, out_i, out_v):
    """Rows lo:hi of Z become their activated top-k of ``Z + bias``, zeros elsewhere."""
    guess, slack = -np.inf, 0.0
    for i in range(lo, hi):
        z = Z[i]
        tv, n_cand = _topk_row(z, bias, k, guess, keys, cv, ci, out_i, out_v)
        guess, slack = _next_guess(tv, n_cand, k, slack)
        z[:] = 0
        for p in range(k):
            z[out_i[p]] = _activate(out_v[p], activation, Z.dtype.type(1))


@parallel_kernel()
def topk_dense_inplace(Z, bias, k, activation):
    """Replace each row of ``Z`` by its activated top-k of ``Z + bias``, zeros elsewhere."""
    n, m = Z.shape
    n_blocks = _row_blocks(n)
    for blk in prange(n_blocks):
        buffers = _selection_buffers(m, k, Z)
        _topk_dense_rows(Z, bias, k, activation, blk * n // n_blocks,
                         (blk + 1) * n // n_blocks, *buffers)


@parallel_kernel()
def encode_topk_dense(X, W, bias, k, activation, H, chunk):
    """``H`` = the activated top-k of ``X @ W.T + bias`` per row, zeros elsewhere.

    Chunks of ``chunk`` rows are spread over Numba's threads; each is one
    single-threaded BLAS product followed by the selection while the chunk is still
    in cache (use inside :data:`single_threaded_blas`), so the dense pre-activations
    never make a second trip through memory.
    """
    n, m = H.shape
    n_chunks = (n + chunk - 1) // chunk
    for ch in prange(n_chunks):
        lo = ch * chunk
        hi = min(n, lo + chunk)
        # flags and bound as run-time values, not literals: gemm's specialisation
        _gemm_block(X, np.bool_(False), W, np.bool_(True), H, 0.0, lo, hi, np.int64(0), m)
        buffers = _selection_buffers(m, k, H)
        _topk_dense_rows(H, bias, k, activation, lo, hi, *buffers)


@parallel_kernel()
def gather_rows(X, rows, shift, out):
    """``out[p] = X[rows[p]] - shift``: a shuffled (and centred) mini-batch copied on
    Numba's threads."""
    d = X.shape[1]
    for p in prange(rows.shape[0]):
        src = X[rows[p]]
        dst = out[p]
        for f in range(d):
            dst[f] = src[f] - shift[f]


@parallel_kernel()
def bias_activate(Z, bias, activation):
    """``Z = act(Z + bias)`` in place, on Numba's threads.  The sigmoid is
    ``1 / (1 + exp(-v))``; in float32 through :func:`_exp32` (the loop vectorises;
    within a few ulp of ``scipy.special.expit``, and 0 where that would be subnormal,
    below v = -87), in float64 through the C library's ``exp`` (``expit``'s bits).
    ReLU keeps NaN, as ``np.maximum`` does."""
    zero, one = Z.dtype.type(0), Z.dtype.type(1)
    for i in prange(Z.shape[0]):
        z = Z[i]
        if activation == SIGMOID and Z.itemsize == 4:
            for f in range(z.shape[0]):
                z[f] = _flush32(one / (one + _exp32(-(z[f] + bias[f]))))
        elif activation == SIGMOID:
            for f in range(z.shape[0]):
                z[f] = one / (one + np.exp(-(z[f] + bias[f])))
        elif activation == RELU:
            for f in range(z.shape[0]):
                v = z[f] + bias[f]
                z[f] = zero if v <= zero else v
        else:
            for f in range(z.shape[0]):
                z[f] += bias[f]


@parallel_kernel()
def mul_activation_grad(G, H, activation):
    """``G *= act'(pre-activation)`` in place, the derivative written with the
    activation's values H: ``H (1 - H)`` for the sigmoid, ``H > 0`` for ReLU (each
    product rounded as NumPy's ``G *= H * (1 - H)`` rounds it)."""
    zero, one = G.dtype.type(0), G.dtype.type(1)
    for i in prange(G.shape[0]):
        g = G[i]
        h = H[i]
        if activation == SIGMOID:
            for f in range(g.shape[0]):
                g[f] *= h[f] * (one - h[f])
        elif activation == RELU:
            for f in range(g.shape[0]):
                g[f] *= one if h[f] > zero else zero


@njit(cache=True)
def column_sums(A, out, nonzero=False):
    """``out[f] = sum_i A[i, f]`` (with ``nonzero``: the number of nonzero entries of
    column f): each of a fixed number of row blocks sums its rows, then the blocks'
    sums are added in order.  Serial: on a mini-batch (one block per 128 rows, so
    one block at the usual batch sizes) threads gain nothing measurable."""
    n, d = A.shape
    n_blocks = max(1, min(8, n // 128))
    partial = np.zeros((n_blocks, d), dtype=out.dtype)
    for blk in range(n_blocks):
        acc = partial[blk]
        for i in range(blk * n // n_blocks, (blk + 1) * n // n_blocks):
            row = A[i]
            if nonzero:
                for f in range(d):
                    acc[f] += row[f] != 0
            else:
                for f in range(d):
                    acc[f] += row[f]
    # explicit loops: an array expression here compiles NumPy's broadcasting and its
    # error messages (string formatting, about 2 s of a fresh install's first run)
    for f in range(d):
        out[f] = partial[0, f]
    for blk in range(1, n_blocks):
        for f in range(d):
            out[f] += partial[blk, f]


@njit(cache=True)
def units_index(idx, n_units):
    """Group the kept entries by unit (a CSC view of the code): for unit u, the flat
    positions ``i * k + j`` of its entries are ``pos[indptr[u]:indptr[u + 1]]``, in
    increasing row order.  Entries with a negative index are padding (rows of a
    batch-level top-k code keep different numbers of units) and are left out."""
    n, k = idx.shape
    indptr = np.zeros(n_units + 1, dtype=np.int64)
    for i in range(n):
        for j in range(k):
            if idx[i, j] >= 0:
                indptr[idx[i, j] + 1] += 1
    for u in range(n_units):
        indptr[u + 1] += indptr[u]
    cursor = indptr[:-1].copy()
    pos = np.empty(indptr[n_units], dtype=np.int64)
    for i in range(n):
        for j in range(k):
            u = idx[i, j]
            if u >= 0:
                pos[cursor[u]] = i * k + j
                cursor[u] += 1
    return indptr, pos


# Optimizer codes shared with the Python side.
SGD, ADAM = 1, 2
# The smallest normal float32 and float64.
_TINY32 = float(np.finfo(np.float32).tiny)
_TINY64 = float(np.finfo(np.float64).tiny)


def _optimizer_step(solver, w, s1, s2, g, rate, beta1, beta2, epsilon, l2=0.0):
    """One optimizer step on a 1-D slice, computed in the slice's precision.

    SGD with momentum: ``s1`` is the velocity, ``rate`` the learning rate and
    ``beta1`` the momentum.  Adam: ``s1, s2`` are the moment estimates and ``rate``
    the step size with the bias corrections folded in.  ``l2`` adds ``l2 * w`` to
    the gradient (an L2 penalty's), read before the step.
    """
    # the float64 settings would otherwise promote every float32 operation
    real = w.dtype.type
    rate, beta1, beta2, epsilon = real(rate), real(beta1), real(beta2), real(epsilon)
    l2 = real(l2)
    zero, one = real(0), real(1)
    # The state of a unit that gets no gradient decays geometrically and reaches the
    # subnormal range after about a thousand steps, where every operation on it takes
    # a slow microcode path (an epoch ran 1.5x slower): flush it to zero instead.
    # NaN compares false and is kept.
    tiny = real(_TINY32) if w.itemsize == 4 else real(_TINY64)
    # For the same reason a gradient entry whose (1 - beta2)-weighted square would be
    # subnormal is taken as zero (with an L2 penalty, the gradient of a weight that no
    # sample reaches is l2 * w, and such weights decay to tiny values: an Adam step
    # over them ran 7x slower).  Its step would be below rate * small / epsilon anyway.
    small = np.sqrt(tiny / (one - beta2)) if solver == ADAM else zero
    if solver == SGD:
        for i in range(w.shape[0]):
            vi = beta1 * s1[i] - rate * (g[i] + l2 * w[i])
            vi = zero if abs(vi) < tiny else vi
            s1[i] = vi
            w[i] += vi
    elif solver == ADAM:
        for i in range(w.shape[0]):
            gi = g[i] + l2 * w[i]
            gi = zero if abs(gi) < small else gi
            mi = beta1 * s1[i] + (one - beta1) * gi
            vi = beta2 * s2[i] + (one - beta2) * gi * gi
            mi = zero if abs(mi) < tiny else mi
            vi = zero if vi < tiny else vi
            s1[i] = mi
            s2[i] = vi
            w[i] -= rate * mi / (np.sqrt(vi) + epsilon)


# Compiled on their own once for each set of liberties of their callers (with which
# they were inlined into them before): the weights' step fused into unit_backward
# (re-association, fused multiply-adds) and the plain one of optimizer_update; both
# with the error model of a parallel loop's body.
_update_block = _compiled_copy(_optimizer_step, "_plain", error_model="numpy")
_update_block_fused = _compiled_copy(_optimizer_step, "_fused", error_model="numpy",
                                     fastmath={"reassoc", "contract"})


@njit(cache=True, fastmath={"reassoc"})
def _sum_squares(w):
    """``sum(w ** 2)`` of a 1-D slice, in its precision (vectorised: the only liberty
    is the order of the sum)."""
    s = w.dtype.type(0)
    for i in range(w.shape[0]):
        s += w[i] * w[i]
    return s


@parallel_kernel()
def optimizer_update(solver, w, s1, s2, g, rate, beta1, beta2, epsilon, l2):
    """:func:`_update_block` over flat arrays, in parallel blocks.

    With an L2 penalty (``l2`` nonzero) returns ``sum(w ** 2)`` of the weights
    before the step (the penalty's part of the loss), summed block by block while
    each block is in cache and the blocks' sums added in order (the same for any
    thread count), so the loss costs no pass of its own over the weights; else 0."""
    n = w.shape[0]
    n_blocks = max(1, min(64, n // 4096))
    squares = np.zeros(n_blocks)
    for blk in prange(n_blocks):
        lo = blk * n // n_blocks
        hi = (blk + 1) * n // n_blocks
        if l2 != 0:
            squares[blk] = _sum_squares(w[lo:hi])
        _update_block(solver, w[lo:hi], s1[lo:hi], s2[lo:hi], g[lo:hi], rate, beta1, beta2,
                      epsilon, l2)
    total = 0.0
    for blk in range(n_blocks):
        total += squares[blk]
    return total


@njit(cache=True, inline="always")
def _add4(o, a0, r0, a1, r1, a2, r2, a3, r3):
    """``o += a0 r0``, then ``+= a1 r1``, ``+= a2 r2``, ``+= a3 r3``: four scaled rows
    added in one pass over ``o`` (one load and store of ``o`` per four products
    instead of per product), in the same order as four passes, so the same bits."""
    for f in range(o.shape[0]):
        o[f] = (((o[f] + a0 * r0[f]) + a1 * r1[f]) + a2 * r2[f]) + a3 * r3[f]


@njit(cache=True, inline="always")
def _next_nonzero(v, j):
    """The first position at or after j where ``v`` is nonzero (``len(v)`` if none)."""
    while j < v.shape[0] and v[j] == 0:
        j += 1
    return j


@njit(cache=True, fastmath={"reassoc", "contract"})
def _add_rows(o, idx_row, vals_row, B):
    """``o += sum_j vals_row[j] B[idx_row[j]]`` over the nonzero entries, in order,
    four rows per pass over ``o`` (:func:`_add4`)."""
    k = idx_row.shape[0]
    j0 = _next_nonzero(vals_row, 0)
    while j0 < k:
        j1 = _next_nonzero(vals_row, j0 + 1)
        j2 = _next_nonzero(vals_row, j1 + 1) if j1 < k else k
        j3 = _next_nonzero(vals_row, j2 + 1) if j2 < k else k
        if j3 == k:  # fewer than four left: one pass each
            j = j0
            while j < k:
                a = vals_row[j]
                r = B[idx_row[j]]
                for f in range(o.shape[0]):
                    o[f] += a * r[f]
                j = _next_nonzero(vals_row, j + 1)
            return
        _add4(o, vals_row[j0], B[idx_row[j0]], vals_row[j1], B[idx_row[j1]],
              vals_row[j2], B[idx_row[j2]], vals_row[j3], B[idx_row[j3]])
        j0 = _next_nonzero(vals_row, j3 + 1)


@parallel_kernel(fastmath={"reassoc", "contract"})
def unit_backward(indptr, pos, k, vals, G, X, D, activation, tied, gW, gD, gb, counts,
                  solver, W, sW1, sW2, sD1, sD2, rate, beta1, beta2, epsilon):
    """Code gradient, weight gradients and (with ``solver``) the optimizer step of the
    weights over the sparse code, one hidden unit per iteration; O(n k d).

    For each entry (i, j) that selected unit u (value ``a = vals[i, j]``), the code
    gradient is ``dz = (G[i] . D[u]) * act'(a)``; then ``gW[u] = sum dz * X[i]``,
    ``gb[u] = sum dz`` and the decoder's ``gD[u] = sum a * G[i]`` (with ``tied`` it
    adds to ``gW`` and ``gD`` is not touched).  ``counts[u]`` is the number of
    nonzero entries.  Units that no sample selected get zero rows.

    Every quantity for unit u reads only row u of the weights, and ``G`` was computed
    from the weights before this call, so the optimizer step of row u
    (:func:`_update_block`; ``solver`` 0 means no step) can follow at once, while the
    row is in cache; the gradient rows then stay in a per-thread scratch row and
    ``gW, gD`` are not written.  ``W, sW1, sW2`` are the encoder weights and their
    optimizer state; ``D, sD1, sD2`` the decoder's (ignored when tied).  Only
    re-association and fused multiply-adds are allowed to the compiler, to vectorise
    the dot products.
    """
    n_units = gW.shape[0]
    d = gW.shape[1]
    zero = gW.dtype.type(0)
    one = gW.dtype.type(1)
    n_blocks = min(n_units, 16)
    for blk in prange(n_blocks):
        scratch = np.empty((2, d), dtype=gW.dtype)
        for u in range(blk * n_units // n_blocks, (blk + 1) * n_units // n_blocks):
            w = scratch[0] if solver != 0 else gW[u]
            dd = scratch[1] if solver != 0 else gD[u]
            du = D[u]
            for f in range(d):
                w[f] = 0
            if not tied:
                for f in range(d):
                    dd[f] = 0
            s = 0.0
            active = 0
            for e in range(indptr[u], indptr[u + 1]):
                p = pos[e]
                i = p // k
                a = vals[i, p - i * k]
                r = G[i]
                # everything in the data's precision: a float64 constant here would
                # promote the sums and halve their speed
                g = zero
                for f in range(d):
                    g += r[f] * du[f]
                if activation == RELU:
                    if a <= zero:
                        g = zero
                elif activation == SIGMOID:
                    g *= a * (one - a)
                s += g
                active += a != 0
                x = X[i]
                if tied:
                    for f in range(d):
                        w[f] += g * x[f] + a * r[f]
                else:
                    for f in range(d):
                        w[f] += g * x[f]
                    for f in range(d):
                        dd[f] += a * r[f]
            gb[u] = s
            counts[u] = active
            if solver != 0:
                _update_block_fused(solver, W[u], sW1[u], sW2[u], w, rate, beta1, beta2,
                                    epsilon, 0.0)
                if not tied:
                    _update_block_fused(solver, D[u], sD1[u], sD2[u], dd, rate, beta1,
                                        beta2, epsilon, 0.0)


# Compiled on its own, with its callers' liberties and the error model of a parallel
# loop's body (without it a division's zero check keeps the loops from vectorising),
# rather than inlined into them: its vectorised loss sum then has one form in the
# parallel and the serial kernels.
@njit(cache=True, fastmath={"reassoc", "contract"}, error_model="numpy")
def _residual_row(o, x, activation, cross_entropy, scale):
    """Apply the output activation to the row ``o`` in place, then overwrite it with
    the gradient of the row's loss times ``scale`` with respect to the output
    pre-activation; return the row's loss.

    For a linear output with squared error (loss 0.5 * (o - x)**2) and a sigmoid
    output with cross-entropy the gradient is ``o - x`` in both cases.  Computed in
    the row's precision (the callers sum the rows' losses in float64).
    """
    real = o.dtype.type
    zero, half, one, scale = real(0), real(0.5), real(1), real(scale)
    s = zero
    # one loop per case, so that each vectorises
    if cross_entropy and o.itemsize == 4:
        # float32: one exp(-|a|) gives both the sigmoid and the loss's log1p term,
        # through the vectorisable _exp32 and _log1p_unit32
        for f in range(o.shape[0]):
            a = o[f]
            t = x[f]
            e = _exp32(-abs(a))
            # log-sum-exp form of -t*log(sig(a)) - (1-t)*log(1-sig(a)), stable for any a
            s += max(a, zero) - a * t + _log1p_unit32(e)
            # sig(a) = 1 / (1 + e) for a >= 0 and e / (1 + e) below, both exact in
            # relative terms; a sigmoid near 0 times a small scale would be subnormal
            o[f] = _flush32(((one if a >= zero else e) / (one + e) - t) * scale)
    elif cross_entropy:
        for f in range(o.shape[0]):
            a = o[f]
            t = x[f]
            s += max(a, zero) - a * t + np.log1p(np.exp(-abs(a)))
            o[f] = (_activate(a, activation, one) - t) * scale
    elif activation == LINEAR:
        for f in range(o.shape[0]):
            r = o[f] - x[f]
            s += half * r * r
            o[f] = r * scale
    else:
        for f in range(o.shape[0]):
            r = _activate(o[f], activation, one) - x[f]
            s += half * r * r
            o[f] = r * scale
    return s


@parallel_kernel(fastmath={"reassoc", "contract"})
def output_residual(out, X, activation, cross_entropy, scale):
    """:func:`_residual_row` for every row of a dense decoder output; returns the
    summed loss.  Re-association (of each row's loss sum, so that it vectorises) and
    fused multiply-adds are the only liberties allowed: NaN and inf keep their
    meaning."""
    n = out.shape[0]
    total = np.zeros(n)
    for i in prange(n):
        total[i] = _residual_row(out[i], X[i], activation, cross_entropy, scale)
    return _sum_in_order(total)


@njit(cache=True, fastmath={"reassoc", "contract"})
def _decode_residual_row(idx_row, vals_row, D, c, x, out_activation, cross_entropy, scale,
                         o):
    """Decoder and loss of one top-k code; O(k d).  Returns the row's loss.

    ``o = out'(c + sum_j vals_row[j] D[idx_row[j]]) - x`` (times ``scale``): the
    gradient with respect to the decoder's pre-activation.  Only re-association and
    fused multiply-adds are allowed to the compiler (to vectorise the sums); NaN and
    inf keep their meaning, so a diverging run is still caught by its loss.
    """
    d = D.shape[1]
    for f in range(d):
        o[f] = c[f]
    _add_rows(o, idx_row, vals_row, D)
    return _residual_row(o, x, out_activation, cross_entropy, scale)


@parallel_kernel()
def topk_decode_residual(Z, bias, k, activation, idx, vals, D, c, X, out_activation,
                         cross_entropy, scale, G):
    """The forward pass of a top-k batch after the encoder product, block by block of
    rows while they are in cache: :func:`topk_rows` into ``idx, vals``, then
    :func:`_decode_residual_row` into ``G``.  Returns the summed loss."""
    n = Z.shape[0]
    n_blocks = _row_blocks(n)
    total = np.zeros(n)
    for blk in prange(n_blocks):
        lo = blk * n // n_blocks
        hi = (blk + 1) * n // n_blocks
        _topk_block(Z, bias, k, activation, lo, hi, idx, vals)
        for i in range(lo, hi):
            total[i] = _decode_residual_row(idx[i], vals[i], D, c, X[i], out_activation,
                                            cross_entropy, scale, G[i])
    return _sum_in_order(total)


@parallel_kernel()
def code_decode_residual(idx, vals, D, c, X, out_activation, cross_entropy, scale, G):
    """:func:`_decode_residual_row` for every row of a compact code chosen elsewhere
    (a batch-level top-k; padding entries have the value 0 and are skipped) into
    ``G``.  Returns the summed loss."""
    n = idx.shape[0]
    n_blocks = _row_blocks(n)
    total = np.zeros(n)
    for blk in prange(n_blocks):
        for i in range(blk * n // n_blocks, (blk + 1) * n // n_blocks):
            total[i] = _decode_residual_row(idx[i], vals[i], D, c, X[i], out_activation,
                                            cross_entropy, scale, G[i])
    return _sum_in_order(total)


@parallel_kernel()
def remove_radial(G, A):
    """``G[i] -= (G[i] . A[i]) A[i]`` in place, row by row in parallel (rows of A of
    unit norm): the part of a gradient that would change the rows' norms.  The dot
    products are summed in float64."""
    for i in prange(G.shape[0]):
        g = G[i]
        a = A[i]
        s = 0.0
        for f in range(g.shape[0]):
            s += np.float64(g[f]) * np.float64(a[f])
        t = g.dtype.type(s)
        for f in range(g.shape[0]):
            g[f] -= t * a[f]


@parallel_kernel()
def normalize_rows(A):
    """Scale each row of A to unit Euclidean norm in place (a zero row stays zero),
    row by row in parallel; the norms are summed in float64."""
    for i in prange(A.shape[0]):
        a = A[i]
        s = 0.0
        for f in range(a.shape[0]):
            s += np.float64(a[f]) * np.float64(a[f])
        if s > 0:
            norm = a.dtype.type(np.sqrt(s))
            for f in range(a.shape[0]):
                a[f] /= norm


# ----------------------------------------------------------------------------
# Random masks (dropout, masking noise)


@njit(cache=True, inline="always")
def _mix64(z):
    """SplitMix64's output function: a bijective hash of a 64-bit counter whose
    outputs pass statistical tests as a random stream (Steele et al., 2014)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@parallel_kernel()
def bernoulli_mask(seed, keep, scale, out):
    """Fill ``out`` (2-D) with ``scale`` where a uniform draw is below ``keep`` (at a
    resolution of 2**-24) and 0 elsewhere.  Entry (i, j) is a hash of ``seed`` and
    its position, so the mask is the same for any number of threads, and a new
    ``seed`` per call gives independent masks."""
    n, m = out.shape
    threshold = np.uint64(min(max(keep, 0.0), 1.0) * 16777216.0)
    value = out.dtype.type(scale)
    zero = out.dtype.type(0)
    base = _mix64(np.uint64(seed)) + np.uint64(0x9E3779B97F4A7C15)
    step = np.uint64(0x9E3779B97F4A7C15)
    for i in prange(n):
        row = out[i]
        start = base + np.uint64(i) * np.uint64(m) * step
        for j in range(m):
            z = _mix64(start + np.uint64(j) * step)
            row[j] = value if (z >> np.uint64(40)) < threshold else zero


# ----------------------------------------------------------------------------
# A stack of layers with a softmax output (the fine-tuning classifier)


@parallel_kernel()
def topk_rows_dense(Z, bias, k, activation, idx, vals):
    """:func:`topk_rows` into ``idx, vals``, and ``Z`` overwritten, row by row while
    it is in cache, by the dense activated code (zeros off the top k): the forward
    pass of a top-k layer that feeds another layer."""
    n = Z.shape[0]
    n_blocks = _row_blocks(n)
    for blk in prange(n_blocks):
        lo = blk * n // n_blocks
        hi = (blk + 1) * n // n_blocks
        _topk_block(Z, bias, k, activation, lo, hi, idx, vals)
        for i in range(lo, hi):
            z = Z[i]
            z[:] = 0
            for p in range(k):
                z[idx[i, p]] = vals[i, p]


@parallel_kernel()
def softmax_residual(out, Y, scale):
    """Softmax cross-entropy of each row of the logits ``out`` against the rows of
    ``Y`` (one-hot, or any distribution over the classes); ``out`` is overwritten by
    ``(softmax(out) - Y) * scale``, the gradient with respect to the logits.  Returns
    the summed loss, computed in float64 with the log-sum-exp shift."""
    n, n_classes = out.shape
    total = np.zeros(n)
    for i in prange(n):
        o = out[i]
        y = Y[i]
        mx = -np.inf
        for j in range(n_classes):
            mx = max(mx, np.float64(o[j]))
        s = 0.0
        for j in range(n_classes):
            s += np.exp(np.float64(o[j]) - mx)
        lse = mx + np.log(s)
        loss = 0.0
        for j in range(n_classes):
            v = np.float64(o[j]) - lse
            loss -= y[j] * v
            o[j] = (np.exp(v) - y[j]) * scale
        total[i] = loss
    return _sum_in_order(total)


@njit(cache=True, inline="always")
def _grad_entry(pos, e, k, vals, dH, u, activation, dz, zero, one):
    """Entry e of unit u's list (:func:`topk_unit_grads`): writes its pre-activation
    gradient to ``dz`` and returns it with the entry's row."""
    p = pos[e]
    i = p // k
    j = p - i * k
    a = vals[i, j]
    g = dH[i, u]
    if activation == RELU:
        if a <= zero:
            g = zero
    elif activation == SIGMOID:
        g *= a * (one - a)
    dz[i, j] = g
    return g, i


@njit(cache=True, fastmath={"reassoc", "contract"})
def _topk_unit_grads_rows(indptr, pos, k, vals, dH, X, activation, gW, gb, dz, lo, hi):
    """:func:`topk_unit_grads` for units lo:hi: four entries per pass over the
    gradient row (:func:`_add4`), then the rest one by one."""
    d = gW.shape[1]
    zero = gW.dtype.type(0)
    one = gW.dtype.type(1)
    for u in range(lo, hi):
        w = gW[u]
        for f in range(d):
            w[f] = 0
        s = zero
        e = indptr[u]
        end = indptr[u + 1]
        while e + 4 <= end:
            g0, i0 = _grad_entry(pos, e, k, vals, dH, u, activation, dz, zero, one)
            g1, i1 = _grad_entry(pos, e + 1, k, vals, dH, u, activation, dz, zero, one)
            g2, i2 = _grad_entry(pos, e + 2, k, vals, dH, u, activation, dz, zero, one)
            g3, i3 = _grad_entry(pos, e + 3, k, vals, dH, u, activation, dz, zero, one)
            s += g0
            s += g1
            s += g2
            s += g3
            _add4(w, g0, X[i0], g1, X[i1], g2, X[i2], g3, X[i3])
            e += 4
        while e < end:
            g, i = _grad_entry(pos, e, k, vals, dH, u, activation, dz, zero, one)
            s += g
            x = X[i]
            for f in range(d):
                w[f] += g * x[f]
            e += 1
        gb[u] = s


@parallel_kernel()
def topk_unit_grads(indptr, pos, k, vals, dH, X, activation, gW, gb, dz):
    """Backward pass of a top-k layer over its kept entries, one hidden unit per
    iteration; O(n k d).

    ``dH`` (n, n_units) is the gradient of the loss with respect to the layer's
    output; for each entry (i, j) that selected unit u (value ``a = vals[i, j]``) the
    pre-activation gradient is ``g = dH[i, u] * act'(a)``, written to ``dz[i, j]``;
    then ``gW[u] = sum g * X[i]`` and ``gb[u] = sum g``.  Units no sample selected get
    zero rows.  ``indptr, pos`` come from :func:`units_index`.

    Unlike :func:`unit_backward` the optimizer step is not fused in: an Adam step per
    row inside the loop ran several times slower than the same step over the flat
    array, and one per block of rows was no faster than :func:`optimizer_update`
    after the kernel (the step is bound by memory bandwidth either way).
    """
    n_units = gW.shape[0]
    n_blocks = min(n_units, 16)
    for blk in prange(n_blocks):
        _topk_unit_grads_rows(indptr, pos, k, vals, dH, X, activation, gW, gb, dz,
                              blk * n_units // n_blocks, (blk + 1) * n_units // n_blocks)


@parallel_kernel(fastmath={"reassoc", "contract"})
def compact_matmul(idx, vals, B, out):
    """``out = H @ B`` for a compact code H (row i holds ``vals[i, j]`` in column
    ``idx[i, j]``): each output row sums k rows of B; O(n k d)."""
    n, k = idx.shape
    d = B.shape[1]
    for i in prange(n):
        o = out[i]
        for f in range(d):
            o[f] = 0
        _add_rows(o, idx[i], vals[i], B)
