"""Where a long run is: one line per model and epoch, and the fits that report to it."""

import contextlib
import sys
import time

from sklearn.neural_network import BernoulliRBM

from .. import _progress


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
def rbm_epochs(rbm, X, progress):
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


def fit_transform(extractor, X, progress):
    """``extractor.fit(X).transform(X)`` with its epochs reported to ``progress``."""
    if isinstance(extractor, BernoulliRBM):
        with rbm_epochs(extractor, X, progress):
            extractor.fit(X)
    else:
        with _progress.reporting(progress):
            extractor.fit(X)
    return extractor.transform(X)
