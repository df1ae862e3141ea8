"""Choices made on a validation split of the training set: the classifier's C, and the
feature extractor's settings or alpha (jointly with C)."""

import contextlib
import copy
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .. import _kernels
from .progress import fit_transform


# The classifier runs to tol=1e-6 or 300 L-BFGS iterations.  With scikit-learn's
# default tol=1e-4, L-BFGS stops early on the k-sparse codes, and the test error then
# moves with the rounding of the features (float32 or float64): the comparison would
# be between stopping points, not features; fits at 1e-6 agree with fits at 1e-7.
# Dense features are centred before the classifier (fit_classifier): the same
# optimum, in fewer iterations.  Raw pixels are ill-conditioned and may stop at the
# cap.
CLASSIFIER = dict(tol=1e-6, max_iter=300)


@contextlib.contextmanager
def classifier_blas():
    """Within the block, every BLAS library but NumPy's runs on one thread; NumPy's
    keeps its threads.

    scikit-learn's L-BFGS fits spend their time in two NumPy products per iteration,
    codes times weights and its transpose (tall and skinny: 54,000 x 1000 by 10 on
    MNIST), which run faster on both cores; SciPy's L-BFGS-B calls SciPy's own BLAS
    on vectors of a few thousand, where threads only add synchronisation
    (``benchmarks/bench_threads.py`` measures the three settings).  Where NumPy's
    BLAS cannot be told apart (not a library of NumPy's own package), every BLAS
    library runs on one thread."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController().select(user_api="blas")
    numpy_dir = str(Path(np.__file__).resolve().parent)  # also matches numpy.libs
    paths = [lib.filepath for lib in controller.lib_controllers]
    # where none is NumPy's own, every library is among the others: all on one thread
    others = [path for path in paths if not str(Path(path).resolve()).startswith(numpy_dir)]
    if not others:
        yield
        return
    limiter = _kernels.set_blas_limit(controller.select(filepath=others), limits=1)
    try:
        yield
    finally:
        _kernels.restore_blas_limit(limiter)


def fit_classifier(F_train, y_train, grid, seed, log, refit=True,
                   max_iter=CLASSIFIER["max_iter"]):
    """Choose C on a validation split (10%) of the training codes, then refit the
    classifier with that C on all of them (as GridSearchCV's refit does).

    Dense features are centred first (``StandardScaler(with_std=False)``, fitted on
    the data each fit sees). With the intercept unpenalised, centring changes the
    parametrisation, not the optimum, and L-BFGS reaches it in fewer iterations on
    uncentred codes such as sigmoid units in [0, 1] (about half on MNIST). Sparse codes
    are left as they are (centring would densify them).

    The grid runs from the smallest C up, each fit starting from the previous
    solution (``warm_start``), and the refit starts from the chosen one: where the
    fits converge, the same optima as cold starts, in fewer iterations.  The fits run
    with NumPy's BLAS on its threads and SciPy's on one (:func:`classifier_blas`).
    Returns the fitted pipeline (centring, classifier), the chosen C and its
    validation accuracy (``max_iter``: L-BFGS's cap on iterations, for every fit);
    with ``refit=False`` the pipeline is the one fitted on the
    training part only (the split is the same for every call with the same ``seed``
    and labels, so accuracies of different features compare).
    """
    F_fit, F_val, y_fit, y_val = train_test_split(
        F_train, y_train, test_size=0.1, stratify=y_train, random_state=seed
    )
    clf = make_pipeline(StandardScaler(with_mean=not sp.issparse(F_train), with_std=False),
                        LogisticRegression(warm_start=True,
                                           **dict(CLASSIFIER, max_iter=max_iter)))
    best = None
    for C in sorted(grid):
        with classifier_blas():
            clf.set_params(logisticregression__C=C).fit(F_fit, y_fit)
            acc = clf.score(F_val, y_val)
        n_iter = clf[-1].n_iter_[0]
        cap = " (the cap)" if n_iter >= clf[-1].max_iter else ""
        log(f"    C={C:g}: validation accuracy {acc:.4f}, {n_iter} iterations{cap}")
        if best is None or acc > best[1]:
            best = (C, acc, copy.deepcopy(clf))
    if not refit:
        return best[2], best[0], best[1]
    with classifier_blas():
        best[2].fit(F_train, y_train)
    return best[2], best[0], best[1]


def describe(params):
    return ", ".join(f"{key}={value:g}" for key, value in params.items())


def choose_on_validation(options, encode, y_train, grid, seed, log,
                         max_iter=CLASSIFIER["max_iter"]):
    """Encode the training data once per option (``encode(option)`` returns the codes
    and whatever produced them), choose C for each on the validation split, keep the
    option whose codes give the best validation accuracy and refit the classifier on
    all of its codes.  Returns the option, what produced its codes, the classifier, C
    and the validation accuracy."""
    best = None
    for option in options:
        F, fitted = encode(option)
        clf, C, acc = fit_classifier(F, y_train, grid, seed, log, refit=False,
                                     max_iter=max_iter)
        if best is None or acc > best[4]:
            best = (option, fitted, clf, C, acc, F)
        del F
    option, fitted, clf, C, acc, F = best
    with classifier_blas():
        clf.fit(F, y_train)
    return option, fitted, clf, C, acc


def fit_candidates(extractor, settings, X_train, y_train, grid, seed, log, progress=None,
                   max_iter=CLASSIFIER["max_iter"]):
    """Train one copy of ``extractor`` per parameter setting of ``settings`` on all the
    training data and keep the one validation prefers (:func:`choose_on_validation`).
    Returns the fitted extractor, the classifier, C, the validation accuracy and the
    setting."""
    def encode(numbered):
        j, params = numbered
        log(f"    {describe(params)} ({j} of {len(settings)}):")
        est = clone(extractor).set_params(**params)
        if progress is not None:
            progress.model(progress.label.split(",")[0] + f", setting {j}/{len(settings)}")
        return fit_transform(est, X_train, progress), est

    (_, params), est, clf, C, acc = choose_on_validation(
        list(enumerate(settings, 1)), encode, y_train, grid, seed, log, max_iter)
    return est, clf, C, acc, params


def fit_ksparse_classifier(extractor, X_train, y_train, alphas, grid, seed, log,
                           max_iter=CLASSIFIER["max_iter"]):
    """The paper's alpha search: encode the training data with ``alpha * k`` units for
    every ``alpha`` of ``alphas`` (the autoencoder is fitted once; ``transform_k_factor``
    only acts at encoding) and keep the alpha validation prefers
    (:func:`choose_on_validation`).  ``extractor`` is the fitted (autoencoder, scaler)
    pipeline; its autoencoder is left set to the chosen alpha and its scaler is the
    one fitted on that alpha's codes.  Returns the classifier, C, alpha and the
    validation accuracy."""
    ae = extractor[0]

    def encode(alpha):
        ae.set_params(transform_k_factor=alpha)
        log(f"    alpha={alpha:g} ({ae._transform_k()} units per code):")
        scaler = clone(extractor[1:])
        return scaler.fit_transform(ae.transform(X_train)), scaler

    alpha, scaler, clf, C, acc = choose_on_validation(alphas, encode, y_train, grid, seed,
                                                      log, max_iter)
    ae.set_params(transform_k_factor=alpha)
    extractor.steps[1:] = scaler.steps
    return clf, C, alpha, acc
