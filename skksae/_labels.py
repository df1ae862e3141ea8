"""The classifier's targets: their checks, one-hot codes and the validation split."""

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import validate_data

from ._base import _FLOATS


UNLABELLED = -1  # scikit-learn's marker of an unlabelled row (sklearn.semi_supervised)


def validate(estimator, X, y, reset):
    """``validate_data`` for a classifier's (X, y): X dense or CSR of a floating
    dtype, y binary or multiclass labels where it is not -1 (unlabelled; at least one
    row must be labelled).  Returns the labelled rows' (X, y) and the unlabelled rows
    of X (None when every row is labelled: X and y are then as validated)."""
    X, y = validate_data(
        estimator, X, y, accept_sparse=("csr", "csc"), dtype=_FLOATS, reset=reset,
        multi_output=False,
    )
    if sp.issparse(X):
        X = X.tocsr()
    unlabelled = np.asarray(np.asarray(y) == UNLABELLED, dtype=bool)  # not a class
    if unlabelled.all():
        raise ValueError(
            "Every row of y is -1 (unlabelled): a classifier needs labelled rows. "
            "Fit an autoencoder on unlabelled rows alone."
        )
    X_unlabelled = None
    if unlabelled.any():
        X, y, X_unlabelled = X[~unlabelled], y[~unlabelled], X[unlabelled]
    check_classification_targets(y)
    target = type_of_target(y)
    if target not in ("binary", "multiclass"):
        raise ValueError(
            f"{type(estimator).__name__} supports binary and multiclass targets; got "
            f"{target!r}."
        )
    return X, y, X_unlabelled


def without_marker(labels):
    """``labels`` without the unlabelled marker -1."""
    labels = np.asarray(labels)
    return labels[np.asarray(labels != UNLABELLED, dtype=bool)]


def at_least_two(classes, message):
    """``classes``, or a ValueError (``message`` formatted with "1 class (...)") when
    there is only one."""
    if len(classes) < 2:
        raise ValueError(message.format(f"1 class ({classes[0]!r})"))
    return classes


def one_hot(classes, y, dtype):
    """The one-hot rows of the labels ``y`` over the sorted ``classes``; a label not
    in ``classes`` is a ValueError."""
    idx = np.searchsorted(classes, y)
    idx = np.minimum(idx, len(classes) - 1)
    unknown = classes[idx] != y
    if np.any(unknown):
        raise ValueError(
            f"y holds labels not in classes_ ({classes!r}): "
            f"{np.unique(np.asarray(y)[unknown])!r}."
        )
    Y = np.zeros((len(y), len(classes)), dtype=dtype)
    Y[np.arange(len(y)), idx] = 1
    return Y


def validation_split(X, y, classes, fraction, rng):
    """Training and validation parts for early stopping (``fraction`` of the rows, at
    least one on each side): stratified when every class can appear on both sides,
    else a plain random split; one seed drawn from ``rng``."""
    n = X.shape[0]
    n_val = int(np.ceil(fraction * n))
    if n < 2 or n_val >= n:
        raise ValueError(
            f"early_stopping needs a validation split of validation_fraction={fraction} "
            f"of {n} samples with at least one sample on each side."
        )
    counts = np.unique(y, return_counts=True)[1]
    stratify = y if counts.min() >= 2 and len(classes) <= min(n_val, n - n_val) else None
    return train_test_split(X, y, test_size=n_val, stratify=stratify,
                            random_state=rng.randint(np.iinfo(np.int32).max))


def stack_rows(X, X_more):
    """The rows of X, then those of ``X_more`` (dense, or CSR when X is sparse)."""
    if sp.issparse(X):
        return sp.vstack([X, X_more], format="csr")
    return np.concatenate([X, X_more])


class PseudoLabels:
    """The epochs of training with pseudo-labels (Lee 2013): :meth:`labelled` and
    ``self`` (called with the epoch) give :func:`skksae._training.run_epoch` its
    (X, Y, rows) and a verbose detail.

    ``X`` holds the labelled rows (one-hot targets ``Y``) then the unlabelled ones.
    Before each epoch, ``logits_of`` (the network as it is, on clean rows) classifies
    the unlabelled rows; those whose predicted class has a probability of at least
    ``threshold`` take it as their one-hot target and join the epoch.  Every epoch
    visits the labelled rows ``max(1, round(n_unlabelled / (6 * n_labelled)))``
    times: with 100 labels among 60,000 images, once each they would make 0.2% of
    the gradient, and the network would mostly learn back its own predictions."""

    def __init__(self, X, Y, threshold, logits_of):
        n_labelled, n_unlabelled = Y.shape[0], X.shape[0] - Y.shape[0]
        self.X = X
        self.X_unlabelled = X[n_labelled:]  # a CSR slice is a copy: made once
        self.Y = np.zeros((X.shape[0], Y.shape[1]), dtype=Y.dtype)
        self.Y[:n_labelled] = Y
        self.n_labelled = n_labelled
        repeats = max(1, round(n_unlabelled / (6 * n_labelled)))
        self.labelled_rows = np.tile(np.arange(n_labelled), repeats)
        self.threshold = threshold
        self.logits_of = logits_of

    def labelled(self, epoch):
        """An epoch over the labelled rows alone."""
        return self.X, self.Y, self.labelled_rows, ""

    def __call__(self, epoch):
        n = self.n_labelled
        logits = self.logits_of(self.X_unlabelled)
        # the softmax's largest probability, from the logits without overflow
        shifted = logits - logits.max(axis=1, keepdims=True)
        confidence = 1.0 / np.exp(shifted).sum(axis=1)
        predicted = np.argmax(logits, axis=1)
        confident = np.flatnonzero(confidence >= self.threshold)
        targets = self.Y[n:]
        targets[:] = 0
        targets[confident, predicted[confident]] = 1
        rows = np.concatenate([self.labelled_rows, n + confident])
        return self.X, self.Y, rows, f", {len(confident)} pseudo-labels"
