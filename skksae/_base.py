"""The estimator base class shared by the autoencoders: fit, partial_fit, transform."""

import warnings
from collections import namedtuple
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _centre, _optim, _training
from ._networks import AutoencoderNet, copy_state, init_params
from ._networks._common import activate_dense
from ._training import TRAINING_CONSTRAINTS, StopRule, keep_state_on_error

_FLOATS = [np.float64, np.float32]

EncoderLayer = namedtuple("EncoderLayer", "activation k W b threshold")
EncoderLayer.__doc__ = """A fitted autoencoder's encoder as one layer of a network:
``activation`` ("linear", "relu" or "sigmoid"), ``k`` (units kept per sample; None:
all), and the weights ``W`` of shape (n_components, n_features) and bias ``b`` with the
input mean folded in (``h = act(select_k(x W^T + b))`` on the data as it is; None
for an unfitted autoencoder).  ``threshold`` is a batch top-k model's: ``transform``
keeps every activation above it instead of a top-k (None otherwise)."""


class _BaseAutoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class: everything but the architecture choices lives here.

    Subclasses define ``_network_options(fitted)`` (the network's activation, loss,
    corruption and top-k options), the hidden layer's ``_train_k(epoch)`` and
    ``_transform_k()``, ``_init_std(n_features)`` and ``_check_data(X)`` for
    model-specific input checks; they may override ``_schedule_end()`` (a k
    schedule), ``_dead_window(n_samples)`` and ``_commit_network(network)`` (what a
    fit keeps of the trained network).
    """

    _parameter_constraints: dict = {
        **TRAINING_CONSTRAINTS,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "center": ["boolean", StrOptions({"mean", "geometric_median"})],
        "tied_weights": ["boolean"],
        "sparse_output": ["boolean"],
    }

    # ---------------------------------------------------------------- helpers
    def _make_network(self, mean, tied=None, fitted=False):
        """The network for the current parameters and an input ``mean`` (None: no
        centring); ``tied`` defaults to the parameter (fitting) and is the fitted
        model's own structure when encoding or decoding; ``fitted`` asks for the
        fitted model's network (:meth:`_network_options`)."""
        return AutoencoderNet(
            tied=self.tied_weights if tied is None else tied,
            mean=mean,
            **self._network_options(fitted),
        )

    def _fitted_network(self):
        """The network of the fitted model, for encoding, decoding and scoring."""
        return self._make_network(self.mean_, self._fitted_tied(), fitted=True)

    def _make_optimizer(self, state):
        return _optim.make_optimizer(self.solver, self.learning_rate, self.momentum, state)

    def _encoder_layer(self, dtype=None, k="transform"):
        """The encoder as one layer of a network (an :class:`EncoderLayer`): what
        :class:`~skksae.AutoencoderClassifier` stacks, and what an exporter reads.

        ``k`` is "transform" (the units :meth:`transform` keeps) or "train" (the
        training ``k``); a ``k`` that keeps every unit is None.  ``W`` and ``b`` are
        the fitted weights in ``dtype`` (default: the fitted dtype) with the input
        mean folded into ``b``; None when the model is not fitted."""
        kept = self._transform_k() if k == "transform" else self._train_k(None)
        if kept is not None and kept >= self.n_components:
            kept = None
        if not hasattr(self, "components_"):
            return EncoderLayer(self.activation, kept, None, None, None)
        dtype = self.components_.dtype if dtype is None else dtype
        network = self._fitted_network()
        folded = network.inference_params(self._params_as(dtype))
        return EncoderLayer(self.activation, kept, np.array(folded["W"], dtype=dtype, order="C"),
                            np.array(folded["b"], dtype=dtype), network.threshold)

    def _validate_X(self, X, reset):
        X = validate_data(
            self,
            X,
            accept_sparse=("csr", "csc"),
            dtype=_FLOATS,
            reset=reset,
            ensure_min_samples=1,
        )
        if sp.issparse(X):
            X = X.tocsr()
        return X

    def _check_params(self):
        """Parameter checks that the constraints cannot express.

        A ``k`` above ``n_components`` keeps every unit, with a warning, as
        :class:`~sklearn.feature_selection.SelectKBest` does for a ``k`` above the
        number of features."""
        k = self._train_k(None)
        if k is not None and k > self.n_components:
            warnings.warn(
                f"k={k} is greater than n_components={self.n_components}: every hidden "
                "unit is kept (no sparsity).",
                UserWarning,
            )

    def _center_kind(self):
        """What ``center`` asks for: None, "mean" or "geometric_median"."""
        if isinstance(self.center, str):
            return self.center
        return "mean" if self.center else None

    def _input_mean(self, X, dtype):
        """The centre of X that ``center`` asks for (computed in float64, returned in
        ``dtype``): the mean of each feature or the geometric median of the rows; None
        without centring."""
        kind = self._center_kind()
        if kind is None:
            return None
        if kind == "mean":
            return _centre.column_means(X).astype(dtype)
        median, converged = _centre.geometric_median(X)
        if not converged:
            warnings.warn(
                "The geometric median's Weiszfeld iteration did not converge; its last "
                "estimate is used as the centre.",
                ConvergenceWarning,
            )
        return median.astype(dtype)

    def _fitted_tied(self):
        """Whether the fitted model shares its decoder with its encoder (whatever
        ``tied_weights`` says now, after a later ``set_params``)."""
        return self.decoder_components_ is self.components_

    def _params(self):
        params = {"W": self.components_, "b": self.intercept_hidden_, "c": self.intercept_visible_}
        if not self._fitted_tied():
            params["D"] = self.decoder_components_
        return params

    def _params_as(self, dtype):
        return {
            name: np.ascontiguousarray(p, dtype=dtype) for name, p in self._params().items()
        }

    def _commit(self, params, opt, rng, mean, n_samples_seen, since):
        self.mean_ = mean
        self._fitted_center = self._center_kind()
        self._samples_since_fired = since
        self.n_samples_seen_ = n_samples_seen
        self.components_ = params["W"]
        self.intercept_hidden_ = params["b"]
        self.intercept_visible_ = params["c"]
        self.decoder_components_ = params["W"] if self.tied_weights else params["D"]
        self._optimizer_state = opt
        self._random_state = rng
        self._n_features_out = self.components_.shape[0]

    def _fresh_state(self, n_features, dtype, rng, unit_norm):
        params = init_params(
            rng,
            self.n_components,
            n_features,
            dtype,
            self.tied_weights,
            self._init_std(n_features),
            unit_norm=unit_norm,
        )
        return params, self._make_optimizer(None).add_slots(params, params)

    def _can_continue(self):
        """True when the fitted state can be trained further with the current params."""
        return (
            hasattr(self, "components_")
            and self.components_.shape[0] == self.n_components
            and self._fitted_tied() == self.tied_weights
            and self._fitted_center == self._center_kind()
            and set(self._optimizer_state)
            == set(_optim.state_keys(self.solver, self._params()))
        )

    def _learning_rate(self, epoch):
        """The step size of a (0-based) epoch: ``learning_rate``, and with the "linear"
        schedule, from the end of the sparsity schedule on, lowered linearly so that
        epoch ``max_iter - 1`` runs at ``learning_rate / (max_iter - end)``; later
        epochs (``partial_fit``, ``warm_start``) keep that last rate."""
        end = self._schedule_end()
        if self.learning_rate_schedule == "constant" or epoch < end:
            return self.learning_rate
        remaining = max(self.max_iter - epoch, 1)
        return self.learning_rate * remaining / max(self.max_iter - end, 1)

    def _recentred(self, params, new_mean):
        """Fitted ``params`` moved to a new input mean (``recentre``), in place."""
        if new_mean is not None:
            cross_entropy = self._network_options()["loss"] == "cross_entropy"
            _centre.recentre(params, self.mean_, new_mean, cross_entropy)
        return params

    def _since_fired(self):
        """A copy of the fitted count of training samples since each unit was last
        selected."""
        return self._samples_since_fired.copy()

    # ------------------------------------------------------------------- API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the autoencoder to X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. Sparse input is densified one mini-batch at a time.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return keep_state_on_error(self, self._fit, X, False)

    def _fit(self, X, incremental):
        """:meth:`fit` (``incremental=False``: ``max_iter`` epochs, from the fitted
        state with ``warm_start``) and :meth:`partial_fit` (one epoch, from the fitted
        state)."""
        fitted = hasattr(self, "components_")
        if incremental and fitted:
            # scikit-learn's _fit_context skips the constraints once the estimator is
            # fitted; a parameter changed by set_params since would go unchecked, and
            # one check costs nothing beside an epoch
            self._validate_params()
        self._check_params()
        if incremental and fitted and not self._can_continue():
            raise ValueError(
                "partial_fit cannot continue: n_components, tied_weights, solver or "
                "center changed since the model was fitted. Call fit to start again."
            )
        continuing = fitted and (incremental or (self.warm_start and self._can_continue()))
        X = self._validate_X(X, reset=not continuing)
        self._check_data(X)
        if continuing:
            params, optimizer, rng, mean, n_seen = self._continued(X, incremental)
            loss_curve, since = list(self.loss_curve_), self._since_fired()
            network = self._make_network(mean)
        else:
            mean = self._input_mean(X, X.dtype)
            rng = check_random_state(self.random_state)
            network = self._make_network(mean)
            params, optimizer = self._fresh_state(X.shape[1], X.dtype, rng, network.unit_norm)
            loss_curve, n_seen = [], X.shape[0]
            since = np.zeros(self.n_components, dtype=np.int64)
        network.since = since
        network.dead_window = dead_window = self._dead_window(X.shape[0])

        def one_epoch(epoch):
            network.k = self._train_k(epoch)
            optimizer.learning_rate = self._learning_rate(epoch)
            loss = _training.run_epoch(network, params, optimizer, X,
                                       batch_size=self.batch_size, shuffle=self.shuffle,
                                       rng=rng)
            kk = "all" if network.k is None else network.k
            return loss, f", k = {kk}, learning rate = {optimizer.learning_rate:.3g}"

        stop = None if incremental else StopRule(self.tol, self.n_iter_no_change)
        _training.train(self, one_epoch, loss_curve, 1 if incremental else self.max_iter,
                        stop=stop, patience_from=self._schedule_end())
        self._commit(params, optimizer.state, rng, mean, n_seen, since)
        self._commit_network(network)
        self.n_iter_ = len(loss_curve)  # with warm_start, epochs of earlier fits count too
        self.loss_curve_ = loss_curve
        self.n_dead_units_ = int(np.count_nonzero(since >= dead_window))
        return self

    def _continued(self, X, incremental):
        """The fitted state to train further on X: (params, optimizer, rng, mean,
        samples seen).  :meth:`partial_fit` goes on with a copy of the fitted
        generator and a running centre; :meth:`fit` (``warm_start``) draws from
        ``random_state`` again and centres on this X."""
        if incremental:
            rng = np.random.RandomState()
            # a copy of the generator, so that a failure leaves ours untouched
            rng.set_state(self._random_state.get_state())
            n_seen = self.n_samples_seen_ + X.shape[0]
            mean = self._running_centre(X, n_seen)
        else:
            rng = check_random_state(self.random_state)
            n_seen = X.shape[0]
            mean = self._input_mean(X, self.components_.dtype)
        params = self._recentred(copy_state(self._params()), mean)
        optimizer = self._make_optimizer(copy_state(self._optimizer_state))
        return params, optimizer, rng, mean, n_seen

    def _running_centre(self, X, n_seen):
        """The centre after a :meth:`partial_fit` chunk X, ``n_seen`` samples in all."""
        if self._center_kind() == "geometric_median":
            # no running update: the first call's centre is kept (the decoder bias
            # learns from there)
            return self.mean_
        if not self.center:
            return None
        # the running mean of every sample seen, as IncrementalPCA keeps it;
        # unchanged, bit for bit, by a chunk whose mean equals it
        old = self.mean_.astype(np.float64)
        chunk = self._input_mean(X, self.mean_.dtype).astype(np.float64)
        return (old + (chunk - old) * (X.shape[0] / n_seen)).astype(self.mean_.dtype)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train for one pass over X in mini-batches.

        The first call initialises the model; each later call continues from the
        current state, so X can be one chunk of a dataset too large for memory.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return keep_state_on_error(self, self._fit, X, True)

    def transform(self, X):
        """Encode X: the hidden codes, with at most the transform k nonzeros per row.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        H : {ndarray, sparse matrix} of shape (n_samples, n_components)
            The codes; a CSR matrix when ``sparse_output=True``.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        params = self._params_as(X.dtype)
        return self._fitted_network().encode(
            params, X, self._transform_k(), sparse_output=self.sparse_output
        )

    def inverse_transform(self, X):
        """Decode codes back to the input space.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_components)
            Codes, such as the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            The reconstruction.
        """
        check_is_fitted(self)
        H = self._validate_codes(X)
        return self._fitted_network().decode(self._params_as(H.dtype), H)

    def _validate_codes(self, H):
        H = check_array(H, accept_sparse=("csr", "csc"), dtype=_FLOATS)
        if H.shape[1] != self.components_.shape[0]:
            raise ValueError(
                f"The codes have {H.shape[1]} columns, but this model has "
                f"{self.components_.shape[0]} hidden units."
            )
        return H

    def reconstruction_metrics(self, X):
        """What top-k autoencoder users report, on X (new data or the training data).

        X is encoded with the training ``k`` (as :meth:`score` does) and decoded.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode and reconstruct.

        Returns
        -------
        metrics : dict
            ``"fvu"``: fraction of variance unexplained, the summed squared error of
            the reconstruction over the summed squared deviation of X from its own
            mean (the normalised MSE; 0 is perfect, 1 is as good as predicting the
            mean); ``"mse"``: mean squared error per entry; ``"l0"``: mean number
            of nonzero units per sample; ``"dead_fraction"``: fraction of units that
            no sample of X selects.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        self._check_data(X)
        network = self._fitted_network()
        params = network.inference_params(self._params_as(X.dtype))
        k = self._train_k(None)
        mean = _centre.column_means(X)
        sse = sst = 0.0
        nnz = 0
        used = np.zeros(self.components_.shape[0], dtype=bool)
        chunk_size = 4096
        for start in range(0, X.shape[0], chunk_size):
            chunk = X[start : start + chunk_size]
            H = network.encode_folded(params, chunk, k, sparse_output=True)
            nnz += H.nnz
            used[H.indices] = True
            X_hat = activate_dense(network.decoder_input(params, H), network.out_activation)
            target = chunk.toarray() if sp.issparse(chunk) else np.asarray(chunk)
            sse += float(np.sum((target - X_hat) ** 2, dtype=np.float64))
            sst += float(np.sum((target - mean) ** 2, dtype=np.float64))
        if sst > 0:
            fvu = sse / sst
        else:  # constant data: only a perfect reconstruction explains it
            fvu = 0.0 if sse == 0 else np.inf
        return {"fvu": fvu, "mse": sse / (X.shape[0] * X.shape[1]), "l0": nnz / X.shape[0],
                "dead_fraction": 1.0 - float(used.mean())}

    def score(self, X, y=None):
        """Negative mean reconstruction loss of X (higher is better).

        The loss is the training objective: per sample, half the summed squared
        error for a linear decoder, or the summed cross-entropy for a sigmoid
        decoder, with the training ``k``; X is not corrupted.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to reconstruct.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Minus the mean per-sample reconstruction loss.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        self._check_data(X)
        return -self._fitted_network().loss(self._params_as(X.dtype), X, self._train_k(None))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ---------------------------------------------------------- for subclasses
    def _schedule_end(self):
        """First epoch index from which the training k no longer changes."""
        return 0

    def _dead_window(self, n_samples):
        """Samples without being selected after which a unit counts as dead:
        ``n_samples``, the training data of the call (an epoch)."""
        return n_samples

    def _commit_network(self, network):
        """Keep what the model needs of the network it has just trained (nothing
        here)."""

    def _check_data(self, X):
        """Model-specific checks on validated training data; raise ValueError."""


def fit_greedily(layers, X, fit_layer=None):
    """Greedy layer-wise pretraining, in place: each unfitted autoencoder of
    ``layers`` is fitted, from the input up, on the clean codes of the layer below
    (``fit_layer(i, layer, codes)``; default ``layer.fit(codes)``); a fitted one is
    kept as it is, once its input width is checked.  Returns ``layers``."""
    codes = X
    for i, layer in enumerate(layers):
        if hasattr(layer, "components_"):
            if layer.n_features_in_ != codes.shape[1]:
                raise ValueError(
                    f"Autoencoder {i} was fitted on {layer.n_features_in_} features, but "
                    f"its input has {codes.shape[1]}."
                )
        elif fit_layer is None:
            layer.fit(codes)
        else:
            fit_layer(i, layer, codes)
        if i + 1 < len(layers):
            codes = layer.transform(codes)
    return layers
