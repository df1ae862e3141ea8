"""Epoch progress of the autoencoders, for a caller that wants to show it.

The estimators' training loop calls :func:`epoch_done` after every epoch; it does
nothing unless a reporter is installed with :func:`reporting` (the comparison command
installs one).  No estimator parameter is involved, so fitted models and their
pickles are the same with or without a reporter.
"""

import contextlib
import threading

_local = threading.local()


@contextlib.contextmanager
def reporting(callback):
    """Within the block, ``callback(estimator, epoch, n_epochs)`` is called after each
    training epoch of this thread (``epoch`` counts from 1)."""
    previous = getattr(_local, "callback", None)
    _local.callback = callback
    try:
        yield
    finally:
        _local.callback = previous


def epoch_done(estimator, epoch, n_epochs):
    callback = getattr(_local, "callback", None)
    if callback is not None:
        callback(estimator, epoch, n_epochs)
