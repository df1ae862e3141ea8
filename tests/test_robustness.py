"""Bad input, odd but valid input, persistence, out-of-core training, determinism."""

import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skksae import DenoisingAutoencoder, KSparseAutoencoder

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

MODELS = [
    KSparseAutoencoder(n_components=16, k=3, max_iter=2, random_state=0),
    DenoisingAutoencoder(n_components=16, max_iter=2, random_state=0),
]
IDS = ["ksparse", "dae"]


@pytest.fixture
def X():
    return np.random.RandomState(0).rand(60, 10)


def _state(est):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(est).items()}


def _same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key])


def _bad_inputs(X):
    nan, inf = X.copy(), X.copy()
    nan[3, 4] = np.nan
    inf[0, 0] = np.inf
    return {
        "nan": (nan, "NaN"),
        "inf": (inf, "infinity"),
        "empty": (np.empty((0, 10)), "0 sample"),
        "wrong_features": (X[:, :7], "features"),
        "strings": (np.array([["a"] * 10] * 5), "convert|string"),
        "complex": (X + 1j, "Complex"),
        "three_d": (X.reshape(6, 10, 10), "Found array with dim 3"),
    }


@pytest.mark.parametrize("model", MODELS, ids=IDS)
@pytest.mark.parametrize(
    "case", ["nan", "inf", "empty", "wrong_features", "strings", "complex", "three_d"]
)
def test_bad_input_is_a_clear_error_and_keeps_the_fitted_state(model, case, X):
    est = clone(model).fit(X)
    before = _state(est)
    H_before = est.transform(X)
    bad, message = _bad_inputs(X)[case]
    methods = ["partial_fit", "transform", "score"]
    if case != "wrong_features":
        methods.append("fit")  # fit may legitimately start over with new features
    for method in methods:
        with pytest.raises(ValueError, match=message):
            getattr(est, method)(bad)
        _same_state(before, _state(est))
    np.testing.assert_array_equal(est.transform(X), H_before)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_bad_parameters_have_clear_messages(model, X):
    for params, message in [
        ({"learning_rate": -1}, "learning_rate"),
        ({"n_components": 0}, "n_components"),
        ({"batch_size": 0}, "batch_size"),
        ({"solver": "lbfgs"}, "solver"),
    ]:
        with pytest.raises(ValueError, match=message):
            clone(model).set_params(**params).fit(X)
    if isinstance(model, DenoisingAutoencoder):
        with pytest.raises(ValueError, match="corruption"):
            clone(model).set_params(corruption="blur").fit(X)
    else:
        with pytest.warns(UserWarning, match="k=20 is greater than n_components=16"):
            clone(model).set_params(k=20).fit(X)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_partial_fit_checks_parameters_changed_after_fitting(model, X):
    """scikit-learn's _fit_context skips the constraints once fitted; partial_fit
    still rejects a parameter set_params made invalid, and keeps the fitted state."""
    est = clone(model).partial_fit(X)
    before = est.components_.copy()
    est.set_params(learning_rate=-1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        est.partial_fit(X)
    np.testing.assert_array_equal(est.components_, before)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_integer_boolean_and_single_sample_input(model, X):
    ints = (X * 10).astype(np.int64)
    est = clone(model).fit(ints)
    assert est.components_.dtype == np.float64
    clone(model).fit(X > 0.5)
    assert clone(model).fit(X[:1]).transform(X[:1]).shape == (1, 16)
    assert clone(model).fit(X[:, :1]).transform(X[:, :1]).shape == (60, 16)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_matches_dense(model, fmt, X):
    Xs = sp.random(80, 30, density=0.2, format=fmt, random_state=0)
    Xd = Xs.toarray()
    a = clone(model).fit(Xs)
    b = clone(model).fit(Xd)
    np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_allclose(a.transform(Xs), b.transform(Xd), rtol=1e-10, atol=1e-12)
    a.partial_fit(Xs)
    b.partial_fit(Xd)
    np.testing.assert_array_equal(a.components_, b.components_)
    assert a.score(Xs) == pytest.approx(b.score(Xd))


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_non_contiguous_read_only_and_memmap_input(model, X, tmp_path):
    ref = clone(model).fit(X)
    F = np.asfortranarray(X)
    strided = np.repeat(X, 2, axis=1)[:, ::2]
    ro = X.copy()
    ro.setflags(write=False)
    path = tmp_path / "x.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    for variant in (F, strided, ro, mm):
        est = clone(model).fit(variant)
        np.testing.assert_array_equal(est.components_, ref.components_)
        np.testing.assert_array_equal(est.transform(variant), ref.transform(X))


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_pickle_joblib_and_skops_round_trips(model, X, tmp_path):
    est = clone(model).fit(X)
    H = est.transform(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).transform(X), H)
    joblib.dump(est, tmp_path / "m.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").transform(X), H)
    sio = pytest.importorskip("skops.io")
    blob = sio.dumps(est)
    untrusted = sio.get_untrusted_types(data=blob)
    own = [t for t in untrusted if t.startswith("skksae.")]
    assert own == [f"skksae._{'ksparse' if 'KSparse' in type(est).__name__ else 'denoising'}."
                   f"{type(est).__name__}"]
    loaded = sio.loads(blob, trusted=untrusted)
    np.testing.assert_array_equal(loaded.transform(X), H)
    # and training continues from the loaded state exactly as from the original
    np.testing.assert_array_equal(
        loaded.partial_fit(X).components_, est.partial_fit(X).components_
    )


def test_divergence_in_partial_fit_keeps_last_good_state(X):
    est = KSparseAutoencoder(n_components=16, k=3, solver="sgd", learning_rate=0.01, batch_size=5,
                             random_state=0).partial_fit(X)
    before = _state(est)
    est.set_params(learning_rate=1e8)
    with pytest.raises(FloatingPointError, match="diverged"):
        est.partial_fit(X * 1e3)
    _same_state(before, _state(est))
    assert np.isfinite(est.components_).all()


def test_grid_search_results_do_not_depend_on_n_jobs():
    rng = np.random.RandomState(0)
    X = rng.rand(120, 12)
    y = (X[:, 0] > 0.5).astype(int)
    pipe = make_pipeline(KSparseAutoencoder(n_components=16, max_iter=3, random_state=0),
                         LogisticRegression())
    grid = {"ksparseautoencoder__k": [2, 4]}
    one = GridSearchCV(pipe, grid, cv=2, n_jobs=1).fit(X, y)
    two = GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(one.cv_results_["mean_test_score"],
                                  two.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(one.best_estimator_[0].components_,
                                  two.best_estimator_[0].components_)


def test_out_of_core_partial_fit_keeps_memory_bounded(tmp_path):
    """partial_fit over chunks of a memmap 15x larger than the traced peak budget."""
    path = tmp_path / "big.npy"
    n, d = 60000, 400  # 96 MB of float32
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.RandomState(0)
    for start in range(0, n, 10000):
        mm[start : start + 10000] = rng.rand(10000, d)
    mm.flush()
    del mm
    code = textwrap.dedent(f"""
        import tracemalloc, warnings
        import numpy as np
        from skksae import KSparseAutoencoder
        warnings.simplefilter("ignore")
        X = np.load({str(path)!r}, mmap_mode="r")
        ae = KSparseAutoencoder(n_components=64, k=8, batch_size=256, random_state=0)
        ae.partial_fit(X[:1000])  # compile outside the measurement
        tracemalloc.start()
        for start in range(0, X.shape[0], 2000):
            ae.partial_fit(X[start:start + 2000])
        print(tracemalloc.get_traced_memory()[1])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    peak = int(out.stdout.strip().splitlines()[-1])
    file_bytes = n * d * 4
    assert peak < 8e6, f"peak traced memory {peak / 1e6:.1f} MB"
    assert peak < file_bytes / 10


@pytest.mark.parametrize("model", MODELS, ids=IDS)
@pytest.mark.parametrize("library", ["pandas", "polars"])
def test_dataframes_keep_feature_names(model, library, X):
    lib = pytest.importorskip(library)
    names = [f"f{i}" for i in range(X.shape[1])]
    df = lib.DataFrame(X, columns=names) if library == "pandas" else lib.DataFrame(
        X, schema=names)
    est = clone(model).fit(df)
    assert list(est.feature_names_in_) == names
    out = est.set_output(transform=library).transform(df)
    assert list(out.columns) == list(est.get_feature_names_out())
    np.testing.assert_array_equal(np.asarray(out), clone(model).fit(X).transform(X))
