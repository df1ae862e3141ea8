"""A deep classifier initialised from a stack of autoencoders, then fine-tuned."""

import copy
from numbers import Real

import numpy as np
import scipy.sparse as sp
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _labels, _optim, _training
from ._base import _FLOATS, _BaseAutoencoder, fit_greedily
from ._ksparse import KSparseAutoencoder
from ._networks import StackNet, copy_state
from ._networks._common import glorot_uniform
from ._training import TRAINING_CONSTRAINTS, StopRule, keep_state_on_error


class AutoencoderClassifier(ClassifierMixin, BaseEstimator):
    """Deep classifier pretrained layer by layer as a stack of autoencoders, then
    fine-tuned by backpropagation.

    Each autoencoder of ``autoencoders`` becomes one hidden layer (its encoder), and
    a softmax output layer goes on top. :meth:`fit` first pretrains the
    autoencoders greedily, each on the clean codes of the layer below (a denoising
    layer corrupts only its own input while it trains), then trains the whole
    network on the cross-entropy of the labels (Hinton et al. 2006; Vincent et al.
    2010; Makhzani & Frey 2014). A k-sparse layer keeps its top-k selection in the
    network, and its backward pass runs over the k kept units only.

    The same network from random weights (the papers' baseline) is
    ``pretrain=False``; pretraining followed by training the output layer alone
    (frozen features) is ``fine_tune=False``.

    Rows labelled ``-1`` are unlabelled, as in :mod:`sklearn.semi_supervised`: the
    autoencoders are pretrained on every row, and (``pseudo_label_threshold``) the
    network is trained on the labelled rows and on the unlabelled rows it classifies
    confidently; ``classes_`` leaves the marker out.

    Parameters
    ----------
    autoencoders : list of KSparseAutoencoder or DenoisingAutoencoder, default=None
        The hidden layers, from the input up; any mix of the two kinds, fitted or
        not. Each is cloned (``autoencoders_``); a fitted one keeps its weights and
        is not pretrained again, so a stack pretrained once can be fine-tuned
        under several settings. None means ``[KSparseAutoencoder()]``. A layer's
        ``random_state``, when None, is drawn from ``random_state``.

    pretrain : bool, default=True
        Whether to pretrain the unfitted autoencoders (and start from the weights of
        the fitted ones). If False, every hidden layer starts from random weights of
        the same shape (Glorot-uniform, as
        :class:`~sklearn.neural_network.MLPClassifier` initialises), keeping each
        layer's activation and top-k.

    fine_tune : bool, default=True
        Whether backpropagation trains the hidden layers too. If False only the
        output layer is trained, on the frozen codes of the stack.

    fine_tune_k : {"transform", "train"}, default="transform"
        The top-k of a :class:`KSparseAutoencoder` layer inside the network:
        "transform" keeps ``round(transform_k_factor * k)`` units (what the layer's
        :meth:`~KSparseAutoencoder.transform` keeps, and what the layer above was
        pretrained on), "train" keeps ``k``.

    alpha : float, default=1e-4
        Strength of the L2 penalty on the weights, as in
        :class:`~sklearn.neural_network.MLPClassifier`.

    dropout : float in [0, 1), default=0.0
        Probability of dropping each hidden unit during training (inverted dropout:
        the kept units are scaled by ``1 / (1 - dropout)``; prediction uses every
        unit). In a top-k layer the units are dropped after the selection.

    input_dropout : float in [0, 1), default=0.0
        Probability of dropping each input feature during training, in the same
        way (the dropout paper's 0.2 with ``dropout=0.5`` is a common pair).

    solver : {"adam", "sgd"}, default="adam"
        Optimizer of the fine-tuning: Adam, or mini-batch SGD with momentum.

    learning_rate : float, default=1e-3
        Step size of the fine-tuning.

    learning_rate_schedule : {"constant", "linear"}, default="constant"
        "linear" lowers the step size linearly over the ``max_iter`` epochs of each
        :meth:`fit`, so that its last epoch runs at ``learning_rate / max_iter``
        (the autoencoders' schedule of the same name); :meth:`partial_fit` runs
        epoch ``n_iter_`` of the schedule, and keeps the last rate after
        ``max_iter`` epochs.

    momentum : float in [0, 1), default=0.9
        Momentum of the "sgd" solver.

    batch_size : int, default=128
        Samples per mini-batch of the fine-tuning (capped at the number of samples).

    max_iter : int, default=200
        Maximum number of fine-tuning epochs in :meth:`fit`.

    tol : float, default=1e-4
        Training stops when the loss (or, with ``early_stopping``, the validation
        accuracy) has not improved by at least ``tol`` for ``n_iter_no_change``
        consecutive epochs.

    n_iter_no_change : int, default=10
        See ``tol``.

    early_stopping : bool, default=False
        Set aside ``validation_fraction`` of the training data (stratified), score
        it after each epoch, stop as ``tol`` says and keep the weights of the best
        epoch. The split is drawn from the labelled rows; the autoencoders are
        pretrained on the rest (and the unlabelled rows). :meth:`fit` only;
        :meth:`partial_fit` ignores it, as in ``MLPClassifier``.

    validation_fraction : float in (0, 1), default=0.1
        Fraction of the training data set aside with ``early_stopping``.

    pseudo_label_threshold : float in [0, 1) or None, default=0.9
        What :meth:`fit` does with rows labelled ``-1`` besides pretraining on them:
        pseudo-labels (Lee 2013), with the confidence threshold of
        :class:`~sklearn.semi_supervised.SelfTrainingClassifier`. The output layer is
        first trained alone on the labelled rows (the frozen codes' classifier),
        until the stop rule or ``max_iter`` epochs; then the network, for up to
        ``max_iter`` epochs, on the labelled rows and on every unlabelled row whose
        predicted class has a probability of at least ``pseudo_label_threshold``,
        that class as its target. The predictions are made again before each epoch,
        on the clean rows. Each epoch visits those unlabelled rows once and the
        labelled rows ``max(1, round(n_unlabelled / (6 * n_labelled)))`` times (the
        warm-up's epochs too), so that the labels keep their weight however few
        they are. None: the
        unlabelled rows are used for pretraining only, as by :meth:`partial_fit`.
        Without unlabelled rows this parameter changes nothing. With many
        unlabelled images, pseudo-labels pay most with dropout (the user guide's
        "Few labels").

    shuffle : bool, default=True
        Whether to shuffle the samples in each epoch.

    warm_start : bool, default=False
        If True, :meth:`fit` continues training the fitted network (same classes,
        layers and solver) instead of starting again. ``fine_tune`` may change in
        between: ``fine_tune=False`` first, then ``fine_tune=True`` with
        ``warm_start=True``, trains the output layer on the frozen codes before
        fine-tuning every layer.

    random_state : int, RandomState instance or None, default=None
        Controls the layers' seeds (when theirs are None), the initialisation, the
        validation split and the shuffling. With an int, the fitted weights are
        bitwise identical for the same data and thread count.

    verbose : int, default=0
        If positive, print the loss after each fine-tuning epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    autoencoders_ : list of estimators
        The fitted autoencoders, as pretraining left them (without
        ``pretrain``: unfitted clones, which give the layers' shapes).

    coefs_ : list of ndarray
        Weights of the hidden layers and of the output layer; ``coefs_[i]`` has
        shape (units in, units out), as in ``MLPClassifier``.

    intercepts_ : list of ndarray
        Biases of the hidden layers and of the output layer.

    hidden_activations_ : list of str
        Activation of each hidden layer.

    hidden_k_ : list of int or None
        Units kept per sample in each hidden layer (None: all).

    n_layers_ : int
        Number of layers, input and output included.

    n_outputs_ : int
        Number of output units.

    out_activation_ : str
        "softmax".

    loss_ : float
        Training loss of the last epoch.

    loss_curve_ : list of float
        Mean training loss (cross-entropy plus the L2 penalty) of each epoch (with
        pseudo-labels, the warm-up epochs of the output layer first).

    best_loss_ : float or None
        Lowest training loss; None with ``early_stopping``.

    validation_scores_ : list of float or None
        Accuracy on the validation split after each epoch (``early_stopping``), but
        the warm-up epochs of ``pseudo_label_threshold``.

    best_validation_score_ : float or None
        Best of ``validation_scores_``.

    n_iter_ : int
        Number of training epochs run (with pseudo-labels, the warm-up included).

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : The same kind of network, without
        pretraining.

    References
    ----------
    .. [1] G. Hinton, S. Osindero and Y.-W. Teh, "A fast learning algorithm for deep
       belief nets", Neural Computation 18, 2006.
    .. [2] P. Vincent et al., "Stacked Denoising Autoencoders", JMLR 11, 2010.
    .. [3] D. Erhan et al., "Why Does Unsupervised Pre-training Help Deep
       Learning?", JMLR 11, 2010.
    .. [4] A. Makhzani and B. Frey, "k-Sparse Autoencoders", ICLR 2014.
    .. [5] D.-H. Lee, "Pseudo-Label: The Simple and Efficient Semi-Supervised
       Learning Method for Deep Neural Networks", ICML 2013 Workshop on
       Challenges in Representation Learning.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import train_test_split
    >>> from skksae import AutoencoderClassifier, KSparseAutoencoder
    >>> X, y = load_digits(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, random_state=0)
    >>> clf = AutoencoderClassifier(
    ...     [KSparseAutoencoder(n_components=64, k=8, max_iter=20)],
    ...     max_iter=30, random_state=0)
    >>> clf.fit(X_train, y_train).score(X_test, y_test) > 0.9
    True
    >>> clf.predict_proba(X_test[:2]).shape
    (2, 10)
    """

    _parameter_constraints: dict = {
        **TRAINING_CONSTRAINTS,
        "autoencoders": [list, tuple, None],
        "pretrain": ["boolean"],
        "fine_tune": ["boolean"],
        "fine_tune_k": [StrOptions({"transform", "train"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "input_dropout": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "pseudo_label_threshold": [Interval(Real, 0, 1, closed="left"), None],
    }

    def __init__(
        self,
        autoencoders=None,
        *,
        pretrain=True,
        fine_tune=True,
        fine_tune_k="transform",
        alpha=1e-4,
        dropout=0.0,
        input_dropout=0.0,
        solver="adam",
        learning_rate=1e-3,
        learning_rate_schedule="constant",
        momentum=0.9,
        batch_size=128,
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        pseudo_label_threshold=0.9,
        shuffle=True,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.autoencoders = autoencoders
        self.pretrain = pretrain
        self.fine_tune = fine_tune
        self.fine_tune_k = fine_tune_k
        self.alpha = alpha
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.solver = solver
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.momentum = momentum
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.pseudo_label_threshold = pseudo_label_threshold
        self.shuffle = shuffle
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ the layers
    def _layer_list(self):
        layers = [KSparseAutoencoder()] if self.autoencoders is None else list(self.autoencoders)
        if not layers:
            raise ValueError("autoencoders must hold at least one autoencoder.")
        for i, ae in enumerate(layers):
            if not isinstance(ae, _BaseAutoencoder):
                raise ValueError(
                    "autoencoders must be KSparseAutoencoder or DenoisingAutoencoder "
                    f"instances; item {i} is {type(ae).__name__}."
                )
        return layers

    def _layer_spec(self, ae):
        """(activation, k) of an autoencoder's encoder inside the network."""
        layer = ae._encoder_layer(k=self.fine_tune_k)
        return layer.activation, layer.k

    def _pretrained_layers(self, X, rng):
        """Clones of the autoencoders, the unfitted ones fitted greedily on the clean
        codes of the layer below (with ``pretrain``); returns the list."""
        layers = []
        for ae in self._layer_list():
            fitted = hasattr(ae, "components_")
            layer = copy.deepcopy(ae) if fitted and self.pretrain else clone(ae)
            if layer.random_state is None:
                layer.set_params(random_state=rng.randint(np.iinfo(np.int32).max))
            layers.append(layer)
        if self.pretrain:
            fit_greedily(layers, X, self._fit_layer)
        return layers

    def _fit_layer(self, i, layer, codes):
        if self.verbose:
            print(f"Pretraining layer {i + 1} of {len(self._layer_list())} "
                  f"({type(layer).__name__}, {layer.n_components} units)")
        layer.fit(codes)

    def _initial_params(self, layers, n_features, n_classes, dtype, rng):
        """Network parameters: the pretrained encoders (their input means folded into
        the biases), or Glorot-uniform weights; a Glorot-uniform output layer."""
        params = {}
        fan_in = n_features
        for l, ae in enumerate(layers):
            units = ae.n_components
            if self.pretrain:
                layer = ae._encoder_layer(dtype)
                params[f"W{l}"], params[f"b{l}"] = layer.W, layer.b
            else:
                params[f"W{l}"], params[f"b{l}"] = glorot_uniform(rng, units, fan_in,
                                                                  ae.activation, dtype)
            fan_in = units
        L = len(layers)
        params[f"W{L}"], params[f"b{L}"] = glorot_uniform(rng, n_classes, fan_in, "softmax", dtype)
        return params

    def _make_network(self, specs, output_only=False):
        return StackNet(
            layers=specs,
            alpha=self.alpha,
            dropout=self.dropout,
            input_dropout=self.input_dropout,
            first_trained=0 if self.fine_tune and not output_only else len(specs),
        )

    def _make_optimizer(self, state):
        return _optim.make_optimizer(self.solver, self.learning_rate, self.momentum, state)

    def _specs(self):
        return list(zip(self.hidden_activations_, self.hidden_k_))

    def _params(self, dtype=None):
        """The fitted network as StackNet's parameter dict (unit-major weights)."""
        dtype = self.coefs_[0].dtype if dtype is None else dtype
        params = {}
        for l, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            params[f"W{l}"] = np.ascontiguousarray(W.T, dtype=dtype)
            params[f"b{l}"] = np.array(b, dtype=dtype)
        return params

    def _commit_params(self, params):
        L = len(params) // 2
        self.coefs_ = [np.ascontiguousarray(params[f"W{l}"].T) for l in range(L)]
        self.intercepts_ = [params[f"b{l}"].copy() for l in range(L)]
        self.n_layers_ = L + 1
        self.n_outputs_ = self.coefs_[-1].shape[1]
        self.out_activation_ = "softmax"

    # ------------------------------------------------------------ validation
    # ------------------------------------------------------------------- API
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Pretrain the autoencoders (unless ``pretrain=False``), then fine-tune the
        network on (X, y).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : array-like of shape (n_samples,)
            Class labels; ``-1`` marks an unlabelled row, used for pretraining only
            (at least one row must be labelled).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return keep_state_on_error(self, self._fit, X, y, False)

    @_fit_context(prefer_skip_nested_validation=False)
    def partial_fit(self, X, y, classes=None):
        """One fine-tuning epoch over (X, y).

        The first call sets the classes (``classes`` is required then), builds the
        network and pretrains the unfitted autoencoders on this X; for a stream, fit
        the autoencoders first (their own :meth:`partial_fit`) and pass them fitted.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : array-like of shape (n_samples,)
            Class labels, all in ``classes``; ``-1`` marks an unlabelled row, which
            the first call pretrains on and every call leaves out of its epoch.

        classes : array-like of shape (n_classes,), default=None
            Every class of the problem; required on the first call, and if given
            later it must equal ``classes_``.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return keep_state_on_error(self, self._fit, X, y, True, classes)

    def _can_continue(self, classes):
        if not hasattr(self, "coefs_"):
            return False
        layers = self._layer_list()
        return (
            np.array_equal(self.classes_, classes)
            and len(layers) == len(self.coefs_) - 1
            and all(ae.n_components == W.shape[1] for ae, W in zip(layers, self.coefs_))
            and [self._layer_spec(ae) for ae in layers] == self._specs()
            and self._fitted_solver == self.solver
        )

    def _continued(self):
        """The fitted network and its optimizer, to train further.  Parameters that
        were frozen and are trained now (``fine_tune`` switched on) start with a
        fresh optimizer state; the step counter goes on."""
        params = self._params()
        optimizer = self._make_optimizer(copy_state(self._optimizer_state))
        optimizer.add_slots(params, self._make_network(self._specs()).trained_names())
        return params, optimizer

    def _start(self, X, classes, rng):
        """Pretrain, and return fresh (params, optimizer)."""
        layers = self._pretrained_layers(X, rng)
        self.autoencoders_ = layers
        specs = [self._layer_spec(ae) for ae in layers]
        self.hidden_activations_ = [a for a, _ in specs]
        self.hidden_k_ = [k for _, k in specs]
        params = self._initial_params(layers, X.shape[1], len(classes), X.dtype, rng)
        optimizer = self._make_optimizer(None)
        optimizer.add_slots(params, self._make_network(specs).trained_names())
        return params, optimizer

    def _checked_classes(self, X, y, incremental, classes):
        """Validate (X, y); return the labelled rows' (X, y), the unlabelled rows of X
        (or None), the classes and whether the fitted network is trained further.
        :meth:`partial_fit` takes the classes from its ``classes`` on the first call;
        :meth:`fit`, from y."""
        fitted = hasattr(self, "coefs_")
        if incremental and fitted:  # as the autoencoders: _fit_context skips it once fitted
            self._validate_params()
        self._layer_list()  # the layers' types are checked before any work
        if not incremental:
            X, y, X_unlabelled = _labels.validate(self, X, y,
                                                  reset=not (self.warm_start and fitted))
            hint = "" if X_unlabelled is None else " (rows labelled -1 are unlabelled)"
            classes = _labels.at_least_two(np.unique(y), "The training data holds {}" + hint
                                           + "; a classifier needs samples of at least 2 "
                                           "classes.")
            return X, y, X_unlabelled, classes, self.warm_start and self._can_continue(classes)
        if classes is not None:
            classes = np.unique(_labels.without_marker(classes))
        if not fitted and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if fitted and classes is not None and not np.array_equal(self.classes_, classes):
            raise ValueError(
                f"classes={classes!r} is not the same as on the first call to "
                f"partial_fit: {self.classes_!r}."
            )
        X, y, X_unlabelled = _labels.validate(self, X, y, reset=not fitted)
        if fitted and not self._can_continue(self.classes_):
            raise ValueError(
                "partial_fit cannot continue: the layers, fine_tune_k or solver "
                "changed since the network was built. Call fit to start again."
            )
        if fitted:
            return X, y, X_unlabelled, self.classes_, True
        classes = _labels.at_least_two(classes, "classes holds {}; a classifier needs at "
                                       "least 2 classes.")
        return X, y, X_unlabelled, classes, False

    def _fit(self, X, y, incremental, classes=None):
        """:meth:`fit` (``incremental=False``: ``max_iter`` epochs, from the fitted
        network with ``warm_start``) and :meth:`partial_fit` (one epoch, from the
        fitted network)."""
        # rows marked -1 pretrain the autoencoders; the labelled ones train the network
        X, y, X_unlabelled, classes, continuing = self._checked_classes(X, y, incremental,
                                                                        classes)
        if incremental and continuing:
            rng = np.random.RandomState()
            rng.set_state(self._random_state.get_state())
        else:
            rng = check_random_state(self.random_state)
        self.classes_ = classes
        validating = self.early_stopping and not incremental
        if validating:
            X, X_val, y, y_val = _labels.validation_split(X, y, classes,
                                                          self.validation_fraction, rng)
        Y = _labels.one_hot(classes, y, X.dtype)  # unknown labels fail before any pretraining
        X_all = X if X_unlabelled is None else _labels.stack_rows(X, X_unlabelled)
        if continuing:
            params, optimizer = self._continued()
            loss_curve = list(self.loss_curve_)
        else:
            params, optimizer = self._start(X_all, classes, rng)
            loss_curve = []
        dtype = params["W0"].dtype
        X, Y = X.astype(dtype, copy=False), Y.astype(dtype, copy=False)
        network = self._make_network(self._specs())
        epoch_data = lambda epoch: (X, Y, None, "")  # noqa: E731
        if X_unlabelled is not None and not incremental and self.pseudo_label_threshold is not None:
            epoch_data = _labels.PseudoLabels(
                X_all.astype(dtype, copy=False), Y, self.pseudo_label_threshold,
                lambda A: network.logits(params, A))
            if not continuing:
                # the first pseudo-labels come from the output layer trained alone on
                # the labelled rows: the frozen codes' classifier
                if self.verbose:
                    print("Training the output layer on the labelled rows")
                self._train_network(self._make_network(self._specs(), output_only=True),
                                    params, optimizer, epoch_data.labelled, loss_curve, rng,
                                    incremental)
        outcome = self._train_network(
            network, params, optimizer, epoch_data, loss_curve, rng, incremental,
            validate=(lambda: self._accuracy(network, params, X_val, y_val)) if validating
            else None)
        self._commit_params(outcome.best_params if validating else params)
        self._optimizer_state = optimizer.state
        self._fitted_solver = self.solver
        self._random_state = rng
        self.n_iter_ = len(loss_curve)
        self.loss_curve_ = loss_curve
        self.loss_ = loss_curve[-1]
        self.best_loss_ = None if validating else float(min(loss_curve))
        self.validation_scores_ = outcome.scores
        self.best_validation_score_ = float(max(outcome.scores)) if validating else None
        return self

    def _train_network(self, network, params, optimizer, epoch_data, loss_curve, rng,
                       incremental, validate=None):
        """Train ``network`` for ``max_iter`` epochs of :meth:`fit` (as the stop rule
        says) or the one epoch of :meth:`partial_fit`; ``epoch_data(i)`` gives the
        i-th epoch's (X, Y, rows, verbose details).  Returns the Outcome."""
        # fit's schedule runs over its own max_iter epochs; partial_fit's counts calls
        offset = 0 if incremental else len(loss_curve)

        def one_epoch(epoch):
            optimizer.learning_rate = self._learning_rate(epoch - offset)
            X, Y, rows, details = epoch_data(epoch - offset)
            return _training.run_epoch(network, params, optimizer, X, Y=Y, rows=rows,
                                       batch_size=self.batch_size, shuffle=self.shuffle,
                                       rng=rng), details

        return _training.train(
            self, one_epoch, loss_curve, 1 if incremental else self.max_iter,
            stop=None if incremental else StopRule(self.tol, self.n_iter_no_change,
                                                   maximize=validate is not None),
            validate=validate, params=params,
        )

    def _learning_rate(self, epoch):
        """The step size of the (0-based) epoch of the schedule."""
        if self.learning_rate_schedule == "constant":
            return self.learning_rate
        return self.learning_rate * max(self.max_iter - epoch, 1) / self.max_iter

    def _accuracy(self, network, params, X, y):
        logits = network.logits(params, X)
        return float(np.mean(self.classes_[np.argmax(logits, axis=1)] == y))

    def decision_function(self, X):
        """Logits of the output layer.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            The logits; for two classes, the second class's logit minus the first's.
        """
        logits = self._logits(X)
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def _logits(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=("csr", "csc"), dtype=_FLOATS, reset=False)
        if sp.issparse(X):
            X = X.tocsr()
        params = self._params()
        return self._make_network(self._specs()).logits(params, X)

    def predict(self, X):
        """Predicted class of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Predicted labels.
        """
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def predict_proba(self, X):
        """Class probabilities (softmax of the logits).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probability of each class, in the order of ``classes_``.
        """
        return softmax(self._logits(X), axis=1)

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probability of each class, in the order of ``classes_``.
        """
        return log_softmax(self._logits(X), axis=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = False
        return tags
