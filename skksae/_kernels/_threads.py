"""Threading and BLAS policy: which version of a kernel runs, on how many threads,
and BLAS limited to one thread inside the kernels.

Numba's default ``workqueue`` threading layer aborts the process when two Python
threads enter a parallel region at once, so the parallel kernels run under a
module-level lock (:func:`call`, :func:`lock`).
"""

import contextlib
import os
import sys
import threading
import types as pytypes

import threadpoolctl
from numba import get_num_threads, njit, set_num_threads
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


def lock():
    """The lock every parallel kernel runs under (a new one in a forked child)."""
    return _LOCK


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
