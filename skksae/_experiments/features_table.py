"""The features table: logistic regression on raw pixels and on the frozen features
of a BernoulliRBM, a DenoisingAutoencoder and a KSparseAutoencoder, side by side.

Each row's feature extractor is trained on the training set; the classifier's C (and
a k-sparse row's alpha, or a baseline's settings) are chosen on a validation split of
the training set (:mod:`.selection`), the classifier refit on the whole training set
with them; the test set is used once, for the final error.
"""

import csv
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .options import (
    PAPER_MNIST,
    PAPER_MNIST_K,
    UsageError,
    candidates,
    settings,
    sweep,
    table_rows,
)
from .progress import Progress, fit_transform
from .report import ROW_FIELDS
from .selection import describe, fit_candidates, fit_classifier, fit_ksparse_classifier


def run(args, data, grid, extractors, rows, log=print, on_row=None, progress=None,
        done=None):
    """Fit every row of the table (:func:`.options.table_rows`, with :func:`fit_row`);
    each finished row is put in ``rows`` (in the table's order) and ``on_row(rows)``
    called at once.  Rows whose label is in ``done`` (rows of an earlier run,
    :func:`finished_rows`) are not run again: they are reused.

    With ``args.n_jobs`` above 1 the k-sparse rows of a k sweep train that many at a
    time, each in a worker process on an equal share of the threads (its result is
    then that of a run on that many threads: results are reproducible for a fixed seed
    and thread count); the other rows run in turn on all the threads.
    In a k sweep the filter figure shows the sweep's own models."""
    X_train, X_test = data[0], data[1]
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
        _run_in_workers(together, todo, args, data, grid, extractors, log, finish)
    _figures(args, data, todo, finished, log)
    return rows


def _run_in_workers(together, todo, args, data, grid, extractors, log, finish):
    """The rows ``together`` (indices in ``todo``), ``args.n_jobs`` at a time in worker
    processes; ``finish(i, result)`` as each is done."""
    from joblib import Parallel, delayed

    from .._kernels import get_num_threads

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


def _figures(args, data, todo, finished, log):
    """The figures of the rows' fitted models, with ``--out`` (unless
    ``--no-figures``)."""
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
        from .figures import write_figures

        X_train, X_test = data[0], data[1]
        side = int(round(np.sqrt(X_train.shape[1])))
        log("== figures")
        models = {k: ext[0] for k, (ext, _) in swept.items()} if sweep(args) else None
        for path in write_figures(Path(args.out), X_train, X_test, fitted, (side, side), args,
                                  log, filter_models=models):
            log(f"  wrote {path}")


def fit_row(method, label, extractor, data, args, grid, log=print, progress=None):
    """Fit one row of the table (:func:`.options.table_rows`): train the feature
    extractor (each candidate setting where the method has several), choose ``C``
    (and alpha for a k-sparse row) on the validation split, score the test set once.
    Returns the row (a dict of :data:`.report.ROW_FIELDS`), the fitted extractor
    (``None`` for raw pixels), its validation accuracy and the line that reports the
    row (for the caller to print once the row is saved)."""
    X_train, X_test, y_train, y_test = data
    t0 = time.perf_counter()
    extractor, clf, C, val_acc, alpha, chosen, fitted_in = _fit_extractor_and_classifier(
        method, extractor, X_train, y_train, args, grid, log, progress)
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
        extra += f", {describe(chosen)}"
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
        "chosen": describe(chosen) if chosen else "",
        "settings": settings(args),
    }
    return row, extractor, val_acc, summary


def _fit_extractor_and_classifier(method, extractor, X_train, y_train, args, grid, log,
                                  progress):
    """The training part of :func:`fit_row`: the fitted extractor, the classifier, C,
    the validation accuracy, alpha (k-sparse rows), the chosen setting (a baseline
    with several) and a note of the features' fit time."""
    t0 = time.perf_counter()
    settings_tried = candidates(method, args)
    max_iter = args.classifier_max_iter
    if len(settings_tried) > 1:
        extractor, clf, C, val_acc, chosen = fit_candidates(
            extractor, settings_tried, X_train, y_train, grid, args.seed, log, progress,
            max_iter=max_iter)
        return extractor, clf, C, val_acc, None, chosen, ""
    F_train = X_train if extractor is None else fit_transform(extractor, X_train, progress)
    fitted_in = f"features fitted in {time.perf_counter() - t0:.1f} s, "
    if method == "ksparse" and len(args.alphas) > 1:
        del F_train  # encoded again for every alpha
        clf, C, alpha, val_acc = fit_ksparse_classifier(
            extractor, X_train, y_train, args.alphas, grid, args.seed, log, max_iter=max_iter)
        return extractor, clf, C, val_acc, alpha, None, fitted_in
    clf, C, val_acc = fit_classifier(F_train, y_train, grid, args.seed, log, max_iter=max_iter)
    alpha = args.alphas[0] if method == "ksparse" else None
    return extractor, clf, C, val_acc, alpha, None, fitted_in


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
