"""The centre of the input: the column means, the geometric median, and moving a
fitted model to a new centre."""

import numpy as np
import scipy.sparse as sp


def _dense_chunks(X, chunk_size):
    """Chunks of rows of X (dense or sparse) as C-ordered dense arrays, so that every
    layout of the same data (CSR, CSC, Fortran, strided) is summed in the same order
    and gives the same bits."""
    for start in range(0, X.shape[0], chunk_size):
        chunk = X[start : start + chunk_size]
        yield np.ascontiguousarray(chunk.toarray() if sp.issparse(chunk) else chunk)


def column_means(X, chunk_size=4096):
    """The mean of each column of X (dense or sparse), summed in float64 over chunks
    of rows (:func:`_dense_chunks`)."""
    total = np.zeros(X.shape[1])
    for chunk in _dense_chunks(X, chunk_size):
        total += chunk.sum(axis=0, dtype=np.float64)
    return total / X.shape[0]


def geometric_median(X, max_iter=200, tol=1e-7, chunk_size=4096):
    """The geometric median of the rows of X (dense or sparse): the point that
    minimises the summed Euclidean distance to them, a robust centre (Gao et al.,
    2024, initialise the TopK autoencoder's decoder bias at it).

    Weiszfeld's iteration from the mean, in float64 over chunks of rows
    (:func:`_dense_chunks`: every layout of the same data gives the same bits); a
    row at distance below ``1e-12`` times the data's scale is weighted as if at that
    distance. Stops when a step moves the centre by less than ``tol`` times the
    data's scale (the root mean squared distance of the rows to the mean).

    Returns
    -------
    median : ndarray of shape (n_features,), float64
    converged : bool
    """
    def chunks():
        for chunk in _dense_chunks(X, chunk_size):
            yield chunk.astype(np.float64, copy=False)

    y = column_means(X, chunk_size)
    scale = np.sqrt(sum(((c - y) ** 2).sum() for c in chunks()) / max(X.shape[0], 1))
    if scale == 0.0:
        return y, True  # every row is the same point
    floor = 1e-12 * scale
    for _ in range(max_iter):
        num = np.zeros_like(y)
        den = 0.0
        for c in chunks():
            w = 1.0 / np.maximum(np.sqrt(((c - y) ** 2).sum(axis=1)), floor)
            num += (w[:, None] * c).sum(axis=0)  # not BLAS: the same bits for any layout
            den += w.sum()
        new = num / den
        step = np.sqrt(((new - y) ** 2).sum())
        y = new
        if step <= tol * scale:
            return y, True
    return y, False


def recentre(params, old_mean, new_mean, cross_entropy):
    """Move the model to a new input mean without changing what it computes: the
    encoder bias absorbs ``W (new - old)`` and a linear decoder's bias ``old - new``.
    Nothing changes when the means are equal."""
    if np.array_equal(old_mean, new_mean):
        return
    delta = np.asarray(new_mean, dtype=np.float64) - old_mean
    params["b"] += (params["W"] @ delta).astype(params["b"].dtype)
    if not cross_entropy:
        params["c"] -= delta.astype(params["c"].dtype)
