"""The fine-tuning network: a stack of encoder layers under a softmax output layer."""

import numpy as np

from .. import _kernels as K
from ._common import (
    BatchRows,
    activate_dense,
    activation_grad_dense,
    buffer,
    dropout_mask,
    encoder_product,
    mul_activation_grad,
    n_weights,
)


class StackNet:
    """A stack of encoder layers under a softmax output layer, trained by
    backpropagation on the cross-entropy: the fine-tuning network.

    Layer ``l`` (0-based; ``L`` hidden layers) computes
    ``H_l = act_l(select_k_l(H_{l-1} W_l^T + b_l))`` from ``H_{-1} = X``, and the
    output layer the logits ``H_{L-1} W_L^T + b_L``.  Parameters are ``"W<l>"``,
    ``"b<l>"`` for l = 0 .. L (unit-major, as the autoencoders store their encoders).
    :func:`skksae._training.run_epoch` trains it batch by batch through
    :meth:`batches` and :meth:`train_batch`, as it trains an autoencoder.

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

    def __init__(self, *, layers, alpha=0.0, first_trained=0, dropout=0.0,
                 input_dropout=0.0):
        self.layers = [(K.ACTIVATIONS[activation], k) for activation, k in layers]
        self.alpha = alpha
        self.dropout = dropout
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
        Z = encoder_product(A, W, Z)
        if k is None:
            return activate_dense(Z, activation, b), None
        return Z, k

    def logits(self, params, X, chunk_size=4096):
        """The output layer's logits for X (dense or CSR), chunk by chunk."""
        L = len(self.layers)
        dtype = params["W0"].dtype
        out = np.empty((X.shape[0], params[f"W{L}"].shape[0]), dtype=dtype)
        buffers = {}
        with K.single_threaded_blas, K.work(X.shape[0] * n_weights(params)):
            for start in range(0, X.shape[0], chunk_size):
                A = X[start : start + chunk_size]
                n = A.shape[0]
                for l in range(L):
                    units = params[f"W{l}"].shape[0]
                    A, k = self._layer_forward(l, params, A, buffer(buffers, f"Z{l}",
                                                                    (n, units), dtype))
                    if k is not None:
                        K.call(K.topk_dense_inplace, A, params[f"b{l}"], k,
                               self.layers[l][0])
                o = out[start : start + n]
                K.matmul(A, False, params[f"W{L}"], True, o)
                o += params[f"b{L}"]
        return out

    def loss_and_grads(self, params, X, Y, grads, buffers=None, optimizer=None, rng=None):
        """Mean cross-entropy (plus the L2 penalty) of one batch, the gradients of the
        trained layers and, with ``optimizer``, its step.  ``X`` holds the input,
        ``Y`` the one-hot targets; ``rng`` draws the dropout masks.  Returns the
        loss."""
        if buffers is None:
            buffers = {}
        L = len(self.layers)
        n = X.shape[0]
        dtype = params["W0"].dtype
        scale = 1.0 / n
        X, outputs, codes, masks, act_grads = self._train_forward(params, X, buffers, rng)
        WL = params[f"W{L}"]
        G = K.matmul(outputs[-1], False, WL, True,
                     buffer(buffers, "out", (n, WL.shape[0]), dtype))
        G += params[f"b{L}"]
        total = K.call(K.softmax_residual, G, Y, scale)
        # backward, from the output layer down to the first trained layer; the
        # penalty's gradient is added in the optimizer step (or to the gradients
        # when there is no step)
        for l in range(L, self.first_trained - 1, -1):
            W = params[f"W{l}"]
            if self.alpha and optimizer is None:  # a step sums the squares itself
                total += 0.5 * self.alpha * float(np.vdot(W, W))
            G = self._layer_backward(l, params, outputs[l - 1] if l > 0 else X, G,
                                     outputs[l] if l < L else None,
                                     codes[l] if l < L else None,
                                     masks[l] if l < L else None,
                                     act_grads[l] if l < L else None, grads, buffers)
        l2 = self.alpha * scale
        weights = {f"W{l}": l2 for l in range(L + 1)}
        if optimizer is not None:
            # the penalty's part of the loss: the weights' squares before the step
            squares = optimizer.update(params, grads, self.trained_names(), optimizer.tick(),
                                       l2=weights)
            total += 0.5 * self.alpha * squares
        elif self.alpha:
            for name in self.trained_names():
                if name in weights:
                    grads[name] += l2 * params[name]
        return total * scale

    def _train_forward(self, params, X, buffers, rng):
        """The training forward pass of the hidden layers: the input after input
        dropout, every layer's output, the compact code of the top-k layers, the
        dropout masks and the activations' gradients read before the masks."""
        n = X.shape[0]
        dtype = params["W0"].dtype
        outputs, codes, masks, act_grads = [], [], [], []
        if self.input_dropout:
            mask = dropout_mask(buffer(buffers, "Xdrop", X.shape, dtype), self.input_dropout,
                                rng)
            X = np.multiply(X, mask, out=mask)
        A = X
        for l in range(len(self.layers)):
            units = params[f"W{l}"].shape[0]
            A, kl = self._layer_forward(l, params, A, buffer(buffers, f"Z{l}", (n, units),
                                                             dtype))
            code = None
            if kl is not None:
                idx = buffer(buffers, f"idx{l}", (n, kl), np.int64)
                vals = buffer(buffers, f"vals{l}", (n, kl), dtype)
                K.call(K.topk_rows_dense, A, params[f"b{l}"], kl, self.layers[l][0], idx,
                       vals)
                code = (idx, vals)
            grad = None
            mask = None
            if self.dropout:
                # act'() reads the output before dropout; the mask scales both the
                # output and, in the backward pass, its gradient
                if code is None and l >= self.first_trained:
                    grad = activation_grad_dense(A, self.layers[l][0])
                mask = dropout_mask(buffer(buffers, f"mask{l}", A.shape, dtype), self.dropout,
                                    rng)
                A *= mask
            masks.append(mask)
            act_grads.append(grad)
            outputs.append(A)
            codes.append(code)
        return X, outputs, codes, masks, act_grads

    def _layer_backward(self, l, params, A_in, G, out, code, mask, act_grad, grads, buffers):
        """Layer l's gradients from G, the gradient of its output (the logits for the
        output layer); returns the gradient of its input (G itself at the first
        trained layer, where the backward stops)."""
        W = params[f"W{l}"]
        n = G.shape[0]
        dtype = W.dtype
        if code is None:
            if l < len(self.layers):  # dense hidden layer: G holds dL/dH; make it dL/dZ
                if mask is not None:
                    G *= mask
                    if act_grad is not None:
                        G *= act_grad
                else:
                    mul_activation_grad(G, out, self.layers[l][0])
            K.matmul(G, True, A_in, False, grads[f"W{l}"])
            K.call(K.column_sums, G, grads[f"b{l}"])
            if l > self.first_trained:
                G = K.matmul(G, False, W, False,
                             buffer(buffers, f"dA{l}", (n, W.shape[1]), dtype))
            return G
        # top-k layer: the backward runs over the compact code
        idx, vals = code
        kl = idx.shape[1]
        indptr, pos = K.units_index(idx, W.shape[0])
        dz = buffer(buffers, f"dz{l}", (n, kl), dtype)
        if mask is not None:
            G *= mask
        K.call(K.topk_unit_grads, indptr, pos, kl, vals, G, A_in, self.layers[l][0],
               grads[f"W{l}"], grads[f"b{l}"], dz)
        if l > self.first_trained:
            G = buffer(buffers, f"dA{l}", (n, W.shape[1]), dtype)
            K.call(K.compact_matmul, idx, dz, W, G)
        return G

    # ------------------------------------------------------------------ training
    def batches(self, params, X, Y):
        """Start an epoch over (X, Y): returns ``gather(rows, rng, buffers)``, which
        gives :meth:`train_batch` the batch of those rows as (input, one-hot
        targets)."""
        dtype = params["W0"].dtype
        rows_of = BatchRows(X, dtype)

        def gather(rows, rng, buffers):
            return rows_of(rows, buffers), np.asarray(Y[rows], dtype=dtype, order="C")

        return gather

    def train_batch(self, params, batch, grads, buffers, optimizer, rng):
        """Loss, gradients and step of one gathered batch."""
        X, Y = batch
        return self.loss_and_grads(params, X, Y, grads, buffers, optimizer, rng)
