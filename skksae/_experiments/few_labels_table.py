"""The few-labels table: a few labelled training rows, the rest unlabelled.

For each number of labels N of ``--labels`` and each of ``--draws`` draws, a balanced
labelled subset (N / n_classes rows of each class, as in Kingma et al. 2014) keeps
its labels and every other training row is marked ``-1``.  The k-sparse autoencoder
uses no labels, so it is pretrained once on every training row and shared by every N
and draw.  Each method then learns from that draw's labelled rows (and, for the
semi-supervised ones, the unlabelled rows); every choice (the C of a logistic
regression) is made by cross-validation on the labelled rows, never on the test set,
which scores each fitted model once.  The classifiers run with the user guide's
few-labels setting (:data:`FEW_LABELS`: pseudo-labels with dropout), the same for
the pretrained network and its twin from random weights.
"""

import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import MaxAbsScaler
from sklearn.semi_supervised import LabelSpreading

from .. import _progress
from .._classifier import AutoencoderClassifier
from . import models

METHODS = {
    "pixels_lr": "LogisticRegression on the labelled pixels",
    "pixels_mlp": "MLPClassifier on the labelled pixels",
    "codes_lr": "frozen k-sparse codes + LogisticRegression",
    "codes_spreading": "k-sparse codes + LabelSpreading (kNN)",
    "pretrained": "AutoencoderClassifier, k-sparse pretrained",
    "random": "AutoencoderClassifier, random weights",
}
# Test error (%) on MNIST, permutation invariant, as quoted by the issue that asked
# for this table from secondary copies of the papers' tables; not checked here.
PUBLISHED_MNIST = {
    "M1 + TSVM (Kingma et al. 2014)": {100: 11.82, 600: 5.72, 1000: 4.24, 3000: 3.49},
    "M2 (Kingma et al. 2014)": {100: 11.97, 1000: 3.60},
    "M1 + M2 (Kingma et al. 2014)": {100: 3.33, 1000: 2.40},
    "Ladder network (Rasmus et al. 2015)": {100: 1.06, 1000: 0.84},
    "Adversarial autoencoder (Makhzani et al. 2015)": {100: 1.90},
}

# The user guide's setting for fine-tuning on few labels (the unlabelled rows are
# pseudo-labelled by the classifier's default pseudo_label_threshold): without
# dropout the network learns its own mistakes back.
FEW_LABELS = {"dropout": 0.5, "input_dropout": 0.2, "max_iter": 30}


def labelled_subset(y, n_labels, draw, seed):
    """The indices of a balanced labelled subset: ``n_labels / n_classes`` rows of
    each class, drawn with the seed of (``seed``, ``draw``)."""
    classes = np.unique(y)
    rng = np.random.RandomState([seed, draw])
    per_class = n_labels // len(classes)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per_class,
                                              replace=False) for c in classes]))


def run_few_labels(args, data, rows, log=print, on_row=None, progress=None):
    """Pretrain once, then every method on every draw of every N; each finished row
    (one method, N and draw) is appended to ``rows`` and passed to ``on_row(rows)``
    at once.  Returns ``rows``."""
    X_train, X_test, y_train, y_test = data
    log(f"== few labels: pretraining the k-sparse autoencoder on all {len(X_train)} "
        "training rows (no labels)")
    t0 = time.perf_counter()
    ae = models.scheduled_ksparse(args, args.k, args.pretrain_ksparse_epochs)
    if progress is not None:
        progress.model("few labels: pretraining")
    with _progress.reporting(progress):
        ae.fit(X_train)
    log(f"   pretrained in {time.perf_counter() - t0:.1f} s")
    shared = _shared_features(ae, X_train, X_test, args.seed)
    for n_labels in args.labels:
        for draw in range(args.draws):
            labelled = labelled_subset(y_train, n_labels, draw, args.seed)
            y_semi = np.full_like(y_train, -1)
            y_semi[labelled] = y_train[labelled]
            log(f"== {n_labels} labels, draw {draw + 1} of {args.draws}")
            for method, label in METHODS.items():
                t0 = time.perf_counter()
                model, F_test = _fit_method(method, ae, shared, X_train, y_train, y_semi,
                                            labelled, X_test, args)
                error = 100.0 * (1.0 - model.score(F_test, y_test))
                rows.append({"method": label, "n_labels": n_labels, "draw": draw + 1,
                             "test_error": round(error, 2),
                             "fit_time_s": round(time.perf_counter() - t0, 1)})
                if on_row is not None:  # saved, then printed
                    on_row(rows)
                log(f"   {label}: test error {error:.2f}%")
    return rows


def _shared_features(ae, X_train, X_test, seed):
    """What every draw shares, computed without labels: the codes of the training
    and test rows scaled per unit, and their 50 principal components (the graph of
    the label spreading)."""
    codes_train, codes_test = ae.transform(X_train), ae.transform(X_test)
    scaler = MaxAbsScaler().fit(codes_train)
    codes_train, codes_test = scaler.transform(codes_train), scaler.transform(codes_test)
    dense_train, dense_test = (c.toarray() if hasattr(c, "toarray") else c
                               for c in (codes_train, codes_test))
    pca = PCA(n_components=min(50, dense_train.shape[1]), random_state=seed).fit(dense_train)
    return {"codes": (codes_train, codes_test),
            "pcs": (pca.transform(dense_train), pca.transform(dense_test))}


def _fit_method(method, ae, shared, X_train, y_train, y_semi, labelled, X_test, args):
    """One method fitted on one draw; returns the model and the test rows it scores."""
    cv = min(3, np.bincount(y_train[labelled]).min())
    lr = GridSearchCV(LogisticRegression(max_iter=1000), {"C": [0.01, 0.1, 1, 10]}, cv=cv)
    if method == "pixels_lr":
        return lr.fit(X_train[labelled], y_train[labelled]), X_test
    if method == "pixels_mlp":
        return MLPClassifier(random_state=args.seed).fit(X_train[labelled],
                                                         y_train[labelled]), X_test
    if method == "codes_lr":
        codes_train, codes_test = shared["codes"]
        return lr.fit(codes_train[labelled], y_train[labelled]), codes_test
    if method == "codes_spreading":
        pcs_train, pcs_test = shared["pcs"]
        return LabelSpreading(kernel="knn", n_neighbors=10).fit(pcs_train, y_semi), pcs_test
    # one documented setting for every N: nothing is tuned on a draw
    layers = [ae] if method == "pretrained" else [models.stack_layer("ksparse", args)]
    clf = AutoencoderClassifier(layers, pretrain=method == "pretrained",
                                random_state=args.seed, **FEW_LABELS)
    return clf.fit(X_train, y_semi), X_test
