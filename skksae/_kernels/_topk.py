"""Top-k selection: each row's k largest activations, as a compact code (indices in
column order and values) or in place in a dense array."""

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ._elementwise import LINEAR, _activate
from ._gemm import _gemm_block
from ._threads import parallel_kernel


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
