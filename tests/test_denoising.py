"""DenoisingAutoencoder: corruption, losses, stacking."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skksae import DenoisingAutoencoder, KSparseAutoencoder
from skksae._denoising import _gaussian, _masking, _salt_and_pepper

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.mark.parametrize("level", [0.1, 0.25, 0.5])
def test_masking_zeroes_the_requested_fraction(level):
    X = np.ones((400, 250))
    Xc = _masking(X, level, np.random.RandomState(0))
    frac = (Xc == 0).mean()
    # binomial standard error is sqrt(p(1-p)/n) < 1e-3 for n = 1e5: 5 sigma
    assert abs(frac - level) < 5 * np.sqrt(level * (1 - level) / X.size)
    assert set(np.unique(Xc)) <= {0.0, 1.0}


def test_other_corruptions():
    rng = np.random.RandomState(0)
    X = rng.rand(500, 40).astype(np.float32)
    G = _gaussian(X, 0.2, np.random.RandomState(1))
    assert G.dtype == np.float32
    assert abs((G - X).std() - 0.2) < 0.01
    S = _salt_and_pepper(X, 0.3, np.random.RandomState(1))
    changed = S != X
    assert abs(changed.mean() - 0.3) < 0.02
    assert np.all(np.isin(S[changed], np.concatenate([X.min(0), X.max(0)])))


def test_corruption_follows_random_state(digits):
    X, _ = digits
    a = DenoisingAutoencoder(n_components=16, max_iter=2, random_state=3).fit(X)
    b = DenoisingAutoencoder(n_components=16, max_iter=2, random_state=3).fit(X)
    assert a.components_.tobytes() == b.components_.tobytes()
    assert _masking(X, 0.3, np.random.RandomState(5)).tobytes() == _masking(
        X, 0.3, np.random.RandomState(5)
    ).tobytes()
    # corruption changes what is learned
    c = DenoisingAutoencoder(n_components=16, max_iter=2, random_state=3, corruption_level=0)
    assert not np.array_equal(c.fit(X).components_, a.components_)


def test_transform_never_corrupts(digits):
    X, _ = digits
    dae = DenoisingAutoencoder(n_components=16, activation="sigmoid", max_iter=2,
                               random_state=0).fit(X)
    H = dae.transform(X)
    Z = (X.astype(np.float64) - dae.mean_) @ dae.components_.T + dae.intercept_hidden_
    expected = 1 / (1 + np.exp(-Z))
    np.testing.assert_allclose(H, expected, rtol=1e-4)
    np.testing.assert_array_equal(dae.transform(X), H)


def test_cross_entropy_needs_unit_interval(digits):
    X, _ = digits
    dae = DenoisingAutoencoder(n_components=16, max_iter=2, loss="cross_entropy", random_state=0)
    dae.fit(X)
    R = dae.inverse_transform(dae.transform(X))
    assert R.min() >= 0 and R.max() <= 1  # sigmoid decoder
    with pytest.raises(ValueError, match=r"needs inputs in \[0, 1\]"):
        DenoisingAutoencoder(loss="cross_entropy").fit(X * 16)
    with pytest.raises(ValueError, match="must be in"):
        DenoisingAutoencoder(corruption_level=1.5).fit(X)


def test_cross_entropy_training_lowers_the_loss(digits):
    X, _ = digits
    dae = DenoisingAutoencoder(
        n_components=64, max_iter=15, loss="cross_entropy", learning_rate=0.01, random_state=0
    ).fit(X)
    assert dae.loss_curve_[-1] < 0.8 * dae.loss_curve_[0]


def test_top_k_hidden_layer(digits):
    X, _ = digits
    dae = DenoisingAutoencoder(n_components=32, k=5, activation="relu", max_iter=3,
                               random_state=0).fit(X)
    H = dae.transform(X)
    assert ((H != 0).sum(axis=1) <= 5).all()


def test_dae_pipeline_beats_chance(digits):
    X, y = digits
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
    pipe = make_pipeline(
        DenoisingAutoencoder(n_components=128, max_iter=30, learning_rate=0.01, random_state=0),
        LogisticRegression(max_iter=2000),
    )
    assert pipe.fit(Xtr, ytr).score(Xte, yte) > 0.85


def test_two_layer_stack_with_sparse_codes_between_layers(digits):
    X, y = digits
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
    first = KSparseAutoencoder(n_components=128, k=16, max_iter=15, sparse_output=True,
                               random_state=0)
    second = DenoisingAutoencoder(n_components=64, max_iter=15, learning_rate=0.01,
                                  random_state=0)
    pipe = make_pipeline(first, second, LogisticRegression(max_iter=2000))
    pipe.fit(Xtr, ytr)
    codes = pipe[0].transform(Xte)
    assert sp.issparse(codes) and codes.dtype == np.float32
    assert pipe[1].components_.dtype == np.float32
    assert pipe[1].n_features_in_ == 128
    assert pipe.score(Xte, yte) > 0.8


def test_cross_entropy_score_is_minus_the_mean_cross_entropy(digits):
    X, _ = digits
    X = X.astype(np.float64)
    dae = DenoisingAutoencoder(n_components=16, max_iter=3, loss="cross_entropy",
                               random_state=0).fit(X)
    R = dae.inverse_transform(dae.transform(X))
    ce = -(X * np.log(R) + (1 - X) * np.log(1 - R)).sum(axis=1).mean()
    assert dae.score(X) == pytest.approx(-ce, rel=1e-9)


def test_linear_learning_rate_schedule_spans_all_epochs(digits):
    """Without a sparsity schedule the "linear" rate falls from the first epoch:
    learning_rate * (max_iter - e) / max_iter in epoch e (corruption draws included,
    the fit equals partial_fit with those rates set by hand)."""
    X = digits[0][:200]
    common = dict(n_components=12, max_iter=3, solver="sgd", learning_rate=0.1,
                  tol=0.0, n_iter_no_change=100, random_state=0)
    with pytest.warns(ConvergenceWarning):
        scheduled = DenoisingAutoencoder(learning_rate_schedule="linear", **common).fit(X)
    by_hand = DenoisingAutoencoder(**common)
    for e in range(3):
        by_hand.set_params(learning_rate=0.1 * (3 - e) / 3).partial_fit(X)
    np.testing.assert_array_equal(scheduled.components_, by_hand.components_)


def test_hidden_dropout_trains_reproducibly_and_transforms_with_every_unit(digits):
    """Dropout changes what is learned, follows random_state, and is off at transform
    (the codes are the activations of every unit, unscaled)."""
    X, _ = digits
    params = dict(n_components=16, corruption_level=0, max_iter=3, random_state=0)
    a = DenoisingAutoencoder(dropout=0.5, **params).fit(X)
    b = DenoisingAutoencoder(dropout=0.5, **params).fit(X)
    plain = DenoisingAutoencoder(**params).fit(X)
    assert a.components_.tobytes() == b.components_.tobytes()
    assert not np.array_equal(a.components_, plain.components_)
    H = a.transform(X)
    Z = (X.astype(np.float64) - a.mean_) @ a.components_.T + a.intercept_hidden_
    np.testing.assert_allclose(H, np.maximum(Z, 0), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(a.transform(X), H)


@pytest.mark.parametrize("params, message", [
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=-0.1), "dropout"),
    (dict(dropout=0.5, k=4), "only available without a top-k"),
])
def test_bad_dropout_is_rejected_and_the_model_kept(digits, params, message):
    X, _ = digits
    dae = DenoisingAutoencoder(n_components=8, max_iter=2, random_state=0).fit(X)
    before = dae.components_.copy()
    dae.set_params(**params)
    with pytest.raises(ValueError, match=message):
        dae.fit(X)
    with pytest.raises(ValueError, match=message):
        dae.partial_fit(X)
    np.testing.assert_array_equal(dae.components_, before)
