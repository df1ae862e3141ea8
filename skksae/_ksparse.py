"""k-sparse autoencoder (Makhzani & Frey, 2013)."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import _BaseAutoencoder


class KSparseAutoencoder(_BaseAutoencoder):
    """k-sparse autoencoder.

    A linear encoder ``z = W (x - mean_) + b`` whose ``k`` largest entries per sample
    are kept (the others are set to zero), and a linear decoder
    ``x_hat = W^T h + c + mean_`` (tied weights) or ``D^T h + c + mean_`` (untied),
    trained on the squared reconstruction error.
    Gradients flow only through the ``k`` kept units, and the decoder product and
    both weight gradients cost O(batch * k * n_features), computed by Numba kernels.

    Training starts with ``k_start`` units and lowers k linearly to ``k`` over the
    first ``k_decay_fraction`` of the epochs, which keeps hidden units from dying.
    :meth:`transform` can keep more units than training did
    (``transform_k_factor``), which the paper found helps classification.

    Parameters
    ----------
    n_components : int, default=256
        Number of hidden units.

    center : bool or {"mean", "geometric_median"}, default=True
        Subtract the mean of each feature (``mean_``) before encoding and add it back
        after decoding, as :class:`~sklearn.decomposition.PCA` does. The encoder has
        no input offset: on un-centred data (pixels in [0, 1], the non-negative codes
        of another autoencoder) most units respond to the same mean direction, the
        same few win the top-k and the others die. On ``load_digits() / 16`` with the
        other defaults, logistic regression on the codes scored 0.963 with 125 of 256
        dead units uncentred, 0.981 with none centred (raw pixels: 0.966), and a
        denoising layer followed by this one 0.73 uncentred, 0.98 centred. The mean
        is folded into the biases when encoding, so sparse input stays sparse;
        :meth:`partial_fit` keeps a running mean of every sample seen. ``True`` and
        "mean" are the same. "geometric_median" centres at the geometric median of
        the rows instead (Weiszfeld's iteration, a few passes over the data), the
        robust centre Gao et al. (2024) start the TopK autoencoder's decoder bias at:
        the decoder's output starts there and ``intercept_visible_`` learns from
        there. A few far-off rows move the mean but hardly the median (see the user
        guide). :meth:`partial_fit` computes it on the first call's data and keeps
        it.

    k : int, default=25
        Number of hidden units kept per sample at the end of training. A ``k``
        above ``n_components`` keeps every unit, with a warning (as
        :class:`~sklearn.feature_selection.SelectKBest` does for a ``k`` above the
        number of features).

    k_start : int, "auto" or None, default="auto"
        Number of units kept in the first epoch of the sparsity schedule. "auto" uses
        ``min(n_components, max(k, 100))`` as in the paper; None disables the
        schedule (train with ``k`` from the start).

    k_decay_fraction : float in [0, 1], default=0.5
        Fraction of ``max_iter`` over which k decreases linearly from ``k_start`` to
        ``k``. With :meth:`partial_fit` each call counts as one epoch.

    transform_k_factor : float >= 1, default=3.0
        :meth:`transform` keeps ``round(transform_k_factor * k)`` units per sample
        (capped at ``n_components``; all units when that is larger): the paper's
        alpha, 3 for its MNIST classification results (the user guide compares
        values). Set 1 to encode with the training ``k``.

    activation : {"linear", "relu"}, default="linear"
        Applied to the kept units: "linear" as in the paper, "relu" as in later
        top-k autoencoders (kept units with negative values then become zero).

    tied_weights : bool, default=True
        If True the decoder uses the encoder weights; otherwise it has its own,
        initialised to a copy of the encoder's.

    solver : {"sgd", "adam"}, default="adam"
        "sgd" is mini-batch SGD with momentum (the paper's optimizer); "adam" is
        Adam, which is less sensitive to the scale of the data.

    learning_rate : float, default=1e-3
        Step size.

    learning_rate_schedule : {"constant", "linear"}, default="constant"
        "constant" keeps ``learning_rate``. "linear" keeps it while the sparsity
        schedule lowers k, then lowers it linearly over the remaining epochs, to
        ``learning_rate / n`` in epoch ``max_iter`` where n is the number of those
        epochs; :meth:`partial_fit` calls and ``warm_start`` fits past ``max_iter``
        keep that last rate.

    momentum : float in [0, 1), default=0.9
        Momentum of the "sgd" solver.

    batch_size : int, default=128
        Samples per mini-batch (capped at the number of samples).

    max_iter : int, default=50
        Maximum number of epochs (passes over the data) in :meth:`fit`.

    tol : float, default=1e-4
        Training stops when, after the sparsity schedule, the epoch loss has not
        improved by at least ``tol`` for ``n_iter_no_change`` consecutive epochs.

    n_iter_no_change : int, default=10
        See ``tol``.

    shuffle : bool, default=True
        Whether to shuffle the samples in each epoch.

    sparse_output : bool, default=False
        If True :meth:`transform` returns a CSR matrix.

    aux_coef : float >= 0, default=0.0
        Weight of the auxiliary dead-unit loss (AuxK, Gao et al. 2024; 0 turns it
        off; they use 1/32). In each training batch the ``k_aux`` largest dead units
        of each sample (units not selected for ``dead_window`` training samples; at
        most as many as are dead) reconstruct the residual ``x - x_hat`` of the main
        reconstruction, taken as a constant, through the decoder without its bias,
        and ``aux_coef`` times half that reconstruction's squared error is added to
        the loss: dead units get a gradient towards what the live ones miss.
        ``loss_curve_`` then includes the auxiliary term.

    k_aux : int or "auto", default="auto"
        Dead units used per sample by the auxiliary loss; "auto" is half the
        number of features (at least 1).

    dead_window : int or None, default=None
        Training samples without being selected after which a unit is dead, for the
        auxiliary loss and for ``n_dead_units_``; None is the number of samples of
        the training call (one epoch of :meth:`fit`, the chunk of a
        :meth:`partial_fit` call). The count carries over :meth:`partial_fit` calls
        and ``warm_start`` fits.

    normalize_decoder : bool, default=False
        Keep the decoder's rows (with tied weights, the weights' rows) at unit norm,
        as later top-k autoencoders do: the rows start at unit norm, each step
        removes the gradient's radial part from them and renormalises them after
        it. The codes then carry the scale that the rows would otherwise absorb.

    batch_topk : bool, default=False
        Select at the level of the mini-batch in training (BatchTopK, Bussmann et
        al. 2024): the ``batch_size * k`` largest activations of each batch are
        kept, so that k is kept per sample on average and a sample may use more
        units or fewer. :meth:`transform` then keeps, sample by sample, every unit
        whose activation exceeds ``threshold_`` (learned in training; deterministic,
        independent of the other samples) instead of a fixed number:
        ``transform_k_factor`` does not apply. Usually combined with
        ``activation="relu"``.

    warm_start : bool, default=False
        If True, :meth:`fit` continues from the previous solution (with the same
        ``n_components``, ``tied_weights`` and ``solver``).

    random_state : int, RandomState instance or None, default=None
        Controls the weight initialisation and the shuffling. Pass an int for
        reproducible results: with the same data and thread count the fitted
        weights are bitwise identical.

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
        Encoder weights W; each row is a learned filter.

    decoder_components_ : ndarray of shape (n_components, n_features)
        Decoder weights; the same array as ``components_`` when the weights are
        tied.

    intercept_hidden_ : ndarray of shape (n_components,)
        Encoder bias b.

    intercept_visible_ : ndarray of shape (n_features,)
        Decoder bias c.

    n_iter_ : int
        Number of epochs run.

    loss_curve_ : list of float
        Mean training loss (half the summed squared error per sample) of each
        epoch.

    threshold_ : float or None
        With ``batch_topk``, the encoding threshold: the mean over the batches of
        the last training epoch (of the last :meth:`partial_fit` call) of the
        smallest activation each kept. None otherwise.

    n_dead_units_ : int
        Hidden units not selected for ``dead_window`` training samples (by default:
        never selected in the last epoch of training).

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    DenoisingAutoencoder : Autoencoder trained to undo input corruption.
    sklearn.neural_network.BernoulliRBM : Restricted Boltzmann machine features.
    sklearn.decomposition.MiniBatchDictionaryLearning : Sparse coding.

    References
    ----------
    .. [1] A. Makhzani and B. Frey, "k-Sparse Autoencoders", ICLR 2014,
       arXiv:1312.5663.

    Examples
    --------
    >>> import numpy as np
    >>> from skksae import KSparseAutoencoder
    >>> X = np.random.RandomState(0).rand(100, 20)
    >>> ae = KSparseAutoencoder(n_components=32, k=4, max_iter=5, random_state=0)
    >>> H = ae.fit(X).transform(X)
    >>> H.shape
    (100, 32)
    >>> int((H != 0).sum(axis=1).max())  # transform_k_factor * k
    12
    >>> ae.inverse_transform(H).shape
    (100, 20)
    """

    _parameter_constraints: dict = {
        **_BaseAutoencoder._parameter_constraints,
        "k": [Interval(Integral, 1, None, closed="left")],
        "k_start": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), None],
        "k_decay_fraction": [Interval(Real, 0, 1, closed="both")],
        "transform_k_factor": [Interval(Real, 1, None, closed="left")],
        "activation": [StrOptions({"linear", "relu"})],
        "aux_coef": [Interval(Real, 0, None, closed="left")],
        "normalize_decoder": ["boolean"],
        "batch_topk": ["boolean"],
        "k_aux": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "dead_window": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        n_components=256,
        *,
        center=True,
        k=25,
        k_start="auto",
        k_decay_fraction=0.5,
        transform_k_factor=3.0,
        activation="linear",
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
        aux_coef=0.0,
        k_aux="auto",
        dead_window=None,
        normalize_decoder=False,
        batch_topk=False,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.center = center
        self.k = k
        self.k_start = k_start
        self.k_decay_fraction = k_decay_fraction
        self.transform_k_factor = transform_k_factor
        self.activation = activation
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
        self.aux_coef = aux_coef
        self.k_aux = k_aux
        self.dead_window = dead_window
        self.normalize_decoder = normalize_decoder
        self.batch_topk = batch_topk
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    def _network_options(self, fitted=False):
        k_aux = self.k_aux
        if k_aux == "auto":
            k_aux = max(1, getattr(self, "n_features_in_", 2) // 2)
        return {"activation": self.activation, "loss": "squared_error",
                "aux_coef": self.aux_coef, "k_aux": k_aux,
                "unit_norm": self.normalize_decoder, "batch_topk": self.batch_topk,
                "threshold": self.threshold_ if fitted else None}

    def _dead_window(self, n_samples):
        return n_samples if self.dead_window is None else self.dead_window

    def _commit_network(self, network):
        # batch top-k's threshold: the mean of the smallest activation each batch of
        # the last epoch kept
        minima = network.batch_minima if self.batch_topk else None
        self.threshold_ = float(np.mean(minima)) if minima else None

    def _init_std(self, n_features):
        return 0.01

    def _k_start(self):
        if self.k_start is None:
            return self.k
        if self.k_start == "auto":
            return min(self.n_components, max(self.k, 100))
        return min(self.n_components, max(self.k, self.k_start))

    def _schedule_end(self):
        if self._k_start() == self.k:
            return 0
        return int(self.k_decay_fraction * self.max_iter)

    def _train_k(self, epoch):
        """k for a given (0-based) epoch; ``None`` asks for the final k."""
        end = self._schedule_end()
        if epoch is None or end == 0 or epoch >= end:
            return self.k
        k0 = self._k_start()
        return int(round(k0 + (self.k - k0) * epoch / end))

    def _transform_k(self):
        return min(self.n_components, int(round(self.transform_k_factor * self.k)))
