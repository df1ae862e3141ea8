"""KSparseAutoencoder behaviour beyond scikit-learn's generic checks."""

import pickle
import threading
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline

from skksae import KSparseAutoencoder

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_codes_have_k_nonzeros_and_wider_support_at_transform(digits):
    X, _ = digits
    ae = KSparseAutoencoder(n_components=64, k=5, transform_k_factor=1, max_iter=3,
                            random_state=0).fit(X)
    H = ae.transform(X)
    assert H.shape == (X.shape[0], 64)
    assert ((H != 0).sum(axis=1) <= 5).all()
    assert ((H != 0).sum(axis=1) == 5).mean() > 0.99  # linear codes are rarely exactly 0
    ae.set_params(transform_k_factor=3)
    H3 = ae.transform(X)
    assert ((H3 != 0).sum(axis=1) == 15).mean() > 0.99
    # the wider code keeps the k largest values and adds the next ones
    top = np.argsort(-H, axis=1)[:, :5]
    np.testing.assert_array_equal(
        np.take_along_axis(H, top, axis=1), np.take_along_axis(H3, top, axis=1)
    )


def test_sparse_output_equals_dense(digits):
    X, _ = digits
    ae = KSparseAutoencoder(n_components=32, k=4, max_iter=2, random_state=0).fit(X)
    dense = ae.transform(X)
    ae.set_params(sparse_output=True)
    S = ae.transform(X)
    assert sp.issparse(S) and S.format == "csr" and S.has_canonical_format
    # the two paths block the encoder product differently: equal up to float32 rounding
    np.testing.assert_allclose(S.toarray(), dense, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        ae.inverse_transform(S), ae.inverse_transform(dense), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_end_to_end(digits, dtype):
    X = digits[0].astype(dtype)
    ae = KSparseAutoencoder(n_components=32, k=4, max_iter=2, random_state=0).fit(X)
    assert ae.components_.dtype == dtype
    assert ae.transform(X).dtype == dtype
    assert ae.inverse_transform(ae.transform(X)).dtype == dtype


def test_training_reduces_reconstruction_error(digits):
    X, _ = digits
    ae = KSparseAutoencoder(n_components=128, k=10, transform_k_factor=1, max_iter=20,
                            random_state=0).fit(X)
    assert ae.loss_curve_[-1] < 0.5 * ae.loss_curve_[0]
    assert ae.n_iter_ == len(ae.loss_curve_)
    # score is minus the mean per-sample loss, so it agrees with the reconstruction
    R = ae.inverse_transform(ae.transform(X))
    np.testing.assert_allclose(
        ae.score(X), -0.5 * ((R - X) ** 2).sum(axis=1).mean(), rtol=1e-4
    )


def test_sparsity_schedule_lowers_k_then_holds():
    ae = KSparseAutoencoder(n_components=300, k=20, max_iter=10, k_decay_fraction=0.5)
    ks = [ae._train_k(e) for e in range(10)]
    assert ks[0] == 100 and ks[5:] == [20] * 5
    assert all(a >= b for a, b in zip(ks, ks[1:]))
    assert KSparseAutoencoder(k=20, k_start=None)._train_k(0) == 20


def test_schedule_keeps_more_units_alive(digits):
    X, _ = digits
    common = dict(n_components=256, k=5, max_iter=10, random_state=0, solver="sgd",
                  learning_rate=0.05)
    with_schedule = KSparseAutoencoder(**common).fit(X)
    without = KSparseAutoencoder(k_start=None, **common).fit(X)
    assert with_schedule.n_dead_units_ < without.n_dead_units_


@pytest.mark.parametrize("seed", [0, 1])
def test_aux_loss_revives_dead_units_and_lowers_the_error(digits, seed):
    """AuxK (aux_coef = 1/32, as Gao et al.): fewer units dead after training and a
    better reconstruction than the same model without it (without the sparsity
    schedule about half the units die)."""
    X, _ = digits
    common = dict(n_components=256, k=5, k_start=None, max_iter=30, random_state=seed)
    without = KSparseAutoencoder(**common).fit(X)
    with_aux = KSparseAutoencoder(aux_coef=1 / 32, **common).fit(X)
    assert without.n_dead_units_ > 64
    assert with_aux.n_dead_units_ < 0.9 * without.n_dead_units_
    assert with_aux.score(X) > without.score(X)


def test_dead_window_counts_samples_across_calls(digits):
    """n_dead_units_ counts units not selected for dead_window training samples: by
    default the call's samples (units never selected in the last epoch); a window
    longer than everything seen so far finds none dead; the count carries over
    partial_fit calls."""
    X, _ = digits
    common = dict(n_components=256, k=5, k_start=None, max_iter=5, random_state=0)
    ae = KSparseAutoencoder(**common).fit(X)
    assert ae.n_dead_units_ > 0
    long = KSparseAutoencoder(dead_window=5 * X.shape[0] + 1, **common).fit(X)
    assert long.n_dead_units_ == 0
    np.testing.assert_array_equal(long.components_, ae.components_)  # aux off: same model
    # the default window is one epoch
    epoch = KSparseAutoencoder(dead_window=X.shape[0], **common).fit(X)
    assert epoch.n_dead_units_ == ae.n_dead_units_
    stream = KSparseAutoencoder(dead_window=2 * 500, **common)
    stream.partial_fit(X[:500])
    assert stream.n_dead_units_ == 0  # 500 samples seen: nothing can be dead yet
    stream.partial_fit(X[500:1000])
    assert stream.n_dead_units_ > 0  # units idle through both calls


@pytest.mark.parametrize("tied", [True, False])
def test_normalize_decoder_keeps_unit_rows_and_steps_tangentially(digits, tied):
    X, _ = digits
    ae = KSparseAutoencoder(n_components=64, k=5, tied_weights=tied, normalize_decoder=True,
                            max_iter=3, random_state=0).fit(X)
    norms = np.linalg.norm(ae.decoder_components_, axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    assert not np.allclose(np.linalg.norm(
        KSparseAutoencoder(n_components=64, k=5, tied_weights=tied, max_iter=3,
                           random_state=0).fit(X).decoder_components_, axis=1), 1.0)
    # one plain SGD step (no momentum): the decoder moves by the gradient without its
    # radial part, then is renormalised
    from skksae import _kernels, _networks, _optim
    X64 = X[:50].astype(np.float64)
    rng = np.random.RandomState(0)
    params = _networks.init_params(rng, 64, X.shape[1], np.float64, tied, 0.1, unit_norm=True)
    engine = _networks.AutoencoderNet(activation="linear", loss="squared_error", tied=tied,
                                      unit_norm=True)
    name = "W" if tied else "D"
    grads = {key: np.empty_like(v) for key, v in params.items()}
    with _kernels.single_threaded_blas:
        engine.loss_and_grads(params, X64, X64, 5, grads)
    g, d = grads[name], params[name]
    expected = d - 0.1 * (g - np.sum(g * d, axis=1, keepdims=True) * d)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    opt = _optim.make_optimizer("sgd", 0.1, 0.0).add_slots(params, params)
    with _kernels.single_threaded_blas:
        engine.loss_and_grads(params, X64, X64, 5, grads, optimizer=opt)
    np.testing.assert_allclose(params[name], expected, rtol=1e-10, atol=1e-12)


def test_reconstruction_metrics(digits):
    """FVU, MSE, mean L0 and the dead fraction, on the training data and on new data
    (dense or sparse), agree with what they are defined as."""
    X, _ = digits
    Xtr, Xte = X[:1200], X[1200:]
    ae = KSparseAutoencoder(n_components=128, k=6, max_iter=5, random_state=0).fit(Xtr)
    for data in (Xtr, Xte, sp.csr_matrix(Xte)):
        m = ae.reconstruction_metrics(data)
        dense = data.toarray() if sp.issparse(data) else data
        sse = -2 * ae.score(data) * dense.shape[0]
        sst = np.sum((dense - dense.mean(axis=0)) ** 2)
        np.testing.assert_allclose(m["fvu"], sse / sst, rtol=1e-4)
        np.testing.assert_allclose(m["mse"], sse / dense.size, rtol=1e-4)
        assert 0 < m["fvu"] < 1
        codes = ae.set_params(transform_k_factor=1).transform(data)
        assert m["l0"] == np.count_nonzero(codes) / dense.shape[0]
        assert m["dead_fraction"] == np.mean(~(codes != 0).any(axis=0))
        ae.set_params(transform_k_factor=3)
    assert ae.reconstruction_metrics(Xtr)["fvu"] < ae.reconstruction_metrics(
        np.random.RandomState(0).rand(50, X.shape[1]).astype(np.float32))["fvu"]


def test_batch_topk_trains_k_on_average_and_encodes_by_threshold(digits):
    """BatchTopK: training keeps batch_size * k activations per batch; transform keeps,
    per sample, the units above threshold_: about k per sample on the training data,
    and a sample's code does not depend on the others encoded with it."""
    X, _ = digits
    ae = KSparseAutoencoder(n_components=128, k=6, activation="relu", batch_topk=True,
                            max_iter=10, random_state=0).fit(X)
    assert ae.threshold_ is not None and ae.threshold_ > 0
    H = ae.transform(X)
    nnz = (H != 0).sum(axis=1)
    assert 3 < nnz.mean() < 12 and nnz.min() < nnz.max()
    assert (H[H != 0] > ae.threshold_).all()
    np.testing.assert_allclose(ae.transform(X[:7]), H[:7], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ae.set_params(sparse_output=True).transform(X).toarray(), H)
    assert ae.reconstruction_metrics(X)["l0"] == nnz.mean()
    # the per-sample model of the same settings has no threshold
    assert KSparseAutoencoder(n_components=128, k=6, max_iter=2).fit(X).threshold_ is None


def test_aux_options_are_validated():
    X = np.random.RandomState(0).rand(20, 6)
    for bad in (dict(aux_coef=-1.0), dict(k_aux=0), dict(dead_window=0)):
        with pytest.raises(ValueError):
            KSparseAutoencoder(n_components=8, k=2, **bad).fit(X)


def test_pipeline_with_logistic_regression_beats_chance(digits):
    X, y = digits
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
    pipe = make_pipeline(
        KSparseAutoencoder(n_components=256, k=25, max_iter=20, random_state=0),
        LogisticRegression(max_iter=2000),
    )
    assert pipe.fit(Xtr, ytr).score(Xte, yte) > 0.85


def test_grid_search_over_k_with_two_jobs(digits):
    X, y = digits
    pipe = make_pipeline(
        KSparseAutoencoder(n_components=32, max_iter=3, random_state=0),
        LogisticRegression(max_iter=300),
    )
    search = GridSearchCV(pipe, {"ksparseautoencoder__k": [2, 8]}, cv=2, n_jobs=2)
    search.fit(X[:400], y[:400])
    assert search.best_params_["ksparseautoencoder__k"] in (2, 8)
    # unsupervised: the autoencoder's own score also drives a search
    alone = GridSearchCV(
        KSparseAutoencoder(n_components=32, max_iter=3, random_state=0), {"k": [2, 8]}, cv=2
    ).fit(X[:400])
    assert alone.best_params_["k"] == 8  # more active units reconstruct better


def test_pickle_round_trip_gives_identical_transform(digits):
    X, _ = digits
    ae = KSparseAutoencoder(n_components=32, k=4, max_iter=2, random_state=0).fit(X)
    clone = pickle.loads(pickle.dumps(ae))
    np.testing.assert_array_equal(clone.transform(X), ae.transform(X))


def test_same_seed_gives_bitwise_identical_weights(digits):
    X, _ = digits
    a = KSparseAutoencoder(n_components=64, k=5, max_iter=3, random_state=7).fit(X)
    b = KSparseAutoencoder(n_components=64, k=5, max_iter=3, random_state=7).fit(X)
    assert a.components_.tobytes() == b.components_.tobytes()
    c = KSparseAutoencoder(n_components=64, k=5, max_iter=3, random_state=8).fit(X)
    assert a.components_.tobytes() != c.components_.tobytes()


def test_partial_fit_is_one_epoch_and_continues(digits):
    X, _ = digits
    ae = KSparseAutoencoder(n_components=32, k=4, random_state=0, max_iter=4)
    ae.partial_fit(X[:900])
    assert ae.n_iter_ == 1
    before = ae.components_.copy()
    assert ae.partial_fit(X[900:]) is ae
    assert ae.n_iter_ == 2 and len(ae.loss_curve_) == 2
    assert not np.array_equal(before, ae.components_)
    # chunked partial_fit and fit start from the same initialisation and schedule
    ref = KSparseAutoencoder(n_components=32, k=4, random_state=0, max_iter=1, shuffle=False)
    ref.fit(X)
    pf = KSparseAutoencoder(n_components=32, k=4, random_state=0, max_iter=1, shuffle=False)
    pf.partial_fit(X)
    np.testing.assert_array_equal(ref.components_, pf.components_)


def test_warm_start_continues_training(digits):
    X, _ = digits
    ae = KSparseAutoencoder(n_components=32, k=4, max_iter=3, random_state=0, warm_start=True)
    ae.fit(X)
    first = ae.loss_curve_[-1]
    ae.fit(X)
    assert len(ae.loss_curve_) == 6
    assert ae.loss_curve_[-1] < first


def test_convergence_warning_and_early_stopping(digits):
    X, _ = digits
    with pytest.warns(ConvergenceWarning):
        KSparseAutoencoder(n_components=16, k=2, max_iter=2, random_state=0).fit(X)
    ae = KSparseAutoencoder(
        n_components=16, k=2, max_iter=500, tol=10.0, n_iter_no_change=2, k_start=None,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ae.fit(X)
    assert ae.n_iter_ == 3  # the first epoch sets the baseline, then 2 without progress


@pytest.mark.parametrize("k_start", [None, 8])
def test_linear_learning_rate_schedule_equals_the_rates_set_by_hand(digits, k_start):
    """fit with the "linear" schedule runs the same epochs as partial_fit with the
    documented rate set before each call: the full rate while k is lowered, then a
    linear decrease to rate / n in the last of the n remaining epochs, then that rate
    on (partial_fit past max_iter)."""
    X = digits[0][:300]
    common = dict(n_components=16, k=4, k_start=k_start, max_iter=6, solver="sgd",
                  learning_rate=0.05, tol=0.0, n_iter_no_change=100, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scheduled = KSparseAutoencoder(learning_rate_schedule="linear", **common).fit(X)
    by_hand = KSparseAutoencoder(**common)
    end = 0 if k_start is None else 3  # k_decay_fraction=0.5 of max_iter=6
    rates = [0.05 if e < end else 0.05 * (6 - e) / (6 - end) for e in range(6)]
    for rate in rates:
        by_hand.set_params(learning_rate=rate).partial_fit(X)
    np.testing.assert_array_equal(scheduled.components_, by_hand.components_)
    after_fit = scheduled.components_.copy()
    assert rates[-1] == pytest.approx(0.05 / (6 - end))
    scheduled.partial_fit(X)
    by_hand.set_params(learning_rate=rates[-1]).partial_fit(X)
    np.testing.assert_array_equal(scheduled.components_, by_hand.components_)
    constant = KSparseAutoencoder(**common)
    for _ in range(6):
        constant.partial_fit(X)
    assert not np.array_equal(constant.components_, after_fit)


def test_verbose_prints_one_line_per_epoch(digits, capsys):
    X, _ = digits
    KSparseAutoencoder(n_components=16, k=2, max_iter=3, verbose=1, random_state=0).fit(X)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Iteration")]
    assert len(lines) == 3 and "loss =" in lines[0]


def test_k_larger_than_layer_warns_and_keeps_every_unit(digits):
    X, _ = digits
    common = dict(n_components=16, max_iter=2, k_start=None, random_state=0)
    with pytest.warns(UserWarning, match="k=17 is greater than n_components=16"):
        ae = KSparseAutoencoder(k=17, **common).fit(X)
    # the same model as k = n_components: no unit is dropped, in training or encoding
    full = KSparseAutoencoder(k=16, transform_k_factor=1, **common).fit(X)
    np.testing.assert_array_equal(ae.components_, full.components_)
    assert ((ae.transform(X) != 0).sum(axis=1) == 16).mean() > 0.99
    with pytest.warns(UserWarning, match="k=17"):
        ae.partial_fit(X)


def test_divergence_raises_and_leaves_model_intact(digits):
    X, _ = digits
    ae = KSparseAutoencoder(n_components=16, k=2, max_iter=2, random_state=0).fit(X)
    W = ae.components_.copy()
    ae.set_params(solver="sgd", learning_rate=1e6, warm_start=True)
    with pytest.raises(FloatingPointError, match="learning_rate"):
        ae.fit(X * 100)
    np.testing.assert_array_equal(ae.components_, W)
    fresh = KSparseAutoencoder(n_components=16, k=2, solver="sgd", learning_rate=1e6)
    with pytest.raises(FloatingPointError):
        fresh.fit(X * 100)
    assert not hasattr(fresh, "components_")


def test_concurrent_transform_from_threads(digits):
    X, _ = digits
    ae = KSparseAutoencoder(n_components=64, k=8, max_iter=2, random_state=0).fit(X)
    expected = ae.transform(X)
    results, errors = [None] * 6, []

    def work(i):
        try:
            for _ in range(5):
                results[i] = ae.transform(X)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_feature_names_and_pandas_output(digits):
    pd = pytest.importorskip("pandas")
    X, _ = digits
    df = pd.DataFrame(X, columns=[f"px{i}" for i in range(X.shape[1])])
    ae = KSparseAutoencoder(n_components=8, k=2, max_iter=2, random_state=0).fit(df)
    assert list(ae.feature_names_in_) == list(df.columns)
    names = ae.get_feature_names_out()
    assert names[0] == "ksparseautoencoder0" and len(names) == 8
    out = ae.set_output(transform="pandas").transform(df)
    assert list(out.columns) == list(names)


def test_changing_tied_weights_after_fit_keeps_the_fitted_structure(digits):
    X, _ = digits
    ae = KSparseAutoencoder(n_components=16, k=3, max_iter=2, tied_weights=False,
                            random_state=0).fit(X)
    R = ae.inverse_transform(ae.transform(X))
    ae.set_params(tied_weights=True)
    np.testing.assert_array_equal(ae.inverse_transform(ae.transform(X)), R)
    with pytest.raises(ValueError, match="partial_fit cannot continue"):
        ae.partial_fit(X)
