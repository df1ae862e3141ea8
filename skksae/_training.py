"""The one training loop of every estimator: the batches of an epoch, the epochs of
a call, the stop rule, the verbose lines, the progress reports and the
ConvergenceWarning.

An estimator's ``_fit(X, y, incremental)`` builds a network
(:mod:`skksae._networks`) and an optimizer (:mod:`skksae._optim`), then calls
:func:`train` with a function that prepares and runs one epoch (its k, its step
size) through :func:`run_epoch`.
"""

import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from . import _kernels as K
from . import _progress
from ._networks import copy_state, n_weights

# The constraints of the training options every estimator shares (the autoencoders
# and the classifier).
TRAINING_CONSTRAINTS = {
    "solver": [StrOptions({"sgd", "adam"})],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "learning_rate_schedule": [StrOptions({"constant", "linear"})],
    "momentum": [Interval(Real, 0, 1, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "shuffle": ["boolean"],
    "warm_start": ["boolean"],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


def keep_state_on_error(estimator, method, *args):
    """Run ``method(*args)``; if it raises, put every attribute of ``estimator`` back
    as it was, so that bad input or a diverging run leaves a fitted model intact."""
    saved = dict(estimator.__dict__)
    try:
        return method(*args)
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise


def run_epoch(network, params, optimizer, X, *, batch_size, shuffle, rng, Y=None,
              rows=None):
    """One pass over X (and the targets Y, for a supervised network) in
    mini-batches, in an order drawn from ``rng``; returns the mean loss.  ``rows``
    (indices into X, repeats allowed) makes the pass visit those rows instead of
    every row once.

    ``params`` and the optimizer's state are updated in place.  Raises
    FloatingPointError as soon as a batch loss is not finite, and after the pass if
    a parameter is not; the caller owns ``params`` and the optimizer and discards
    them then."""
    n = X.shape[0] if rows is None else len(rows)
    with K.work(n * n_weights(params)):
        batch_size = min(batch_size, n)
        order = rng.permutation(n) if shuffle else np.arange(n)
        if rows is not None:
            order = rows[order]
        grads = {name: np.empty_like(p) for name, p in params.items()}
        buffers = {}
        gather = network.batches(params, X, Y)
        total = 0.0
        with K.single_threaded_blas:
            for start in range(0, n, batch_size):
                rows = order[start : start + batch_size]
                batch = gather(rows, rng, buffers)
                loss = network.train_batch(params, batch, grads, buffers, optimizer, rng)
                if not np.isfinite(loss):
                    _diverged(optimizer, f"the loss became {loss} on the batch starting at "
                                         f"sample {start}")
                total += loss * rows.shape[0]
        # the last update is not checked by any loss: check the weights themselves
        for name, p in params.items():
            if not np.isfinite(p).all():
                _diverged(optimizer, f"the parameter {name} holds non-finite values")
    return total / n


def _diverged(optimizer, what):
    raise FloatingPointError(
        f"Training diverged: {what}. The learning rate ({optimizer.learning_rate}) is "
        "likely too large for the scale of the data; lower learning_rate or scale "
        "the input (for example with StandardScaler or MinMaxScaler)."
    )


class StopRule:
    """When to stop: no improvement by at least ``tol`` for ``n_iter_no_change``
    consecutive epochs, of the training loss (lower is better) or, with
    ``maximize``, of a validation score."""

    def __init__(self, tol, n_iter_no_change, maximize=False):
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.maximize = maximize
        self.best = -np.inf if maximize else np.inf
        self.no_improvement = 0

    def update(self, value):
        """Count an epoch's value; returns whether it is the best so far."""
        if self.maximize:
            improved, better = value >= self.best + self.tol, value > self.best
        else:
            improved, better = value <= self.best - self.tol, value < self.best
        self.no_improvement = 0 if improved else self.no_improvement + 1
        if better:
            self.best = value
        return better

    @property
    def done(self):
        return self.no_improvement >= self.n_iter_no_change

    def message(self):
        what = "Validation score" if self.maximize else "Training loss"
        return (f"{what} did not improve more than tol={self.tol} for "
                f"{self.n_iter_no_change} consecutive epochs. Stopping.")


class Outcome:
    """What :func:`train` reports: the epochs' losses appended to ``loss_curve``,
    ``stopped`` (the stop rule ended the call), the validation ``scores`` and a copy
    of the parameters of the best-scoring epoch (``best_params``; None without
    validation)."""

    def __init__(self, loss_curve):
        self.loss_curve = loss_curve
        self.stopped = False
        self.scores = None
        self.best_params = None


def train(estimator, one_epoch, loss_curve, n_epochs, *, stop=None, validate=None,
          params=None, patience_from=0):
    """Epochs ``len(loss_curve)`` .. ``len(loss_curve) + n_epochs - 1`` (0-based
    indices of the estimator's whole training), each ``one_epoch(epoch)`` returning
    ``(loss, details)``; ``details`` is appended to the verbose line.

    With a :class:`StopRule` ``stop``, training ends early as it says (judged on the
    loss, or on ``validate()`` after each epoch when given, copying ``params`` at
    each best score); epochs before ``patience_from`` are not judged (a schedule is
    still moving the objective).  Returns an :class:`Outcome`; warns with a
    ConvergenceWarning when a stop rule was given and did not stop training."""
    outcome = Outcome(loss_curve)
    if validate is not None:
        outcome.scores = []
    first = len(loss_curve)
    for epoch in range(first, first + n_epochs):
        t0 = time.perf_counter()
        loss, details = one_epoch(epoch)
        loss_curve.append(loss)
        if estimator.verbose:
            print(f"Iteration {epoch + 1}, loss = {loss:.8f}{details}, "
                  f"time = {time.perf_counter() - t0:.2f}s")
        _progress.epoch_done(estimator, epoch + 1, first + n_epochs)
        if stop is None:
            continue
        value = loss
        if validate is not None:
            value = validate()
            outcome.scores.append(value)
            if estimator.verbose:
                print(f"Validation score: {value:.6f}")
        if epoch + 1 < patience_from:
            continue
        if stop.update(value) and validate is not None:
            outcome.best_params = copy_state(params)
        if stop.done:
            outcome.stopped = True
            if estimator.verbose:
                print(stop.message())
            break
    if stop is not None and not outcome.stopped:
        warn_not_converged(estimator.max_iter)
    return outcome


def warn_not_converged(max_iter):
    """The ConvergenceWarning of a stochastic optimizer stopped by ``max_iter``
    (MLPClassifier's wording)."""
    warnings.warn(
        f"Stochastic optimizer: maximum iterations ({max_iter}) reached and the "
        "optimization hasn't converged yet.",
        ConvergenceWarning,
    )
