"""The main job: pretrain, then classify, side by side.

``python -m skksae`` (or the ``skksae`` command) fits, on one dataset, logistic
regression on raw pixels and on the features of a BernoulliRBM, a
DenoisingAutoencoder and a KSparseAutoencoder, and prints one row per method with the
test error, the fit time and the transform time.  The regularisation strength of the
logistic regression is chosen on a validation split of the training set, and the
classifier refit on the whole training set with it; the test set is used once, for the
final error.
"""

import argparse
import contextlib
import copy
import csv
import itertools
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, StandardScaler

from . import _finetune, _kernels, _progress
from ._denoising import DenoisingAutoencoder
from ._ksparse import KSparseAutoencoder

# every method --methods accepts, and the ones the command runs by default
METHODS = ("raw", "rbm", "dae", "dropout", "ksparse")
DEFAULT_METHODS = ("raw", "rbm", "dae", "ksparse")
LABELS = {
    "raw": "LogisticRegression on raw pixels",
    "rbm": "BernoulliRBM + LogisticRegression",
    "dae": "DenoisingAutoencoder + LogisticRegression",
    "dropout": "Dropout autoencoder + LogisticRegression",
    "ksparse": "KSparseAutoencoder + LogisticRegression",
}
# Test error (%) reported by Makhzani & Frey (2013), Table 1, for MNIST with 1000 units.
PAPER_MNIST = {"raw": 7.20, "rbm": 1.81, "dae": 1.95, "dropout": 1.80, "ksparse": 1.35}
# The same table's k-sparse rows by k (alpha chosen by the authors; k = 40 and 10 as
# quoted in our issues, not checked against the paper here).
PAPER_MNIST_K = {10: 2.10, 25: 1.35, 40: 1.54}
ROW_FIELDS = ["method", "test_error", "paper_test_error", "fit_time_s", "transform_time_s",
              "C", "transform_k_factor", "validation_accuracy", "chosen", "settings"]
# The baselines' options that take a list of candidates: each candidate model is trained
# and the one whose codes give the best validation accuracy (C chosen for each) is kept.
# method: {estimator parameter: (command-line option's dest, type, default)}
TUNABLE = {
    "rbm": {"learning_rate": ("rbm_learning_rate", float, "0.05"),
            "batch_size": ("rbm_batch_size", int, "100")},
    "dae": {"corruption_level": ("dae_corruption_level", float, "0.25"),
            "learning_rate": ("dae_learning_rate", float, "0.001")},
}
# the options that decide a row's result; --resume reuses a row only when they match
SETTINGS = ("dataset", "seed", "n_components", "k", "transform_k_factor", "ksparse_epochs",
            "dae_epochs", "rbm_epochs", "learning_rate", "C", "classifier_max_iter") + tuple(
    dest for grid in TUNABLE.values() for dest, _, _ in grid.values())

DEFAULTS = {
    # dataset: n_components, k, epochs of the k-sparse AE, of the denoising AE, of the
    # RBM and of each model of the filter figure, C grid
    "digits": dict(n_components=256, k=25, ksparse_epochs=100, dae_epochs=30,
                   rbm_epochs=20, filter_epochs=30, C="0.1,1,10"),
    "mnist": dict(n_components=1000, k=25, ksparse_epochs=300, dae_epochs=50,
                  rbm_epochs=10, filter_epochs=30, C="1,3,10"),
    "fashion-mnist": dict(n_components=1000, k=25, ksparse_epochs=300, dae_epochs=50,
                          rbm_epochs=10, filter_epochs=30, C="1,3,10"),
}
# The classifier runs to tol=1e-6 or 300 L-BFGS iterations.  With scikit-learn's
# default tol=1e-4, L-BFGS stops after about 40 iterations on the k-sparse codes, and
# the test error then moves by up to 0.07 point with the rounding of the features
# (float32 or float64): the comparison would be between stopping points, not features.
# At 1e-6 the codes' fits converge in about 100 iterations and agree with fits at
# 1e-7.  Dense features are centred before the classifier (fit_classifier): the same
# optimum, reached in about half the iterations on MNIST (RBM and denoising codes:
# 146-177 iterations per fit; uncentred, the denoising fits stopped at the cap).  Raw
# pixels are ill-conditioned and still stop at the cap for C above 1.
CLASSIFIER = dict(tol=1e-6, max_iter=300)


def load(dataset, data_home, seed):
    if dataset == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(np.float32)
        return train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    from .datasets import load_fashion_mnist, load_mnist

    loader = load_mnist if dataset == "mnist" else load_fashion_mnist
    return loader(data_home, return_X_y=True)


def make_extractor(method, args, k=None):
    """The unfitted feature extractor of one method (``None`` for raw pixels); ``k``
    is the k-sparse model's k (``args.k`` when not given)."""
    if method == "raw":
        return None
    if method == "rbm":
        return BernoulliRBM(
            n_components=args.n_components, learning_rate=args.rbm_learning_rate[0],
            batch_size=args.rbm_batch_size[0], n_iter=args.rbm_epochs, random_state=args.seed,
            verbose=args.verbose,  # its lines cost a pass over X per epoch (_rbm_epochs)
        )
    if method == "dropout":
        # the k-sparse paper's dropout autoencoder: half the hidden units dropped in
        # training, no input corruption, every unit as a feature; the library's
        # default units (ReLU, squared error, centred input)
        return DenoisingAutoencoder(
            n_components=args.n_components, corruption_level=0.0, dropout=0.5,
            learning_rate=1e-3, max_iter=args.dae_epochs, n_iter_no_change=args.dae_epochs,
            batch_size=128, random_state=args.seed, verbose=args.verbose,
        )
    if method == "dae":
        # the papers' setting: sigmoid units, masking noise that sets pixels to 0
        return DenoisingAutoencoder(
            n_components=args.n_components, center=False, corruption="masking",
            corruption_level=args.dae_corruption_level[0], activation="sigmoid",
            loss="cross_entropy", learning_rate=args.dae_learning_rate[0],
            max_iter=args.dae_epochs,
            n_iter_no_change=args.dae_epochs, batch_size=128, random_state=args.seed,
            verbose=args.verbose,
        )
    # The autoencoder centres the pixels itself (center=True); the codes are scaled to
    # [-1, 1] per unit for the classifier.  Every model runs its full epoch budget
    # (n_iter_no_change = epochs: no early stop); the k-sparse learning rate falls
    # linearly once k has reached its target.
    return make_pipeline(
        KSparseAutoencoder(
            n_components=args.n_components, k=args.k if k is None else k,
            transform_k_factor=args.transform_k_factor, solver="sgd",
            learning_rate=args.learning_rate, learning_rate_schedule="linear",
            momentum=0.9, batch_size=128, max_iter=args.ksparse_epochs,
            n_iter_no_change=args.ksparse_epochs, sparse_output=True,
            random_state=args.seed, verbose=args.verbose,
        ),
        MaxAbsScaler(),
    )


@contextlib.contextmanager
def classifier_blas():
    """Within the block, every BLAS library but NumPy's runs on one thread; NumPy's
    keeps its threads.

    scikit-learn's L-BFGS fits spend their time in two NumPy products per iteration,
    codes times weights and its transpose (tall and skinny: 54,000 x 1000 by 10 on
    MNIST), which run faster on both cores; SciPy's L-BFGS-B calls SciPy's own BLAS
    on vectors of a few thousand, where threads only add synchronisation (with both
    libraries on two threads the fits were about 1.6x slower than on one; with
    NumPy's alone on two, 1.27x faster in ``benchmarks/bench_threads.py``, 1.35-1.45x
    for 60 iterations on MNIST's raw pixels).
    Where NumPy's BLAS cannot be told apart (not a library of NumPy's own
    package), every BLAS library runs on one thread."""
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


def candidates(method, args):
    """The parameter settings to try for ``method``: every combination of the values
    given to its list options (:data:`TUNABLE`); ``[{}]`` when there is nothing to
    choose."""
    tunable = TUNABLE.get(method, {})
    grid = {param: getattr(args, dest) for param, (dest, _, _) in tunable.items()}
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def search_budget(args):
    """One paragraph for under the table: what validation chose from, per method."""
    def values(vals):
        return ", ".join(f"{v:g}" for v in vals)

    parts = [f"C from {values(float(c) for c in args.C.split(','))} for every row (L-BFGS "
             f"to tol {CLASSIFIER['tol']:g} or {args.classifier_max_iter} iterations)"]
    if "ksparse" in args.methods:
        parts.append(f"k-sparse: alpha from {values(args.alphas)} ({args.ksparse_epochs} "
                     "epochs)")
    names = {"rbm": ("RBM", args.rbm_epochs), "dae": ("denoising", args.dae_epochs)}
    for method, tunable in TUNABLE.items():
        if method in args.methods:
            name, epochs = names[method]
            grid = "; ".join(f"{param} from {values(getattr(args, dest))}"
                             for param, (dest, _, _) in tunable.items())
            parts.append(f"{name}: {grid} ({epochs} epochs, "
                         f"{len(candidates(method, args))} model(s) trained)")
    return ("Chosen on a validation split (10% of the training set): " + "; ".join(parts)
            + ".")


def _describe(params):
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
        log(f"    {_describe(params)} ({j} of {len(settings)}):")
        est = clone(extractor).set_params(**params)
        if progress is not None:
            progress.model(progress.label.split(",")[0] + f", setting {j}/{len(settings)}")
        return _fit_transform(est, X_train, progress), est

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


class UsageError(Exception):
    """Something the user can fix (an option, the data, the output folder): reported
    as one line on stderr with exit status 2, without a traceback."""


def table_rows(args):
    """The rows the features table runs, in order: ``(method, k, label)``; one k-sparse
    row per k of ``--k`` (``k`` is ``None`` for the other methods and for a single k)."""
    rows = []
    for method in args.methods:
        if method == "ksparse" and len(args.ks) > 1:
            rows += [(method, k, f"KSparseAutoencoder (k = {k}) + LogisticRegression")
                     for k in args.ks]
        else:
            rows.append((method, None, LABELS[method]))
    return rows


def _estimators(extractor):
    """The estimators inside a feature extractor (a pipeline or one estimator)."""
    if extractor is None:
        return []
    return [step for _, step in getattr(extractor, "steps", [(None, extractor)])]


def check_options(args):
    """Build every model the run needs and validate its parameters against the
    estimator's own constraints, before anything is trained.  Returns the parsed C
    grid and the unfitted feature extractors by row label (:func:`table_rows`)."""
    try:
        grid = [float(c) for c in args.C.split(",")]
    except ValueError:
        raise UsageError(f"--C must be comma-separated numbers; got {args.C!r}") from None
    extractors = {}
    classifiers = [LogisticRegression(C=c, **dict(CLASSIFIER, max_iter=args.classifier_max_iter))
                   for c in grid]
    for method, k, label in table_rows(args):
        extractor = make_extractor(method, args, k)
        for params in candidates(method, args) if method in TUNABLE else []:
            candidate = clone(extractor).set_params(**params)
            try:
                candidate._validate_params()
                if hasattr(candidate, "_check_params"):  # checks across parameters
                    candidate._check_params()
            except ValueError as exc:
                raise UsageError(f"invalid option for {label}: {exc}") from None
        for est in _estimators(extractor) + classifiers:
            try:
                for alpha in args.alphas if method == "ksparse" else [None]:
                    if alpha is not None and isinstance(est, KSparseAutoencoder):
                        est.set_params(transform_k_factor=alpha)
                    est._validate_params()
            except ValueError as exc:
                raise UsageError(f"invalid option for {label}: {exc}") from None
        if method == "ksparse":
            extractor[0].set_params(transform_k_factor=args.alphas[0])
        extractors[label] = extractor
    if args.out and not args.no_figures and not sweep(args):
        from ._figures import FILTER_KS, filter_model

        try:
            for k in FILTER_KS:
                filter_model(args, k)._validate_params()
        except ValueError as exc:
            raise UsageError(f"invalid option for the filter figure: {exc}") from None
    if args.table != "features":
        if len(args.ks) > 1 or len(args.alphas) > 1:
            raise UsageError("the fine-tuning table takes one --k and one "
                             "--transform-k-factor; a k sweep and an alpha search are for "
                             "--table features")
        try:
            _finetune.check_finetune_options(args)
        except ValueError as exc:
            raise UsageError(f"invalid option for the fine-tuning table: {exc}") from None
    if ("ksparse" in args.methods or args.table != "features") and max(
            args.ks) > args.n_components:
        raise UsageError(f"--k {max(args.ks)} is larger than --n-components "
                         f"{args.n_components}: the k-sparse layer would keep every unit")
    return grid, extractors


def sweep(args):
    """Whether the run is a k sweep: several k-sparse rows, one per k of ``--k``."""
    return "ksparse" in args.methods and len(args.ks) > 1


def check_out(out):
    """Create the output folder and make sure a file can be written in it."""
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".skksae-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


def load_data(args):
    """The dataset's train/test split; a missing or unreadable dataset (or a failed
    download) is a :class:`UsageError` whose message says where it looked."""
    if args.data_home is not None and not Path(args.data_home).is_dir():
        raise UsageError(f"--data-home {args.data_home}: no such folder")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the download fallback's retry warnings
            return load(args.dataset, args.data_home, args.seed)
    except (OSError, ValueError, EOFError) as exc:
        lines = [line.strip().removeprefix("- ") for line in str(exc).splitlines()]
        raise UsageError("; ".join(line for line in lines if line)) from None


def write_results(out, rows, dataset, budget=""):
    """results.md and results.csv in ``out`` for the rows finished so far, each
    replaced whole (written beside, then renamed), so an interrupted run leaves
    complete files."""
    out = Path(out)
    table = to_markdown(rows, dataset, budget)
    tmp = out / "results.md.tmp"
    tmp.write_text(table + "\n")
    os.replace(tmp, out / "results.md")
    tmp = out / "results.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out / "results.csv")


def write_finetune_results(out, rows):
    """finetune.md and finetune.csv in ``out`` for the rows finished so far (each
    replaced whole, as :func:`write_results` does)."""
    out = Path(out)
    tmp = out / "finetune.md.tmp"
    tmp.write_text(_finetune.finetune_markdown(rows) + "\n")
    os.replace(tmp, out / "finetune.md")
    tmp = out / "finetune.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_finetune.FINETUNE_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out / "finetune.csv")


def settings(args):
    """The options a row was computed with, as one string for the CSV."""
    lists = {"k": ",".join(map(str, args.ks)),
             "transform_k_factor": ",".join(f"{a:g}" for a in args.alphas)}
    for grid in TUNABLE.values():
        lists.update({dest: ",".join(f"{v:g}" for v in getattr(args, dest))
                      for dest, _, _ in grid.values()})
    return ";".join(f"{key}={lists.get(key, getattr(args, key))}" for key in SETTINGS)


def finished_rows(args):
    """Rows of ``--out``'s results.csv computed with the current settings, by method
    label (for ``--resume``)."""
    path = Path(args.out) / "results.csv"
    if not path.is_file():
        return {}
    current = settings(args)
    kept = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("settings") == current:
                    for key in ROW_FIELDS[1:-2]:
                        row[key] = float(row[key]) if row.get(key) else None
                    row["chosen"] = row.get("chosen") or ""
                    kept[row["method"]] = row
    except (OSError, csv.Error, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--resume: cannot read {path} ({exc!r})") from None
    return kept


class Progress:
    """Where a long run is: the model, the epoch of how many, the time left for that
    model.  One line updated in place on a terminal; on a log (not a terminal) a
    plain line at every tenth of the epochs."""

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty()
        self.label = ""
        self.start = time.perf_counter()

    def model(self, label):
        self.label = label
        self.start = time.perf_counter()

    def __call__(self, estimator, epoch, n_epochs):
        elapsed = time.perf_counter() - self.start
        left = elapsed / epoch * (n_epochs - epoch)
        text = (f"  [{self.label}] {type(estimator).__name__} epoch {epoch}/{n_epochs}, "
                f"{elapsed:.0f} s so far, about {left:.0f} s left")
        if self.tty:
            end = "\n" if epoch == n_epochs else ""
            self.stream.write("\r" + text + "\x1b[K" + end)
        elif epoch == n_epochs or epoch % max(1, n_epochs // 10) == 0:
            self.stream.write(text + "\n")
        self.stream.flush()


@contextlib.contextmanager
def _rbm_epochs(rbm, X, progress):
    """Within the block, ``progress`` hears of each epoch of ``rbm.fit(X)``: scikit-learn's
    BernoulliRBM reports nothing per epoch without ``verbose``, and with it computes the
    pseudo-likelihood of the whole training set after each epoch (on MNIST, 9.7 s per
    epoch against 5.7 s without), so the epochs are counted from its mini-batches
    instead: its ``fit`` calls ``_fit`` once per batch, ``ceil(n_samples / batch_size)``
    times an epoch.  The counting wrapper is an attribute of this instance only, removed
    when the block ends; the fitted model is the same as without it."""
    fit_batch = getattr(rbm, "_fit", None)
    if progress is None or fit_batch is None:
        yield
        return
    n_batches = max(1, -(-X.shape[0] // rbm.batch_size))
    count = 0

    def counting(*args, **kwargs):
        nonlocal count
        result = fit_batch(*args, **kwargs)
        count += 1
        if count % n_batches == 0:
            progress(rbm, count // n_batches, rbm.n_iter)
        return result

    rbm._fit = counting
    try:
        yield
    finally:
        del rbm._fit


def _fit_transform(extractor, X, progress):
    """``extractor.fit(X).transform(X)`` with its epochs reported to ``progress``."""
    if isinstance(extractor, BernoulliRBM):
        with _rbm_epochs(extractor, X, progress):
            extractor.fit(X)
    else:
        with _progress.reporting(progress):
            extractor.fit(X)
    return extractor.transform(X)


def fit_row(method, label, extractor, data, args, grid, log=print, progress=None):
    """Fit one row of the table (:func:`table_rows`): train the feature extractor (each
    candidate setting where the method has several), choose ``C`` (and alpha for a
    k-sparse row) on the validation split, score the test set once.  Returns the row
    (a dict of :data:`ROW_FIELDS`), the fitted extractor (``None`` for raw pixels), its
    validation accuracy and the line that reports the row (for the caller to print
    once the row is saved)."""
    X_train, X_test, y_train, y_test = data
    t0 = time.perf_counter()
    settings_tried = candidates(method, args)
    alpha = chosen = None
    fitted_in = ""
    if len(settings_tried) > 1:
        extractor, clf, C, val_acc, chosen = fit_candidates(
            extractor, settings_tried, X_train, y_train, grid, args.seed, log, progress,
            max_iter=args.classifier_max_iter)
    else:
        if extractor is None:
            F_train = X_train
        else:
            F_train = _fit_transform(extractor, X_train, progress)
        fitted_in = f"features fitted in {time.perf_counter() - t0:.1f} s, "
        if method == "ksparse" and len(args.alphas) > 1:
            del F_train  # encoded again for every alpha
            clf, C, alpha, val_acc = fit_ksparse_classifier(
                extractor, X_train, y_train, args.alphas, grid, args.seed, log,
                max_iter=args.classifier_max_iter)
        else:
            clf, C, val_acc = fit_classifier(F_train, y_train, grid, args.seed, log,
                                             max_iter=args.classifier_max_iter)
            if method == "ksparse":
                alpha = args.alphas[0]
    fit_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    F_test = X_test if extractor is None else extractor.transform(X_test)
    transform_time = time.perf_counter() - t0
    error = 100.0 * (1.0 - clf.score(F_test, y_test))
    extra = ""
    model = extractor[0] if method == "ksparse" else extractor
    if hasattr(model, "n_iter_"):
        extra = f", {model.n_iter_} epochs"
    if method == "ksparse":
        extra += f", alpha={alpha:g}, {model.n_dead_units_} dead units"
    if chosen:
        extra += f", {_describe(chosen)}"
    summary = (f"   test error {error:.2f}%, {fitted_in}total fit {fit_time:.1f} s, "
               f"C={C:g}{extra}")
    if args.dataset != "mnist":
        paper = None
    elif method == "ksparse":
        paper = PAPER_MNIST_K.get(model.k)
    else:
        paper = PAPER_MNIST[method]
    row = {
        "method": label,
        "test_error": round(error, 2),
        "paper_test_error": paper,
        "fit_time_s": round(fit_time, 1),
        "transform_time_s": round(transform_time, 2),
        "C": C,
        "transform_k_factor": alpha,
        "validation_accuracy": round(val_acc, 4),
        "chosen": _describe(chosen) if chosen else "",
        "settings": settings(args),
    }
    return row, extractor, val_acc, summary


def _fit_row_in_worker(threads, model, row, args, data, grid):
    """:func:`fit_row` in a worker process of ``--n-jobs``, on ``threads`` threads
    (Numba's and BLAS's).  Its log lines are returned with the result, to be printed
    together when the row is done; its epoch reports go to stderr as they come, one
    plain line each (``model`` names the row in them)."""
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    lines = []
    progress = Progress()
    progress.tty = False  # two processes share the terminal: no line rewritten in place
    progress.model(model)
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit_row(*row, data, args, grid, lines.append, progress)
    return result, lines


def run(args, data, grid, extractors, rows, log=print, on_row=None, progress=None,
        done=None):
    """Fit every row of the table (:func:`table_rows`, with :func:`fit_row`); each
    finished row is put in ``rows`` (in the table's order) and ``on_row(rows)`` called
    at once.  Rows whose label is in ``done`` (rows of an earlier run,
    :func:`finished_rows`) are not run again: they are reused.

    With ``args.n_jobs`` above 1 the k-sparse rows of a k sweep train that many at a
    time, each in a worker process on an equal share of the threads (its result is
    then that of a run on that many threads: results are reproducible for a fixed seed
    and thread count); the other rows run in turn on all the threads.  Measured on a
    2-core machine (``benchmarks/bench_threads.py``): the main job's k-sparse model
    takes 1.54 s per MNIST epoch on two threads, 2.21 s on one, and two one-thread
    trainings side by side 2.49 s each: 1.24x the epochs per second; a denoising
    model beside a k-sparse one gains nothing (1.04x).
    In a k sweep the filter figure shows the sweep's own models."""
    X_train, X_test, y_train, y_test = data
    log(f"{args.dataset}: {X_train.shape[0]} training and {X_test.shape[0]} test samples, "
        f"{X_train.shape[1]} features")
    if "ksparse" in args.methods and len(args.alphas) > 1:
        log(f"k-sparse rows: alpha (units per code / k) chosen on the validation split "
            f"from {', '.join(f'{a:g}' for a in args.alphas)}, jointly with C")
    done = {} if done is None else done
    todo = table_rows(args)
    finished = {}  # index in todo: (row, fitted extractor, validation accuracy)

    def finish(i, result):
        # the row is saved before its line is printed: a Ctrl-C after the line has
        # appeared finds the row on disk
        *finished[i], summary = result
        rows[:] = [finished[j][0] for j in sorted(finished)]
        if on_row is not None:
            on_row(rows)
        if summary:
            log(summary)

    for i, (_, _, label) in enumerate(todo):
        if label in done:
            log(f"== {label} ({i + 1} of {len(todo)})")
            log(f"   kept from {Path(args.out) / 'results.csv'} (same settings; --resume)")
            finish(i, (done[label], None, None, None))
    left = [i for i in range(len(todo)) if i not in finished]
    # --n-jobs: the k-sparse rows of a k sweep run in worker processes, the rest in turn
    together = [i for i in left if todo[i][0] == "ksparse"]
    if getattr(args, "n_jobs", 1) < 2 or len(together) < 2:
        together = []
    for i in left:
        if i in together:
            continue
        method, _, label = todo[i]
        log(f"== {label} ({i + 1} of {len(todo)})")
        if progress is not None:
            progress.model(f"model {i + 1}/{len(todo)}")
        finish(i, fit_row(method, label, extractors[label], data, args, grid, log,
                          progress))
    if together:
        from joblib import Parallel, delayed

        from ._kernels import get_num_threads

        n_jobs = min(args.n_jobs, len(together))
        threads = max(1, get_num_threads() // n_jobs)
        log(f"== the k sweep's {len(together)} k-sparse rows, {n_jobs} at a time, "
            f"{threads} thread(s) each")
        jobs = (delayed(_fit_row_in_worker)(
            threads, f"model {i + 1}/{len(todo)}",
            (todo[i][0], todo[i][2], extractors[todo[i][2]]), args, data, grid)
            for i in together)
        for result, lines in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs):
            i = next(j for j in together if todo[j][2] == result[0]["method"])
            log(f"== {todo[i][2]} ({i + 1} of {len(todo)})")
            for line in lines:
                log(line)
            finish(i, result)
    fitted, swept = {}, {}
    for i, (row, extractor, val_acc) in sorted(finished.items()):
        method = todo[i][0]
        if extractor is not None:
            fitted[method] = extractor
        if method == "ksparse" and extractor is not None:
            swept[extractor[0].k] = (extractor, val_acc)
    if len(swept) > 1:
        # the k validation prefers: its model stands for the k-sparse method below
        fitted["ksparse"] = max(swept.values(), key=lambda item: item[1])[0]
    if args.out and not args.no_figures:
        from ._figures import write_figures

        side = int(round(np.sqrt(X_train.shape[1])))
        log("== figures")
        models = {k: ext[0] for k, (ext, _) in swept.items()} if sweep(args) else None
        for path in write_figures(Path(args.out), X_train, X_test, fitted, (side, side), args,
                                  log, filter_models=models):
            log(f"  wrote {path}")
    return rows


def validation_pick(rows):
    """The label of the k-sparse row with the best validation accuracy when the table
    has several k-sparse rows (a k sweep); otherwise ``None``."""
    swept = [r for r in rows if r.get("transform_k_factor") is not None
             and r.get("validation_accuracy") is not None]
    if len(swept) < 2:
        return None
    return max(swept, key=lambda r: r["validation_accuracy"])["method"]


def to_markdown(rows, dataset, budget=""):
    paper = dataset == "mnist"
    head = ["method", "test error (%)"] + (["paper (%)"] if paper else []) + [
        "fit time (s)", "transform time (s)", "chosen on validation"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    pick = validation_pick(rows)
    for r in rows:
        name = r["method"] + (" (validation's pick)" if r["method"] == pick else "")
        cells = [name, f"{r['test_error']:.2f}"]
        if paper:
            cells.append("-" if r["paper_test_error"] is None else f"{r['paper_test_error']:.2f}")
        chosen = "-" if r.get("C") is None else f"C={r['C']:g}"
        if r.get("transform_k_factor") is not None:
            chosen += f", alpha={r['transform_k_factor']:g}"
        if r.get("chosen"):
            chosen += f", {r['chosen']}"
        cells += [f"{r['fit_time_s']:.1f}", f"{r['transform_time_s']:.2f}", chosen]
        lines.append("| " + " | ".join(cells) + " |")
    if budget:
        lines += ["", budget]
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="skksae",
        description="Pretrain, then classify: logistic regression on raw pixels and on "
        "RBM, denoising-AE and k-sparse-AE features, side by side.",
    )
    p.add_argument("--dataset", choices=sorted(DEFAULTS), default="digits")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help="comma-separated subset of " + ",".join(METHODS) + " (default: "
                   + ",".join(DEFAULT_METHODS) + "; dropout: the dropout autoencoder of "
                   "the k-sparse paper's table 1, epochs as --dae-epochs)")
    p.add_argument("--n-components", type=int)
    p.add_argument("--k", help="units kept per sample in training; comma-separated for a "
                   "k sweep (one k-sparse row per k, e.g. 10,25,40,70)")
    p.add_argument("--transform-k-factor", default="3",
                   help="units kept at encoding, as a multiple of k (the paper's alpha); "
                   "comma-separated to choose it on the validation split (e.g. 1,2,3,4)")
    p.add_argument("--epochs", type=int,
                   help="epochs for every model (sets the three options below)")
    p.add_argument("--ksparse-epochs", type=int, help="epochs of the k-sparse autoencoder")
    p.add_argument("--dae-epochs", type=int,
                   help="epochs of the denoising (and of the dropout) autoencoder")
    p.add_argument("--rbm-epochs", type=int, help="epochs of the RBM")
    p.add_argument("--learning-rate", type=float, default=0.01,
                   help="SGD learning rate of the k-sparse autoencoder")
    p.add_argument("--rbm-learning-rate", default=TUNABLE["rbm"]["learning_rate"][2],
                   help="learning rate of the RBM; comma-separated to choose it on the "
                   "validation split (as for the next three options, every combination "
                   "of the values given is trained)")
    p.add_argument("--rbm-batch-size", default=TUNABLE["rbm"]["batch_size"][2],
                   help="minibatch size of the RBM (one or a list)")
    p.add_argument("--dae-corruption-level",
                   default=TUNABLE["dae"]["corruption_level"][2],
                   help="fraction of pixels the denoising autoencoder masks (one or a list)")
    p.add_argument("--dae-learning-rate", default=TUNABLE["dae"]["learning_rate"][2],
                   help="Adam learning rate of the denoising autoencoder (one or a list)")
    p.add_argument("--C", help="comma-separated grid for LogisticRegression's C")
    p.add_argument("--classifier-max-iter", type=int, default=CLASSIFIER["max_iter"],
                   help="LogisticRegression's cap on L-BFGS iterations (every fit runs to "
                   f"tol={CLASSIFIER['tol']:g} or this cap)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-home", help="folder with the IDX files (MNIST, Fashion-MNIST)")
    p.add_argument("--out", help="folder for results.md, results.csv and the figures")
    p.add_argument("--resume", action="store_true",
                   help="with --out, keep the rows of results.csv computed with the same "
                   "settings and run only the missing methods")
    p.add_argument("--no-figures", action="store_true",
                   help="with --out, write the tables only")
    p.add_argument("--filter-epochs", type=int,
                   help="epochs of each model in the filter figure (k = 70, 40, 25, 10)")
    p.add_argument("--table", choices=("features", "fine-tune", "all"), default="features",
                   help="features: logistic regression on frozen features (the default); "
                   "fine-tune: deep networks from random weights and from pretrained "
                   "stacks, fine-tuned; all: both tables")
    p.add_argument("--depths", default="1,2",
                   help="fine-tuning table: comma-separated numbers of hidden layers")
    p.add_argument("--pretrain-ksparse-epochs", type=int,
                   help="fine-tuning table: epochs of each k-sparse layer's pretraining")
    p.add_argument("--pretrain-dae-epochs", type=int,
                   help="fine-tuning table: epochs of each denoising layer's pretraining")
    p.add_argument("--finetune-epochs", type=int,
                   help="fine-tuning table: epochs of each network's fine-tuning")
    p.add_argument("--finetune-learning-rate", type=float,
                   help="fine-tuning table: SGD learning rate of the first epoch, lowered "
                   "linearly over the epochs")
    p.add_argument("--finetune-dropout", type=float,
                   help="fine-tuning table: hidden-unit dropout")
    p.add_argument("--finetune-input-dropout", type=float,
                   help="fine-tuning table: input dropout")
    p.add_argument("--finetune-validation-fraction", type=float, default=0.0,
                   help="fine-tuning table: hold out this fraction of the training set "
                   "and keep each network's best epoch on it, reporting its validation "
                   "error (to compare settings without the test set); 0 (default): "
                   "train on the whole training set and keep the last epoch")
    p.add_argument("--verbose", type=int, default=0, help="per-epoch training lines")
    p.add_argument("--n-jobs", type=int, default=1,
                   help="a k sweep's k-sparse rows train this many at a time, each in a "
                   "process of its own on an equal share of the threads (default 1: one "
                   "at a time on all of them); the other rows run in turn")
    p.add_argument("--precompile", action="store_true",
                   help="compile every kernel for this processor into Numba's cache "
                   "(float32 and float64), report the seconds and exit; for image and "
                   "cluster builds (skksae.precompile)")
    args = p.parse_args(argv)
    if args.epochs is not None:
        for key in ("ksparse_epochs", "dae_epochs", "rbm_epochs", "filter_epochs",
                    "pretrain_ksparse_epochs", "pretrain_dae_epochs", "finetune_epochs"):
            if getattr(args, key) is None:
                setattr(args, key, args.epochs)
    for key, value in {**DEFAULTS[args.dataset],
                       **_finetune.FINETUNE_DEFAULTS[args.dataset]}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        args.depths = [int(d) for d in args.depths.split(",") if d.strip()]
    except ValueError:
        p.error(f"--depths must be comma-separated integers; got {args.depths!r}")
    # --k and --transform-k-factor: one value or a list (a k sweep, an alpha search)
    try:
        args.ks = _unique([int(k) for k in str(args.k).split(",") if k.strip()])
    except ValueError:
        p.error(f"--k must be an integer or comma-separated integers; got {args.k!r}")
    try:
        args.alphas = _unique([float(a) for a in args.transform_k_factor.split(",")
                               if a.strip()])
    except ValueError:
        p.error("--transform-k-factor must be a number or comma-separated numbers; got "
                f"{args.transform_k_factor!r}")
    if not args.ks or not args.alphas:
        p.error("--k and --transform-k-factor need at least one value")
    for grid in TUNABLE.values():
        for dest, kind, _ in grid.values():
            option = "--" + dest.replace("_", "-")
            try:
                values = _unique([kind(v) for v in getattr(args, dest).split(",")
                                  if v.strip()])
            except ValueError:
                p.error(f"{option} must be a number or comma-separated numbers; got "
                        f"{getattr(args, dest)!r}")
            if not values:
                p.error(f"{option} needs at least one value")
            setattr(args, dest, values)
    args.k, args.transform_k_factor = args.ks[0], args.alphas[0]
    if not args.depths or min(args.depths) < 1:
        p.error("--depths needs at least one number of hidden layers, each at least 1")
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(args.methods) - set(METHODS)
    if args.n_jobs < 1:
        p.error(f"--n-jobs must be at least 1; got {args.n_jobs}")
    if args.resume and not args.out:
        p.error("--resume needs --out (the folder whose results.csv it continues)")
    if not args.methods:
        p.error(f"--methods is empty; choose from {', '.join(METHODS)}")
    if unknown:
        p.error(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    return args


def _unique(values):
    """``values`` without repeats, in their first order."""
    return list(dict.fromkeys(values))


def precompile_command():
    """``--precompile``: compile every kernel and print what it took."""
    from ._precompile import precompile

    print("compiling every kernel for this CPU into Numba's cache (float32, float64) ...",
          flush=True)
    report = precompile()
    for name, seconds in report["kernels"].items():
        print(f"  {seconds:6.2f} s  {name}")
    print(f"{len(report['kernels'])} kernels compiled in {report['wall']:.1f} s "
          "(kernels already cached are loaded, not listed)")
    return 0


def say_if_cold(dtype):
    """One line on stderr when Numba's cache holds no kernel for this CPU yet."""
    from ._precompile import cache_is_warm

    if cache_is_warm(dtype) is False:
        print("skksae: compiling its kernels for this CPU, once (about 10 s on two "
              "cores for the digits, 30 s for larger data; cached for every later run, "
              "see --precompile)", file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.precompile:
        return precompile_command()
    start = time.perf_counter()
    try:
        # everything a user can get wrong is checked before any training
        grid, extractors = check_options(args)
        if args.out:
            check_out(args.out)
        done = finished_rows(args) if args.resume else {}
        data = load_data(args)
    except UsageError as exc:
        print(f"skksae: error: {exc}", file=sys.stderr)
        return 2
    say_if_cold(data[0].dtype)
    rows, ft_rows = [], []
    budget = search_budget(args)
    on_row = None if not args.out else (lambda rows: write_results(
        args.out, rows, args.dataset, budget))
    on_ft_row = None if not args.out else (lambda rows: write_finetune_results(args.out,
                                                                               rows))
    try:
        with warnings.catch_warnings():
            # Epoch budgets are fixed on purpose; say so once instead of every fit.
            warnings.simplefilter("ignore", ConvergenceWarning)
            if args.table != "fine-tune":
                run(args, data, grid, extractors, rows, on_row=on_row, progress=Progress(),
                    done=done)
            if args.table != "features":
                _finetune.run_finetune(args, data, ft_rows, on_row=on_ft_row,
                                       progress=Progress())
    except KeyboardInterrupt:
        if rows:
            print("\n" + to_markdown(rows, args.dataset, budget))
        if ft_rows:
            print("\n" + _finetune.finetune_markdown(ft_rows))
        if not rows and not ft_rows:
            saved = "no row had finished"
        elif args.out:
            places = [f"{len(r)} finished row(s) are in {Path(args.out) / name}.csv and "
                      f"{name}.md" for r, name in ((rows, "results"), (ft_rows, "finetune"))
                      if r]
            saved = "the " + "; the ".join(places)
        else:
            saved = (f"the {len(rows) + len(ft_rows)} finished row(s) are above (no --out "
                     "was given)")
        print(f"\nskksae: interrupted; {saved}", file=sys.stderr)
        return 130
    if rows:
        print()
        print(to_markdown(rows, args.dataset, budget))
    if ft_rows:
        print()
        print(_finetune.finetune_markdown(ft_rows))
    print(f"\ntotal time {time.perf_counter() - start:.0f} s")
    if args.out:
        out = Path(args.out)
        if rows:
            print(f"wrote {out / 'results.md'} and {out / 'results.csv'}")
        if ft_rows:
            print(f"wrote {out / 'finetune.md'} and {out / 'finetune.csv'}")
    return 0
