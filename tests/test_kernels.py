"""The Numba kernels and the networks' gradients against NumPy references."""

import numba
import numpy as np
import pytest

from skksae import _kernels, _networks, _optim


def _reference_topk(V, k):
    """Top-k column indices per row, ties to the lower index, sorted by column."""
    order = np.lexsort((np.broadcast_to(np.arange(V.shape[1]), V.shape), -V), axis=1)
    return np.sort(order[:, :k], axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "n, m, k",
    [(40, 30, 1), (40, 30, 30), (40, 30, 7), (25, 500, 25), (25, 500, 130), (3, 2, 2)],
)
@pytest.mark.parametrize("ties", [False, True])
def test_topk_matches_reference(dtype, n, m, k, ties):
    rng = np.random.RandomState(n * m + k)
    Z = rng.randn(n, m)
    if ties:
        Z = np.round(Z)  # many equal values per row
    Z = Z.astype(dtype)
    bias = (np.zeros(m) if ties else rng.randn(m)).astype(dtype)
    V = Z + bias
    expected = _reference_topk(V, k)

    idx = np.empty((n, k), dtype=np.int64)
    vals = np.empty((n, k), dtype=dtype)
    _kernels.topk_rows(Z, bias, k, _kernels.LINEAR, idx, vals)
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(vals, np.take_along_axis(V, expected, axis=1))

    dense = Z.copy()
    _kernels.topk_dense_inplace(dense, bias, k, _kernels.LINEAR)
    want = np.zeros_like(V)
    np.put_along_axis(want, expected, np.take_along_axis(V, expected, axis=1), axis=1)
    np.testing.assert_array_equal(dense, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_where_exactly_k_entries_reach_a_value(dtype):
    """Rows whose k best entries are set apart from the rest, with the k-th tied
    several times inside the k (the bisection stops once exactly k keys reach its
    midpoint), or tied beyond them (it cannot), in shuffled columns."""
    rng = np.random.RandomState(3)
    k, m = 7, 60
    rows = []
    for n_tied_in, n_tied_out in [(1, 0), (5, 0), (7, 0), (3, 4), (1, 9), (7, 2)]:
        above = k - n_tied_in
        row = np.concatenate([np.linspace(9, 5, above), np.full(n_tied_in + n_tied_out, 2.0),
                              rng.uniform(-3, 1.5, m - above - n_tied_in - n_tied_out)])
        rows.append(row[rng.permutation(m)])
    Z = np.array(rows, dtype=dtype)
    zero = np.zeros(m, dtype)
    idx = np.empty((len(rows), k), np.int64)
    vals = np.empty((len(rows), k), dtype)
    _kernels.topk_rows(Z, zero, k, _kernels.LINEAR, idx, vals)
    expected = _reference_topk(Z, k)
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(vals, np.take_along_axis(Z, expected, axis=1))


def test_topk_relu_and_sigmoid_apply_after_selection():
    rng = np.random.RandomState(0)
    Z = rng.randn(20, 50)
    bias = np.zeros(50)
    idx = np.empty((20, 40), dtype=np.int64)
    vals = np.empty((20, 40))
    _kernels.topk_rows(Z, bias, 40, _kernels.RELU, idx, vals)
    raw = np.take_along_axis(Z, idx, axis=1)
    np.testing.assert_array_equal(vals, np.maximum(raw, 0))
    assert (raw < 0).any()  # with 40 of 50 kept some selected values were negative
    _kernels.topk_rows(Z, bias, 40, _kernels.SIGMOID, idx, vals)
    np.testing.assert_allclose(vals, 1 / (1 + np.exp(-raw)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_orders_the_whole_float_range(dtype):
    # the selection ranks floats through integer keys: signed zeros must tie, and
    # infinities, subnormals and values of both signs far apart must keep their order
    info = np.finfo(dtype)
    pool = np.array([-np.inf, -info.max, -1e3, -1.0, -info.tiny, -info.tiny / 4, -0.0, 0.0,
                     info.tiny / 4, info.tiny, 1.0, 1e3, info.max, np.inf], dtype=dtype)
    rng = np.random.RandomState(0)
    Z = rng.choice(pool, size=(60, 40))
    bias = np.zeros(40, dtype=dtype)
    for k in (1, 5, 20, 39):
        idx = np.empty((60, k), dtype=np.int64)
        vals = np.empty((60, k), dtype=dtype)
        _kernels.topk_rows(Z, bias, k, _kernels.LINEAR, idx, vals)
        np.testing.assert_array_equal(idx, _reference_topk(Z, k))
        np.testing.assert_array_equal(vals, np.take_along_axis(Z, idx, axis=1))


def test_topk_rows_with_nan_still_return_k_valid_columns():
    Z = np.random.RandomState(0).randn(3, 200)
    Z[0] = np.nan
    Z[1, ::2] = np.nan
    idx = np.full((3, 25), -1, dtype=np.int64)
    vals = np.empty((3, 25))
    _kernels.topk_rows(Z, np.zeros(200), 25, _kernels.LINEAR, idx, vals)
    assert idx.min() >= 0 and idx.max() < 200
    assert all(len(set(row)) == 25 for row in idx)
    assert np.isnan(vals[0]).all()
    assert np.isfinite(vals[1]).all()  # 100 finite entries remain in row 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("n, m", [(130, 70), (70, 130), (3, 2)])  # split rows / columns
def test_threaded_gemm_matches_numpy(dtype, trans_a, trans_b, n, m):
    rng = np.random.RandomState(0)
    inner = 33
    A = rng.rand(*((inner, n) if trans_a else (n, inner))).astype(dtype)
    B = rng.rand(*((m, inner) if trans_b else (inner, m))).astype(dtype)
    C = rng.rand(n, m).astype(dtype)
    expected = (A.T if trans_a else A) @ (B.T if trans_b else B) + 0.5 * C
    with _kernels.single_threaded_blas:
        _kernels.matmul(A, trans_a, B, trans_b, C, 0.5)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C, expected, rtol=rtol)


def _dense_reference_grads(engine, params, X, Xc, k):
    """The same loss and gradients by dense masked NumPy (the O(n m d) way)."""
    W, b, c = params["W"], params["b"], params["c"]
    D = W if engine.tied else params["D"]
    n = X.shape[0]
    Z = Xc @ W.T + b
    mask = np.zeros_like(Z, dtype=bool)
    np.put_along_axis(mask, _reference_topk(Z, k), True, axis=1)
    act = {0: lambda z: z, 1: lambda z: np.maximum(z, 0), 2: lambda z: 1 / (1 + np.exp(-z))}
    H = np.where(mask, act[engine.activation](Z), 0)
    A = H @ D + c
    if engine.cross_entropy:
        out = 1 / (1 + np.exp(-A))
    else:
        out = A
    G = (out - X) / n
    dH = G @ D.T
    if engine.activation == 1:
        dH = dH * (H > 0)
    elif engine.activation == 2:
        dH = dH * H * (1 - H)
    dZ = np.where(mask, dH, 0)
    grads = {"W": dZ.T @ Xc, "b": dZ.sum(0), "c": G.sum(0)}
    if engine.tied:
        grads["W"] = grads["W"] + H.T @ G
    else:
        grads["D"] = H.T @ G
    return grads


def _random_params(rng, m, d, tied):
    """float64 autoencoder parameters with non-zero biases (and a decoder if untied)."""
    params = _networks.init_params(rng, m, d, np.float64, tied, 0.5)
    params["b"] = rng.randn(m) * 0.3
    params["c"] = rng.randn(d) * 0.3
    if not tied:
        params["D"] = rng.randn(m, d) * 0.5
    return params


def _assert_finite_differences(loss_at, params, grads, eps=1e-6):
    """``grads`` equal the central differences of ``loss_at(params)``, entry by entry."""
    for name, p in params.items():
        numeric = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            plus = _networks.copy_state(params)
            minus = _networks.copy_state(params)
            plus[name][i] += eps
            minus[name][i] -= eps
            numeric[i] = (loss_at(plus) - loss_at(minus)) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize(
    "activation, loss, k",
    [
        ("linear", "squared_error", 3),
        ("relu", "squared_error", 3),
        ("sigmoid", "squared_error", 3),
        ("sigmoid", "cross_entropy", 3),
        ("sigmoid", "cross_entropy", None),
        ("relu", "squared_error", None),
        ("linear", "squared_error", None),
        ("sigmoid", "squared_error", None),
    ],
)
def test_gradients_match_finite_differences(tied, activation, loss, k):
    rng = np.random.RandomState(0)
    n, d, m = 6, 5, 8
    X = rng.rand(n, d)
    Xc = X * (rng.rand(n, d) > 0.3)  # a corrupted encoder input, as in denoising
    params = _random_params(rng, m, d, tied)
    engine = _networks.AutoencoderNet(activation=activation, loss=loss, tied=tied)
    grads = {name: np.empty_like(p) for name, p in params.items()}

    def loss_at(p):
        g = {name: np.empty_like(v) for name, v in p.items()}
        with _kernels.single_threaded_blas:
            return engine.loss_and_grads(p, X, Xc, k, g)[0]

    with _kernels.single_threaded_blas:
        engine.loss_and_grads(params, X, Xc, k, grads)
    _assert_finite_differences(loss_at, params, grads)
    if k is not None:
        reference = _dense_reference_grads(engine, params, X, Xc, k)
        for name in grads:
            np.testing.assert_allclose(grads[name], reference[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("activation, loss", [("relu", "squared_error"),
                                              ("sigmoid", "cross_entropy"),
                                              ("linear", "squared_error")])
def test_gradients_with_hidden_dropout_match_finite_differences(tied, activation, loss):
    """With hidden-unit dropout (outside an epoch the engine draws the same mask on
    every call) the gradients are the derivative of the loss of the dropped-out
    network; the mask really drops units (the loss differs from no dropout)."""
    rng = np.random.RandomState(0)
    n, d, m = 6, 5, 8
    X = rng.rand(n, d)
    params = _random_params(rng, m, d, tied)
    engines = [_networks.AutoencoderNet(activation=activation, loss=loss, tied=tied, dropout=rate)
               for rate in (0.5, 0.0)]

    def loss_and_grads(p, engine=engines[0]):
        g = {name: np.empty_like(v) for name, v in p.items()}
        with _kernels.single_threaded_blas:
            return engine.loss_and_grads(p, X, X, None, g)[0], g

    total, grads = loss_and_grads(params)
    assert total != loss_and_grads(params, engines[1])[0]
    _assert_finite_differences(lambda p: loss_and_grads(p)[0], params, grads)


def _aux_reference_loss(params, Xc, E, dead, k_aux, activation, tied, coef):
    """AuxK's loss in NumPy: the k_aux largest dead units of each row of the encoder
    (by value, as the top-k kernels select) reconstruct the fixed residual E through
    the decoder without its bias; coef * half the squared error, averaged over rows."""
    D = params["W"] if tied else params["D"]
    Z = Xc @ params["W"].T + params["b"]
    Z = np.where(dead, Z, -np.inf)
    H = np.zeros_like(Z)
    for i, row in enumerate(Z):
        keep = np.argsort(-row, kind="stable")[:k_aux]
        v = row[keep]
        H[i, keep] = np.maximum(v, 0) if activation == "relu" else v
    R = H @ D - E
    return coef * 0.5 * np.sum(R * R) / Xc.shape[0]


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_aux_dead_unit_loss_gradients(tied, activation):
    """AuxK on the top-k path: the loss is the main loss plus the dead units'
    reconstruction of the residual; the gradients are those of that sum with the
    residual held constant (central differences); with no dead unit, nothing changes."""
    rng = np.random.RandomState(1)
    n, d, m, k, k_aux, coef = 7, 5, 12, 3, 4, 0.5
    X = rng.rand(n, d)
    params = _random_params(rng, m, d, tied)
    kw = dict(activation=activation, loss="squared_error", tied=tied)
    plain = _networks.AutoencoderNet(**kw)
    aux = _networks.AutoencoderNet(**kw, aux_coef=coef, k_aux=k_aux, dead_window=100)
    dead = np.zeros(m, dtype=bool)
    dead[[1, 4, 5, 8, 9, 11]] = True

    def run(engine, p, since=None):
        g = {name: np.empty_like(v) for name, v in p.items()}
        engine.since = since
        with _kernels.single_threaded_blas:
            loss = engine.loss_and_grads(p, X, X, k, g)[0]
        engine.since = None
        return loss, g

    since = np.where(dead, 100, 99).astype(np.int64)
    base_loss, base_grads = run(plain, params)
    total, grads = run(aux, params, since)
    # the residual of the main reconstruction, held constant
    D = params["W"] if tied else params["D"]
    Z = X @ params["W"].T + params["b"]
    H = np.zeros_like(Z)
    for i, row in enumerate(Z):
        keep = np.argsort(-row, kind="stable")[:k]
        H[i, keep] = np.maximum(row[keep], 0) if activation == "relu" else row[keep]
    E = X - (H @ D + params["c"])

    def objective(p):
        return run(plain, p)[0] + _aux_reference_loss(p, X, E, dead, k_aux, activation,
                                                      tied, coef)

    np.testing.assert_allclose(total, objective(params), rtol=1e-12)
    assert total > base_loss
    _assert_finite_differences(objective, params, grads)
    # only dead units' encoder rows (and the decoder) receive the auxiliary gradient
    changed = np.abs(grads["W"] - base_grads["W"]).sum(axis=1) > 0
    if tied:
        assert changed.any() and not (changed & ~dead).any()
    # no dead unit: the same loss and gradients, bit for bit
    quiet = run(aux, params, np.zeros(m, dtype=np.int64))
    assert quiet[0] == base_loss
    for name in grads:
        np.testing.assert_array_equal(quiet[1][name], base_grads[name])


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_batch_topk_selection_and_gradients(tied, activation):
    """BatchTopK: the batch keeps its n * k largest activations (with ReLU, the
    positive ones among them), rows keeping different numbers of units; the loss and
    the gradients are those of the network with that selection held fixed."""
    rng = np.random.RandomState(2)
    n, d, m, k = 6, 5, 10, 2
    X = rng.rand(n, d)
    params = _random_params(rng, m, d, tied)
    engine = _networks.AutoencoderNet(activation=activation, loss="squared_error", tied=tied,
                                      batch_topk=True)
    A = X @ params["W"].T + params["b"]
    if activation == "relu":
        A = np.maximum(A, 0)
    order = np.argsort(-A, axis=None, kind="stable")[: n * k]
    mask = np.zeros(A.size, dtype=bool)
    mask[order] = True
    mask = mask.reshape(A.shape) & ((A > 0) if activation == "relu" else True)
    assert len(set(mask.sum(axis=1))) > 1  # rows keep different numbers of units

    def objective(p):
        Dp = p["W"] if tied else p["D"]
        Ap = X @ p["W"].T + p["b"]
        if activation == "relu":
            Ap = np.maximum(Ap, 0)
        R = (Ap * mask) @ Dp + p["c"] - X
        return 0.5 * np.sum(R * R) / n

    grads = {name: np.empty_like(v) for name, v in params.items()}
    engine.batch_minima = []
    with _kernels.single_threaded_blas:
        loss, counts = engine.loss_and_grads(params, X, X, k, grads)
    np.testing.assert_array_equal(counts, mask.sum(axis=0))
    np.testing.assert_allclose(loss, objective(params), rtol=1e-12)
    assert engine.batch_minima == [pytest.approx(A[mask].min())]
    _assert_finite_differences(objective, params, grads)


def test_kernels_accept_read_only_and_non_contiguous_inputs():
    rng = np.random.RandomState(0)
    Z = np.asfortranarray(rng.randn(30, 40))
    Z.setflags(write=False)
    bias = np.zeros(40)
    bias.setflags(write=False)
    idx = np.empty((30, 5), dtype=np.int64)
    vals = np.empty((30, 5))
    _kernels.topk_rows(Z, bias, 5, _kernels.LINEAR, idx, vals)
    np.testing.assert_array_equal(idx, _reference_topk(np.asarray(Z), 5))


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("k", [3, None])
def test_optimizer_step_matches_the_textbook_update(solver, tied, k):
    """One training step equals the plain gradient followed by the textbook SGD with
    momentum or Adam update (Kingma & Ba, 2015)."""
    rng = np.random.RandomState(0)
    n, d, m = 7, 5, 9
    X = rng.rand(n, d)
    params = _networks.init_params(rng, m, d, np.float64, tied, 0.5)
    engine = _networks.AutoencoderNet(activation="relu", loss="squared_error", tied=tied)
    opt = _optim.make_optimizer(solver, 0.05, 0.8).add_slots(params, params)
    for name in params:  # a non-trivial optimizer state
        for key in opt.state:
            if key.endswith("_" + name):
                opt.state[key][...] = rng.rand(*params[name].shape) * 0.01
    opt.state["t"] = 3
    grads = {name: np.empty_like(p) for name, p in params.items()}
    with _kernels.single_threaded_blas:
        engine.loss_and_grads(params, X, X, k, grads)
    expected = _networks.copy_state(params)
    state = _networks.copy_state(opt.state)
    t = state["t"] + 1
    for name, g in grads.items():
        if solver == "sgd":
            v = 0.8 * state[f"v_{name}"] - 0.05 * g
            expected[name] = expected[name] + v
        else:
            mom = 0.9 * state[f"m_{name}"] + 0.1 * g
            vel = 0.999 * state[f"v_{name}"] + 0.001 * g * g
            step = 0.05 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            expected[name] = expected[name] - step * mom / (np.sqrt(vel) + 1e-8)
    with _kernels.single_threaded_blas:
        engine.loss_and_grads(params, X, X, k, grads, optimizer=opt)
    assert opt.state["t"] == t
    for name in params:
        np.testing.assert_allclose(params[name], expected[name], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_takes_gradients_whose_square_underflows_as_zero(dtype):
    """Adam treats a gradient entry (L2 term included) whose (1 - beta2)-weighted
    square would be subnormal as zero: its moments stay as they were decayed, and the
    weight moves only by its first moment; the other entries follow the textbook
    update."""
    tiny = np.finfo(dtype).tiny
    small = np.sqrt(tiny / (1 - 0.999))
    w = np.array([0.0, 0.0, small, 0.5], dtype=dtype)
    g = np.array([0.3 * small, 3 * small, 0.0, 1e-3], dtype=dtype)
    l2 = 1e-4
    m1 = np.array([0.0, 0.0, 0.0, 1e-4], dtype=dtype)
    m2 = np.array([0.0, 0.0, 0.0, 1e-6], dtype=dtype)
    gi = g + l2 * w
    gi[np.abs(gi) < small] = 0  # entries 0 and 2 (l2 * small is below too)
    mom = 0.9 * m1 + 0.1 * gi
    vel = 0.999 * m2 + 0.001 * gi * gi
    expected = w - 0.01 * mom / (np.sqrt(vel) + 1e-8)
    _kernels.optimizer_update(_kernels.ADAM, w, m1, m2, g, 0.01, 0.9, 0.999, 1e-8, l2)
    assert m1[0] == 0 and m2[0] == 0 and m1[2] == 0 and m2[2] == 0
    assert m1[1] != 0 and m2[1] != 0
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    np.testing.assert_allclose(m1, mom, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", [_kernels.SGD, _kernels.ADAM])
def test_optimizer_step_returns_the_penalised_weights_squares(dtype, solver):
    """With an L2 coefficient the step returns sum(w ** 2) of the weights before it
    (the penalty's part of the loss), the same for any thread count; without one, 0
    and the same step."""
    rng = np.random.RandomState(0)
    n = 3 * 4096 + 17  # several blocks, the last of another length
    w0 = rng.randn(n).astype(dtype)
    g = rng.randn(n).astype(dtype)
    results = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):  # one core: 1 and 1
        numba.set_num_threads(threads)
        try:
            w, s1, s2 = w0.copy(), np.zeros(n, dtype), np.zeros(n, dtype)
            squares = _kernels.optimizer_update(solver, w, s1, s2, g, 0.01, 0.9, 0.999,
                                                1e-8, 1e-3)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        results.append((squares, w))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_allclose(results[0][0], np.sum(w0.astype(np.float64) ** 2),
                               rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert not np.array_equal(results[0][1], w0)
    w = w0.copy()
    assert _kernels.optimizer_update(solver, w, np.zeros(n, dtype), np.zeros(n, dtype), g,
                                     0.01, 0.9, 0.999, 1e-8, 0.0) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 37, 700])  # one chunk, a partial chunk, several chunks
def test_fused_encoder_top_k_matches_product_then_selection(dtype, n):
    rng = np.random.RandomState(n)
    X = rng.rand(n, 20).astype(dtype)
    W = rng.randn(50, 20).astype(dtype)
    bias = rng.randn(50).astype(dtype)
    H = np.empty((n, 50), dtype=dtype)
    with _kernels.single_threaded_blas:
        _kernels.encode_topk_dense(X, W, bias, 6, _kernels.RELU, H, 256)
    Z = X.astype(np.float64) @ W.T.astype(np.float64) + bias
    expected = np.zeros_like(Z)
    top = _reference_topk(Z, 6)
    np.put_along_axis(expected, top, np.maximum(np.take_along_axis(Z, top, axis=1), 0), axis=1)
    np.testing.assert_allclose(H, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keep", [0.0, 0.2, 0.75, 1.0])
def test_bernoulli_mask(dtype, keep):
    """The mask holds ``scale`` with probability ``keep`` and 0 elsewhere, is the same
    for a seed whatever the thread count, differs between seeds, and has no pattern
    along rows or columns."""
    out = np.empty((400, 500), dtype=dtype)
    _kernels.bernoulli_mask(7, keep, 2.5, out)
    assert set(np.unique(out)) <= {0.0, 2.5}
    kept = out != 0
    # 200,000 draws: the fraction is within 5 standard deviations of keep
    assert abs(kept.mean() - keep) <= 5 * np.sqrt(keep * (1 - keep) / kept.size) + 1e-12
    if 0 < keep < 1:
        sd = np.sqrt(keep * (1 - keep))
        for frac in (kept.mean(axis=0), kept.mean(axis=1)):  # per column, per row
            assert np.abs(frac - keep).max() < 6 * sd / np.sqrt(min(out.shape))
        # neighbouring entries are uncorrelated
        a, b = kept[:, :-1].ravel(), kept[:, 1:].ravel()
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.02
        other = np.empty_like(out)
        _kernels.bernoulli_mask(8, keep, 2.5, other)
        assert not np.array_equal(out, other)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        again = np.empty_like(out)
        _kernels.bernoulli_mask(7, keep, 2.5, again)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(out, again)


def test_exp32_and_log1p32_against_float64():
    """The vectorisable float32 exp and log1p: within 2 ulp of the correctly rounded
    value over the clamped range; NaN stays NaN; the clamp keeps results finite."""
    from numba import njit

    exp32 = njit(lambda x: _kernels._exp32(x))
    log1p32 = njit(lambda u: _kernels._log1p_unit32(u))
    x = np.linspace(-87, 88, 200_001).astype(np.float32)
    got = np.array([exp32(v) for v in x[::50]], dtype=np.float32)
    ref = np.exp(x[::50].astype(np.float64)).astype(np.float32)
    assert np.abs(got.view(np.int32) - ref.view(np.int32)).max() <= 2
    assert np.isnan(exp32(np.float32(np.nan)))
    assert 0 < exp32(np.float32(-1000)) and np.isfinite(exp32(np.float32(1000)))
    u = np.concatenate([[0.0, 1e-30, 1e-8], np.linspace(0, 1, 4001)]).astype(np.float32)
    got = np.array([log1p32(v) for v in u], dtype=np.float32)
    ref = np.log1p(u.astype(np.float64))
    np.testing.assert_allclose(got, ref, rtol=3e-7, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_residual(dtype):
    """The sigmoid + cross-entropy output: the gradient sig(a) - t and the loss
    softplus(a) - a t against float64 references, for large |a| too."""
    rng = np.random.RandomState(0)
    A = (rng.randn(64, 300) * 8).astype(dtype)
    A[0, :4] = [-200, 200, -90, 90]
    T = (rng.rand(64, 300) < 0.3).astype(dtype) * rng.rand(64, 300).astype(dtype)
    G = A.copy()
    total = _kernels.output_residual(G, T, _kernels.SIGMOID, True, 0.5)
    a, t = A.astype(np.float64), T.astype(np.float64)
    sig = np.exp(-np.logaddexp(0, -a))
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(G, (sig - t) * 0.5, rtol=0, atol=2 * eps)
    ref_loss = (np.logaddexp(0, a) - a * t).sum()
    assert abs(total - ref_loss) <= 20 * eps * np.abs(np.logaddexp(0, a) + a * t).sum()
    # no subnormal gradient (they slow every later product): 0 instead
    G2 = np.full((2, 3), -120.0, dtype=dtype)
    _kernels.output_residual(G2, np.zeros_like(G2), _kernels.SIGMOID, True, 1 / 128)
    assert not np.any((G2 != 0) & (np.abs(G2) < np.finfo(dtype).tiny))
    G[0, 0] = np.nan
    assert np.isnan(_kernels.output_residual(G, T, _kernels.SIGMOID, True, 0.5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", [_kernels.LINEAR, _kernels.RELU, _kernels.SIGMOID])
def test_dense_activation_kernels_match_numpy(dtype, activation):
    """bias_activate and mul_activation_grad give NumPy's bits (and scipy's expit's
    in float64; within 4 ulp of them in float32, through the kernels' own exp)."""
    from scipy.special import expit

    rng = np.random.RandomState(1)
    Z = (rng.randn(50, 70) * 6).astype(dtype)
    Z[0, 0] = np.nan
    b = rng.randn(70).astype(dtype)
    H = Z.copy()
    _kernels.bias_activate(H, b, activation)
    ref = Z + b
    if activation == _kernels.RELU:
        ref = np.maximum(ref, 0)
    elif activation == _kernels.SIGMOID:
        ref = expit(ref)
    if activation == _kernels.SIGMOID and dtype == np.float32:
        assert np.isnan(H[0, 0])
        np.testing.assert_array_max_ulp(H[1:], ref[1:], maxulp=4)
        far = np.array([[-95.0, -200.0, 95.0]], dtype=dtype)
        _kernels.bias_activate(far, np.zeros(3, dtype), activation)
        np.testing.assert_array_equal(far, [[0.0, 0.0, 1.0]])  # 0, not subnormal
    else:
        np.testing.assert_array_equal(H, ref)
    G = rng.randn(50, 70).astype(dtype)
    expected = G.copy()
    if activation == _kernels.RELU:
        expected *= (H > 0).astype(dtype)
    elif activation == _kernels.SIGMOID:
        expected *= H * (1 - H)
    _kernels.mul_activation_grad(G, H, activation)
    np.testing.assert_array_equal(G, expected)


def test_column_nonzero_counts():
    rng = np.random.RandomState(2)
    A = (rng.rand(300, 40) < 0.3) * rng.randn(300, 40)
    out = np.empty(40, dtype=np.int64)
    _kernels.column_sums(A, out, True)
    np.testing.assert_array_equal(out, np.count_nonzero(A, axis=0))


def test_single_threaded_blas_limits_blas_from_any_python_thread():
    # threadpoolctl 3.8 ignores limits set from a second Python thread once another
    # thread has set one outside a `with` block: the limit must hold in every thread
    # that enters, and the counts come back on leaving.
    import threading

    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    seen = {}

    def inside(name):
        with _kernels.single_threaded_blas:
            seen[name] = blas_threads()
        seen[name + " after"] = blas_threads()

    inside("main")
    for name in ("first thread", "second thread"):
        t = threading.Thread(target=inside, args=(name,))
        t.start()
        t.join()
    inside("main again")
    for name in ("main", "first thread", "second thread", "main again"):
        assert seen[name] == [1] * len(before), (name, seen)
        assert seen[name + " after"] == before, (name, seen)
