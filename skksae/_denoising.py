"""Denoising autoencoder (Vincent et al., 2008, 2010)."""

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import _BaseAutoencoder
from ._networks._common import bernoulli_mask


def _masking(X, level, rng):
    """Each input set to 0 with probability ``level``.  The mask comes from a Numba
    kernel (:func:`_networks._common.bernoulli_mask`: a hash of one seed drawn from
    ``rng`` and each entry's position, at a resolution of 2**-24), far cheaper than a
    float64 draw per entry from ``rng``."""
    out = bernoulli_mask(np.empty(X.shape, dtype=X.dtype), 1.0 - level, 1.0, rng)
    out *= X
    return out


def _gaussian(X, level, rng):
    """Additive isotropic Gaussian noise of standard deviation ``level``."""
    return X + (level * rng.standard_normal(X.shape)).astype(X.dtype)


def _salt_and_pepper(X, level, rng):
    """A fraction ``level`` of the inputs set, by a fair coin, to the smallest or the
    largest value of their feature in the mini-batch (0 or 1 for [0, 1] data)."""
    hit = rng.random_sample(X.shape) < level
    high = rng.random_sample(X.shape) < 0.5
    lo = np.broadcast_to(X.min(axis=0), X.shape)
    hi = np.broadcast_to(X.max(axis=0), X.shape)
    return np.where(hit, np.where(high, hi, lo), X).astype(X.dtype, copy=False)


_CORRUPTIONS = {
    "masking": _masking,
    "gaussian": _gaussian,
    "salt_and_pepper": _salt_and_pepper,
}


class DenoisingAutoencoder(_BaseAutoencoder):
    """Denoising autoencoder.

    During training each mini-batch is corrupted (masking noise by default) and the
    network learns to reconstruct the clean input: ``h = act(W x_tilde + b)``, where
    ``x_tilde`` is the corrupted centred input ``x - mean_``, and
    ``x_hat = D^T h + c + mean_`` (squared error) or ``sigmoid(D^T h + c)``
    (cross-entropy), with ``D = W`` when the weights are tied.
    :meth:`transform` encodes clean inputs and never corrupts.  An optional top-k
    on the hidden layer (``k``) combines denoising with k-sparsity, through the same
    Numba kernels as :class:`KSparseAutoencoder`.

    Stacked denoising autoencoders are two or more of these in a
    :class:`~sklearn.pipeline.Pipeline`, each fitted on the clean codes of the one
    below; each layer centres its own input, so no scaler is needed in between.

    Parameters
    ----------
    n_components : int, default=256
        Number of hidden units.

    center : bool or {"mean", "geometric_median"}, default=True
        Subtract the mean of each feature (``mean_``) from the input before the
        corruption and the encoder; a linear decoder (squared error) adds it back,
        a sigmoid decoder (cross-entropy) predicts the input as it is. Masking noise
        then sets an input to its mean rather than to 0. Centring matters most
        when this layer reads another autoencoder's non-negative codes: two default
        layers in a pipeline scored 0.90 uncentred and 0.98 centred on
        ``load_digits() / 16`` (logistic regression on the codes). The mean is
        folded into the biases when encoding, so sparse input stays sparse;
        :meth:`partial_fit` keeps a running mean of every sample seen. ``True`` and
        "mean" are the same; "geometric_median" centres at the geometric median of
        the rows instead, a robust centre (see :class:`KSparseAutoencoder`), which
        :meth:`partial_fit` computes on the first call's data and keeps.

    corruption : {"masking", "gaussian", "salt_and_pepper"}, default="masking"
        Input corruption used during training: "masking" sets a random fraction of
        the inputs to 0 (the papers' default); "gaussian" adds Gaussian noise of
        standard deviation ``corruption_level``; "salt_and_pepper" sets a random
        fraction of the inputs to their feature's smallest or largest value in the
        mini-batch.

    corruption_level : float, default=0.25
        Fraction of corrupted inputs ("masking", "salt_and_pepper") or noise
        standard deviation ("gaussian").

    activation : {"relu", "sigmoid", "linear"}, default="relu"
        Hidden-layer activation. The papers' encoder is "sigmoid"; "relu" is the
        default for the features it gives a linear classifier (the user guide's
        "What the defaults give" compares the two).

    loss : {"squared_error", "cross_entropy"}, default="squared_error"
        "squared_error" uses a linear decoder (real-valued inputs);
        "cross_entropy" uses a sigmoid decoder and requires inputs in [0, 1], as in
        the papers' experiments on images.

    k : int or None, default=None
        If set, only the k largest hidden pre-activations per sample are kept (all
        units, with a warning, when ``k`` exceeds ``n_components``).

    dropout : float in [0, 1), default=0.0
        Fraction of the hidden units dropped at random in each training step
        (inverted dropout: the kept units are scaled by ``1 / (1 - dropout)``);
        :meth:`transform` always uses every unit. With ``corruption_level=0`` this is
        the dropout autoencoder of Makhzani & Frey's table 1 (50% of the hidden
        units). Not combined with ``k``.

    tied_weights : bool, default=True
        If True the decoder uses the encoder weights.

    solver : {"sgd", "adam"}, default="adam"
        "sgd" is mini-batch SGD with momentum, "adam" is Adam.

    learning_rate : float, default=1e-3
        Step size.

    learning_rate_schedule : {"constant", "linear"}, default="constant"
        "constant" keeps ``learning_rate``. "linear" lowers it linearly over the
        ``max_iter`` epochs, to ``learning_rate / max_iter`` in the last one;
        :meth:`partial_fit` calls and ``warm_start`` fits past ``max_iter`` keep
        that last rate.

    momentum : float in [0, 1), default=0.9
        Momentum of the "sgd" solver.

    batch_size : int, default=128
        Samples per mini-batch.

    max_iter : int, default=50
        Maximum number of epochs in :meth:`fit`.

    tol : float, default=1e-4
        Training stops when the epoch loss has not improved by at least ``tol`` for
        ``n_iter_no_change`` consecutive epochs.

    n_iter_no_change : int, default=10
        See ``tol``.

    shuffle : bool, default=True
        Whether to shuffle the samples in each epoch.

    sparse_output : bool, default=False
        If True :meth:`transform` returns a CSR matrix (useful with ``k``).

    warm_start : bool, default=False
        If True, :meth:`fit` continues from the previous solution.

    random_state : int, RandomState instance or None, default=None
        Controls initialisation, shuffling and corruption.

    verbose : int, default=0
        If positive, print the loss after each epoch.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,) or None
        Mean of each feature over the training data (over every sample seen, with
        :meth:`partial_fit`), or with ``center="geometric_median"`` the geometric
        median of the rows: the centre subtracted from the input. None when
        ``center=False``.

    n_samples_seen_ : int
        Samples seen: those of the last :meth:`fit`, or of every :meth:`partial_fit`
        call since the first (the samples behind ``mean_`` when it is their mean).

    components_ : ndarray of shape (n_components, n_features)
        Encoder weights.

    decoder_components_ : ndarray of shape (n_components, n_features)
        Decoder weights; the same array as ``components_`` when tied.

    intercept_hidden_ : ndarray of shape (n_components,)
        Encoder bias.

    intercept_visible_ : ndarray of shape (n_features,)
        Decoder bias.

    n_iter_ : int
        Number of epochs run.

    loss_curve_ : list of float
        Mean training loss of each epoch (on corrupted inputs).

    n_dead_units_ : int
        Hidden units that were zero for every sample in the last epoch.

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    KSparseAutoencoder : Autoencoder with a top-k hidden layer.
    sklearn.neural_network.BernoulliRBM : Restricted Boltzmann machine features.

    References
    ----------
    .. [1] P. Vincent, H. Larochelle, Y. Bengio and P.-A. Manzagol, "Extracting and
       Composing Robust Features with Denoising Autoencoders", ICML 2008.
    .. [2] P. Vincent, H. Larochelle, I. Lajoie, Y. Bengio and P.-A. Manzagol,
       "Stacked Denoising Autoencoders", JMLR 11, 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from skksae import DenoisingAutoencoder
    >>> X = np.random.RandomState(0).rand(100, 20)
    >>> dae = DenoisingAutoencoder(n_components=16, max_iter=5, random_state=0)
    >>> dae.fit(X).transform(X).shape
    (100, 16)
    """

    _parameter_constraints: dict = {
        **_BaseAutoencoder._parameter_constraints,
        "corruption": [StrOptions(set(_CORRUPTIONS))],
        "corruption_level": [Interval(Real, 0, None, closed="left")],
        "activation": [StrOptions({"sigmoid", "relu", "linear"})],
        "loss": [StrOptions({"squared_error", "cross_entropy"})],
        "k": [Interval(Integral, 1, None, closed="left"), None],
        "dropout": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        n_components=256,
        *,
        center=True,
        corruption="masking",
        corruption_level=0.25,
        activation="relu",
        loss="squared_error",
        k=None,
        dropout=0.0,
        tied_weights=True,
        solver="adam",
        learning_rate=1e-3,
        learning_rate_schedule="constant",
        momentum=0.9,
        batch_size=128,
        max_iter=50,
        tol=1e-4,
        n_iter_no_change=10,
        shuffle=True,
        sparse_output=False,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.center = center
        self.corruption = corruption
        self.corruption_level = corruption_level
        self.activation = activation
        self.loss = loss
        self.k = k
        self.dropout = dropout
        self.tied_weights = tied_weights
        self.solver = solver
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.momentum = momentum
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.shuffle = shuffle
        self.sparse_output = sparse_output
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    def _network_options(self, fitted=False):
        corrupt_fn = _CORRUPTIONS[self.corruption]
        level = self.corruption_level

        def corrupt(X, rng):
            return corrupt_fn(X, level, rng)

        return {
            "activation": self.activation,
            "loss": self.loss,
            "corrupt": corrupt if level > 0 else None,
            "dropout": self.dropout,
        }

    def _init_std(self, n_features):
        return float(np.sqrt(2.0 / (n_features + self.n_components)))

    def _train_k(self, epoch):
        return self.k

    def _transform_k(self):
        return self.k

    def _check_params(self):
        super()._check_params()
        if self.corruption in ("masking", "salt_and_pepper") and self.corruption_level > 1:
            raise ValueError(
                f"corruption_level={self.corruption_level} is a fraction of the inputs "
                f"for corruption={self.corruption!r} and must be in [0, 1]."
            )
        if self.dropout > 0 and self.k is not None:
            raise ValueError(
                f"dropout={self.dropout} with k={self.k}: hidden-unit dropout is only "
                "available without a top-k selection (k=None)."
            )

    def _check_data(self, X):
        if self.loss == "cross_entropy":
            values = X.data if sp.issparse(X) else X
            if values.size and (values.min() < 0 or values.max() > 1):
                raise ValueError(
                    "loss='cross_entropy' needs inputs in [0, 1] (it models each input "
                    f"as a probability); got values in [{values.min()}, {values.max()}]. "
                    "Scale the data (for example with MinMaxScaler) or use "
                    "loss='squared_error'."
                )
