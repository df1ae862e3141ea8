"""Unlabelled rows (y == -1, scikit-learn's semi-supervised convention)."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

from skksae import AutoencoderClassifier, KSparseAutoencoder

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def few_labels(digits):
    """The digits with 50 labelled training rows (5 per class); the rest -1."""
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3,
                                                        random_state=0, stratify=y)
    rng = np.random.RandomState(0)
    keep = np.concatenate([rng.choice(np.flatnonzero(y_train == c), 5, replace=False)
                           for c in range(10)])
    y_semi = np.full_like(y_train, -1)
    y_semi[keep] = y_train[keep]
    return X_train, y_semi, X_test, y_test


def test_unlabelled_rows_pretrain_and_the_labelled_ones_train(few_labels):
    """The same network as pretraining on every row by hand, then fitting the
    labelled rows: bit for bit."""
    X, y, X_test, y_test = few_labels
    labelled = y != -1
    clf = AutoencoderClassifier([KSparseAutoencoder(64, k=8, max_iter=5, random_state=1)],
                                max_iter=100, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.arange(10))
    assert clf.autoencoders_[0].n_samples_seen_ == len(X)
    by_hand = KSparseAutoencoder(64, k=8, max_iter=5, random_state=1).fit(
        np.concatenate([X[labelled], X[~labelled]]))
    ref = AutoencoderClassifier([by_hand], max_iter=100, random_state=0)
    ref.fit(X[labelled], y[labelled])
    for a, b in zip(clf.coefs_, ref.coefs_):
        np.testing.assert_array_equal(a, b)
    assert clf.score(X_test, y_test) > 0.6


def test_no_labelled_row_is_an_error(few_labels):
    X, y, _, _ = few_labels
    with pytest.raises(ValueError, match="Every row of y is -1"):
        AutoencoderClassifier(max_iter=2).fit(X, np.full_like(y, -1))
    one = np.full_like(y, -1)
    one[:3] = 4
    with pytest.raises(ValueError, match="1 class"):
        AutoencoderClassifier(max_iter=2).fit(X, one)


def test_early_stopping_splits_the_labelled_rows(few_labels):
    X, y, _, _ = few_labels
    clf = AutoencoderClassifier([KSparseAutoencoder(32, k=6, max_iter=2)],
                                early_stopping=True, validation_fraction=0.2, max_iter=5,
                                random_state=0).fit(X, y)
    n_labelled = int((y != -1).sum())
    n_val = int(np.ceil(0.2 * n_labelled))
    # pretrained on every row but the validation split's
    assert clf.autoencoders_[0].n_samples_seen_ == len(X) - n_val
    assert len(clf.validation_scores_) == clf.n_iter_


def test_partial_fit_follows_the_same_rule(few_labels):
    X, y, _, _ = few_labels
    clf = AutoencoderClassifier([KSparseAutoencoder(32, k=6, max_iter=2)], random_state=0)
    clf.partial_fit(X, y, classes=np.arange(-1, 10))  # the marker in classes is ignored
    np.testing.assert_array_equal(clf.classes_, np.arange(10))
    assert clf.autoencoders_[0].n_samples_seen_ == len(X)
    before = [c.copy() for c in clf.coefs_]
    clf.partial_fit(X[:300], y[:300])
    assert not np.array_equal(before[-1], clf.coefs_[-1])
    with pytest.raises(ValueError, match="Every row of y is -1"):
        clf.partial_fit(X[:10], np.full(10, -1))


def test_string_labels_with_the_marker(few_labels):
    X, y, X_test, y_test = few_labels
    names = np.array([f"digit {c}" for c in range(10)], dtype=object)
    y_named = np.where(y == -1, -1, names[np.maximum(y, 0)]).astype(object)
    clf = AutoencoderClassifier([KSparseAutoencoder(32, k=6, max_iter=2)], max_iter=5,
                                random_state=0).fit(X, y_named)
    assert list(clf.classes_) == sorted(names)
    assert set(clf.predict(X_test)) <= set(names)


@pytest.mark.parametrize("route", ["self_training", "label_spreading"])
def test_pipeline_routes(route, few_labels):
    """The autoencoder ignores y, so it pretrains on every row; the semi-supervised
    estimator after it reads the -1 labels."""
    X, y, X_test, y_test = few_labels
    final = (SelfTrainingClassifier(LogisticRegression(max_iter=1000))
             if route == "self_training" else LabelSpreading(kernel="knn", n_neighbors=10))
    pipe = make_pipeline(KSparseAutoencoder(random_state=0, max_iter=30), final).fit(X, y)
    assert pipe[0].n_samples_seen_ == len(X)
    labelled = y != -1
    baseline = LogisticRegression(max_iter=1000).fit(X[labelled], y[labelled])
    assert pipe.score(X_test, y_test) > baseline.score(X_test, y_test) - 0.02
    assert pipe.score(X_test, y_test) > 0.8


def test_minus_one_is_the_marker_not_a_class(digits):
    """What scikit-learn's check_classifiers_classes asks, with the marker: labels
    {-1, 1} hold one class (a clear error that says why); every other label set is
    classes as given, in integers, strings and objects."""
    X, y = digits
    binary = np.where(y % 2 == 0, -1, 1)
    with pytest.raises(ValueError, match=r"1 class .*rows labelled -1 are unlabelled"):
        AutoencoderClassifier(max_iter=2).fit(X, binary)
    for labels in (np.array([0, 1]), np.array(["one", "two"]),
                   np.array(["one", "two"], dtype=object), np.array([1, 2, 3])):
        target = labels[y % len(labels)]
        clf = AutoencoderClassifier([KSparseAutoencoder(32, k=6, max_iter=2)], max_iter=20,
                                    random_state=0).fit(X, target)
        np.testing.assert_array_equal(clf.classes_, np.unique(labels))
        assert np.mean(clf.predict(X) == target) > 0.5
