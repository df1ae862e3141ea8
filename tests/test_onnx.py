"""ONNX export (skksae.onnx): onnxruntime against the estimators on held-out rows."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

from skksae import AutoencoderClassifier, DenoisingAutoencoder, KSparseAutoencoder

ort = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")
pytest.importorskip("skksae.onnx")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def split(digits):
    X, y = digits
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


def _session(model, X_example, **options):
    onx = skl2onnx.to_onnx(model, X_example, **options)
    return ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(session, X):
    return session.run(None, {session.get_inputs()[0].name: X})


def _assert_same_codes(codes, ref, Z, k, rtol):
    """Codes within tolerance, and the same support except where the k-th and the
    next activation tie to within the tolerance (the top-k there is rounding's)."""
    ref = ref.toarray() if hasattr(ref, "toarray") else ref
    assert codes.shape == ref.shape and codes.dtype == ref.dtype
    scale = np.abs(ref).max()
    if k is not None and k < Z.shape[1]:
        top = -np.sort(-Z, axis=1)
        clear = top[:, k - 1] - top[:, k] > 10 * rtol * scale
        assert clear.mean() > 0.95
        np.testing.assert_array_equal(codes[clear] != 0, ref[clear] != 0)
        np.testing.assert_allclose(codes[clear], ref[clear], rtol=rtol, atol=rtol * scale)
    else:
        np.testing.assert_allclose(codes, ref, rtol=rtol, atol=rtol * scale)


AUTOENCODERS = [
    KSparseAutoencoder(64, k=8, max_iter=3, random_state=0),
    KSparseAutoencoder(64, k=8, max_iter=3, random_state=0, activation="relu",
                       transform_k_factor=1, sparse_output=True),
    KSparseAutoencoder(32, k=8, max_iter=3, random_state=0, transform_k_factor=5),
    KSparseAutoencoder(64, k=8, max_iter=3, random_state=0, center="geometric_median",
                       tied_weights=False),
    DenoisingAutoencoder(48, max_iter=3, random_state=0),
    DenoisingAutoencoder(48, max_iter=3, random_state=0, activation="sigmoid",
                         loss="cross_entropy", center=False),
    DenoisingAutoencoder(48, max_iter=3, random_state=0, activation="linear", k=10),
    DenoisingAutoencoder(48, max_iter=3, random_state=0, dropout=0.3),
]


@pytest.mark.parametrize("model", AUTOENCODERS, ids=lambda m: repr(m)[:60])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_autoencoder_codes_match_transform(model, dtype, split):
    X_train, X_test, _, _ = split
    model.fit(X_train.astype(dtype))
    X = X_test.astype(dtype)
    session = _session(model, X[:1])
    for rows in (X[:1], X):  # the batch size is dynamic
        codes = _run(session, rows)[0]
        layer = model._encoder_layer(dtype)
        Z = rows @ layer.W.T + layer.b
        _assert_same_codes(codes, model.transform(rows), Z, layer.k,
                           1e-5 if dtype == np.float32 else 1e-12)


def test_batch_topk_exports_its_threshold(split):
    X_train, X_test, _, _ = split
    model = KSparseAutoencoder(64, k=8, max_iter=3, random_state=0, activation="relu",
                               batch_topk=True).fit(X_train)
    assert model.threshold_ is not None
    codes = _run(_session(model, X_test[:1]), X_test)[0]
    ref = model.transform(X_test)
    assert (ref != 0).sum(axis=1).std() > 0  # the threshold, not a fixed k per row
    np.testing.assert_allclose(codes, ref, rtol=1e-5, atol=1e-5)


CLASSIFIERS = [
    dict(autoencoders=[KSparseAutoencoder(48, k=8, max_iter=2)]),
    dict(autoencoders=[DenoisingAutoencoder(48, activation="sigmoid", max_iter=2),
                       KSparseAutoencoder(32, k=6, max_iter=2)], fine_tune_k="train"),
    dict(autoencoders=[KSparseAutoencoder(48, k=8, max_iter=2)], pretrain=False),
]


@pytest.mark.parametrize("params", CLASSIFIERS)
def test_classifier_labels_and_probabilities(params, split):
    X_train, X_test, y_train, _ = split
    clf = AutoencoderClassifier(max_iter=5, random_state=0, **params).fit(X_train, y_train)
    labels, proba = _run(_session(clf, X_test[:1], options={"zipmap": False}), X_test)
    np.testing.assert_array_equal(labels, clf.predict(X_test))
    np.testing.assert_allclose(proba, clf.predict_proba(X_test), rtol=1e-4, atol=1e-6)


def test_classifier_zipmap_and_string_labels(split):
    X_train, X_test, y_train, _ = split
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])
    clf = AutoencoderClassifier([KSparseAutoencoder(32, k=6, max_iter=2)], max_iter=3,
                                random_state=0).fit(X_train, names[y_train])
    labels, proba = _run(_session(clf, X_test[:1]), X_test[:20])
    np.testing.assert_array_equal(labels, clf.predict(X_test[:20]))
    expected = clf.predict_proba(X_test[:20])
    assert [sorted(row) for row in proba] == [sorted(clf.classes_)] * 20
    for row, ref in zip(proba, expected):
        np.testing.assert_allclose([row[c] for c in clf.classes_], ref, rtol=1e-4,
                                   atol=1e-6)
    labels, _ = _run(_session(clf, X_test[:1], options={"nocl": True, "zipmap": False}),
                     X_test[:20])
    np.testing.assert_array_equal(clf.classes_[labels], clf.predict(X_test[:20]))


def test_binary_classifier(split):
    X_train, X_test, y_train, _ = split
    clf = AutoencoderClassifier([KSparseAutoencoder(32, k=6, max_iter=2)], max_iter=3,
                                random_state=0).fit(X_train, y_train % 2)
    labels, proba = _run(_session(clf, X_test[:1], options={"zipmap": False}), X_test)
    np.testing.assert_array_equal(labels, clf.predict(X_test))
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba, clf.predict_proba(X_test), rtol=1e-4, atol=1e-6)


PIPELINES = [
    lambda: make_pipeline(KSparseAutoencoder(64, k=8, max_iter=3, random_state=0),
                          LogisticRegression(max_iter=300)),
    lambda: make_pipeline(DenoisingAutoencoder(64, max_iter=3, random_state=0),
                          KSparseAutoencoder(48, k=8, max_iter=3, random_state=0),
                          LogisticRegression(max_iter=300)),
    # the main job's: sparse codes scaled per unit
    lambda: make_pipeline(KSparseAutoencoder(64, k=8, max_iter=3, random_state=0,
                                             sparse_output=True),
                          MaxAbsScaler(), LogisticRegression(max_iter=300)),
]


@pytest.mark.parametrize("make", PIPELINES)
def test_pipelines(make, split):
    X_train, X_test, y_train, _ = split
    pipe = make().fit(X_train, y_train)
    labels, proba = _run(_session(pipe, X_test[:1], options={"zipmap": False}), X_test)
    agree = (labels == pipe.predict(X_test)).mean()
    assert agree > 0.995  # a label may flip where two classes tie to rounding
    np.testing.assert_allclose(proba, pipe.predict_proba(X_test), atol=1e-4)


def test_pandas_output_pipeline(split):
    pd = pytest.importorskip("pandas")
    X_train, X_test, y_train, _ = split
    columns = [f"pixel{i}" for i in range(X_train.shape[1])]
    pipe = make_pipeline(KSparseAutoencoder(32, k=6, max_iter=2, random_state=0),
                         LogisticRegression(max_iter=300)).set_output(transform="pandas")
    pipe.fit(pd.DataFrame(X_train, columns=columns), y_train)
    names = list(pipe[0].get_feature_names_out())
    assert names[:2] == ["ksparseautoencoder0", "ksparseautoencoder1"]
    labels, _ = _run(_session(pipe, X_test[:1], options={"zipmap": False}), X_test)
    np.testing.assert_array_equal(labels, pipe.predict(pd.DataFrame(X_test, columns=columns)))


def test_model_loaded_with_skops_converts(split, tmp_path):
    sio = pytest.importorskip("skops.io")
    X_train, X_test, y_train, _ = split
    clf = AutoencoderClassifier([KSparseAutoencoder(32, k=6, max_iter=2)], max_iter=3,
                                random_state=0).fit(X_train, y_train)
    path = tmp_path / "model.skops"
    sio.dump(clf, path)
    loaded = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    labels, proba = _run(_session(loaded, X_test[:1], options={"zipmap": False}), X_test)
    np.testing.assert_array_equal(labels, clf.predict(X_test))
    np.testing.assert_allclose(proba, clf.predict_proba(X_test), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model", [KSparseAutoencoder(), DenoisingAutoencoder(),
                                   AutoencoderClassifier()])
def test_unfitted_estimator_is_a_clear_error(model, split):
    with pytest.raises(NotFittedError, match="not fitted"):
        skl2onnx.to_onnx(model, split[1][:1])


def test_importing_skksae_does_not_import_skl2onnx():
    code = "import sys, skksae; print('skl2onnx' in sys.modules, 'onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


def test_exact_ties_go_to_the_lower_index_as_in_the_kernels(split):
    """Every unit with the same activation: both keep units 0 .. k-1."""
    X_train, X_test, _, _ = split
    model = KSparseAutoencoder(32, k=4, transform_k_factor=1, max_iter=1,
                               random_state=0).fit(X_train)
    model.components_[:] = 0  # tied: the decoder too
    model.intercept_hidden_[:] = 1.0
    codes = _run(_session(model, X_test[:1]), X_test[:10])[0]
    ref = model.transform(X_test[:10])
    np.testing.assert_array_equal(ref[:, :4], 1.0)
    np.testing.assert_array_equal(codes, ref)
