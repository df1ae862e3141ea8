"""Numba kernels for the hot paths of the networks, grouped by topic:

- :mod:`._threads`: which version of a kernel runs (:func:`call`, :func:`work`), the
  lock around parallel regions, BLAS limited to one thread;
- :mod:`._gemm`: matrix products by single-threaded BLAS on blocks of rows
  (:func:`matmul`);
- :mod:`._topk`: each row's top-k selection;
- :mod:`._sparse_code`: products and gradients over the compact (n, k) code;
- :mod:`._elementwise`: activations, residuals and losses, norms, random masks;
- :mod:`._optim`: the optimizer steps.

The networks hand the kernels arrays they allocated themselves (C-contiguous,
writable, float32 or float64), so most kernels compile one specialisation per
floating dtype; the encoder product also sees the caller's input, which may add a
read-only specialisation.  ``cache=True`` keeps them all on disk.

Every kernel that runs on Numba's threads is compiled from one source twice
(:class:`._threads._Kernel`): with ``parallel=True``, and serially.  Compiling the
parallel version costs several times more (Numba builds and optimises three wrappers
around each parallel loop, each holding the loop's whole code), which only pays on
data large enough to keep the threads busy; the two give the same bits, since every
kernel splits its work into blocks that do not depend on the thread count.  The
networks say how much work an operation holds (:func:`work`), and :func:`call` runs
the serial versions below :data:`PARALLEL_MIN_WORK`, so a first fit on a small data
set compiles only the cheap ones.

In a task of a Dask worker the kernels cap the calling thread's Numba threads at the
worker's thread count, so that workers sharing the cores do not oversubscribe them.

Numba's cache checks only the source file of the kernel it loads: a cached kernel
that calls a helper of another module here is not recompiled when only that helper's
file changes.  An installed release changes every file at once; while editing a
helper, clear the cache (the ``__pycache__`` folder beside these modules).
"""

from numba import get_num_threads

from ._elementwise import (
    ACTIVATIONS,
    LINEAR,
    RELU,
    SIGMOID,
    _exp32,
    _log1p_unit32,
    bernoulli_mask,
    bias_activate,
    column_sums,
    gather_rows,
    mul_activation_grad,
    normalize_rows,
    output_residual,
    remove_radial,
    softmax_residual,
)
from ._gemm import gemm, matmul
from ._optim import ADAM, SGD, optimizer_update
from ._sparse_code import (
    code_decode_residual,
    compact_matmul,
    topk_decode_residual,
    topk_unit_grads,
    unit_backward,
    units_index,
)
from ._threads import (
    PARALLEL_MIN_WORK,
    _serial,
    call,
    restore_blas_limit,
    set_blas_limit,
    single_threaded_blas,
    work,
)
from ._topk import encode_topk_dense, topk_dense_inplace, topk_rows, topk_rows_dense

__all__ = [
    "ACTIVATIONS", "ADAM", "LINEAR", "PARALLEL_MIN_WORK", "RELU", "SGD", "SIGMOID",
    "_exp32", "_log1p_unit32", "_serial", "bernoulli_mask", "bias_activate", "call",
    "code_decode_residual", "column_sums", "compact_matmul", "encode_topk_dense",
    "gather_rows", "gemm", "get_num_threads", "matmul", "mul_activation_grad",
    "normalize_rows", "optimizer_update", "output_residual", "remove_radial",
    "restore_blas_limit", "set_blas_limit", "single_threaded_blas", "softmax_residual",
    "topk_decode_residual", "topk_dense_inplace", "topk_rows", "topk_rows_dense",
    "topk_unit_grads", "unit_backward", "units_index", "work",
]
