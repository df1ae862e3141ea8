"""Products and gradients over a compact (n, k) code: the decoder and its residual,
the per-unit backward pass (with the weights' optimizer step fused in) and the
fine-tuning network's top-k layers."""

import numpy as np
from numba import njit, prange

from ._elementwise import RELU, SIGMOID, _residual_row, _sum_in_order
from ._optim import _update_block_fused
from ._threads import parallel_kernel
from ._topk import _row_blocks, _topk_block


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
def unit_backward(code, G, X, D, activation, tied, grads, counts, W, slots, step):
    """Code gradient, weight gradients and (with a step) the optimizer step of the
    weights over the sparse code, one hidden unit per iteration; O(n k d).

    Parameters: ``code = (indptr, pos, k, vals)``, the compact code (n, k) and its
    index by unit (:func:`units_index`); ``G`` (n, d), the gradient of the loss with
    respect to the decoder's output; ``X`` (n, d), the encoder's input; ``D`` (units,
    d), the decoder's weights (the encoder's when ``tied``); ``activation``, the
    hidden units' activation code; ``grads = (gW, gD, gb)``, the output gradients of
    the encoder weights, decoder weights and hidden biases; ``counts`` (units,), the
    output activity counts; ``W`` (units, d), the encoder weights; ``slots = (sW1,
    sW2, sD1, sD2)``, the optimizer state of W and D; ``step = (solver, rate, beta1,
    beta2, epsilon)``, the step (:class:`skksae._optim.Step`; solver 0: none).

    For each entry (i, j) that selected unit u (value ``a = vals[i, j]``), the code
    gradient is ``dz = (G[i] . D[u]) * act'(a)``; then ``gW[u] = sum dz * X[i]``,
    ``gb[u] = sum dz`` and the decoder's ``gD[u] = sum a * G[i]`` (with ``tied`` it
    adds to ``gW`` and ``gD`` is not touched).  ``counts[u]`` is the number of
    nonzero entries.  Units that no sample selected get zero rows.

    Every quantity for unit u reads only row u of the weights, and ``G`` was computed
    from the weights before this call, so the optimizer step of row u
    (:func:`_update_block_fused`) can follow at once, while the row is in cache; the
    gradient rows then stay in a per-thread scratch row and ``gW, gD`` are not
    written.  The decoder's weights and state are ignored when tied.  Only
    re-association and fused multiply-adds are allowed to the compiler, to vectorise
    the dot products.
    """
    indptr, pos, k, vals = code
    gW, gD, gb = grads
    sW1, sW2, sD1, sD2 = slots
    solver, rate, beta1, beta2, epsilon = step
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
    row inside this loop is several times slower than the same step over the flat
    array, and one per block of rows no faster than :func:`optimizer_update` after
    the kernel (the step is bound by memory bandwidth either way).
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
