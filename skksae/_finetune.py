"""The main job's fine-tuning table: the same deep networks from random weights and
from greedily pretrained stacks of autoencoders, each fine-tuned with one budget.

For each depth (one and two hidden layers) the table has four networks: hard top-k
layers (the k-sparse architecture) and sigmoid layers (the stacked denoising
autoencoder's), each from random weights and pretrained.  Every network is an
:class:`~skksae.AutoencoderClassifier` fine-tuned with the same budget (SGD, a
linearly falling learning rate, dropout, a fixed number of epochs) on the whole
training set, and the network of the last epoch is scored; the test set is used once
per network.  The settings were chosen with ``finetune_validation_fraction`` (10%
of the training set held out, the weights of the epoch that scores best on it kept
and its error reported), the mode that compares settings without the test set.  The
pretrained layers are fitted once and shared: the second layer of a two-layer stack
is pretrained on the clean codes of the first.
"""

import time

from . import _progress
from ._classifier import AutoencoderClassifier
from ._denoising import DenoisingAutoencoder
from ._ksparse import KSparseAutoencoder

# dataset: pretraining epochs of each k-sparse and each denoising layer, the
# fine-tuning's epochs, SGD learning rate (lowered linearly to 0 over the epochs),
# hidden-unit and input dropout
FINETUNE_DEFAULTS = {
    "digits": dict(pretrain_ksparse_epochs=100, pretrain_dae_epochs=30, finetune_epochs=100,
                   finetune_learning_rate=0.06, finetune_dropout=0.5,
                   finetune_input_dropout=0.2),
    "mnist": dict(pretrain_ksparse_epochs=100, pretrain_dae_epochs=30, finetune_epochs=60,
                  finetune_learning_rate=0.06, finetune_dropout=0.3,
                  finetune_input_dropout=0.1),
    "fashion-mnist": dict(pretrain_ksparse_epochs=100, pretrain_dae_epochs=30,
                          finetune_epochs=60, finetune_learning_rate=0.06,
                          finetune_dropout=0.5, finetune_input_dropout=0.2),
}
KINDS = ("ksparse", "dae")
ARCHITECTURE = {"ksparse": "top-k", "dae": "sigmoid"}
FINETUNE_FIELDS = ["network", "hidden_layers", "init", "test_error", "validation_error",
                   "best_epoch", "epochs", "pretrain_time_s", "fit_time_s"]


def layer(kind, args):
    """One unfitted layer of a stack: the main job's k-sparse autoencoder, or the
    papers' denoising autoencoder (sigmoid units, masking noise, cross-entropy)."""
    if kind == "ksparse":
        return KSparseAutoencoder(
            n_components=args.n_components, k=args.k,
            transform_k_factor=args.transform_k_factor, solver="sgd",
            learning_rate=args.learning_rate, learning_rate_schedule="linear",
            momentum=0.9, batch_size=128, max_iter=args.pretrain_ksparse_epochs,
            n_iter_no_change=args.pretrain_ksparse_epochs, random_state=args.seed,
        )
    return DenoisingAutoencoder(
        n_components=args.n_components, center=False, corruption="masking",
        corruption_level=0.25, activation="sigmoid", loss="cross_entropy",
        learning_rate=1e-3, max_iter=args.pretrain_dae_epochs,
        n_iter_no_change=args.pretrain_dae_epochs, batch_size=128, random_state=args.seed,
    )


def network(layers, pretrain, args):
    """The classifier every row fine-tunes: ``finetune_epochs`` epochs of SGD with
    momentum, the learning rate lowered linearly, hidden-unit and input dropout, every
    network running the whole budget (no early stop).  With
    ``finetune_validation_fraction`` 0 it trains on the whole training set and keeps
    the last epoch; otherwise that fraction is held out and the weights of the epoch
    that scored best on it are kept."""
    fraction = args.finetune_validation_fraction
    return AutoencoderClassifier(
        layers, pretrain=pretrain, solver="sgd", dropout=args.finetune_dropout,
        input_dropout=args.finetune_input_dropout,
        learning_rate=args.finetune_learning_rate, learning_rate_schedule="linear",
        momentum=0.9, batch_size=128, max_iter=args.finetune_epochs,
        # without early stopping validation_fraction is not read (and 0 is outside
        # its range): the classifier's default stands in
        early_stopping=fraction != 0, validation_fraction=fraction or 0.1,
        n_iter_no_change=args.finetune_epochs, tol=0.0, random_state=args.seed,
    )


def check_finetune_options(args):
    """Validate every model of the table against its own constraints (raises
    ValueError); nothing is trained."""
    for kind in KINDS:
        layer(kind, args)._validate_params()
    network(None, True, args)._validate_params()


def run_finetune(args, data, rows, log=print, on_row=None, progress=None):
    """Pretrain the stacks, fine-tune every network; each finished row is appended to
    ``rows`` and passed to ``on_row(rows)`` at once (so an interrupted run keeps
    them). Returns ``rows``."""
    X_train, X_test, y_train, y_test = data
    depths = args.depths
    stacks = {}
    for kind in KINDS:
        for pretrain in (False, True):
            for depth in depths:
                init = "pretrained" if pretrain else "random init"
                label = (f"{depth} x {args.n_components} {ARCHITECTURE[kind]}, " +
                         ("k-sparse pretrained" if kind == "ksparse" and pretrain else
                          "denoising pretrained" if pretrain else "random init"))
                log(f"== fine-tuning: {label}")
                pretrain_time = 0.0
                if pretrain:
                    layers, pretrain_time = _pretrained_stack(kind, depth, stacks, X_train,
                                                              args, log, progress)
                else:
                    layers = [layer(kind, args) for _ in range(depth)]
                t0 = time.perf_counter()
                clf = network(layers, pretrain, args)
                if progress is not None:
                    progress.model(f"fine-tuning {label}")
                with _progress.reporting(progress):
                    clf.fit(X_train, y_train)
                fit_time = time.perf_counter() - t0
                error = 100.0 * (1.0 - clf.score(X_test, y_test))
                if clf.early_stopping:
                    val_error = round(100.0 * (1.0 - clf.best_validation_score_), 2)
                    best_epoch = 1 + max(range(clf.n_iter_),
                                         key=clf.validation_scores_.__getitem__)
                    summary = (f"   test error {error:.2f}%, validation error "
                               f"{val_error:.2f}% at epoch {best_epoch} of {clf.n_iter_}, "
                               f"{fit_time:.1f} s")
                else:
                    val_error, best_epoch = None, clf.n_iter_
                    summary = (f"   test error {error:.2f}% after {clf.n_iter_} epochs, "
                               f"{fit_time:.1f} s")
                rows.append({
                    "network": label, "hidden_layers": depth, "init": init,
                    "test_error": round(error, 2), "validation_error": val_error,
                    "best_epoch": best_epoch, "epochs": clf.n_iter_,
                    "pretrain_time_s": round(pretrain_time, 2),
                    "fit_time_s": round(fit_time, 1),
                })
                # saved, then printed: a Ctrl-C after the line finds the row on disk
                if on_row is not None:
                    on_row(rows)
                log(summary)
    return rows


def _pretrained_stack(kind, depth, stacks, X_train, args, log, progress):
    """The first ``depth`` layers of the pretrained stack of this kind, fitting the
    missing ones greedily (each on the clean codes of the one below), and the
    seconds their pretraining took (whenever it ran)."""
    fitted = stacks.setdefault(kind, [])
    codes = X_train
    for i in range(depth):
        if i >= len(fitted):
            ae = layer(kind, args)
            log(f"   pretraining layer {i + 1}: {type(ae).__name__} on {codes.shape[1]} "
                "inputs")
            if progress is not None:
                progress.model(f"pretraining {kind} layer {i + 1}")
            t0 = time.perf_counter()
            with _progress.reporting(progress):
                ae.fit(codes)
            seconds = time.perf_counter() - t0
            log(f"   pretrained in {seconds:.1f} s")
            fitted.append((ae, seconds))
        if i + 1 < depth:
            codes = fitted[i][0].transform(codes)
    return [ae for ae, _ in fitted[:depth]], sum(s for _, s in fitted[:depth])


def finetune_markdown(rows):
    """The table in Markdown; the validation columns when the run held out a split
    (every row of one run has them, or none does)."""
    validated = any(r["validation_error"] is not None for r in rows)
    head = ["network", "test error (%)"]
    head += ["validation error (%)", "best epoch"] if validated else ["epochs"]
    head += ["pretraining (s)", "fine-tuning (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["network"], f"{r['test_error']:.2f}"]
        if validated:
            cells += [f"{r['validation_error']:.2f}", f"{r['best_epoch']} of {r['epochs']}"]
        else:
            cells.append(str(r["epochs"]))
        cells += [f"{r['pretrain_time_s']:.1f}", f"{r['fit_time_s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
