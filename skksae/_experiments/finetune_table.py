"""The fine-tuning table: the same deep networks from random weights and from
greedily pretrained stacks of autoencoders, each fine-tuned with one budget.

For each depth (one and two hidden layers) the table has four networks: hard top-k
layers (the k-sparse architecture) and sigmoid layers (the stacked denoising
autoencoder's), each from random weights and pretrained.  Every network is an
:class:`~skksae.AutoencoderClassifier` fine-tuned with the same budget
(:func:`.models.network`) on the whole training set, and the network of the last
epoch is scored; the test set is used once per network.  The settings were chosen
with ``finetune_validation_fraction`` (10% of the training set held out, the weights
of the epoch that scores best on it kept and its error reported), the mode that
compares settings without the test set.  The pretrained layers are fitted once and
shared: the second layer of a two-layer stack is pretrained on the clean codes of
the first.
"""

import time

from .. import _progress
from .._base import fit_greedily
from . import models

KINDS = ("ksparse", "dae")
ARCHITECTURE = {"ksparse": "top-k", "dae": "sigmoid"}


def run_finetune(args, data, rows, log=print, on_row=None, progress=None):
    """Pretrain the stacks, fine-tune every network; each finished row is appended to
    ``rows`` and passed to ``on_row(rows)`` at once (so an interrupted run keeps
    them). Returns ``rows``."""
    stacks = {}
    for kind in KINDS:
        for pretrain in (False, True):
            for depth in args.depths:
                label = (f"{depth} x {args.n_components} {ARCHITECTURE[kind]}, " +
                         ("k-sparse pretrained" if kind == "ksparse" and pretrain else
                          "denoising pretrained" if pretrain else "random init"))
                log(f"== fine-tuning: {label}")
                pretrain_time = 0.0
                if pretrain:
                    layers, pretrain_time = _pretrained_stack(kind, depth, stacks, data[0],
                                                              args, log, progress)
                else:
                    layers = [models.stack_layer(kind, args) for _ in range(depth)]
                row, summary = _fine_tune(label, depth, layers, pretrain, pretrain_time, data,
                                          args, progress)
                rows.append(row)
                # saved, then printed: a Ctrl-C after the line finds the row on disk
                if on_row is not None:
                    on_row(rows)
                log(summary)
    return rows


def _fine_tune(label, depth, layers, pretrain, pretrain_time, data, args, progress):
    """Fine-tune one network and score it: its row and the line that reports it."""
    X_train, X_test, y_train, y_test = data
    t0 = time.perf_counter()
    clf = models.network(layers, pretrain, args)
    if progress is not None:
        progress.model(f"fine-tuning {label}")
    with _progress.reporting(progress):
        clf.fit(X_train, y_train)
    fit_time = time.perf_counter() - t0
    error = 100.0 * (1.0 - clf.score(X_test, y_test))
    if clf.early_stopping:
        val_error = round(100.0 * (1.0 - clf.best_validation_score_), 2)
        best_epoch = 1 + max(range(clf.n_iter_), key=clf.validation_scores_.__getitem__)
        summary = (f"   test error {error:.2f}%, validation error {val_error:.2f}% at "
                   f"epoch {best_epoch} of {clf.n_iter_}, {fit_time:.1f} s")
    else:
        val_error, best_epoch = None, clf.n_iter_
        summary = f"   test error {error:.2f}% after {clf.n_iter_} epochs, {fit_time:.1f} s"
    row = {
        "network": label, "hidden_layers": depth,
        "init": "pretrained" if pretrain else "random init",
        "test_error": round(error, 2), "validation_error": val_error,
        "best_epoch": best_epoch, "epochs": clf.n_iter_,
        "pretrain_time_s": round(pretrain_time, 2), "fit_time_s": round(fit_time, 1),
    }
    return row, summary


def _pretrained_stack(kind, depth, stacks, X_train, args, log, progress):
    """The first ``depth`` layers of the pretrained stack of this kind, fitting the
    missing ones greedily (each on the clean codes of the one below), and the
    seconds their pretraining took (whenever it ran)."""
    stack, seconds = stacks.setdefault(kind, ([], {}))
    while len(stack) < depth:
        stack.append(models.stack_layer(kind, args))

    def fit_layer(i, ae, codes):
        log(f"   pretraining layer {i + 1}: {type(ae).__name__} on {codes.shape[1]} inputs")
        if progress is not None:
            progress.model(f"pretraining {kind} layer {i + 1}")
        t0 = time.perf_counter()
        with _progress.reporting(progress):
            ae.fit(codes)
        seconds[i] = time.perf_counter() - t0
        log(f"   pretrained in {seconds[i]:.1f} s")

    fit_greedily(stack[:depth], X_train, fit_layer)
    return stack[:depth], sum(seconds[i] for i in range(depth))
