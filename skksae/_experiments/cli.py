"""``python -m skksae``: the command line of the experiments (argparse and main).

On one dataset it fits logistic regression on raw pixels and on the features of a
BernoulliRBM, a DenoisingAutoencoder and a KSparseAutoencoder, and prints one row per
method with the test error, the fit time and the transform time (the features table,
:mod:`.features_table`); ``--table fine-tune`` fine-tunes deep networks from random
weights and from pretrained stacks (:mod:`.finetune_table`).
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

from sklearn.exceptions import ConvergenceWarning

from . import features_table, few_labels_table, finetune_table, options, report
from .options import (
    DEFAULT_METHODS,
    DEFAULTS,
    FINETUNE_DEFAULTS,
    METHODS,
    TUNABLE,
    UsageError,
    unique,
)
from .progress import Progress
from .selection import CLASSIFIER


def _parser():
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
    p.add_argument("--table", choices=("features", "fine-tune", "all", "few-labels"),
                   help="features: logistic regression on frozen features (the default); "
                   "fine-tune: deep networks from random weights and from pretrained "
                   "stacks, fine-tuned; all: both tables; few-labels: a few labelled "
                   "rows and the rest unlabelled (the default with --labels)")
    _add_finetune_options(p)
    p.add_argument("--labels",
                   help="few-labels table: comma-separated numbers of labelled training "
                   "rows, each a balanced subset (default: 50,100 on the digits; "
                   "100,600,1000,3000 on MNIST and Fashion-MNIST)")
    p.add_argument("--draws", type=int, default=3,
                   help="few-labels table: draws of the labelled rows for each number")
    p.add_argument("--verbose", type=int, default=0, help="per-epoch training lines")
    p.add_argument("--n-jobs", type=int, default=1,
                   help="a k sweep's k-sparse rows train this many at a time, each in a "
                   "process of its own on an equal share of the threads (default 1: one "
                   "at a time on all of them); the other rows run in turn")
    p.add_argument("--precompile", action="store_true",
                   help="compile every kernel for this processor into Numba's cache "
                   "(float32 and float64), report the seconds and exit; for image and "
                   "cluster builds (skksae.precompile)")
    return p


def _add_finetune_options(p):
    """The fine-tuning table's options."""
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


def parse_args(argv):
    """The options of ``argv``, with each dataset's defaults filled in and the lists
    (``--k``, ``--transform-k-factor``, ``--depths`` and the tunable baselines'
    options) parsed; a malformed option exits with argparse's usage error."""
    p = _parser()
    args = p.parse_args(argv)
    if args.epochs is not None:
        for key in ("ksparse_epochs", "dae_epochs", "rbm_epochs", "filter_epochs",
                    "pretrain_ksparse_epochs", "pretrain_dae_epochs", "finetune_epochs"):
            if getattr(args, key) is None:
                setattr(args, key, args.epochs)
    for key, value in {**DEFAULTS[args.dataset],
                       **FINETUNE_DEFAULTS[args.dataset]}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.table is None:
        args.table = "features" if args.labels is None else "few-labels"
    if args.labels is None:
        args.labels = "50,100" if args.dataset == "digits" else "100,600,1000,3000"
    try:
        args.depths = [int(d) for d in args.depths.split(",") if d.strip()]
        args.labels = unique([int(n) for n in args.labels.split(",") if n.strip()])
    except ValueError:
        p.error(f"--depths and --labels must be comma-separated integers; got "
                f"{args.depths!r}, {args.labels!r}")
    if not args.labels or min(args.labels) < 10 or any(n % 10 for n in args.labels):
        p.error("--labels needs numbers of labelled rows, each a multiple of 10 (the "
                f"classes of every dataset here); got {args.labels}")
    if args.draws < 1:
        p.error(f"--draws must be at least 1; got {args.draws}")
    # --k and --transform-k-factor: one value or a list (a k sweep, an alpha search)
    try:
        args.ks = unique([int(k) for k in str(args.k).split(",") if k.strip()])
    except ValueError:
        p.error(f"--k must be an integer or comma-separated integers; got {args.k!r}")
    try:
        args.alphas = unique([float(a) for a in args.transform_k_factor.split(",")
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
                values = unique([kind(v) for v in getattr(args, dest).split(",")
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


def precompile_command():
    """``--precompile``: compile every kernel and print what it took."""
    from .._precompile import precompile

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
    from .._precompile import cache_is_warm

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
        grid, extractors = options.check_options(args)
        if args.out:
            options.check_out(args.out)
        done = features_table.finished_rows(args) if args.resume else {}
        data = options.load_data(args)
        if args.table == "few-labels":
            options.check_labels(args, data[2])
    except UsageError as exc:
        print(f"skksae: error: {exc}", file=sys.stderr)
        return 2
    say_if_cold(data[0].dtype)
    tables = _Tables(args)
    try:
        with warnings.catch_warnings():
            # Epoch budgets are fixed on purpose; say so once instead of every fit.
            warnings.simplefilter("ignore", ConvergenceWarning)
            if args.table == "few-labels":
                few_labels_table.run_few_labels(args, data, tables.fl_rows,
                                                on_row=tables.save_few_labels,
                                                progress=Progress())
            if args.table in ("features", "all"):
                features_table.run(args, data, grid, extractors, tables.rows,
                                   on_row=tables.save_features, progress=Progress(),
                                   done=done)
            if args.table in ("fine-tune", "all"):
                finetune_table.run_finetune(args, data, tables.ft_rows,
                                            on_row=tables.save_finetune, progress=Progress())
    except KeyboardInterrupt:
        tables.print()
        print(f"\nskksae: interrupted; {tables.where_saved()}", file=sys.stderr)
        return 130
    tables.print()
    print(f"\ntotal time {time.perf_counter() - start:.0f} s")
    if args.out:
        out = Path(args.out)
        if tables.rows:
            print(f"wrote {out / 'results.md'} and {out / 'results.csv'}")
        if tables.ft_rows:
            print(f"wrote {out / 'finetune.md'} and {out / 'finetune.csv'}")
        if tables.fl_rows:
            print(f"wrote {out / 'few_labels.md'} and {out / 'few_labels.csv'}")
    return 0


class _Tables:
    """The rows of a run's two tables, saved to ``--out`` as each row finishes."""

    def __init__(self, args):
        self.args = args
        self.rows, self.ft_rows, self.fl_rows = [], [], []
        self.budget = options.search_budget(args)

    def features(self, rows):
        return report.features_markdown(rows, self.args.dataset, self.budget)

    def save_features(self, rows):
        if self.args.out:
            report.write_table(self.args.out, "results", rows, report.ROW_FIELDS,
                               self.features(rows))

    def save_finetune(self, rows):
        if self.args.out:
            report.write_table(self.args.out, "finetune", rows, report.FINETUNE_FIELDS,
                               report.finetune_markdown(rows))

    def few_labels(self, rows):
        published = few_labels_table.PUBLISHED_MNIST if self.args.dataset == "mnist" else {}
        return report.few_labels_markdown(rows, published)

    def save_few_labels(self, rows):
        if self.args.out:
            report.write_table(self.args.out, "few_labels", rows, report.FEW_LABELS_FIELDS,
                               self.few_labels(rows))

    def print(self):
        if self.rows:
            print("\n" + self.features(self.rows))
        if self.ft_rows:
            print("\n" + report.finetune_markdown(self.ft_rows))
        if self.fl_rows:
            print("\n" + self.few_labels(self.fl_rows))

    def where_saved(self):
        """Where an interrupted run's finished rows are."""
        tables = ((self.rows, "results"), (self.ft_rows, "finetune"),
                  (self.fl_rows, "few_labels"))
        if not any(rows for rows, _ in tables):
            return "no row had finished"
        if self.args.out:
            places = [f"{len(r)} finished row(s) are in {Path(self.args.out) / name}.csv and "
                      f"{name}.md" for r, name in tables if r]
            return "the " + "; the ".join(places)
        return (f"the {sum(len(r) for r, _ in tables)} finished row(s) are above (no --out "
                "was given)")
