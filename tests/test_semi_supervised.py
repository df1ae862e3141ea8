"""Unlabelled rows (y == -1, scikit-learn's semi-supervised convention)."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

from skksae import AutoencoderClassifier, KSparseAutoencoder
from skksae._labels import PseudoLabels
from skksae._training import run_epoch

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
    """Without pseudo-labels: the same network as pretraining on every row by hand,
    then fitting the labelled rows, bit for bit."""
    X, y, X_test, y_test = few_labels
    labelled = y != -1
    clf = AutoencoderClassifier([KSparseAutoencoder(64, k=8, max_iter=5, random_state=1)],
                                pseudo_label_threshold=None, max_iter=100,
                                random_state=0).fit(X, y)
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
    # the warm-up epochs on the labelled rows before the pseudo-labels are not scored
    assert 0 < len(clf.validation_scores_) < clf.n_iter_
    clf.set_params(pseudo_label_threshold=None).fit(X, y)
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


def test_pseudo_labels_keep_the_confident_rows_and_weigh_the_labelled_ones():
    X = np.arange(14, dtype=float).reshape(7, 2)
    Y = np.eye(2)[[0, 1]]  # two labelled rows, five unlabelled
    logits = np.array([[3.0, 0.0], [0.0, 0.1], [0.0, 5.0], [0.2, 0.0], [-4.0, 0.0]])
    seen = []
    epochs = PseudoLabels(X, Y, 0.9, lambda A: seen.append(A) or logits)
    X_epoch, Y_epoch, rows, detail = epochs(0)
    np.testing.assert_array_equal(seen[0], X[2:])  # the unlabelled rows are classified
    # round(5 / (6 * 2)) = 0 -> the labelled rows once each; the confident rows 2, 4, 6
    np.testing.assert_array_equal(rows, [0, 1, 2, 4, 6])
    np.testing.assert_array_equal(Y_epoch[:2], Y)
    np.testing.assert_array_equal(Y_epoch[[2, 4, 6]], np.eye(2)[[0, 1, 1]])
    assert detail == ", 3 pseudo-labels"
    np.testing.assert_array_equal(epochs.labelled(0)[2], [0, 1])
    # every row at threshold 0; many unlabelled rows per label repeat the labelled ones
    X_big = np.zeros((2 + 60, 2))
    epochs = PseudoLabels(X_big, Y, 0.0, lambda A: np.zeros((A.shape[0], 2)))
    rows = epochs(0)[2]
    assert np.bincount(rows)[:2].tolist() == [5, 5]  # round(60 / 12)
    assert len(rows) == 10 + 60


def test_run_epoch_over_rows_is_an_epoch_over_those_rows(digits):
    """``rows`` (with repeats) visits X[rows]: the same steps, bit for bit."""
    X, y = digits
    y = y[:200]
    rows = np.concatenate([np.arange(200), np.arange(50)])
    results = []
    for X_epoch, rows_arg in ((X[:200], rows), (X[:200][rows], None)):
        clf = AutoencoderClassifier([KSparseAutoencoder(16, k=4, max_iter=1)], max_iter=1,
                                    random_state=0).fit(X[:200], y)
        network = clf._make_network(clf._specs())
        params = clf._params()
        optimizer = clf._continued()[1]
        Y = np.eye(10)[y[:200] if rows_arg is not None else y[:200][rows]]
        loss = run_epoch(network, params, optimizer, X_epoch, Y=Y, batch_size=32,
                         shuffle=True, rng=np.random.RandomState(3), rows=rows_arg)
        results.append((loss, params))
    assert results[0][0] == results[1][0]
    for name in results[0][1]:
        np.testing.assert_array_equal(results[0][1][name], results[1][1][name])


def test_pseudo_labels_train_on_the_unlabelled_rows(few_labels):
    """The default threshold trains the output layer alone first, then every layer
    on the labelled and pseudo-labelled rows: better than the same network trained
    on the 50 labelled rows alone (0.87 against 0.82 when written)."""
    X, y, X_test, y_test = few_labels
    ae = KSparseAutoencoder(64, k=8, max_iter=20, random_state=1).fit(X)
    pseudo = AutoencoderClassifier([ae], max_iter=100, random_state=0).fit(X, y)
    labelled_only = AutoencoderClassifier([ae], pseudo_label_threshold=None,
                                          random_state=0).fit(X, y)
    assert 100 < pseudo.n_iter_ <= 200  # the warm-up, then at most max_iter epochs
    assert pseudo.score(X_test, y_test) > labelled_only.score(X_test, y_test) + 0.02


def test_pseudo_labels_print_their_count(few_labels, capsys):
    X, y, _, _ = few_labels
    AutoencoderClassifier([KSparseAutoencoder(16, k=4, max_iter=2)], max_iter=3,
                          pseudo_label_threshold=0.0, verbose=1, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "Training the output layer on the labelled rows" in out
    n_unlabelled = int((y == -1).sum())
    assert f", {n_unlabelled} pseudo-labels" in out  # threshold 0 keeps every row


def test_a_fully_labelled_fit_ignores_the_threshold(digits):
    X, y = digits
    fits = [AutoencoderClassifier([KSparseAutoencoder(16, k=4, max_iter=2)], max_iter=3,
                                  pseudo_label_threshold=t, random_state=0).fit(X[:300], y[:300])
            for t in (None, 0.5)]
    for a, b in zip(fits[0].coefs_, fits[1].coefs_):
        np.testing.assert_array_equal(a, b)


def test_warm_start_pseudo_labels_from_the_fitted_network(few_labels):
    X, y, _, _ = few_labels
    clf = AutoencoderClassifier([KSparseAutoencoder(16, k=4, max_iter=2)], max_iter=3,
                                tol=0.0, n_iter_no_change=100, warm_start=True,
                                random_state=0).fit(X, y)
    first = clf.n_iter_
    clf.fit(X, y)  # no second warm-up on the labelled rows: max_iter more epochs
    assert clf.n_iter_ == first + 3


def test_pseudo_labels_on_sparse_input(few_labels):
    """CSR input pseudo-labels as dense input does."""
    import scipy.sparse as sp

    X, y, X_test, _ = few_labels
    fits = [AutoencoderClassifier([KSparseAutoencoder(32, k=6, max_iter=5, random_state=1)],
                                  max_iter=20, random_state=0).fit(A, y)
            for A in (X, sp.csr_matrix(X))]
    assert fits[1].autoencoders_[0].n_samples_seen_ == len(X)
    assert fits[0].n_iter_ == fits[1].n_iter_
    for a, b in zip(fits[0].coefs_, fits[1].coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(fits[0].predict(X_test), fits[1].predict(X_test))
