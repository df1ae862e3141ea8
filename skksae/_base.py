"""The estimator base class shared by the autoencoders: fit, partial_fit, transform."""

import time
import warnings
from numbers import Integral, Real

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

from . import _engine, _progress

_FLOATS = [np.float64, np.float32]


def keep_state_on_error(estimator, method, *args):
    """Run ``method(*args)``; if it raises, put every attribute of ``estimator`` back
    as it was, so that bad input or a diverging run leaves a fitted model intact."""
    saved = dict(estimator.__dict__)
    try:
        return method(*args)
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise


def warn_not_converged(max_iter):
    """The ConvergenceWarning of a stochastic optimizer stopped by ``max_iter``
    (MLPClassifier's wording)."""
    warnings.warn(
        f"Stochastic optimizer: maximum iterations ({max_iter}) reached and the "
        "optimization hasn't converged yet.",
        ConvergenceWarning,
    )


# The constraints of the training options every estimator on the engine shares
# (the autoencoders and the classifier).
TRAINING_CONSTRAINTS = {
    "solver": [StrOptions({"sgd", "adam"})],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "learning_rate_schedule": [StrOptions({"constant", "linear"})],
    "momentum": [Interval(Real, 0, 1, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "shuffle": ["boolean"],
    "warm_start": ["boolean"],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


class _BaseAutoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class: everything but the architecture choices lives here.

    Subclasses define ``_engine_options()`` (activation, loss, corruption), the hidden
    layer's ``_train_k(epoch)`` and ``_transform_k()``, ``_init_std(n_features)`` and
    ``_check_data(X)`` for model-specific input checks.
    """

    _parameter_constraints: dict = {
        **TRAINING_CONSTRAINTS,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "center": ["boolean", StrOptions({"mean", "geometric_median"})],
        "tied_weights": ["boolean"],
        "sparse_output": ["boolean"],
    }

    # ---------------------------------------------------------------- helpers
    def _make_engine(self, mean, tied=None):
        """The engine for the current parameters and an input ``mean`` (None: no
        centring); ``tied`` defaults to the parameter (fitting) and is the fitted
        model's own structure when encoding or decoding."""
        return _engine.Engine(
            tied=self.tied_weights if tied is None else tied,
            solver=self.solver,
            learning_rate=self.learning_rate,
            momentum=self.momentum,
            mean=mean,
            **self._engine_options(),
        )

    def _fitted_engine(self):
        """The engine of the fitted model, for encoding, decoding and scoring."""
        return self._make_engine(self.mean_, self._fitted_tied())

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
        k = getattr(self, "k", None)
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
            return _engine.column_means(X).astype(dtype)
        median, converged = _engine.geometric_median(X)
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

    def _fresh_state(self, n_features, dtype, rng):
        params = _engine.init_params(
            rng,
            self.n_components,
            n_features,
            dtype,
            self.tied_weights,
            self._init_std(n_features),
            unit_norm=getattr(self, "normalize_decoder", False),
        )
        return params, _engine.init_optimizer(params, self.solver)

    def _can_continue(self):
        """True when the fitted state can be trained further with the current params."""
        return (
            hasattr(self, "components_")
            and self.components_.shape[0] == self.n_components
            and self._fitted_tied() == self.tied_weights
            and getattr(self, "_fitted_center", "mean" if self.mean_ is not None else None)
            == self._center_kind()
            and set(self._optimizer_state)
            == set(_engine.optimizer_keys(self._params(), self.solver))
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
            cross_entropy = self._engine_options()["loss"] == "cross_entropy"
            _engine.recentre(params, self.mean_, new_mean, cross_entropy)
        return params

    def _commit_threshold(self, engine):
        """``threshold_`` of a model with a ``batch_topk`` option: the mean of the
        smallest activation each batch of the last epoch kept (None without batch
        top-k)."""
        if not hasattr(self, "batch_topk"):
            return
        minima = engine.batch_minima if self.batch_topk else None
        self.threshold_ = float(np.mean(minima)) if minima else None

    def _since_fired(self):
        """A copy of the fitted count of training samples since each unit was last
        selected (zeros for a model fitted before the count was kept)."""
        since = getattr(self, "_samples_since_fired", None)
        if since is None or since.shape != (self.components_.shape[0],):
            return np.zeros(self.components_.shape[0], dtype=np.int64)
        return since.copy()

    def _dead_window(self, n_samples):
        """Samples without being selected after which a unit counts as dead:
        ``dead_window`` where the model has one and it is set, else ``n_samples``
        (the training data of the call: an epoch)."""
        window = getattr(self, "dead_window", None)
        return n_samples if window is None else window

    def _epoch(self, engine, params, opt, X, epoch, rng, n_epochs, since):
        """Training epoch ``epoch`` (0-based, the schedule's index) of the
        ``n_epochs`` this call may reach; reported to :mod:`._progress`.  ``since``
        counts the samples since each unit was last selected (updated in place)."""
        loss, counts = self._run_epoch(engine, params, opt, X, epoch, rng, since)
        _progress.epoch_done(self, epoch + 1, n_epochs)
        return loss, counts

    def _run_epoch(self, engine, params, opt, X, epoch, rng, since):
        k = self._train_k(epoch)
        engine.learning_rate = self._learning_rate(epoch)
        engine.dead_window = self._dead_window(X.shape[0])
        t0 = time.perf_counter()
        loss, counts = engine.run_epoch(
            params, opt, X, k, self.batch_size, self.shuffle, rng, since=since
        )
        if self.verbose:
            kk = "all" if k is None else k
            print(
                f"Iteration {epoch + 1}, loss = {loss:.8f}, k = {kk}, "
                f"learning rate = {engine.learning_rate:.3g}, "
                f"time = {time.perf_counter() - t0:.2f}s"
            )
        return loss, counts

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
        return keep_state_on_error(self, self._fit, X)

    def _fit(self, X):
        self._check_params()
        continuing = self.warm_start and self._can_continue()
        X = self._validate_X(X, reset=not continuing)
        self._check_data(X)
        if continuing:
            dtype = self.components_.dtype
            mean = self._input_mean(X, dtype)
            params = self._recentred(_engine.copy_state(self._params_as(dtype)), mean)
            opt = _engine.copy_state(self._optimizer_state)
            rng = check_random_state(self.random_state)
            loss_curve = list(self.loss_curve_)
            since = self._since_fired()
        else:
            dtype = X.dtype
            mean = self._input_mean(X, dtype)
            rng = check_random_state(self.random_state)
            params, opt = self._fresh_state(X.shape[1], dtype, rng)
            loss_curve = []
            since = np.zeros(self.n_components, dtype=np.int64)
        engine = self._make_engine(mean)
        start_epoch = len(loss_curve) if continuing else 0
        best, no_improvement, stopped = np.inf, 0, False
        schedule_end = self._schedule_end()
        for epoch in range(self.max_iter):
            loss, counts = self._epoch(engine, params, opt, X, start_epoch + epoch, rng,
                                       start_epoch + self.max_iter, since)
            loss_curve.append(loss)
            if start_epoch + epoch + 1 < schedule_end:
                continue  # k is still decreasing: the loss is expected to rise
            if loss > best - self.tol:
                no_improvement += 1
            else:
                no_improvement = 0
            best = min(best, loss)
            if no_improvement >= self.n_iter_no_change:
                stopped = True
                if self.verbose:
                    print(
                        f"Training loss did not improve more than tol={self.tol} for "
                        f"{self.n_iter_no_change} consecutive epochs. Stopping."
                    )
                break
        self._commit(params, opt, rng, mean, X.shape[0], since)
        self._commit_threshold(engine)
        self.n_iter_ = len(loss_curve)  # with warm_start, epochs of earlier fits count too
        self.loss_curve_ = loss_curve
        self.n_dead_units_ = int(np.count_nonzero(since >= self._dead_window(X.shape[0])))
        if not stopped:
            warn_not_converged(self.max_iter)
        return self

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
        return keep_state_on_error(self, self._partial_fit, X)

    def _partial_fit(self, X):
        first = not hasattr(self, "components_")
        if not first:
            # scikit-learn's _fit_context skips the constraints once the estimator is
            # fitted; a parameter changed by set_params since would go unchecked, and
            # one check costs nothing beside an epoch
            self._validate_params()
        self._check_params()
        if not first and not self._can_continue():
            raise ValueError(
                "partial_fit cannot continue: n_components, tied_weights, solver or "
                "center changed since the model was fitted. Call fit to start again."
            )
        X = self._validate_X(X, reset=first)
        self._check_data(X)
        if first:
            mean = self._input_mean(X, X.dtype)
            rng = check_random_state(self.random_state)
            params, opt = self._fresh_state(X.shape[1], X.dtype, rng)
            n_iter, loss_curve, n_seen = 0, [], X.shape[0]
            since = np.zeros(self.n_components, dtype=np.int64)
        else:
            rng = self._random_state
            n_seen = self.n_samples_seen_ + X.shape[0]
            mean = None
            if self._center_kind() == "geometric_median":
                # no running update: the first call's centre is kept (the decoder bias
                # learns from there)
                mean = self.mean_
            elif self.center:
                # the running mean of every sample seen, as IncrementalPCA keeps it;
                # unchanged, bit for bit, by a chunk whose mean equals it
                old = self.mean_.astype(np.float64)
                chunk = self._input_mean(X, self.mean_.dtype).astype(np.float64)
                mean = (old + (chunk - old) * (X.shape[0] / n_seen)).astype(self.mean_.dtype)
            params = self._recentred(_engine.copy_state(self._params()), mean)
            opt = _engine.copy_state(self._optimizer_state)
            n_iter, loss_curve = self.n_iter_, list(self.loss_curve_)
            since = self._since_fired()
            # keep a copy of the generator so that a failure leaves ours untouched
            rng_state = rng.get_state()
            rng = np.random.RandomState()
            rng.set_state(rng_state)
        engine = self._make_engine(mean)
        loss, counts = self._epoch(engine, params, opt, X, n_iter, rng, n_iter + 1, since)
        self._commit(params, opt, rng, mean, n_seen, since)
        self._commit_threshold(engine)
        self.n_iter_ = n_iter + 1
        self.loss_curve_ = loss_curve + [loss]
        self.n_dead_units_ = int(np.count_nonzero(since >= self._dead_window(X.shape[0])))
        return self

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
        return self._fitted_engine().encode(
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
        return self._fitted_engine().decode(self._params_as(H.dtype), H)

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
        engine = self._fitted_engine()
        params = engine.inference_params(self._params_as(X.dtype))
        k = self._train_k(None)
        mean = _engine.column_means(X)
        sse = sst = 0.0
        nnz = 0
        used = np.zeros(self.components_.shape[0], dtype=bool)
        chunk_size = 4096
        for start in range(0, X.shape[0], chunk_size):
            chunk = X[start : start + chunk_size]
            H = engine._encode(params, chunk, k, sparse_output=True)
            nnz += H.nnz
            used[H.indices] = True
            X_hat = _engine._activate_dense(engine._decoder_input(params, H),
                                            engine.out_activation)
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
        engine = self._fitted_engine()
        return -engine.loss(self._params_as(X.dtype), X, self._train_k(None))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ---------------------------------------------------------- for subclasses
    def _schedule_end(self):
        """First epoch index from which the training k no longer changes."""
        return 0

    def _check_data(self, X):
        """Model-specific checks on validated training data; raise ValueError."""
