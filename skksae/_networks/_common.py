"""What both networks use: initial weights, activations, masks, scratch buffers.

Parameters are plain dicts of NumPy arrays, so the estimators that hold them pickle
cleanly and load with ``skops.io`` using only trusted types.
"""

import numpy as np
import scipy.sparse as sp

from .. import _kernels as K


def init_params(rng, n_components, n_features, dtype, tied, init_std, unit_norm=False):
    """Initial parameters of an autoencoder: Gaussian encoder weights (std
    ``init_std``, or rows of unit norm with ``unit_norm``), zero biases.

    An untied decoder starts as a copy of the encoder weights (the encoder is the
    decoder's transpose, in the papers' layout)."""
    W = (rng.standard_normal((n_components, n_features)) * init_std).astype(dtype)
    if unit_norm:
        with K.work(W.size):
            normalize_rows(W)
    params = {
        "W": W,
        "b": np.zeros(n_components, dtype=dtype),
        "c": np.zeros(n_features, dtype=dtype),
    }
    if not tied:
        params["D"] = W.copy()
    return params


def glorot_uniform(rng, fan_out, fan_in, activation, dtype):
    """Glorot-uniform weights and biases of a layer, as MLPClassifier draws them
    (a narrower range, by sqrt(3), for sigmoid units)."""
    factor = 2.0 if activation == "sigmoid" else 6.0
    bound = np.sqrt(factor / (fan_in + fan_out))
    W = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(dtype)
    b = rng.uniform(-bound, bound, fan_out).astype(dtype)
    return W, b


def copy_state(d):
    """A copy of a dict of arrays (parameters or optimizer state)."""
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def n_weights(params):
    """How many weights (entries of the parameter matrices) a model has."""
    return sum(p.size for p in params.values() if p.ndim == 2)


def normalize_rows(A):
    """Scale each row of A (C-contiguous) to unit Euclidean norm, in place (a zero row
    stays zero)."""
    K.call(K.normalize_rows, A)
    return A


def remove_radial(G, A):
    """``G[i] -= (G[i] . A[i]) A[i]`` in place for rows A[i] of unit norm: the part of
    the gradient that would change the rows' norms."""
    K.call(K.remove_radial, G, A)
    return G


def bernoulli_mask(out, keep, scale, rng):
    """``out`` filled with ``scale`` with probability ``keep``, else 0 (the dropout
    and masking-noise masks): one seed drawn from ``rng`` per mask, the entries from
    :func:`_kernels.bernoulli_mask`, the same for any thread count."""
    seed = rng.randint(np.iinfo(np.int64).max, dtype=np.int64)
    K.call(K.bernoulli_mask, seed, keep, scale, out)
    return out


def dropout_mask(out, rate, rng):
    """Inverted dropout's mask into ``out``: each unit kept with probability
    1 - rate, and scaled by 1 / (1 - rate) when kept.  ``rng`` None (a loss
    evaluated outside an epoch) draws from a fixed seed: the same mask on every
    call."""
    keep = 1.0 - rate
    return bernoulli_mask(out, keep, 1.0 / keep, np.random.RandomState(0) if rng is None else rng)


def activate_dense(H, activation, bias=None):
    """``H = act(H + bias)`` in place (a dense, C-contiguous array)."""
    if activation == K.LINEAR and bias is None:
        return H
    if bias is None:
        bias = np.zeros(H.shape[1], dtype=H.dtype)
    K.call(K.bias_activate, H, bias, activation)
    return H


def mul_activation_grad(G, H, activation):
    """``G *= act'(pre-activation)`` in place, from the activation's values H."""
    if activation != K.LINEAR:
        K.call(K.mul_activation_grad, G, H, activation)
    return G


def activation_grad_dense(H, activation):
    """act'(pre-activation) written in terms of the activation value H (None for a
    linear unit)."""
    if activation == K.RELU:
        return (H > 0).astype(H.dtype)
    if activation == K.SIGMOID:
        return H * (1 - H)
    return None


def encoder_product(X, W, out):
    """``X @ W.T`` into the leading rows of ``out``; X dense or sparse."""
    out = out[: X.shape[0]]
    if sp.issparse(X):
        out[:] = (X @ W.T).astype(W.dtype, copy=False)
        return out
    return K.matmul(np.ascontiguousarray(X, dtype=W.dtype), False, W, True, out)


def buffer(buffers, name, shape, dtype):
    """A reusable scratch array: the leading rows of a buffer sized for the first batch."""
    buf = buffers.get(name)
    if buf is None or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0] or buf.dtype != dtype:
        buf = np.empty(shape, dtype=dtype)
        buffers[name] = buf
    return buf[: shape[0]]


class BatchRows:
    """The rows of X (dense or sparse) that make a batch, as a dense C-ordered array of
    ``dtype`` minus ``shift`` (None: nothing subtracted)."""

    def __init__(self, X, dtype, shift=None):
        self.X, self.dtype, self.shift = X, dtype, shift
        # rows of a C-ordered array of the parameters' dtype are gathered by a kernel
        self.direct = not sp.issparse(X) and X.dtype == dtype and X.flags.c_contiguous
        if self.direct and shift is None:
            self.shift = np.zeros(X.shape[1], dtype)

    def __call__(self, rows, buffers):
        X, dtype = self.X, self.dtype
        if self.direct:
            Xb = buffer(buffers, "X", (rows.shape[0], X.shape[1]), dtype)
            K.call(K.gather_rows, np.asarray(X), rows, self.shift, Xb)
            return Xb
        if sp.issparse(X):
            Xb = np.asarray(X[rows].toarray(), dtype=dtype, order="C")
        else:
            Xb = np.asarray(np.take(X, rows, axis=0), dtype=dtype, order="C")
        if self.shift is not None:
            Xb -= self.shift
        return Xb
