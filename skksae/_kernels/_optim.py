"""Optimizer steps over flat arrays (SGD with momentum, Adam), in the parameters'
precision; :mod:`skksae._optim` holds the optimizers' state and settings."""

import numpy as np
from numba import njit, prange

from ._threads import _compiled_copy, parallel_kernel


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
    # a slow microcode path: flush it to zero instead.
    # NaN compares false and is kept.
    tiny = real(_TINY32) if w.itemsize == 4 else real(_TINY64)
    # For the same reason a gradient entry whose (1 - beta2)-weighted square would be
    # subnormal is taken as zero (with an L2 penalty, the gradient of a weight that no
    # sample reaches is l2 * w, and such weights decay to tiny values).  Its step
    # would be below rate * small / epsilon anyway.
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


# Compiled on their own once for each set of liberties of their callers (an inlined
# helper would be compiled again inside each caller): the weights' step fused into
# unit_backward
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
