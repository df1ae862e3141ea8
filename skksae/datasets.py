"""MNIST and Fashion-MNIST loaders: the standard 60,000 / 10,000 split, float32 in [0, 1].

Where the loaders look, in order:

1. the ``data_home`` argument;
2. the ``SKKSAE_DATA_HOME`` environment variable;
3. for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (``apt-get install
   dataset-fashion-mnist`` puts the files there);
4. a download through :func:`sklearn.datasets.fetch_openml`, with scikit-learn's
   usual cache (only when ``download_if_missing=True``).

In a folder the four standard IDX files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
gzipped or raw) are looked for in the folder itself and in a subfolder named after
the dataset (``mnist`` or ``fashion-mnist``).  Parsed arrays are cached as ``.npz``
under scikit-learn's data home (``skksae_cache/``), so a second load is fast.
"""

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
from sklearn.datasets import get_data_home
from sklearn.utils import Bunch

__all__ = ["load_mnist", "load_fashion_mnist"]

_FILES = {
    "X_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "X_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_EXPECTED = {"X_train": (60000, 28, 28), "y_train": (60000,), "X_test": (10000, 28, 28),
             "y_test": (10000,)}
_DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def _read_idx(path):
    """Parse one IDX file (gzip or raw) into a uint8 array, checking its header."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} is corrupt or truncated and cannot be read: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its header is incomplete.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(
            f"{path} is truncated or corrupt: the header announces shape {shape} "
            f"({expected} bytes) but the file holds {len(raw)} bytes."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_files(folder, name):
    """The four IDX paths in ``folder`` or ``folder/name``, or None."""
    for base in (Path(folder), Path(folder) / name):
        found = {}
        for key, stem in _FILES.items():
            for candidate in (base / f"{stem}.gz", base / stem):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == 4:
            return found
    return None


def _cache_path(files, name):
    h = hashlib.sha1()
    for key in sorted(files):
        st = files[key].stat()
        h.update(f"{files[key].resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return Path(get_data_home()) / "skksae_cache" / f"{name}-{h.hexdigest()[:16]}.npz"


def _load_files(files, name):
    cache = _cache_path(files, name)
    if cache.is_file():
        try:
            with np.load(cache) as npz:
                return {key: npz[key] for key in _FILES}
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    arrays = {key: _read_idx(path) for key, path in files.items()}
    for key, shape in _EXPECTED.items():
        if arrays[key].shape != shape:
            raise ValueError(
                f"{files[key]} has shape {arrays[key].shape}, expected {shape} for {name}."
            )
    out = {
        "X_train": arrays["X_train"].reshape(60000, 784).astype(np.float32) / 255.0,
        "X_test": arrays["X_test"].reshape(10000, 784).astype(np.float32) / 255.0,
        "y_train": arrays["y_train"].astype(np.int64),
        "y_test": arrays["y_test"].astype(np.int64),
    }
    for key in ("y_train", "y_test"):
        if out[key].max() > 9:
            raise ValueError(f"{files[key]} holds labels above 9: not {name} labels.")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **out)
        os.replace(tmp, cache)
    except OSError:
        pass  # caching is an optimisation; a read-only home is fine
    return out


def _fetch_openml(openml_name, data_home):
    from sklearn.datasets import fetch_openml

    X, y = fetch_openml(
        openml_name, version=1, return_X_y=True, as_frame=False, data_home=data_home,
        parser="liac-arff",
    )
    X = np.asarray(X, dtype=np.float32) / 255.0
    y = np.asarray(y).astype(np.int64)
    # OpenML keeps the original order: the first 60,000 rows are the training set.
    return {"X_train": X[:60000], "y_train": y[:60000], "X_test": X[60000:],
            "y_test": y[60000:]}


def _load(name, openml_name, extra_places, data_home, download_if_missing, return_X_y,
          description, install_hint=""):
    places = []
    if data_home is not None:
        places.append(("data_home argument", Path(data_home)))
    env = os.environ.get("SKKSAE_DATA_HOME")
    if env:
        places.append(("SKKSAE_DATA_HOME", Path(env)))
    places.extend(extra_places)
    data, source = None, None
    for label, folder in places:
        files = _find_files(folder, name)
        if files is not None:
            data, source = _load_files(files, name), str(files["X_train"].parent)
            break
    if data is None:
        looked = "\n".join(f"  - {label}: {folder} (and {folder / name})"
                           for label, folder in places) or "  (no folder given)"
        how = (f"Put the four IDX files ({', '.join(_FILES.values())}, .gz or raw) in a "
               f"folder and pass it as data_home or set SKKSAE_DATA_HOME{install_hint}")
        if not download_if_missing:
            raise FileNotFoundError(
                f"{name} was not found. Looked in:\n{looked}\n{how}, or allow a download "
                "with download_if_missing=True."
            )
        try:
            data = _fetch_openml(openml_name, None if data_home is None else str(data_home))
        except Exception as exc:
            raise FileNotFoundError(
                f"{name} was not found locally and the download from OpenML failed "
                f"({type(exc).__name__}: {exc}). Looked in:\n{looked}\n{how}."
            ) from exc
        source = f"OpenML '{openml_name}'"
    if return_X_y:
        return data["X_train"], data["X_test"], data["y_train"], data["y_test"]
    return Bunch(
        data_train=data["X_train"],
        target_train=data["y_train"],
        data_test=data["X_test"],
        target_test=data["y_test"],
        source=source,
        DESCR=description,
    )


_DOC_RETURNS = """Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data_train`` (60000, 784) and ``data_test`` (10000, 784) float32 pixels in
        [0, 1]; ``target_train`` and ``target_test`` int64 labels 0-9; ``source``,
        where the data came from; ``DESCR``.

    (X_train, X_test, y_train, y_test) : tuple if ``return_X_y`` is True
"""


def load_mnist(data_home=None, *, return_X_y=False, download_if_missing=True):
    """Load MNIST: 60,000 training and 10,000 test digits, float32 in [0, 1].

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder holding the four IDX files (or a ``mnist`` subfolder with them). See
        the module docstring for the search order.

    return_X_y : bool, default=False
        If True, return ``(X_train, X_test, y_train, y_test)``.

    download_if_missing : bool, default=True
        If the files are not found, download them from OpenML.

    {returns}
    See Also
    --------
    load_fashion_mnist : The same layout for Fashion-MNIST.

    References
    ----------
    .. [1] Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning
       applied to document recognition", Proc. IEEE 86(11), 1998.

    Examples
    --------
    >>> from skksae.datasets import load_mnist
    >>> mnist = load_mnist()  # doctest: +SKIP
    >>> mnist.data_train.shape  # doctest: +SKIP
    (60000, 784)
    """
    return _load("mnist", "mnist_784", [], data_home, download_if_missing, return_X_y,
                 "MNIST handwritten digits (LeCun, Cortes and Burges).")


def load_fashion_mnist(data_home=None, *, return_X_y=False, download_if_missing=True):
    """Load Fashion-MNIST: 60,000 training and 10,000 test images, float32 in [0, 1].

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder holding the four IDX files (or a ``fashion-mnist`` subfolder with
        them). Without it, ``SKKSAE_DATA_HOME`` and then the Debian package's
        location are searched (see the module docstring).

    return_X_y : bool, default=False
        If True, return ``(X_train, X_test, y_train, y_test)``.

    download_if_missing : bool, default=True
        If the files are not found, download them from OpenML.

    {returns}
    See Also
    --------
    load_mnist : The same layout for MNIST.

    References
    ----------
    .. [1] H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
       Benchmarking Machine Learning Algorithms", arXiv:1708.07747, 2017.

    Examples
    --------
    >>> from skksae.datasets import load_fashion_mnist
    >>> fashion = load_fashion_mnist()  # doctest: +SKIP
    >>> fashion.data_test.shape  # doctest: +SKIP
    (10000, 784)
    """
    return _load("fashion-mnist", "Fashion-MNIST",
                 [("Debian package dataset-fashion-mnist", _DEBIAN_FASHION)], data_home,
                 download_if_missing, return_X_y,
                 "Fashion-MNIST clothing images (Xiao, Rasul and Vollgraf, 2017).",
                 install_hint=", or run 'apt-get install dataset-fashion-mnist'")


load_mnist.__doc__ = load_mnist.__doc__.replace("{returns}", _DOC_RETURNS.strip("\n") + "\n")
load_fashion_mnist.__doc__ = load_fashion_mnist.__doc__.replace(
    "{returns}", _DOC_RETURNS.strip("\n") + "\n"
)
