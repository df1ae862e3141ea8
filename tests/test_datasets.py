"""Dataset loaders on small local IDX files (and on the shared MNIST when present)."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from skksae import datasets

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data"


def _write_idx(path, array, compress):
    ndim = array.ndim
    header = bytes([0, 0, 0x08, ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture
def fake_home(tmp_path, monkeypatch):
    """A folder with MNIST-shaped random IDX files, and a private sklearn cache."""
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("SKKSAE_DATA_HOME", raising=False)
    rng = np.random.RandomState(0)
    arrays = {
        "train-images-idx3-ubyte": rng.randint(0, 256, (60000, 28, 28)),
        "train-labels-idx1-ubyte": rng.randint(0, 10, 60000),
        "t10k-images-idx3-ubyte": rng.randint(0, 256, (10000, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.randint(0, 10, 10000),
    }
    home = tmp_path / "data"
    (home / "mnist").mkdir(parents=True)
    for i, (name, a) in enumerate(arrays.items()):
        compress = i % 2 == 0  # mix gzip and raw files
        _write_idx(home / "mnist" / (name + (".gz" if compress else "")), a, compress)
    return home, arrays


def test_load_from_data_home_and_cache(fake_home, tmp_path):
    home, arrays = fake_home
    bunch = datasets.load_mnist(home, download_if_missing=False)
    assert bunch.data_train.shape == (60000, 784) and bunch.data_train.dtype == np.float32
    assert bunch.data_test.shape == (10000, 784)
    np.testing.assert_allclose(
        bunch.data_train[:3] * 255, arrays["train-images-idx3-ubyte"][:3].reshape(3, -1),
        atol=1e-3,
    )
    np.testing.assert_array_equal(bunch.target_test, arrays["t10k-labels-idx1-ubyte"])
    assert 0 <= bunch.data_train.min() and bunch.data_train.max() <= 1
    cached = list((tmp_path / "cache" / "skksae_cache").glob("mnist-*.npz"))
    assert len(cached) == 1
    Xtr, Xte, ytr, yte = datasets.load_mnist(home, return_X_y=True, download_if_missing=False)
    np.testing.assert_array_equal(Xtr, bunch.data_train)
    np.testing.assert_array_equal(yte, bunch.target_test)


def test_environment_variable_is_searched(fake_home, monkeypatch):
    home, _ = fake_home
    monkeypatch.setenv("SKKSAE_DATA_HOME", str(home))
    assert datasets.load_mnist(download_if_missing=False).data_test.shape == (10000, 784)


def test_missing_data_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("SKKSAE_DATA_HOME", str(tmp_path / "env"))
    monkeypatch.setattr(datasets, "_DEBIAN_FASHION", tmp_path / "debian")
    with pytest.raises(FileNotFoundError) as info:
        datasets.load_fashion_mnist(tmp_path / "arg", download_if_missing=False)
    msg = str(info.value)
    for place in ("arg", "env", "debian", "apt-get install dataset-fashion-mnist"):
        assert place in msg


def test_truncated_file_is_a_clear_error(fake_home):
    home, _ = fake_home
    path = home / "mnist" / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        datasets.load_mnist(home, download_if_missing=False)


def test_corrupt_gzip_is_a_clear_error(fake_home):
    home, _ = fake_home
    path = home / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        datasets.load_mnist(home, download_if_missing=False)


def test_bad_magic_is_a_clear_error(fake_home):
    home, _ = fake_home
    path = home / "mnist" / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x01\x02\x03\x04" + path.read_bytes()[4:])
    with pytest.raises(ValueError, match="magic"):
        datasets.load_mnist(home, download_if_missing=False)


def test_openml_fallback_splits_the_standard_way(tmp_path, monkeypatch):
    """The download path: fetch_openml itself cannot run offline, so it is replaced by
    a stand-in returning OpenML's layout (70,000 rows, pixels 0-255, string labels)."""
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("SKKSAE_DATA_HOME", raising=False)
    calls = []

    def fake_fetch(name, **kwargs):
        calls.append((name, kwargs))
        X = np.repeat(np.arange(70000)[:, None] % 256, 784, axis=1).astype(float)
        y = np.array([str(i % 10) for i in range(70000)], dtype=object)
        return X, y

    import sklearn.datasets

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", fake_fetch)
    Xtr, Xte, ytr, yte = datasets.load_mnist(tmp_path / "none", return_X_y=True)
    assert calls[0][0] == "mnist_784"
    assert Xtr.shape == (60000, 784) and Xte.shape == (10000, 784)
    assert Xtr.dtype == np.float32 and Xtr.max() <= 1.0
    assert ytr.dtype == np.int64 and yte[0] == 60000 % 10


@pytest.mark.skipif(
    not (SHARED_MNIST / "mnist" / "train-images-idx3-ubyte.gz").exists(),
    reason="the shared MNIST files are not beside this checkout",
)
def test_real_mnist_files(monkeypatch, tmp_path):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "cache"))
    b = datasets.load_mnist(SHARED_MNIST, download_if_missing=False)
    assert b.data_train.shape == (60000, 784)
    assert np.bincount(b.target_train).tolist()[:2] == [5923, 6742]
    assert b.target_test[:5].tolist() == [7, 2, 1, 0, 4]


@pytest.mark.skipif(
    not (datasets._DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists(),
    reason="apt-get install dataset-fashion-mnist has not been run (CI installs it)",
)
def test_fashion_mnist_from_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("SKKSAE_DATA_HOME", raising=False)
    b = datasets.load_fashion_mnist(download_if_missing=False)
    assert b.source == str(datasets._DEBIAN_FASHION)
    assert b.data_train.shape == (60000, 784) and b.data_test.shape == (10000, 784)
    assert np.bincount(b.target_train).tolist() == [6000] * 10
