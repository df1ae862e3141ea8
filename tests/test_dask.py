"""Scaling out on Dask: a real ``distributed.LocalCluster`` with worker processes.

The three patterns of the "Scaling out" page: a search under joblib's dask backend,
streaming training with ``dask_ml.wrappers.Incremental``, and blockwise encoding with
``ParallelPostFit``; plus the thread discipline on workers and models travelling
between processes.  The workers run one thread each, so the reference computations
here run on one Numba thread too (training and encoding are bitwise reproducible for
a fixed thread count and the same blocks of rows; codes of other blocks agree to
rounding).
"""

import contextlib
import pickle
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skksae import AutoencoderClassifier, DenoisingAutoencoder, KSparseAutoencoder

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers",
                                       reason="the dask extra is not installed")
joblib = pytest.importorskip("joblib")

CHUNK = 300


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread each, as on this two-core machine."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as c:
            yield c


@contextlib.contextmanager
def numba_threads(n):
    """This thread's Numba thread count set to n for the block (as on the workers)."""
    before = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _models():
    return [
        KSparseAutoencoder(n_components=32, k=6, max_iter=3, batch_size=64, random_state=0),
        DenoisingAutoencoder(n_components=24, max_iter=3, batch_size=64, random_state=0),
    ]


def _fitted_params(est):
    return {name: value for name, value in vars(est).items()
            if name.endswith("_") and not name.startswith("__")}


def _assert_same_model(a, b):
    pa, pb = _fitted_params(a), _fitted_params(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        if isinstance(pa[name], np.ndarray):
            np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)
        elif name != "loss_curve_":
            assert pa[name] == pb[name], name
    assert a.loss_curve_ == b.loss_curve_


def _task_threads(est, X):
    """Run on a worker: Numba's thread count before and after a fit, and BLAS's."""
    from threadpoolctl import threadpool_info

    before = numba.get_num_threads()
    clone(est).fit(X)
    blas = max(info["num_threads"] for info in threadpool_info()
               if info["user_api"] == "blas")
    return before, numba.get_num_threads(), blas


def test_workers_run_kernels_on_their_own_thread_count(client, digits):
    X = digits[0][:200]
    est = KSparseAutoencoder(n_components=16, k=4, max_iter=1, random_state=0)
    workers = list(client.scheduler_info()["workers"])
    futures = [client.submit(_task_threads, est, X, workers=[w], pure=False)
               for w in workers]
    for _, after, blas in client.gather(futures):
        assert after == 1  # threads_per_worker
        assert blas == 1  # the nanny starts workers with one BLAS thread
    # outside a worker nothing is capped
    before = numba.get_num_threads()
    clone(est).fit(X)
    assert numba.get_num_threads() == before


def test_grid_search_on_the_dask_backend_matches_one_process(client, digits):
    X, y = digits[0][:450], digits[1][:450]
    pipe = make_pipeline(
        KSparseAutoencoder(n_components=32, max_iter=4, random_state=0),
        LogisticRegression(max_iter=300),
    )
    grid = {"ksparseautoencoder__k": [3, 6, 12]}
    with numba_threads(1):
        local = GridSearchCV(pipe, grid, cv=3, n_jobs=1).fit(X, y)
    with joblib.parallel_config(backend="dask"):
        remote = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert remote.best_params_ == local.best_params_
    for key in ("split0_test_score", "split1_test_score", "split2_test_score"):
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key])


@pytest.mark.parametrize("est", _models(), ids=lambda e: type(e).__name__)
def test_incremental_equals_sequential_partial_fit(client, digits, est):
    X = digits[0]
    dX = da.from_array(X, chunks=(CHUNK, X.shape[1]))
    inc = dask_ml_wrappers.Incremental(clone(est), shuffle_blocks=False).fit(dX)
    seq = clone(est)
    with numba_threads(1):
        for start in range(0, X.shape[0], CHUNK):
            seq.partial_fit(X[start : start + CHUNK])
    assert inc.estimator_.n_iter_ == -(-X.shape[0] // CHUNK)
    _assert_same_model(inc.estimator_, seq)
    # and its blockwise transform (on the workers) gives the sequential model's codes
    codes = inc.transform(dX)
    assert isinstance(codes, da.Array)
    with numba_threads(1):
        _assert_same_codes(codes.compute(), seq.transform(X))


@pytest.mark.parametrize("sparse_output", [False, True])
def test_blockwise_encoding(client, digits, sparse_output):
    X = digits[0]
    est = KSparseAutoencoder(n_components=32, k=6, max_iter=3, random_state=0,
                             sparse_output=sparse_output)
    with numba_threads(1):
        est.fit(X)
        expected = est.transform(X)
    dX = da.from_array(X, chunks=(CHUNK, X.shape[1]))
    n_blocks = -(-X.shape[0] // CHUNK)

    def check(codes):
        assert isinstance(codes, da.Array)
        assert codes.numblocks[0] == n_blocks
        assert sp.issparse(codes._meta) == sparse_output
        got = codes.compute()
        assert sp.issparse(got) == sparse_output
        _assert_same_codes(got, expected)

    # dask-ml's wrapper: the right codes, but dask-ml 2025.1 gives the dask array the
    # input's chunks along the columns (64 here, not 32): see the "Scaling out" page
    check(dask_ml_wrappers.ParallelPostFit(est).transform(dX))
    # dask's own map_blocks, as the docs write it, also gets the shape right
    codes = dX.map_blocks(est.transform, chunks=(dX.chunks[0], (est.n_components,)),
                          meta=est.transform(X[:1])[:0])
    assert codes.shape == expected.shape
    check(codes)


def _assert_same_codes(got, expected):
    """Blockwise codes against the whole input's: the same units kept, the values
    equal to rounding.  A BLAS product's bits can depend on how its rows are split
    between calls (OpenBLAS's Haswell kernels: rows encoded in blocks of 300 and in
    the whole input's chunks of 512 differ in the last bit or two; on an AVX-512
    machine they were identical)."""
    assert sp.issparse(got) == sp.issparse(expected) and got.shape == expected.shape
    if sp.issparse(got):
        got, expected = sp.csr_matrix(got), sp.csr_matrix(expected)
        got.sort_indices()
        expected.sort_indices()
        np.testing.assert_array_equal(got.indptr, expected.indptr)
        np.testing.assert_array_equal(got.indices, expected.indices)
        got, expected = got.data, expected.data
    else:
        np.testing.assert_array_equal(got != 0, expected != 0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _encode(model, X):
    return model.transform(X)


def test_fitted_models_travel_and_encode_alike_on_every_worker(client, digits):
    X = digits[0]
    with numba_threads(1):
        models = [est.fit(X) for est in _models()]
        expected = [m.transform(X) for m in models]
    workers = list(client.scheduler_info()["workers"])
    assert len(workers) == 2
    for model, codes in zip(models, expected):
        blob = pickle.dumps(model)
        futures = [client.submit(_encode, pickle.loads(blob), X, workers=[w], pure=False)
                   for w in workers]
        for got in client.gather(futures):
            np.testing.assert_array_equal(got, codes)


def test_classifier_predicts_blockwise(client, digits):
    X, y = digits
    clf = AutoencoderClassifier(
        [KSparseAutoencoder(n_components=32, k=8, max_iter=2)], max_iter=3, random_state=0
    )
    with numba_threads(1):
        clf.fit(X, y)
        expected = clf.predict_proba(X)
    post = dask_ml_wrappers.ParallelPostFit(clf)
    dX = da.from_array(X, chunks=(CHUNK, X.shape[1]))
    np.testing.assert_array_equal(post.predict_proba(dX).compute(), expected)
    np.testing.assert_array_equal(post.predict(dX).compute(), clf.predict(X))


def test_example_script_runs_the_three_patterns():
    script = Path(__file__).resolve().parents[1] / "examples" / "scaling_out_dask.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Warning" not in out.stderr, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "workers: 2"
    assert lines[1].startswith("search: best k = ")
    assert lines[2].startswith("streaming: 30 partial_fit calls")
    assert lines[3].startswith("encoding: codes of shape (1797, 128), 30.0 nonzeros")
    assert lines[4].startswith("sparse encoding: a csr_matrix of shape (1797, 128)")
