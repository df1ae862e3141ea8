"""Centring inside the autoencoders, and what the defaults give in a pipeline."""

import copy

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skksae import DenoisingAutoencoder, KSparseAutoencoder
from skksae import _centre, _networks

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

MODELS = [
    KSparseAutoencoder(n_components=32, k=4, max_iter=3, random_state=0),
    DenoisingAutoencoder(n_components=16, max_iter=3, random_state=0),
    DenoisingAutoencoder(n_components=16, loss="cross_entropy", activation="sigmoid",
                         max_iter=3, random_state=0),
]
IDS = ["ksparse", "dae", "dae-cross-entropy"]


def _uncentred_twin(est):
    """The same fitted weights, reading input that is already centred."""
    twin = copy.deepcopy(est)
    twin.mean_ = None
    return twin


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_mean_is_folded_into_encoding_and_decoding(model, digits):
    X, _ = digits
    est = copy.deepcopy(model).fit(X)
    np.testing.assert_allclose(est.mean_, X.mean(axis=0), rtol=1e-5, atol=1e-7)
    assert est.mean_.dtype == X.dtype and est.n_samples_seen_ == X.shape[0]
    twin = _uncentred_twin(est)
    H = est.transform(X)
    # the same codes as the weights applied to the centred data
    np.testing.assert_allclose(H, twin.transform(X - est.mean_), rtol=1e-4, atol=1e-5)
    R = est.inverse_transform(H)
    if getattr(est, "loss", None) == "cross_entropy":
        # a sigmoid decoder predicts the data as it is: no mean to add back
        np.testing.assert_allclose(R, twin.inverse_transform(H), rtol=1e-5)
        assert R.min() >= 0 and R.max() <= 1
    else:
        np.testing.assert_allclose(R, twin.inverse_transform(H) + est.mean_, rtol=1e-4,
                                   atol=1e-5)


def test_center_false_has_no_mean_and_differs(digits):
    X, _ = digits
    common = dict(n_components=32, k=4, max_iter=3, random_state=0)
    plain = KSparseAutoencoder(center=False, **common).fit(X)
    assert plain.mean_ is None
    centred = KSparseAutoencoder(**common).fit(X)
    assert not np.allclose(plain.components_, centred.components_)
    # on data whose mean is already zero the two train the same model
    Xc = X - X.mean(axis=0)
    a = KSparseAutoencoder(center=False, **common).fit(Xc)
    b = KSparseAutoencoder(**common).fit(Xc)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-3, atol=1e-5)


def test_sparse_input_is_not_densified_to_be_centred():
    X = sp.random(400, 50, density=0.05, format="csr", random_state=0, dtype=np.float32)
    est = KSparseAutoencoder(n_components=16, k=3, max_iter=2, sparse_output=True,
                             random_state=0).fit(X)
    H = est.transform(X)
    assert sp.issparse(H) and H.nnz <= 9 * X.shape[0]
    np.testing.assert_allclose(H.toarray(), est.transform(X.toarray()).toarray(), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("cross_entropy", [False, True])
def test_recentre_keeps_what_the_model_computes(cross_entropy, digits):
    X, _ = digits
    X = X.astype(np.float64)
    rng = np.random.RandomState(0)
    params = _networks.init_params(rng, 20, X.shape[1], np.float64, True, 0.1)
    params["b"] += rng.randn(20)
    params["c"] += rng.randn(X.shape[1]) * 0.1
    old, new = X.mean(axis=0), X[:100].mean(axis=0)
    loss = "cross_entropy" if cross_entropy else "squared_error"
    opts = dict(activation="sigmoid", loss=loss, tied=True)
    before = _networks.AutoencoderNet(mean=old, **opts)
    H = before.encode(params, X, None)
    R = before.decode(params, H)
    moved = _networks.copy_state(params)
    _centre.recentre(moved, old, new, cross_entropy)
    after = _networks.AutoencoderNet(mean=new, **opts)
    np.testing.assert_allclose(after.encode(moved, X, None), H, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(after.decode(moved, H), R, rtol=1e-12, atol=1e-12)
    # equal means move nothing, bit for bit
    same = _networks.copy_state(params)
    _centre.recentre(same, old, old.copy(), cross_entropy)
    assert all(np.array_equal(same[k], params[k]) for k in params)


@pytest.mark.parametrize("model", MODELS[:2], ids=IDS[:2])
def test_partial_fit_keeps_a_running_mean(model, digits):
    X, _ = digits
    est = copy.deepcopy(model)
    est.partial_fit(X[:500])
    np.testing.assert_allclose(est.mean_, X[:500].mean(axis=0), rtol=1e-5, atol=1e-7)
    codes = est.transform(X)
    # moving to the running mean keeps the function: a chunk with learning rate ~0
    # changes the codes only through rounding
    frozen = copy.deepcopy(est).set_params(learning_rate=1e-30)
    frozen.partial_fit(X[500:1200])
    np.testing.assert_allclose(frozen.mean_, X[:1200].mean(axis=0), rtol=1e-5, atol=1e-6)
    assert frozen.n_samples_seen_ == 1200
    np.testing.assert_allclose(frozen.transform(X), codes, rtol=1e-3, atol=1e-4)


def test_changing_center_between_partial_fits_is_refused(digits):
    X, _ = digits
    est = KSparseAutoencoder(n_components=16, k=2, random_state=0).partial_fit(X)
    W = est.components_.copy()
    with pytest.raises(ValueError, match="center"):
        est.set_params(center=False).partial_fit(X)
    np.testing.assert_array_equal(est.components_, W)


def _distance_gradient(X, y):
    """The gradient of the summed Euclidean distance of the rows of X to y."""
    diff = y - X
    return (diff / np.linalg.norm(diff, axis=1, keepdims=True)).sum(axis=0)


def test_geometric_median_minimises_the_summed_distance():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((400, 6))
    X[:40] += 100.0  # far-off rows pull the mean, hardly the median
    median, converged = _centre.geometric_median(X)
    assert converged and median.dtype == np.float64
    # at the minimum the unit vectors to the rows sum to zero (n = 400 of them)
    assert np.linalg.norm(_distance_gradient(X, median)) < 1e-3
    total = np.linalg.norm(X - median, axis=1).sum()
    for step in 1e-3 * np.eye(6):
        assert total < np.linalg.norm(X - (median + step), axis=1).sum()
        assert total < np.linalg.norm(X - (median - step), axis=1).sum()
    assert np.linalg.norm(median) < 0.5 < np.linalg.norm(X.mean(axis=0))
    # in one dimension it is the ordinary median (odd count)
    x = rng.standard_normal((101, 1))
    np.testing.assert_allclose(_centre.geometric_median(x)[0], np.median(x), atol=1e-6)


def test_geometric_median_layouts_and_edge_cases():
    rng = np.random.RandomState(1)
    X = rng.standard_normal((300, 5)) * (rng.rand(300, 5) < 0.4)
    dense = _centre.geometric_median(X, chunk_size=64)[0]
    for other in (np.asfortranarray(X), sp.csr_matrix(X), sp.csc_matrix(X)):
        np.testing.assert_array_equal(_centre.geometric_median(other, chunk_size=64)[0], dense)
    # a centre that lands on a row (here most rows are one point) does not divide by 0
    Y = np.vstack([np.ones((50, 3)), rng.standard_normal((5, 3))])
    median, converged = _centre.geometric_median(Y)
    assert np.all(np.isfinite(median)) and np.allclose(median, 1.0, atol=1e-6)
    np.testing.assert_array_equal(_centre.geometric_median(np.ones((4, 3)))[0], np.ones(3))
    assert not _centre.geometric_median(X, max_iter=1)[1]


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_center_geometric_median(model, digits):
    X, _ = digits
    X = X[:600]
    est = clone(model).set_params(center="geometric_median").fit(X)
    median = _centre.geometric_median(X)[0]
    np.testing.assert_array_equal(est.mean_, median.astype(X.dtype))
    assert est.mean_.dtype == X.dtype
    # the centre is folded into encoding and decoding as the mean is
    twin = _uncentred_twin(est)
    np.testing.assert_allclose(est.transform(X), twin.transform(X - est.mean_), atol=1e-5)
    # sparse input gives the same centre and model
    sparse = clone(est).fit(sp.csr_matrix(X))
    np.testing.assert_array_equal(sparse.mean_, est.mean_)
    np.testing.assert_allclose(sparse.components_, est.components_, rtol=1e-5, atol=1e-6)
    # "mean" is True under another name (NumPy's bool too), bit for bit
    a = clone(model).set_params(center=True).fit(X)
    for same in ("mean", np.True_):
        b = clone(model).set_params(center=same).fit(X)
        np.testing.assert_array_equal(a.components_, b.components_)
        np.testing.assert_array_equal(a.mean_, b.mean_)
    assert clone(model).set_params(center=np.False_).fit(X).mean_ is None
    assert not np.allclose(a.mean_, est.mean_)


def test_geometric_median_centre_is_kept_by_partial_fit(digits):
    X, _ = digits
    est = KSparseAutoencoder(n_components=16, k=2, center="geometric_median", random_state=0)
    est.partial_fit(X[:500])
    first = est.mean_.copy()
    np.testing.assert_array_equal(first, _centre.geometric_median(X[:500])[0].astype(X.dtype))
    est.partial_fit(X[500:])
    np.testing.assert_array_equal(est.mean_, first)
    assert est.n_samples_seen_ == X.shape[0]
    # switching between the mean and the median is a change of centre: refused
    W = est.components_.copy()
    with pytest.raises(ValueError, match="center"):
        est.set_params(center=True).partial_fit(X)
    np.testing.assert_array_equal(est.components_, W)
    np.testing.assert_array_equal(est.mean_, first)
    # and warm_start starts again rather than continuing from the other centre
    est.set_params(warm_start=True, max_iter=2).fit(X)
    np.testing.assert_allclose(est.mean_, X.mean(axis=0), rtol=1e-5, atol=1e-7)
    assert est.n_iter_ == 2


def test_geometric_median_not_converging_warns(digits, monkeypatch):
    X, _ = digits
    iterate = _centre.geometric_median
    monkeypatch.setattr(_centre, "geometric_median", lambda X: iterate(X, max_iter=1))
    est = KSparseAutoencoder(n_components=16, k=2, max_iter=1, center="geometric_median")
    with pytest.warns(ConvergenceWarning, match="Weiszfeld"):
        est.fit(X)


def test_bad_center_is_rejected(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="center"):
        KSparseAutoencoder(center="median").fit(X)


def _accuracy(model, X_train, X_test, y_train, y_test):
    return model.fit(X_train, y_train).score(X_test, y_test)


def test_default_pipeline_and_default_stack_beat_raw_pixels(digits):
    X, y = digits
    split = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    raw = _accuracy(LogisticRegression(max_iter=3000), *split)
    one = _accuracy(make_pipeline(KSparseAutoencoder(random_state=0),
                                  LogisticRegression(max_iter=3000)), *split)
    # the stack that collapsed to 0.72 before each layer centred its input
    stack = _accuracy(make_pipeline(DenoisingAutoencoder(256, random_state=0),
                                    KSparseAutoencoder(128, k=16, random_state=0),
                                    LogisticRegression(max_iter=3000)), *split)
    assert one > raw
    assert stack > raw
