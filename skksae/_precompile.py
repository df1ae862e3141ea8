"""Compile every kernel ahead of use: :func:`precompile`.

Numba compiles a kernel the first time it is called with a new combination of
argument types, for the processor it runs on, and keeps the result in its cache
(``cache=True``); later processes on the same machine load it in a fraction of a
second.  :func:`precompile` runs tiny fits of every estimator configuration that
reaches a distinct kernel, in each floating dtype and with both versions of the
threaded kernels (:mod:`skksae._kernels`), so that no later call compiles.
"""

import contextlib
import io
import time
import warnings

import numpy as np

from . import _kernels as K

# The estimator settings that reach different kernels (or different specialisations
# of one): tied and untied decoders, each activation and loss, both optimizers, the
# top-k variants, dropout and the corruptions, sparse input and output.
_KSPARSE = (
    dict(),
    dict(solver="sgd", tied_weights=False, activation="relu", sparse_output=True),
    dict(activation="relu", batch_topk=True),
    dict(aux_coef=0.03, dead_window=8, normalize_decoder=True),
)
_DENOISING = (
    dict(),
    dict(activation="sigmoid", loss="cross_entropy", tied_weights=False, solver="sgd"),
    dict(activation="linear", corruption="gaussian", dropout=0.2),
    dict(activation="sigmoid", k=3, corruption="salt_and_pepper", sparse_output=True),
)


def _exercise(dtype):
    """Fit, transform, reconstruct and score tiny models in ``dtype`` so that every
    kernel the estimators call is compiled for it (in the current thread's kernel
    version, see :func:`_kernels.work`)."""
    import scipy.sparse as sp

    from ._classifier import AutoencoderClassifier
    from ._denoising import DenoisingAutoencoder
    from ._ksparse import KSparseAutoencoder

    rng = np.random.RandomState(0)
    X = rng.rand(40, 12).astype(dtype)
    y = np.arange(40) % 3
    readonly = X.copy()
    readonly.flags.writeable = False  # as joblib's memory maps arrive
    inputs = (X, readonly, sp.csr_matrix(X))

    def use(model):
        for data in inputs:
            model.fit(data)
            codes = model.transform(data)
            model.inverse_transform(codes)
            model.score(data)

    for params in _KSPARSE:
        use(KSparseAutoencoder(n_components=10, k=3, max_iter=2, random_state=0, **params))
    for params in _DENOISING:
        use(DenoisingAutoencoder(n_components=10, max_iter=2, random_state=0, **params))
    # a top-k layer (fine-tuned with its 3 k = 9 of 12 units) above a dense one, so
    # that its gradient also flows to the layer below
    layers = [DenoisingAutoencoder(10, activation="sigmoid", max_iter=1),
              KSparseAutoencoder(12, k=3, max_iter=1)]
    for params in (dict(), dict(dropout=0.2, input_dropout=0.1, solver="sgd",
                                early_stopping=True, validation_fraction=0.25)):
        for data in inputs:
            clf = AutoencoderClassifier(layers, max_iter=2, random_state=0, **params)
            clf.fit(data, y).predict_proba(data)


def _compile(dtypes, modes):
    """Compile for each dtype and kernel version (True: serial); returns the compile
    seconds of each top-level kernel."""
    from numba.core import event

    with event.install_recorder("numba:compile") as rec, warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for dtype in dtypes:
            for serial in modes:
                # an operation of no work runs the serial versions; one of
                # PARALLEL_MIN_WORK, the parallel ones (nested blocks keep it)
                with K.work(0 if serial else K.PARALLEL_MIN_WORK):
                    _exercise(np.dtype(dtype).type)
    return top_level_seconds(rec.buffer)


def top_level_seconds(buffer):
    """Seconds per top-level kernel from a recorder's buffer of Numba's
    "numba:compile" events (a kernel's helpers are compiled inside its event)."""
    seconds = {}
    depth = 0
    started = 0.0
    for ts, ev in buffer:
        if ev.is_start:
            depth += 1
            if depth == 1:
                started = ts
        else:
            if depth == 1:
                name = ev.data["dispatcher"].py_func.__qualname__
                seconds[name] = seconds.get(name, 0.0) + ts - started
            depth -= 1
    return seconds


def precompile(dtypes=("float32", "float64")):
    """Compile every kernel of skksae for this processor into Numba's cache.

    A new installation compiles each kernel the first time a model needs it, which
    can take tens of seconds on a small machine; afterwards every process loads the
    compiled kernels from the cache. Call this once where that first delay should
    not fall on a user: when building a container image or a virtual environment,
    or on each new machine of a cluster (the cache holds code for the processor it
    was compiled on, so it cannot be copied to a different one). Kernels already in
    the cache are loaded, not compiled again.

    Parameters
    ----------
    dtypes : sequence of {"float32", "float64"}, default=("float32", "float64")
        The floating types to compile the kernels for (estimators compute in the
        dtype of their input, float32 or float64).

    Returns
    -------
    report : dict
        ``"wall"``: the seconds the call took; ``"kernels"``: for each kernel
        compiled, the seconds it took (with the helpers compiled for it), largest
        first.

    Examples
    --------
    >>> from skksae import precompile
    >>> report = precompile(dtypes=("float32",))
    >>> sorted(report)
    ['kernels', 'wall']
    """
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    names = []
    for d in dtypes:
        try:
            names.append(np.dtype(d).name)
        except TypeError:
            names.append(repr(d))
    if not names or any(n not in ("float32", "float64") for n in names):
        raise ValueError(f"dtypes must name float32 and/or float64, got {list(dtypes)!r}.")
    # One process: Numba keeps one cache index per function, and processes compiling
    # the same function (every kernel shares helpers) at once overwrite each other's
    # entries.
    start = time.perf_counter()
    seconds = _compile(names, (True, False))
    kernels = dict(sorted(seconds.items(), key=lambda kv: -kv[1]))
    return {"wall": time.perf_counter() - start, "kernels": kernels}


def cache_is_warm(dtype="float32"):
    """Whether Numba's cache holds this processor's compiled serial matrix-product
    kernel for ``dtype``: a quick sign that kernels were compiled here before (it
    reads the cache's index, compiling nothing). ``None`` when the cache cannot be
    asked."""
    try:
        from numba import typeof

        disp = K.gemm.serial
        A = np.empty((2, 2), dtype=dtype)
        sig = tuple(typeof(v) for v in (A, False, A, True, A, 0.0, 1))
        cache = disp._cache
        # the index only: loading the compiled code would cost a tenth of a second
        key = cache._index_key(sig, disp.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - a private Numba interface; say nothing then
        return None
