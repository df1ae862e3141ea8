"""Property-based tests (hypothesis) for the kernels."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from skksae import _kernels, _networks

from .test_kernels import _dense_reference_grads, _reference_topk


@st.composite
def _matrices(draw):
    n = draw(st.integers(1, 12))
    m = draw(st.integers(1, 300))
    k = draw(st.integers(1, m))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**31 - 1))
    levels = draw(st.sampled_from([None, 2, 5]))  # None: continuous; else many ties
    rng = np.random.RandomState(seed)
    Z = rng.randn(n, m)
    if levels is not None:
        Z = rng.randint(0, levels, (n, m)).astype(float)
    return Z.astype(dtype), k


@settings(max_examples=150, deadline=None)
@given(_matrices())
def test_topk_equals_reference(case):
    Z, k = case
    n, m = Z.shape
    bias = np.zeros(m, dtype=Z.dtype)
    idx = np.empty((n, k), dtype=np.int64)
    vals = np.empty((n, k), dtype=Z.dtype)
    _kernels.topk_rows(Z, bias, k, _kernels.LINEAR, idx, vals)
    expected = _reference_topk(Z, k)
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(vals, np.take_along_axis(Z, expected, axis=1))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 9),
    d=st.integers(1, 12),
    m=st.integers(1, 20),
    tied=st.booleans(),
    activation=st.sampled_from(["linear", "relu", "sigmoid"]),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_sparse_backward_equals_dense_masked_backward(n, d, m, tied, activation, seed, data):
    k = data.draw(st.integers(1, m))
    rng = np.random.RandomState(seed)
    X = rng.rand(n, d)
    params = _networks.init_params(rng, m, d, np.float64, tied, 0.5)
    params["b"] = rng.randn(m) * 0.1
    engine = _networks.AutoencoderNet(activation=activation, loss="squared_error", tied=tied)
    grads = {name: np.empty_like(p) for name, p in params.items()}
    with _kernels.single_threaded_blas:
        loss, _ = engine.loss_and_grads(params, X, X, k if k < m else None, grads)
    reference = _dense_reference_grads(engine, params, X, X, k)
    for name in grads:
        np.testing.assert_allclose(grads[name], reference[name], rtol=1e-9, atol=1e-12)
