"""precompile(): after it, the estimators compile nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from numba.core import event

from skksae import (AutoencoderClassifier, DenoisingAutoencoder, KSparseAutoencoder,
                    precompile)
from skksae import _kernels as K


def _compiled_during(fn):
    """The names of the functions Numba compiled while ``fn()`` ran."""
    names = []

    class Recorder(event.Listener):
        def on_start(self, ev):
            names.append(ev.data["dispatcher"].py_func.__qualname__)

        def on_end(self, ev):
            pass

    recorder = Recorder()
    event.register("numba:compile", recorder)
    try:
        fn()
    finally:
        event.unregister("numba:compile", recorder)
    return names


def _typical_use(X, y):
    for model in (KSparseAutoencoder(24, k=4, max_iter=2, random_state=0),
                  KSparseAutoencoder(24, k=4, max_iter=2, solver="sgd", tied_weights=False,
                                     sparse_output=True, random_state=0),
                  DenoisingAutoencoder(20, activation="sigmoid", loss="cross_entropy",
                                       max_iter=2, random_state=0),
                  DenoisingAutoencoder(20, k=5, max_iter=2, random_state=0),
                  DenoisingAutoencoder(20, dropout=0.1, max_iter=2, random_state=0)):
        model.fit(X)
        model.inverse_transform(model.transform(sp.csr_matrix(X)))
        model.score(X)
    clf = AutoencoderClassifier([DenoisingAutoencoder(20, activation="sigmoid", max_iter=1),
                                 KSparseAutoencoder(24, k=3, max_iter=1)], max_iter=2,
                                dropout=0.1, random_state=0)
    clf.fit(X, y).predict_proba(X)


def _typical_use_on_both_versions():
    rng = np.random.RandomState(1)
    X = rng.rand(150, 30).astype(np.float32)
    y = rng.randint(0, 4, 150)
    # small data runs the serial kernels; then the same calls on the parallel ones
    _typical_use(X, y)
    with K.work(K.PARALLEL_MIN_WORK):
        _typical_use(X, y)


CHILD = """
import json, warnings
warnings.simplefilter("ignore")
from tests.test_precompile import _compiled_during, _typical_use_on_both_versions
print(json.dumps(_compiled_during(_typical_use_on_both_versions)))
"""


def test_after_precompile_a_new_process_compiles_nothing(tmp_path):
    # in processes of their own, with a cache of their own: a kernel that precompile
    # left out is compiled by the second one
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    root = Path(__file__).resolve().parents[1]
    code = ("import json, skksae, skksae._precompile as p; r = skksae.precompile(('float32',));"
            "print(json.dumps([sorted(r), p.cache_is_warm('float32')]))")
    first = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                           capture_output=True, text=True, check=True)
    assert json.loads(first.stdout.splitlines()[-1]) == [["kernels", "wall"], True]
    second = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=root,
                            capture_output=True, text=True, check=True)
    assert json.loads(second.stdout.splitlines()[-1]) == []


def test_cache_is_warm_is_false_on_an_empty_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", "import skksae._precompile as p; "
                          "print(p.cache_is_warm('float64'))"], env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


@pytest.mark.parametrize("dtypes", [(), ("float16",), ("int64",), ("float32", "bogus")])
def test_precompile_rejects_other_dtypes(dtypes):
    with pytest.raises(ValueError, match="float32 and/or float64"):
        precompile(dtypes=dtypes)


def test_work_chooses_the_serial_kernels_below_the_threshold():
    X = np.random.RandomState(0).rand(40, 8)
    out = np.empty((40, 8))
    calls = []
    with K.work(K.PARALLEL_MIN_WORK - 1):
        # a nested block keeps the enclosing decision
        with K.work(K.PARALLEL_MIN_WORK):
            calls.append(K._serial())
    with K.work(K.PARALLEL_MIN_WORK):
        calls.append(K._serial())
    assert calls[0] is True
    assert calls[1] is (K.get_num_threads() == 1)
    # both versions give the same bits
    K.gather_rows.serial(X, np.arange(40)[::-1].copy(), np.zeros(8), out)
    expected = out.copy()
    K.gather_rows.parallel(X, np.arange(40)[::-1].copy(), np.zeros(8), out)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("make", [
    lambda: KSparseAutoencoder(40, k=5, max_iter=3, random_state=0),
    lambda: KSparseAutoencoder(40, k=5, max_iter=3, solver="sgd", tied_weights=False,
                               activation="relu", batch_topk=True, random_state=0),
    lambda: DenoisingAutoencoder(40, activation="sigmoid", loss="cross_entropy",
                                 max_iter=3, random_state=0),
    lambda: AutoencoderClassifier([KSparseAutoencoder(40, k=5, max_iter=1)], max_iter=3,
                                  dropout=0.1, random_state=0),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_kernels_give_the_same_bits(make, dtype):
    rng = np.random.RandomState(0)
    X = rng.rand(300, 50).astype(dtype)
    y = rng.randint(0, 3, 300)
    fitted = []
    for work in (0, K.PARALLEL_MIN_WORK):
        with K.work(work):
            model = make().fit(X, y)
            out = (model.predict_proba(X) if hasattr(model, "predict_proba")
                   else model.transform(X))
        fitted.append((model, out))
    (a, out_a), (b, out_b) = fitted
    np.testing.assert_array_equal(out_a, out_b)
    assert a.loss_curve_ == b.loss_curve_
    for name in ("components_", "intercept_hidden_", "intercept_visible_"):
        if hasattr(a, name):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for ca, cb in zip(getattr(a, "coefs_", []), getattr(b, "coefs_", [])):
        np.testing.assert_array_equal(ca, cb)
