"""The training engine shared by every autoencoder in skksae.

An autoencoder here is

    z      = (x - mu) W^T + b               (encoder pre-activation, dense BLAS product)
    h      = act(select_k(z))               (top-k selection when k is set, else all units)
    x_hat  = h D + c + mu  or  sigmoid(h D + c)   (decoder; D is W when tied)

trained by mini-batch SGD with momentum or Adam on the summed per-sample loss
(0.5 * squared error for a linear output, cross-entropy for a sigmoid output),
averaged over the batch.  ``mu`` is the input mean when the model centres its
input (else zero): training subtracts it from each mini-batch, and encoding and
decoding fold it into the biases (:meth:`Engine.inference_params`), so a sparse
input is never densified to be centred.  When k is set the decoder product and both
weight gradients run over the compact (n, k) code with the Numba kernels in
:mod:`skksae._kernels`; otherwise they are dense BLAS products.

Parameters and optimizer state are plain dicts of NumPy arrays, so the estimators
that hold them pickle cleanly and load with ``skops.io`` using only trusted types.
"""


import numpy as np
import scipy.sparse as sp

from . import _kernels as K


def init_params(rng, n_components, n_features, dtype, tied, init_std, unit_norm=False):
    """Initial parameters: Gaussian encoder weights (std ``init_std``, or rows of unit
    norm with ``unit_norm``), zero biases.

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


def optimizer_keys(param_names, solver):
    """Keys of the optimizer state: the step counter "t" and, per parameter, the
    velocity "v_<name>" (SGD) or the moments "m_<name>", "v_<name>" (Adam)."""
    slots = ("v",) if solver == "sgd" else ("m", "v")
    return ["t"] + [f"{slot}_{name}" for name in param_names for slot in slots]


def init_optimizer(params, solver):
    """Optimizer state: zero arrays shaped like the parameters, and t = 0."""
    state = {"t": 0}
    for key in optimizer_keys(params, solver)[1:]:
        state[key] = np.zeros_like(params[key.split("_", 1)[1]])
    return state


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


def copy_state(d):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def _activate_dense(H, activation, bias=None):
    """``H = act(H + bias)`` in place (a dense, C-contiguous array)."""
    if activation == K.LINEAR and bias is None:
        return H
    if bias is None:
        bias = np.zeros(H.shape[1], dtype=H.dtype)
    K.call(K.bias_activate, H, bias, activation)
    return H


def _mul_activation_grad(G, H, activation):
    """``G *= act'(pre-activation)`` in place, from the activation's values H."""
    if activation != K.LINEAR:
        K.call(K.mul_activation_grad, G, H, activation)
    return G


def _activation_grad_dense(H, activation):
    """act'(pre-activation) written in terms of the activation value H."""
    if activation == K.RELU:
        return (H > 0).astype(H.dtype)
    if activation == K.SIGMOID:
        return H * (1 - H)
    return None


class Engine:
    """One training configuration: the architecture and the optimizer's settings.

    The engine holds no learned state: ``params`` and the optimizer state are passed
    in and updated in place, so callers decide when a result becomes the estimator's.
    ``dropout`` drops each hidden unit with that probability in training (inverted
    dropout, dense hidden layers only: the top-k path ignores it, and
    :class:`~skksae.DenoisingAutoencoder` rejects the combination; masks drawn from the
    epoch's generator); encoding and scoring use every unit.

    ``aux_coef``, ``k_aux`` and ``dead_window`` add the auxiliary dead-unit loss of
    top-k autoencoders (AuxK, Gao et al. 2024) to the top-k path: a unit is dead when
    it has not been selected for ``dead_window`` training samples (counted by
    :meth:`run_epoch` in its ``since`` array); the ``k_aux`` largest dead units of
    each sample (at most as many as are dead) reconstruct the main reconstruction's
    residual ``e = x - x_hat``, taken as a constant, through the decoder without its
    bias, and ``aux_coef * 0.5 * ||e_hat - e||^2`` is added to the sample's loss.

    ``unit_norm`` keeps the decoder's rows (the tied weights' rows) at unit norm: each
    step removes the gradient's radial part from those rows, and the rows are
    renormalised after it.

    ``batch_topk`` makes the top-k path select at the level of the batch (BatchTopK,
    Bussmann et al. 2024): the ``n * k`` largest activations of a batch of ``n``
    samples are kept (ties at the threshold all kept), so a sample may keep more or
    fewer than k units; during an epoch the smallest kept activation of each batch is
    appended to ``batch_minima``.  ``threshold`` (set on a fitted model's engine)
    replaces the top-k selection when encoding: every unit whose activation exceeds
    it is kept, sample by sample.
    """

    def __init__(
        self,
        *,
        activation,
        loss,
        tied,
        solver,
        learning_rate,
        momentum=0.9,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        corrupt=None,
        mean=None,
        dropout=0.0,
        aux_coef=0.0,
        k_aux=None,
        dead_window=None,
        unit_norm=False,
        batch_topk=False,
        threshold=None,
    ):
        self.activation = K.ACTIVATIONS[activation]
        self.cross_entropy = loss == "cross_entropy"
        self.out_activation = K.SIGMOID if self.cross_entropy else K.LINEAR
        self.tied = tied
        self.solver = solver
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.corrupt = corrupt
        self.mean = mean
        self.dropout = dropout
        self.aux_coef = aux_coef
        self.k_aux = k_aux
        self.dead_window = dead_window
        self.unit_norm = unit_norm
        self.batch_topk = batch_topk
        self.threshold = threshold
        self.batch_minima = None  # during an epoch with batch_topk: one entry per batch
        self.rng = None  # the epoch's generator, for the dropout masks
        self.since = None  # during an epoch: samples since each unit was last selected

    def inference_params(self, params):
        """``params`` with the input mean folded into the biases: the encoder bias
        becomes ``b - W mu`` and a linear decoder's ``c + mu``, so that encoding and
        decoding run on the data as it is."""
        if self.mean is None:
            return params
        W = params["W"]
        mu = self.mean.astype(W.dtype, copy=False)
        folded = dict(params, b=params["b"] - W @ mu)
        if not self.cross_entropy:
            folded["c"] = params["c"] + mu
        return folded

    # ------------------------------------------------------------------ forward
    def encode(self, params, X, k, *, sparse_output=False, chunk_size=4096):
        """Hidden codes of X (dense ndarray or CSR), never corrupted."""
        return self._encode(self.inference_params(params), X, k, sparse_output, chunk_size)

    def _encode(self, params, X, k, sparse_output=False, chunk_size=4096):
        """:meth:`encode` with the biases already folded."""
        with K.work(X.shape[0] * params["W"].size):
            return self._encode_chunks(params, X, k, sparse_output, chunk_size)

    def _encode_chunks(self, params, X, k, sparse_output, chunk_size):
        W, b = params["W"], params["b"]
        n = X.shape[0]
        m = W.shape[0]
        if self.threshold is not None:
            return self._encode_threshold(params, X, sparse_output, chunk_size)
        if k is not None and k >= m:
            k = None
        if not sparse_output:
            H = np.empty((n, m), dtype=W.dtype)
            with K.single_threaded_blas:
                if k is not None and not sp.issparse(X):
                    Xd = np.ascontiguousarray(X, dtype=W.dtype)
                    K.call(K.encode_topk_dense, Xd, W, b, k, self.activation, H, 512)
                    return H
                H = _encoder_product(X, W, H)
                if k is None:
                    return _activate_dense(H, self.activation, b)
                K.call(K.topk_dense_inplace, H, b, k, self.activation)
            return H
        # Compressed output, built chunk by chunk to bound memory.  The kernel
        # returns each row's columns in increasing order, so the CSR is canonical.
        kk = m if k is None else k
        data, indices, row_nnz = [], [], []
        Z = np.empty((min(n, chunk_size), m), dtype=W.dtype)
        with K.single_threaded_blas:
            for start in range(0, n, chunk_size):
                Zc = _encoder_product(X[start : start + chunk_size], W, Z)
                idx = np.empty((Zc.shape[0], kk), dtype=np.int64)
                vals = np.empty((Zc.shape[0], kk), dtype=W.dtype)
                K.call(K.topk_rows, Zc, b, kk, self.activation, idx, vals)
                keep = vals != 0
                indices.append(idx[keep])
                data.append(vals[keep])
                row_nnz.append(keep.sum(axis=1))
        indptr = np.zeros(n + 1, dtype=np.int64)
        if n:
            np.cumsum(np.concatenate(row_nnz), out=indptr[1:])
        return sp.csr_matrix(
            (
                np.concatenate(data) if data else np.empty(0, W.dtype),
                np.concatenate(indices) if indices else np.empty(0, np.int64),
                indptr,
            ),
            shape=(n, m),
        )

    def _encode_threshold(self, params, X, sparse_output, chunk_size):
        """Codes keeping, per sample, every unit whose activation exceeds
        ``threshold`` (a fitted batch top-k model's encoding)."""
        W, b = params["W"], params["b"]
        n, m = X.shape[0], W.shape[0]
        threshold = W.dtype.type(self.threshold)
        H = None if sparse_output else np.empty((n, m), dtype=W.dtype)
        parts = []
        Z = np.empty((min(n, chunk_size), m), dtype=W.dtype)
        with K.single_threaded_blas:
            for start in range(0, n, chunk_size):
                Zc = _activate_dense(_encoder_product(X[start : start + chunk_size], W, Z),
                                     self.activation, b)
                Zc[Zc <= threshold] = 0
                if sparse_output:
                    parts.append(sp.csr_matrix(Zc))
                else:
                    H[start : start + Zc.shape[0]] = Zc
        if not sparse_output:
            return H
        if not parts:
            return sp.csr_matrix((0, m), dtype=W.dtype)
        return sp.vstack(parts, format="csr")

    def _decoder_input(self, params, H):
        """Decoder pre-activation ``H D + c`` for codes H (dense or sparse)."""
        D = params["W"] if self.tied else params["D"]
        if sp.issparse(H):
            out = np.asarray(H @ D, dtype=D.dtype)
        else:
            out = np.empty((H.shape[0], D.shape[1]), dtype=D.dtype)
            with K.single_threaded_blas:
                K.matmul(np.ascontiguousarray(H, dtype=D.dtype), False, D, False, out)
        out += params["c"]
        return out

    def decode(self, params, H):
        """Reconstruction from codes H (dense ndarray or sparse matrix)."""
        with K.work(H.shape[0] * params["W"].size):
            return _activate_dense(
                self._decoder_input(self.inference_params(params), H), self.out_activation
            )

    def loss(self, params, X, k, chunk_size=4096):
        """Mean per-sample loss of the clean reconstruction of X, computed as in
        training, chunk by chunk (a sparse X is densified one chunk at a time)."""
        dtype = params["W"].dtype
        params = self.inference_params(params)
        with K.work(X.shape[0] * params["W"].size):
            total = self._loss_chunks(params, X, k, chunk_size, dtype)
        return total / X.shape[0]

    def _loss_chunks(self, params, X, k, chunk_size, dtype):
        total = 0.0
        for start in range(0, X.shape[0], chunk_size):
            chunk = X[start : start + chunk_size]
            A = self._decoder_input(params, self._encode(params, chunk, k, k is not None))
            target = chunk.toarray() if sp.issparse(chunk) else chunk
            target = np.ascontiguousarray(target, dtype=dtype)
            total += K.call(
                K.output_residual, A, target, self.out_activation, self.cross_entropy, 1.0
            )
        return total

    # ----------------------------------------------------------------- backward
    def loss_and_grads(self, params, X, Xc, k, grads, buffers=None, opt=None):
        """Loss of one batch and the gradients of every parameter; with ``opt``, also
        the optimizer step.

        ``X`` is the clean target, ``Xc`` the (possibly corrupted) encoder input, both
        dense C-contiguous arrays of the parameters' dtype.  ``grads`` is a dict of
        arrays shaped like ``params`` that is overwritten (except, on the top-k path with
        ``opt``, the weights' gradients: each row is applied as soon as it is computed,
        and ``grads["W"]``, ``grads["D"]`` are left as they were).  Returns the batch loss
        (the mean per-sample loss, before the step) and the number of times each unit
        was active.  Call it inside ``_kernels.single_threaded_blas``.
        """
        W, b, c = params["W"], params["b"], params["c"]
        D = W if self.tied else params["D"]
        n = X.shape[0]
        m = W.shape[0]
        dtype = W.dtype
        scale = 1.0 / n
        if buffers is None:
            buffers = {}
        if k is not None and k >= m:
            k = None
        Z = K.matmul(Xc, False, W, True, _buffer(buffers, "Z", (n, m), dtype))
        out = _buffer(buffers, "out", X.shape, dtype)
        gD = grads["W"] if self.tied else grads["D"]
        if k is None:
            H = _activate_dense(Z, self.activation, b)
            Hd = H
            if self.dropout:  # inverted dropout of the hidden units
                mask = self._dropout_mask(_buffer(buffers, "mask", (n, m), dtype),
                                          self.dropout)
                Hd = np.multiply(H, mask, out=_buffer(buffers, "Hd", (n, m), dtype))
            K.matmul(Hd, False, D, False, out)
            out += c
            total = K.call(
                K.output_residual, out, X, self.out_activation, self.cross_entropy, scale
            )
            G = out
            K.matmul(Hd, True, G, False, gD)
            dZ = K.matmul(G, False, D, True, _buffer(buffers, "dZ", (n, m), dtype))
            if self.dropout:
                dZ *= mask
            # act'() is read from the activations before the mask
            _mul_activation_grad(dZ, H, self.activation)
            # with tied weights the encoder gradient adds to the decoder's
            K.matmul(dZ, True, Xc, False, grads["W"], 1.0 if self.tied else 0.0)
            K.call(K.column_sums, dZ, grads["b"])
            counts = np.empty(m, dtype=np.int64)
            K.call(K.column_sums, H, counts, True)
        else:
            G = out
            if self.batch_topk:
                idx, vals = self._batch_topk(Z, b, k, buffers)
                k = idx.shape[1]
                total = K.call(K.code_decode_residual, idx, vals, D, c, X,
                               self.out_activation, self.cross_entropy, scale, G)
            else:
                idx = _buffer(buffers, "idx", (n, k), np.int64)
                vals = _buffer(buffers, "vals", (n, k), dtype)
                total = K.call(
                    K.topk_decode_residual, Z, b, k, self.activation, idx, vals, D, c, X,
                    self.out_activation, self.cross_entropy, scale, G,
                )
            indptr, pos = K.units_index(idx, m)
            counts = np.empty(m, dtype=np.int64)
            dead = self._dead_units()
            fused = dead is None and not self.unit_norm
            # the weights' optimizer step is fused into the per-unit kernel, unless the
            # auxiliary loss adds to the gradients first
            solver, rate, beta1 = (0, 0.0, 0.0) if opt is None or not fused else self._tick(opt)
            sW1, sW2 = self._slots(opt, "W", W)
            sD1, sD2 = self._slots(opt, "D", D)
            K.call(
                K.unit_backward, indptr, pos, k, vals, G, Xc, D, self.activation, self.tied,
                grads["W"], gD, grads["b"], counts, solver, W, sW1, sW2, sD1, sD2, rate, beta1,
                self.beta_2, self.epsilon,
            )
            if dead is not None:
                total += self._aux_loss_and_grads(params, Z, Xc, G, dead, scale, grads,
                                                  buffers)
        K.call(K.column_sums, G, grads["c"])
        if opt is not None:
            if k is None or not fused:
                decoder = "W" if self.tied else "D"
                if self.unit_norm:
                    remove_radial(grads[decoder], params[decoder])
                self._step(params, grads, opt)
                if self.unit_norm:
                    normalize_rows(params[decoder])
            else:  # the weights took their step in unit_backward
                self._update(params, grads, opt, ("b", "c"), solver, rate, beta1)
        return total * scale, counts

    def _batch_topk(self, Z, b, k, buffers):
        """BatchTopK's selection for a batch: the ``n * k`` largest activations of
        ``act(Z + b)`` over the whole batch (with ReLU, only positive ones), as a
        padded compact code: each row's kept units in column order, then entries
        with index -1 and value 0.  Each row's candidates are its top ``k_row``
        units, ``k_row`` doubled until no row could hold more above the threshold,
        so the selection is exact.  Returns ``(idx, vals)``."""
        n, m = Z.shape
        budget = n * k
        k_row = min(m, 4 * k)
        while True:
            idx = _buffer(buffers, "idx", (n, k_row), np.int64)
            vals = _buffer(buffers, "vals", (n, k_row), Z.dtype)
            K.call(K.topk_rows, Z, b, k_row, self.activation, idx, vals)
            flat = vals.ravel()
            if budget >= flat.size:
                threshold = flat.min()
            else:
                threshold = np.partition(flat, flat.size - budget)[flat.size - budget]
            # a row whose every candidate reaches the threshold may hold more beyond
            if k_row == m or not (vals.min(axis=1) >= threshold).any():
                break
            k_row = min(m, 2 * k_row)
        keep = vals >= threshold
        if self.activation == K.RELU:
            keep &= vals > 0
        idx[~keep] = -1
        vals[~keep] = 0
        if self.batch_minima is not None and keep.any():
            self.batch_minima.append(float(vals[keep].min()))
        return idx, vals

    # ------------------------------------------------------------ auxiliary loss
    def _dead_units(self):
        """The units the auxiliary loss trains in this batch (a boolean mask), or None
        when it is off or no unit is dead."""
        if not self.aux_coef or self.since is None:
            return None
        dead = self.since >= self.dead_window
        return dead if dead.any() else None

    def _aux_loss_and_grads(self, params, Z, Xc, G, dead, scale, grads, buffers):
        """AuxK: the ``k_aux`` largest dead units of each sample reconstruct the
        residual ``e = -G / scale`` (a constant), through the decoder without its bias;
        their gradients are added to ``grads``.  Returns the summed auxiliary loss
        times ``aux_coef``."""
        W, b = params["W"], params["b"]
        D = W if self.tied else params["D"]
        n, m = Z.shape
        dtype = W.dtype
        k_aux = int(min(self.k_aux, np.count_nonzero(dead)))
        # live units get a bias of -inf: the selection only sees the dead ones
        bias = np.where(dead, b, -np.inf).astype(dtype)
        E = np.multiply(G, dtype.type(-1.0 / scale),
                        out=_buffer(buffers, "aux_target", G.shape, dtype))
        idx = _buffer(buffers, "aux_idx", (n, k_aux), np.int64)
        vals = _buffer(buffers, "aux_vals", (n, k_aux), dtype)
        Ga = _buffer(buffers, "aux_G", G.shape, dtype)
        no_bias = np.zeros(Xc.shape[1], dtype=dtype)
        aux = K.call(K.topk_decode_residual, Z, bias, k_aux, self.activation, idx, vals, D,
                     no_bias, E, K.LINEAR, False, self.aux_coef * scale, Ga)
        indptr, pos = K.units_index(idx, m)
        gW = _buffer(buffers, "aux_gW", W.shape, dtype)
        gD = gW if self.tied else _buffer(buffers, "aux_gD", D.shape, dtype)
        gb = _buffer(buffers, "aux_gb", b.shape, dtype)
        counts = np.empty(m, dtype=np.int64)
        K.call(K.unit_backward, indptr, pos, k_aux, vals, Ga, Xc, D, self.activation,
               self.tied, gW, gD, gb, counts, 0, W, W, W, D, D, 0.0, 0.0, self.beta_2,
               self.epsilon)
        grads["W"] += gW
        if not self.tied:
            grads["D"] += gD
        grads["b"] += gb
        return self.aux_coef * aux

    # ---------------------------------------------------------------- optimizer
    def _step(self, params, grads, opt):
        """One optimizer step on every parameter (SGD with momentum, or Adam with the
        bias corrections folded into the step size)."""
        self._update(params, grads, opt, params, *self._tick(opt))

    def _tick(self, opt):
        """Advance the step counter; return the kernels' (solver code, step size,
        first decay) for this step."""
        opt["t"] += 1
        t = opt["t"]
        if self.solver == "sgd":
            return K.SGD, self.learning_rate, self.momentum
        rate = self.learning_rate * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        return K.ADAM, rate, self.beta_1

    def _slots(self, opt, name, like):
        """The optimizer state arrays of one parameter (``like`` stands in when there
        is no state: no step, or no such parameter)."""
        if opt is None or f"v_{name}" not in opt:
            return like, like
        if self.solver == "sgd":
            return opt[f"v_{name}"], opt[f"v_{name}"]  # the second slot is not read
        return opt[f"m_{name}"], opt[f"v_{name}"]

    def _update(self, params, grads, opt, names, solver, rate, beta1, l2=None):
        """The optimizer step of the named parameters; ``l2`` maps names to the
        coefficient of an L2 penalty's gradient ``l2 * p`` (none by default).
        Returns the sum of the squares, before the step, of the parameters that have
        a nonzero coefficient."""
        squares = 0.0
        for name in names:
            p = params[name]
            s1, s2 = self._slots(opt, name, p)
            squares += K.call(
                K.optimizer_update, solver, p.reshape(-1), s1.reshape(-1), s2.reshape(-1),
                grads[name].reshape(-1), rate, beta1, self.beta_2, self.epsilon,
                0.0 if l2 is None else l2.get(name, 0.0),
            )
        return squares

    # -------------------------------------------------------------------- epoch
    def run_epoch(self, params, opt, X, k, batch_size, shuffle, rng, Y=None, since=None):
        """One pass over X in mini-batches.  Returns (mean loss, activity counts).

        ``since`` (an int64 array, one entry per unit), when given, counts the
        training samples since each unit was last active: updated in place after
        every batch (the auxiliary loss reads it before each batch).

        Each mini-batch is centred on ``mean`` (when set): the target of a linear
        decoder is the centred batch; a sigmoid decoder's target stays the batch as it
        is, and only the encoder's input is centred.  Corruption applies to the
        encoder's input.  With ``Y`` (supervised training, :class:`StackEngine`) the
        target is the batch's rows of Y and the input the batch of X.

        Raises FloatingPointError as soon as a batch loss is not finite; the caller
        owns ``params`` and ``opt`` and discards them then.
        """
        self.rng, self.since = rng, since
        if self.batch_topk:
            self.batch_minima = []
        try:
            with K.work(X.shape[0] * _n_weights(params)):
                return self._run_epoch(params, opt, X, k, batch_size, shuffle, rng, Y)
        finally:
            self.rng = self.since = None

    def _dropout_mask(self, out, rate):
        """Inverted dropout's mask into ``out``: each unit kept with probability
        1 - rate, and scaled by 1 / (1 - rate) when kept.  A seed drawn from the
        epoch's ``rng`` makes the masks reproducible (outside an epoch, a fixed seed:
        the same mask on every call)."""
        keep = 1.0 - rate
        rng = self.rng if self.rng is not None else np.random.RandomState(0)
        return bernoulli_mask(out, keep, 1.0 / keep, rng)

    def _run_epoch(self, params, opt, X, k, batch_size, shuffle, rng, Y):
        n = X.shape[0]
        batch_size = min(batch_size, n)
        order = rng.permutation(n) if shuffle else np.arange(n)
        grads = {name: np.empty_like(p) for name, p in params.items()}
        buffers = {}
        counts = None
        total = 0.0
        dtype = next(iter(params.values())).dtype
        mean = None if self.mean is None else self.mean.astype(dtype)
        # a linear decoder's target is centred too: subtract the mean while gathering
        centre_target = mean is not None and not self.cross_entropy
        shift = mean if centre_target else np.zeros(X.shape[1], dtype)
        # rows of a C-ordered array of the parameters' dtype are gathered by a kernel
        direct = (not sp.issparse(X) and X.dtype == dtype and X.flags.c_contiguous)
        with K.single_threaded_blas:
            for start in range(0, n, batch_size):
                rows = order[start : start + batch_size]
                if direct:
                    Xb = _buffer(buffers, "X", (rows.shape[0], X.shape[1]), dtype)
                    K.call(K.gather_rows, np.asarray(X), rows, shift, Xb)
                else:
                    if sp.issparse(X):
                        Xb = np.asarray(X[rows].toarray(), dtype=dtype, order="C")
                    else:
                        Xb = np.asarray(np.take(X, rows, axis=0), dtype=dtype, order="C")
                    if centre_target:
                        Xb -= mean
                # a sigmoid decoder's target stays as it is; only the encoder's input
                # is centred
                Xin = Xb - mean if mean is not None and not centre_target else Xb
                Xc = self.corrupt(Xin, rng) if self.corrupt is not None else Xin
                target = Xb if Y is None else np.asarray(Y[rows], dtype=dtype, order="C")
                batch_loss, batch_counts = self.loss_and_grads(
                    params, target, Xc, k, grads, buffers, opt
                )
                if not np.isfinite(batch_loss):
                    self._diverged(f"the loss became {batch_loss} on the batch starting at "
                                   f"sample {start}")
                counts = batch_counts if counts is None else counts + batch_counts
                total += batch_loss * Xb.shape[0]
                if self.since is not None:
                    self.since += Xb.shape[0]
                    self.since[batch_counts > 0] = 0
        # the last update is not checked by any loss: check the weights themselves
        for name, p in params.items():
            if not np.isfinite(p).all():
                self._diverged(f"the parameter {name} holds non-finite values")
        return total / n, counts

    def _diverged(self, what):
        raise FloatingPointError(
            f"Training diverged: {what}. The learning rate ({self.learning_rate}) is "
            "likely too large for the scale of the data; lower learning_rate or scale "
            "the input (for example with StandardScaler or MinMaxScaler)."
        )


class StackEngine(Engine):
    """A stack of encoder layers under a softmax output layer, trained by
    backpropagation on the cross-entropy: the fine-tuning network.

    Layer ``l`` (0-based; ``L`` hidden layers) computes
    ``H_l = act_l(select_k_l(H_{l-1} W_l^T + b_l))`` from ``H_{-1} = X``, and the
    output layer the logits ``H_{L-1} W_L^T + b_L``.  Parameters are ``"W<l>"``,
    ``"b<l>"`` for l = 0 .. L (unit-major, as the autoencoders store their encoders),
    so the optimizer, the epoch loop and the checks are the :class:`Engine`'s.

    A top-k layer keeps its sparse backward: its weight gradient and the gradient
    passed to the layer below run over the compact (n, k) code
    (:func:`_kernels.topk_unit_grads`, :func:`_kernels.compact_matmul`); dense layers
    use BLAS products.  Layers below ``first_trained`` are frozen (no gradient, no
    step).  ``dropout`` drops each unit of every hidden layer with that probability
    in training, ``input_dropout`` each input feature (inverted dropout: :meth:`logits`
    uses every unit, as it is).  ``alpha`` is an L2 penalty on the weights of the
    trained layers, added to the mean batch loss as
    ``0.5 * alpha * sum ||W||^2 / batch`` (the convention of
    :class:`~sklearn.neural_network.MLPClassifier`).
    """

    def __init__(self, *, layers, solver, learning_rate, alpha=0.0, first_trained=0,
                 dropout=0.0, input_dropout=0.0, momentum=0.9, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8):
        # the optimizer's settings are the Engine's; its single-layer options are
        # unused here (no decoder, no corruption, no centring)
        super().__init__(activation="linear", loss="squared_error", tied=True,
                         solver=solver, learning_rate=learning_rate, momentum=momentum,
                         beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, dropout=dropout)
        self.layers = [(K.ACTIVATIONS[activation], k) for activation, k in layers]
        self.alpha = alpha
        self.input_dropout = input_dropout
        self.first_trained = first_trained

    def trained_names(self):
        """Names of the parameters the optimizer updates."""
        return [f"{p}{l}" for l in range(self.first_trained, len(self.layers) + 1)
                for p in ("W", "b")]

    def _layer_forward(self, l, params, A, Z):
        """Layer l on the input A into the buffer Z (dense, n x units); returns
        (H, k) with H the activated output (Z itself) and k the layer's effective k
        (None: every unit)."""
        activation, k = self.layers[l]
        W, b = params[f"W{l}"], params[f"b{l}"]
        if k is not None and k >= W.shape[0]:
            k = None
        Z = _encoder_product(A, W, Z)
        if k is None:
            return _activate_dense(Z, activation, b), None
        return Z, k

    def logits(self, params, X, chunk_size=4096):
        """The output layer's logits for X (dense or CSR), chunk by chunk."""
        L = len(self.layers)
        dtype = params["W0"].dtype
        out = np.empty((X.shape[0], params[f"W{L}"].shape[0]), dtype=dtype)
        buffers = {}
        with K.single_threaded_blas, K.work(X.shape[0] * _n_weights(params)):
            for start in range(0, X.shape[0], chunk_size):
                A = X[start : start + chunk_size]
                n = A.shape[0]
                for l in range(L):
                    units = params[f"W{l}"].shape[0]
                    A, k = self._layer_forward(l, params, A, _buffer(buffers, f"Z{l}",
                                                                     (n, units), dtype))
                    if k is not None:
                        K.call(K.topk_dense_inplace, A, params[f"b{l}"], k,
                               self.layers[l][0])
                o = out[start : start + n]
                K.matmul(A, False, params[f"W{L}"], True, o)
                o += params[f"b{L}"]
        return out

    def loss_and_grads(self, params, Y, X, k, grads, buffers=None, opt=None):
        """Mean cross-entropy (plus the L2 penalty) of one batch, the gradients of the
        trained layers and, with ``opt``, the optimizer step.  ``Y`` holds the
        one-hot targets, ``X`` the input; ``k`` is unused (each layer has its own).
        Returns the loss and an empty activity count."""
        if buffers is None:
            buffers = {}
        L = len(self.layers)
        n = X.shape[0]
        dtype = params["W0"].dtype
        scale = 1.0 / n
        # forward: every layer's output, and the compact code of the top-k layers
        outputs, codes, masks, act_grads = [], [], [], []
        if self.input_dropout:
            mask = self._dropout_mask(_buffer(buffers, "Xdrop", X.shape, dtype),
                                      self.input_dropout)
            X = np.multiply(X, mask, out=mask)
        A = X
        for l in range(L):
            units = params[f"W{l}"].shape[0]
            A, kl = self._layer_forward(l, params, A, _buffer(buffers, f"Z{l}", (n, units),
                                                              dtype))
            code = None
            if kl is not None:
                idx = _buffer(buffers, f"idx{l}", (n, kl), np.int64)
                vals = _buffer(buffers, f"vals{l}", (n, kl), dtype)
                K.call(K.topk_rows_dense, A, params[f"b{l}"], kl, self.layers[l][0], idx,
                       vals)
                code = (idx, vals)
            grad = None
            if self.dropout:
                # act'() reads the output before dropout; the mask scales both the
                # output and, in the backward pass, its gradient
                if code is None and l >= self.first_trained:
                    grad = _activation_grad_dense(A, self.layers[l][0])
                mask = self._dropout_mask(_buffer(buffers, f"mask{l}", A.shape, dtype),
                                          self.dropout)
                A *= mask
                masks.append(mask)
            else:
                masks.append(None)
            act_grads.append(grad)
            outputs.append(A)
            codes.append(code)
        WL = params[f"W{L}"]
        G = K.matmul(A, False, WL, True, _buffer(buffers, "out", (n, WL.shape[0]), dtype))
        G += params[f"b{L}"]
        total = K.call(K.softmax_residual, G, Y, scale)
        # backward, from the output layer down to the first trained layer; the
        # penalty's gradient is added in the optimizer step (or to the gradients
        # when there is no step)
        for l in range(L, self.first_trained - 1, -1):
            A_in = outputs[l - 1] if l > 0 else X
            W = params[f"W{l}"]
            if self.alpha and opt is None:  # with a step, the optimizer sums the squares
                total += 0.5 * self.alpha * float(np.vdot(W, W))
            if l == L or codes[l] is None:
                if l < L:  # dense hidden layer: G holds dL/dH; make it dL/dZ
                    if masks[l] is not None:
                        G *= masks[l]
                        if act_grads[l] is not None:
                            G *= act_grads[l]
                    else:
                        _mul_activation_grad(G, outputs[l], self.layers[l][0])
                K.matmul(G, True, A_in, False, grads[f"W{l}"])
                K.call(K.column_sums, G, grads[f"b{l}"])
                if l > self.first_trained:
                    G = K.matmul(G, False, W, False,
                                 _buffer(buffers, f"dA{l}", (n, W.shape[1]), dtype))
            else:  # top-k layer: the backward runs over the compact code
                idx, vals = codes[l]
                kl = idx.shape[1]
                indptr, pos = K.units_index(idx, W.shape[0])
                dz = _buffer(buffers, f"dz{l}", (n, kl), dtype)
                if masks[l] is not None:
                    G *= masks[l]
                K.call(K.topk_unit_grads, indptr, pos, kl, vals, G, A_in, self.layers[l][0],
                       grads[f"W{l}"], grads[f"b{l}"], dz)
                if l > self.first_trained:
                    G = _buffer(buffers, f"dA{l}", (n, W.shape[1]), dtype)
                    K.call(K.compact_matmul, idx, dz, W, G)
        l2 = self.alpha * scale
        weights = {f"W{l}": l2 for l in range(L + 1)}
        if opt is not None:
            # the penalty's part of the loss: the weights' squares before the step
            squares = self._update(params, grads, opt, self.trained_names(),
                                   *self._tick(opt), l2=weights)
            total += 0.5 * self.alpha * squares
        elif self.alpha:
            for name in self.trained_names():
                if name in weights:
                    grads[name] += l2 * params[name]
        return total * scale, np.zeros(0, dtype=np.int64)


def _encoder_product(X, W, out):
    """``X @ W.T`` into the leading rows of ``out``; X dense or sparse."""
    out = out[: X.shape[0]]
    if sp.issparse(X):
        out[:] = (X @ W.T).astype(W.dtype, copy=False)
        return out
    return K.matmul(np.ascontiguousarray(X, dtype=W.dtype), False, W, True, out)


def _n_weights(params):
    """How many weights (entries of the parameter matrices) a model has."""
    return sum(p.size for p in params.values() if p.ndim == 2)


def _buffer(buffers, name, shape, dtype):
    """A reusable scratch array: the leading rows of a buffer sized for the first batch."""
    buf = buffers.get(name)
    if buf is None or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0] or buf.dtype != dtype:
        buf = np.empty(shape, dtype=dtype)
        buffers[name] = buf
    return buf[: shape[0]]
