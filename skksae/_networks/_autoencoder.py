"""The autoencoder network:

    z      = (x - mu) W^T + b               (encoder pre-activation, dense BLAS product)
    h      = act(select_k(z))               (top-k selection when k is set, else all units)
    x_hat  = h D + c + mu  or  sigmoid(h D + c)   (decoder; D is W when tied)

trained on the summed per-sample loss (0.5 * squared error for a linear output,
cross-entropy for a sigmoid output), averaged over the batch.  ``mu`` is the input
mean when the model centres its input (else zero): training subtracts it from each
mini-batch, and encoding and decoding fold it into the biases
(:meth:`AutoencoderNet.inference_params`), so a sparse input is never densified to
be centred.  When k is set the decoder product and both weight gradients run over
the compact (n, k) code with the Numba kernels; otherwise they are dense BLAS
products.
"""

import numpy as np
import scipy.sparse as sp

from .. import _kernels as K
from .._optim import NO_STEP
from ._common import (
    BatchRows,
    activate_dense,
    buffer,
    dropout_mask,
    encoder_product,
    mul_activation_grad,
    normalize_rows,
    remove_radial,
)


class AutoencoderNet:
    """One autoencoder layer: its architecture, forward and backward passes.

    The network holds no learned state: ``params`` (and an optimizer) are passed in
    and updated in place, so callers decide when a result becomes the estimator's.
    :func:`skksae._training.run_epoch` trains it batch by batch through
    :meth:`gather` and :meth:`train_batch`.
    ``dropout`` drops each hidden unit with that probability in training (inverted
    dropout, dense hidden layers only: the top-k path ignores it, and
    :class:`~skksae.DenoisingAutoencoder` rejects the combination; masks drawn from the
    epoch's generator); encoding and scoring use every unit.

    ``aux_coef``, ``k_aux`` and ``dead_window`` add the auxiliary dead-unit loss of
    top-k autoencoders (AuxK, Gao et al. 2024) to the top-k path: a unit is dead when
    it has not been selected for ``dead_window`` training samples (counted by
    :meth:`train_batch` in its ``since`` array); the ``k_aux`` largest dead units of
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
    appended to ``batch_minima``.  ``threshold`` (set on a fitted model's network)
    replaces the top-k selection when encoding: every unit whose activation exceeds
    it is kept, sample by sample.
    """

    def __init__(
        self,
        *,
        activation,
        loss,
        tied,
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
        self.corrupt = corrupt
        self.mean = mean
        self.dropout = dropout
        self.aux_coef = aux_coef
        self.k_aux = k_aux
        self.dead_window = dead_window
        self.unit_norm = unit_norm
        self.batch_topk = batch_topk
        self.threshold = threshold
        # set by the estimator for each epoch: the training k (None: every unit)
        self.k = None
        # the samples since each unit was last selected (an int64 array the
        # estimator owns, updated after every batch), or None: not counted
        self.since = None
        self.batch_minima = None  # with batch_topk, during an epoch: one entry per batch

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
        return self.encode_folded(self.inference_params(params), X, k, sparse_output, chunk_size)

    def encode_folded(self, params, X, k, sparse_output=False, chunk_size=4096):
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
                H = encoder_product(X, W, H)
                if k is None:
                    return activate_dense(H, self.activation, b)
                K.call(K.topk_dense_inplace, H, b, k, self.activation)
            return H
        # Compressed output, built chunk by chunk to bound memory.  The kernel
        # returns each row's columns in increasing order, so the CSR is canonical.
        kk = m if k is None else k
        data, indices, row_nnz = [], [], []
        Z = np.empty((min(n, chunk_size), m), dtype=W.dtype)
        with K.single_threaded_blas:
            for start in range(0, n, chunk_size):
                Zc = encoder_product(X[start : start + chunk_size], W, Z)
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
                Zc = activate_dense(encoder_product(X[start : start + chunk_size], W, Z),
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

    def decoder_input(self, params, H):
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
            return activate_dense(
                self.decoder_input(self.inference_params(params), H), self.out_activation
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
            A = self.decoder_input(params, self.encode_folded(params, chunk, k, k is not None))
            target = chunk.toarray() if sp.issparse(chunk) else chunk
            target = np.ascontiguousarray(target, dtype=dtype)
            total += K.call(
                K.output_residual, A, target, self.out_activation, self.cross_entropy, 1.0
            )
        return total

    # ----------------------------------------------------------------- backward
    def loss_and_grads(self, params, X, Xc, k, grads, buffers=None, optimizer=None, rng=None):
        """Loss of one batch and the gradients of every parameter; with ``optimizer``,
        also its step.

        ``X`` is the clean target, ``Xc`` the (possibly corrupted) encoder input, both
        dense C-contiguous arrays of the parameters' dtype.  ``grads`` is a dict of
        arrays shaped like ``params`` that is overwritten (except, on the top-k path
        with an optimizer, the weights' gradients: each row is applied as soon as it is
        computed, and ``grads["W"]``, ``grads["D"]`` are left as they were).  ``rng``
        draws the dropout masks.  Returns the batch loss (the mean per-sample loss,
        before the step) and the number of times each unit was active.  Call it inside
        ``_kernels.single_threaded_blas``.
        """
        W = params["W"]
        n, m = X.shape[0], W.shape[0]
        if buffers is None:
            buffers = {}
        if k is not None and k >= m:
            k = None
        Z = K.matmul(Xc, False, W, True, buffer(buffers, "Z", (n, m), W.dtype))
        if k is None:
            total, counts, G = self._dense_backward(params, X, Xc, Z, grads, buffers, rng)
            step = None
        else:
            total, counts, G, step = self._topk_backward(params, X, Xc, Z, k, grads, buffers,
                                                         optimizer)
        K.call(K.column_sums, G, grads["c"])
        if optimizer is not None:
            if step is None:
                decoder = "W" if self.tied else "D"
                if self.unit_norm:
                    remove_radial(grads[decoder], params[decoder])
                optimizer.step(params, grads, params)
                if self.unit_norm:
                    normalize_rows(params[decoder])
            else:  # the weights took their step in unit_backward
                optimizer.update(params, grads, ("b", "c"), step)
        return total * (1.0 / n), counts

    def _dense_backward(self, params, X, Xc, Z, grads, buffers, rng):
        """Every unit kept: the summed loss, the activity counts and the output's
        gradient G (``grads`` filled but for ``"c"``), by BLAS products."""
        W, b, c = params["W"], params["b"], params["c"]
        D = W if self.tied else params["D"]
        n, m = Z.shape
        dtype = W.dtype
        out = buffer(buffers, "out", X.shape, dtype)
        gD = grads["W"] if self.tied else grads["D"]
        H = activate_dense(Z, self.activation, b)
        Hd = H
        if self.dropout:  # inverted dropout of the hidden units
            mask = dropout_mask(buffer(buffers, "mask", (n, m), dtype), self.dropout, rng)
            Hd = np.multiply(H, mask, out=buffer(buffers, "Hd", (n, m), dtype))
        K.matmul(Hd, False, D, False, out)
        out += c
        total = K.call(
            K.output_residual, out, X, self.out_activation, self.cross_entropy, 1.0 / n
        )
        G = out
        K.matmul(Hd, True, G, False, gD)
        dZ = K.matmul(G, False, D, True, buffer(buffers, "dZ", (n, m), dtype))
        if self.dropout:
            dZ *= mask
        # act'() is read from the activations before the mask
        mul_activation_grad(dZ, H, self.activation)
        # with tied weights the encoder gradient adds to the decoder's
        K.matmul(dZ, True, Xc, False, grads["W"], 1.0 if self.tied else 0.0)
        K.call(K.column_sums, dZ, grads["b"])
        counts = np.empty(m, dtype=np.int64)
        K.call(K.column_sums, H, counts, True)
        return total, counts, G

    def _topk_backward(self, params, X, Xc, Z, k, grads, buffers, optimizer):
        """The top-k path: the summed loss, the activity counts, the output's
        gradient G and the optimizer :class:`~skksae._optim.Step` fused into the
        per-unit kernel (None when the weights still need their step)."""
        W, b, c = params["W"], params["b"], params["c"]
        D = W if self.tied else params["D"]
        n, m = Z.shape
        scale = 1.0 / n
        G = buffer(buffers, "out", X.shape, W.dtype)
        gD = grads["W"] if self.tied else grads["D"]
        if self.batch_topk:
            idx, vals = self._batch_topk(Z, b, k, buffers)
            k = idx.shape[1]
            total = K.call(K.code_decode_residual, idx, vals, D, c, X,
                           self.out_activation, self.cross_entropy, scale, G)
        else:
            idx = buffer(buffers, "idx", (n, k), np.int64)
            vals = buffer(buffers, "vals", (n, k), W.dtype)
            total = K.call(
                K.topk_decode_residual, Z, b, k, self.activation, idx, vals, D, c, X,
                self.out_activation, self.cross_entropy, scale, G,
            )
        indptr, pos = K.units_index(idx, m)
        counts = np.empty(m, dtype=np.int64)
        dead = self._dead_units()
        # the weights' optimizer step is fused into the per-unit kernel, unless the
        # auxiliary loss or the unit-norm projection changes the gradients first
        fused = optimizer is not None and dead is None and not self.unit_norm
        step = optimizer.tick() if fused else NO_STEP
        sW1, sW2 = (W, W) if optimizer is None else optimizer.slots("W", W)
        sD1, sD2 = (D, D) if optimizer is None else optimizer.slots("D", D)
        K.call(K.unit_backward, (indptr, pos, k, vals), G, Xc, D, self.activation, self.tied,
               (grads["W"], gD, grads["b"]), counts, W, (sW1, sW2, sD1, sD2), tuple(step))
        if dead is not None:
            total += self._aux_loss_and_grads(params, Z, Xc, G, dead, scale, grads, buffers)
        return total, counts, G, step if fused else None

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
            idx = buffer(buffers, "idx", (n, k_row), np.int64)
            vals = buffer(buffers, "vals", (n, k_row), Z.dtype)
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
                        out=buffer(buffers, "aux_target", G.shape, dtype))
        idx = buffer(buffers, "aux_idx", (n, k_aux), np.int64)
        vals = buffer(buffers, "aux_vals", (n, k_aux), dtype)
        Ga = buffer(buffers, "aux_G", G.shape, dtype)
        no_bias = np.zeros(Xc.shape[1], dtype=dtype)
        aux = K.call(K.topk_decode_residual, Z, bias, k_aux, self.activation, idx, vals, D,
                     no_bias, E, K.LINEAR, False, self.aux_coef * scale, Ga)
        indptr, pos = K.units_index(idx, m)
        gW = buffer(buffers, "aux_gW", W.shape, dtype)
        gD = gW if self.tied else buffer(buffers, "aux_gD", D.shape, dtype)
        gb = buffer(buffers, "aux_gb", b.shape, dtype)
        counts = np.empty(m, dtype=np.int64)
        K.call(K.unit_backward, (indptr, pos, k_aux, vals), Ga, Xc, D, self.activation,
               self.tied, (gW, gD, gb), counts, W, (W, W, D, D), tuple(NO_STEP))
        grads["W"] += gW
        if not self.tied:
            grads["D"] += gD
        grads["b"] += gb
        return self.aux_coef * aux

    # ------------------------------------------------------------------ training
    def batches(self, params, X, Y=None):
        """Start an epoch over X: returns ``gather(rows, rng, buffers)``, which gives
        :meth:`train_batch` the batch of those rows as (clean target, encoder input).

        Each batch is centred on ``mean`` (when set): the target of a linear decoder
        is the centred batch; a sigmoid decoder's target stays the batch as it is, and
        only the encoder's input is centred.  Corruption applies to the encoder's
        input, drawn from ``rng``.  ``Y`` is not used (an autoencoder's target is its
        input)."""
        if self.batch_topk:
            self.batch_minima = []
        dtype = params["W"].dtype
        mean = None if self.mean is None else self.mean.astype(dtype)
        # a linear decoder's target is centred too: subtract the mean while gathering
        centre_target = mean is not None and not self.cross_entropy
        rows_of = BatchRows(X, dtype, mean if centre_target else None)

        def gather(rows, rng, buffers):
            Xb = rows_of(rows, buffers)
            Xin = Xb - mean if mean is not None and not centre_target else Xb
            Xc = self.corrupt(Xin, rng) if self.corrupt is not None else Xin
            return Xb, Xc

        return gather

    def train_batch(self, params, batch, grads, buffers, optimizer, rng):
        """Loss, gradients and step of one gathered batch at the training ``k``;
        counts the samples since each unit was last selected (``since``)."""
        target, Xc = batch
        loss, counts = self.loss_and_grads(params, target, Xc, self.k, grads, buffers,
                                           optimizer, rng)
        if self.since is not None:
            self.since += target.shape[0]
            self.since[counts > 0] = 0
        return loss
