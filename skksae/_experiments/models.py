"""Every model the experiments train, built in one place from the run's options."""

from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

from .._classifier import AutoencoderClassifier
from .._denoising import DenoisingAutoencoder
from .._ksparse import KSparseAutoencoder


def ksparse(args, k, epochs, **options):
    """A k-sparse autoencoder trained as the experiments train it: SGD at
    ``--learning-rate`` on ``--n-components`` units, seeded by ``--seed``; ``options``
    are the model's own."""
    return KSparseAutoencoder(n_components=args.n_components, k=k, max_iter=epochs,
                              solver="sgd", learning_rate=args.learning_rate,
                              random_state=args.seed, **options)


def scheduled_ksparse(args, k, epochs, **options):
    """The tables' k-sparse autoencoder: alpha from ``--transform-k-factor``, the
    learning rate lowered linearly once k has reached its target, mini-batches of
    128, the whole epoch budget (no early stop)."""
    return ksparse(args, k, epochs, transform_k_factor=args.transform_k_factor,
                   learning_rate_schedule="linear", momentum=0.9, batch_size=128,
                   n_iter_no_change=epochs, **options)


def denoising(args, corruption_level, learning_rate, epochs, **options):
    """The papers' denoising autoencoder: sigmoid units, masking noise that sets
    pixels to 0, cross-entropy, uncentred input, Adam, mini-batches of 128, the whole
    epoch budget."""
    return DenoisingAutoencoder(
        n_components=args.n_components, center=False, corruption="masking",
        corruption_level=corruption_level, activation="sigmoid", loss="cross_entropy",
        learning_rate=learning_rate, max_iter=epochs, n_iter_no_change=epochs,
        batch_size=128, random_state=args.seed, **options,
    )


def extractor(method, args, k=None):
    """The unfitted feature extractor of one row of the features table (``None`` for
    raw pixels); ``k`` is the k-sparse model's k (``args.k`` when not given)."""
    if method == "raw":
        return None
    if method == "rbm":
        return BernoulliRBM(
            n_components=args.n_components, learning_rate=args.rbm_learning_rate[0],
            batch_size=args.rbm_batch_size[0], n_iter=args.rbm_epochs, random_state=args.seed,
            verbose=args.verbose,  # its lines cost a pass over X per epoch (progress)
        )
    if method == "dropout":
        # the k-sparse paper's dropout autoencoder: half the hidden units dropped in
        # training, no input corruption, every unit as a feature; the library's
        # default units (ReLU, squared error, centred input)
        return DenoisingAutoencoder(
            n_components=args.n_components, corruption_level=0.0, dropout=0.5,
            learning_rate=1e-3, max_iter=args.dae_epochs, n_iter_no_change=args.dae_epochs,
            batch_size=128, random_state=args.seed, verbose=args.verbose,
        )
    if method == "dae":
        return denoising(args, args.dae_corruption_level[0], args.dae_learning_rate[0],
                         args.dae_epochs, verbose=args.verbose)
    # The autoencoder centres the pixels itself (center=True); the codes are scaled to
    # [-1, 1] per unit for the classifier.
    return make_pipeline(
        scheduled_ksparse(args, args.k if k is None else k, args.ksparse_epochs,
                          sparse_output=True, verbose=args.verbose),
        MaxAbsScaler(),
    )


def stack_layer(kind, args):
    """One unfitted layer of a fine-tuning stack: the tables' k-sparse autoencoder, or
    the papers' denoising autoencoder."""
    if kind == "ksparse":
        return scheduled_ksparse(args, args.k, args.pretrain_ksparse_epochs)
    return denoising(args, 0.25, 1e-3, args.pretrain_dae_epochs)


def network(layers, pretrain, args):
    """The classifier every row of the fine-tuning table fine-tunes:
    ``finetune_epochs`` epochs of SGD with momentum, the learning rate lowered
    linearly, hidden-unit and input dropout, every network running the whole budget
    (no early stop).  With ``finetune_validation_fraction`` 0 it trains on the whole
    training set and keeps the last epoch; otherwise that fraction is held out and the
    weights of the epoch that scored best on it are kept."""
    fraction = args.finetune_validation_fraction
    return AutoencoderClassifier(
        layers, pretrain=pretrain, solver="sgd", dropout=args.finetune_dropout,
        input_dropout=args.finetune_input_dropout,
        learning_rate=args.finetune_learning_rate, learning_rate_schedule="linear",
        momentum=0.9, batch_size=128, max_iter=args.finetune_epochs,
        # without early stopping validation_fraction is not read (and 0 is outside
        # its range): the classifier's default stands in
        early_stopping=fraction != 0, validation_fraction=fraction or 0.1,
        n_iter_no_change=args.finetune_epochs, tol=0.0, random_state=args.seed,
    )


def filter_model(args, k):
    """The unfitted k-sparse model of the filter figure for one k: every unit a
    sample selects in training is shown, so it encodes with k (alpha 1)."""
    return ksparse(args, min(k, args.n_components), args.filter_epochs,
                   transform_k_factor=1, tol=0.0)
