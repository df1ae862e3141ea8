"""Elementwise kernels: activations, bias and gradient products, column sums, the
output layers' residuals and losses, row norms, and the random masks."""

import numpy as np
from numba import njit, prange

from ._threads import parallel_kernel


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
    # error messages (string formatting: seconds of a fresh install's first run)
    for f in range(d):
        out[f] = partial[0, f]
    for blk in range(1, n_blocks):
        for f in range(d):
            out[f] += partial[blk, f]


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
