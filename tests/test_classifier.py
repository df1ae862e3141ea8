"""AutoencoderClassifier: the stack network's gradients, pretraining, fine-tuning and
the classifier contract."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skksae import AutoencoderClassifier, DenoisingAutoencoder, KSparseAutoencoder
from skksae import _labels, _networks, _optim, _training
from skksae._kernels import single_threaded_blas


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


def _quiet(clf, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(*args, **kwargs)


# ------------------------------------------------------------------ the network
STACKS = [  # layers (units, activation, k), first trained layer, alpha, dropout
    ([(6, "linear", 2)], 0, 0.0, 0.0),
    ([(6, "sigmoid", None), (5, "relu", 2)], 0, 0.0, 0.4),
    ([(6, "relu", 3), (5, "sigmoid", None)], 1, 0.1, 0.3),
    ([(6, "relu", None)], 0, 0.0, 0.0),
    ([(6, "sigmoid", None), (5, "linear", 2)], 0, 0.0, 0.0),
    ([(6, "linear", 3), (5, "relu", 2)], 0, 0.3, 0.0),
    ([(6, "linear", 3), (5, "sigmoid", None)], 1, 0.0, 0.0),
    ([(6, "relu", 3), (5, "linear", None), (4, "sigmoid", 2)], 0, 0.1, 0.0),
]


@pytest.mark.parametrize("input_dropout", [0.0, 0.25])
@pytest.mark.parametrize("specs, first_trained, alpha, dropout", STACKS)
def test_stack_gradients_match_finite_differences(specs, first_trained, alpha, dropout,
                                                  input_dropout):
    """Backpropagation through dense and top-k layers (whose backward runs over the
    compact code) gives the derivative of the batch loss, penalty and dropout of
    hidden units and inputs included (the same masks on every call here); frozen
    layers get no step."""
    rng = np.random.RandomState(0)
    d, n_classes, n = 7, 3, 9
    sizes = [d] + [units for units, _, _ in specs]
    params = {}
    for l, (units, _, _) in enumerate(specs):
        params[f"W{l}"] = rng.randn(units, sizes[l])
        params[f"b{l}"] = 0.1 * rng.randn(units)
    L = len(specs)
    params[f"W{L}"] = rng.randn(n_classes, sizes[-1])
    params[f"b{L}"] = rng.randn(n_classes)
    engine = _networks.StackNet(layers=[(a, k) for _, a, k in specs], alpha=alpha,
                                first_trained=first_trained, dropout=dropout,
                                input_dropout=input_dropout)
    X = rng.randn(n, d)
    Y = np.eye(n_classes)[rng.randint(0, n_classes, n)]

    def loss():
        grads = {name: np.empty_like(p) for name, p in params.items()}
        with single_threaded_blas:
            return engine.loss_and_grads(params, X, Y, grads), grads

    _, grads = loss()
    eps = 1e-6
    for name in engine.trained_names():
        p = params[name]
        numeric = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = loss()[0]
            p[i] = old - eps
            down = loss()[0]
            p[i] = old
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-7, err_msg=name)
    trained = set(engine.trained_names())
    assert trained == {f"{p}{l}" for l in range(first_trained, L + 1) for p in "Wb"}
    # one optimizer step moves the trained parameters only
    before = _networks.copy_state(params)
    opt = _optim.make_optimizer("adam", 1e-3).add_slots(params, trained)
    expected = loss()[0]
    with single_threaded_blas:
        # with a step, the penalty's squares come from the optimizer kernel (the
        # weights before the step): the same loss to rounding
        stepped = engine.loss_and_grads(params, X, Y, loss()[1], optimizer=opt)
    np.testing.assert_allclose(stepped, expected, rtol=1e-12)
    for name, p in params.items():
        assert np.array_equal(p, before[name]) == (name not in trained), name


# -------------------------------------------------------- pretraining, layers
def test_frozen_network_computes_the_autoencoders_codes(digits):
    """With fine_tune=False the hidden layers are the fitted encoders, their means
    folded into the biases: the network's logits are the output layer applied to
    the stack's transform."""
    X_train, X_test, y_train, _ = digits
    dae = _quiet(DenoisingAutoencoder(48, max_iter=3, random_state=0), X_train)
    ks = _quiet(KSparseAutoencoder(40, k=5, transform_k_factor=2, max_iter=3, random_state=0),
                dae.transform(X_train))
    clf = _quiet(AutoencoderClassifier([dae, ks], fine_tune=False, max_iter=3,
                                       random_state=0), X_train, y_train)
    # the fitted layers were used as they were, not trained again
    np.testing.assert_array_equal(clf.autoencoders_[0].components_, dae.components_)
    np.testing.assert_array_equal(clf.autoencoders_[1].components_, ks.components_)
    assert clf.hidden_k_ == [None, 10] and clf.hidden_activations_ == ["relu", "linear"]
    codes = ks.transform(dae.transform(X_test))
    expected = codes @ clf.coefs_[2] + clf.intercepts_[2]
    logits = clf.decision_function(X_test)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert clf.coefs_[0].shape == (64, 48) and clf.coefs_[1].shape == (48, 40)
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 10


def test_pretraining_is_greedy_on_clean_codes(digits):
    """Unfitted layers are fitted in order, each on the clean codes of the one below;
    the user's estimators are left unfitted."""
    X_train, _, y_train, _ = digits
    layers = [DenoisingAutoencoder(32, max_iter=2, random_state=0),
              KSparseAutoencoder(24, k=4, max_iter=2, random_state=1)]
    clf = _quiet(AutoencoderClassifier(layers, max_iter=1, random_state=0), X_train, y_train)
    assert not hasattr(layers[0], "components_") and not hasattr(layers[1], "components_")
    first = _quiet(DenoisingAutoencoder(32, max_iter=2, random_state=0), X_train)
    second = _quiet(KSparseAutoencoder(24, k=4, max_iter=2, random_state=1),
                    first.transform(X_train))
    np.testing.assert_array_equal(clf.autoencoders_[0].components_, first.components_)
    np.testing.assert_array_equal(clf.autoencoders_[1].components_, second.components_)


def test_random_init_does_not_pretrain(digits):
    X_train, _, y_train, _ = digits
    clf = _quiet(AutoencoderClassifier([KSparseAutoencoder(32, k=4)], pretrain=False,
                                       fine_tune=False, max_iter=1, random_state=0),
                 X_train, y_train)
    assert not hasattr(clf.autoencoders_[0], "components_")
    bound = np.sqrt(6 / (64 + 32))
    assert np.abs(clf.coefs_[0]).max() <= bound
    assert clf.hidden_k_ == [12]


@pytest.mark.parametrize("fine_tune_k, k", [("transform", 12), ("train", 4)])
def test_fine_tune_k_sets_the_top_k_in_the_network(digits, fine_tune_k, k):
    X_train, X_test, y_train, _ = digits
    clf = _quiet(AutoencoderClassifier([KSparseAutoencoder(32, k=4, max_iter=2)],
                                       fine_tune_k=fine_tune_k, max_iter=2, random_state=0),
                 X_train, y_train)
    assert clf.hidden_k_ == [k]
    # the network's hidden layer keeps exactly k units per sample: read it through an
    # identity output layer
    params = clf._params()
    probe = _networks.StackNet(layers=clf._specs())
    H = probe.logits({"W0": params["W0"], "b0": params["b0"],
                      "W1": np.eye(32, dtype=np.float32), "b1": np.zeros(32, np.float32)},
                     X_test)
    assert ((H != 0).sum(axis=1) == k).all()
    top = np.sort(X_test @ params["W0"].T + params["b0"], axis=1)[:, -k:]
    np.testing.assert_allclose(np.sort(H, axis=1)[:, -k:], top, rtol=1e-5, atol=1e-5)


def test_fine_tuning_beats_frozen_features_on_digits(digits):
    """Fine-tuning the pretrained layer ends with a lower training loss than training
    the output layer alone on the same frozen codes, and both classify well."""
    X_train, X_test, y_train, y_test = digits
    ks = _quiet(KSparseAutoencoder(64, k=8, max_iter=20, random_state=0), X_train)
    common = dict(max_iter=100, random_state=0)
    tuned = _quiet(AutoencoderClassifier([ks], **common), X_train, y_train)
    frozen = _quiet(AutoencoderClassifier([ks], fine_tune=False, **common), X_train, y_train)
    assert tuned.loss_ < frozen.loss_
    assert tuned.score(X_test, y_test) > 0.93
    assert frozen.score(X_test, y_test) > 0.9


# ------------------------------------------------------- classifier contract
def test_reproducible_bitwise(digits):
    X_train, _, y_train, _ = digits
    make = lambda: AutoencoderClassifier(  # noqa: E731
        [KSparseAutoencoder(32, k=4, max_iter=2)], max_iter=3, random_state=7)
    a = _quiet(make(), X_train, y_train)
    b = _quiet(make(), X_train, y_train)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(wa, wb)
    assert a.loss_curve_ == b.loss_curve_


def test_string_labels_and_probabilities(digits):
    X_train, X_test, y_train, _ = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"], dtype=object)
    clf = _quiet(AutoencoderClassifier([KSparseAutoencoder(32, k=4, max_iter=2)],
                                       max_iter=5, random_state=0), X_train, names[y_train])
    assert list(clf.classes_) == sorted(names)
    proba = clf.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.log(proba), clf.predict_log_proba(X_test), atol=1e-4)
    assert np.array_equal(clf.predict(X_test), clf.classes_[proba.argmax(axis=1)])


def test_binary_decision_function():
    X, y = make_classification(200, 8, random_state=0)
    clf = _quiet(AutoencoderClassifier([DenoisingAutoencoder(16, max_iter=2)], max_iter=20,
                                       random_state=0), X, y)
    scores = clf.decision_function(X)
    assert scores.shape == (200,)
    assert np.array_equal(clf.predict(X), clf.classes_[(scores > 0).astype(int)])
    assert clf.score(X, y) > 0.85


def test_sparse_input_matches_dense(digits):
    X_train, X_test, y_train, _ = digits
    make = lambda: AutoencoderClassifier(  # noqa: E731
        [KSparseAutoencoder(32, k=4, max_iter=2)], max_iter=2, random_state=0)
    dense = _quiet(make(), X_train, y_train)
    sparse = _quiet(make(), sp.csr_matrix(X_train), y_train)
    np.testing.assert_allclose(sparse.coefs_[0], dense.coefs_[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dense.predict_proba(sp.csr_matrix(X_test)),
                               dense.predict_proba(X_test), rtol=1e-4, atol=1e-6)


def test_float32_stays_float32(digits):
    X_train, X_test, y_train, _ = digits
    clf = _quiet(AutoencoderClassifier([KSparseAutoencoder(16, k=4, max_iter=1)], max_iter=1),
                 X_train, y_train)
    assert clf.coefs_[0].dtype == np.float32
    clf64 = _quiet(AutoencoderClassifier([KSparseAutoencoder(16, k=4, max_iter=1)],
                                         max_iter=1), X_train.astype(np.float64), y_train)
    assert clf64.coefs_[0].dtype == np.float64


def test_early_stopping_keeps_the_best_epoch(digits):
    X_train, _, y_train, _ = digits
    clf = AutoencoderClassifier([KSparseAutoencoder(32, k=4, max_iter=3)], early_stopping=True,
                                n_iter_no_change=3, tol=0.0, max_iter=60, random_state=0)
    _quiet(clf, X_train, y_train)
    assert len(clf.validation_scores_) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None
    # the kept weights are those of the best epoch: rescoring the same split agrees
    rng = np.random.RandomState(0)  # the split is the first draw from random_state
    _, X_val, _, y_val = _labels.validation_split(X_train, y_train, clf.classes_,
                                                  clf.validation_fraction, rng)
    assert clf.score(X_val, y_val) == pytest.approx(clf.best_validation_score_)


def test_warm_start_and_partial_fit_continue(digits):
    X_train, _, y_train, _ = digits
    clf = AutoencoderClassifier([KSparseAutoencoder(32, k=4, max_iter=2)], max_iter=2,
                                warm_start=True, random_state=0)
    _quiet(clf, X_train, y_train)
    W = clf.coefs_[0].copy()
    _quiet(clf, X_train, y_train)
    assert clf.n_iter_ == 4 and len(clf.loss_curve_) == 4
    assert not np.array_equal(W, clf.coefs_[0])
    # without warm_start, fit starts again from the same seed
    clf.set_params(warm_start=False)
    _quiet(clf, X_train, y_train)
    assert clf.n_iter_ == 2

    inc = AutoencoderClassifier([KSparseAutoencoder(32, k=4, max_iter=2)], random_state=0)
    classes = np.arange(10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for chunk in np.array_split(np.arange(len(y_train)), 3):
            inc.partial_fit(X_train[chunk], y_train[chunk], classes=classes)
    assert inc.n_iter_ == 3 and len(inc.loss_curve_) == 3
    assert list(inc.classes_) == list(classes)


def test_partial_fit_errors_leave_the_model_intact(digits):
    X_train, _, y_train, _ = digits
    clf = AutoencoderClassifier([KSparseAutoencoder(16, k=4, max_iter=1)], random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X_train, y_train)
    assert not hasattr(clf, "coefs_")
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X_train, y_train, classes=np.arange(5))
    assert not hasattr(clf, "coefs_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.partial_fit(X_train, y_train, classes=np.arange(10))
    saved = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(clf).items()}
    W = clf.coefs_[0].copy()
    with pytest.raises(ValueError, match="not the same as on the first call"):
        clf.partial_fit(X_train, y_train, classes=np.arange(11))
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X_train[:, :10], y_train)
    y_bad = y_train.copy()
    y_bad[0] = 12
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X_train, y_bad)
    clf.set_params(learning_rate=-1.0)  # checked although the model is fitted
    with pytest.raises(ValueError, match="learning_rate"):
        clf.partial_fit(X_train, y_train)
    clf.set_params(learning_rate=saved["learning_rate"])
    np.testing.assert_array_equal(clf.coefs_[0], W)
    assert clf.n_iter_ == saved["n_iter_"]


def test_bad_input_is_rejected(digits):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="KSparseAutoencoder or DenoisingAutoencoder"):
        AutoencoderClassifier([KSparseAutoencoder(8), "pca"]).fit(X_train, y_train)
    with pytest.raises(ValueError, match="at least one"):
        AutoencoderClassifier([]).fit(X_train, y_train)
    with pytest.raises(ValueError, match="1 class"):
        AutoencoderClassifier().fit(X_train, np.zeros(len(X_train)))
    with pytest.raises(ValueError, match="1d array"):
        AutoencoderClassifier().fit(X_train, np.c_[y_train, y_train])
    fitted = _quiet(KSparseAutoencoder(8, k=2, max_iter=1), X_train[:, :10])
    with pytest.raises(ValueError, match="fitted on 10 features"):
        AutoencoderClassifier([fitted]).fit(X_train, y_train)
    # a failed fit leaves an earlier fit in place
    clf = _quiet(AutoencoderClassifier([KSparseAutoencoder(8, k=2, max_iter=1)], max_iter=1,
                                       random_state=0), X_train, y_train)
    W = clf.coefs_[0].copy()
    with pytest.raises(ValueError):
        clf.fit(X_train, np.zeros(len(X_train)))
    np.testing.assert_array_equal(clf.coefs_[0], W)
    assert clf.n_features_in_ == 64


def test_pickle_and_skops(digits, tmp_path):
    X_train, X_test, y_train, _ = digits
    clf = _quiet(AutoencoderClassifier([DenoisingAutoencoder(16, max_iter=1),
                                        KSparseAutoencoder(16, k=4, max_iter=1)],
                                       max_iter=2, random_state=0), X_train, y_train)
    expected = clf.predict_proba(X_test)
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(loaded.predict_proba(X_test), expected)
    sio = pytest.importorskip("skops.io")
    blob = sio.dumps(clf)
    untrusted = sio.get_untrusted_types(data=blob)
    assert all(t.startswith(("skksae.", "numpy.", "builtins.")) for t in untrusted), untrusted
    np.testing.assert_array_equal(sio.loads(blob, trusted=untrusted).predict_proba(X_test),
                                  expected)


def test_output_layer_first_then_fine_tune(digits):
    """fine_tune=False trains only the output layer; switching fine_tune on with
    warm_start continues from that network and trains every layer."""
    X_train, _, y_train, _ = digits
    ks = _quiet(KSparseAutoencoder(32, k=4, max_iter=2, random_state=0), X_train)
    clf = _quiet(AutoencoderClassifier([ks], fine_tune=False, max_iter=3, random_state=0),
                 X_train, y_train)
    layer = ks._encoder_layer(np.float32)
    np.testing.assert_array_equal(clf.coefs_[0], layer.W.T)
    head = clf.coefs_[1].copy()
    clf.set_params(fine_tune=True, warm_start=True)
    _quiet(clf, X_train, y_train)
    assert clf.n_iter_ == 6
    assert not np.array_equal(clf.coefs_[0], layer.W.T)
    assert not np.array_equal(clf.coefs_[1], head)
    # a different solver cannot continue: fit starts again
    clf.set_params(solver="sgd")
    _quiet(clf, X_train, y_train)
    assert clf.n_iter_ == 3


@pytest.mark.parametrize("dropout, input_dropout", [(0.5, 0.0), (0.0, 0.2)])
def test_dropout_trains_and_predicts_with_every_unit(digits, dropout, input_dropout):
    """Dropout of hidden units or of inputs changes training (other weights, a higher
    training loss) but not prediction: the fitted network's logits use every unit
    and every input, deterministically."""
    X_train, X_test, y_train, y_test = digits
    ks = _quiet(KSparseAutoencoder(64, k=8, max_iter=5, random_state=0), X_train)
    plain = _quiet(AutoencoderClassifier([ks], max_iter=20, random_state=0), X_train, y_train)
    dropped = _quiet(AutoencoderClassifier([ks], dropout=dropout, input_dropout=input_dropout,
                                           max_iter=20, random_state=0),
                     X_train, y_train)
    assert not np.array_equal(plain.coefs_[0], dropped.coefs_[0])
    assert dropped.loss_ > plain.loss_
    np.testing.assert_array_equal(dropped.predict_proba(X_test), dropped.predict_proba(X_test))
    assert dropped.score(X_test, y_test) > 0.85  # 0.88-0.91 over seeds 0-5


def test_linear_learning_rate_schedule(digits, monkeypatch):
    """The "linear" schedule lowers the step size over the max_iter epochs of fit,
    to learning_rate / max_iter in the last; partial_fit counts its calls and keeps
    the last rate after max_iter of them; the result differs from a constant rate."""
    X_train, _, y_train, _ = digits
    ks = _quiet(KSparseAutoencoder(32, k=4, max_iter=2, random_state=0), X_train)
    rates = []
    run_epoch = _training.run_epoch

    def spy(network, params, optimizer, *args, **kwargs):
        rates.append(optimizer.learning_rate)
        return run_epoch(network, params, optimizer, *args, **kwargs)

    monkeypatch.setattr(_training, "run_epoch", spy)
    params = dict(learning_rate=0.01, max_iter=4, n_iter_no_change=100, random_state=0)
    linear = _quiet(AutoencoderClassifier([ks], learning_rate_schedule="linear", **params),
                    X_train, y_train)
    np.testing.assert_allclose(rates, [0.01, 0.0075, 0.005, 0.0025])
    rates.clear()
    constant = _quiet(AutoencoderClassifier([ks], **params), X_train, y_train)
    np.testing.assert_allclose(rates, [0.01] * 4)
    assert not np.array_equal(linear.coefs_[0], constant.coefs_[0])
    rates.clear()
    inc = AutoencoderClassifier([ks], learning_rate_schedule="linear", **params)
    for _ in range(6):
        inc.partial_fit(X_train, y_train, classes=np.unique(y_train))
    np.testing.assert_allclose(rates, [0.01, 0.0075, 0.005, 0.0025, 0.0025, 0.0025])
