"""Core benchmark: one training epoch and transform against the GEMM floor.

On a 60,000 x 784 float32 matrix with n_components=1000, k=25, batch 256, it times in
one run: (a) one float32 encoder GEMM over all rows (the floor every epoch pays),
(b) seconds per training epoch, (c) seconds to transform all rows, (d) the same epoch
as plain dense masked NumPy, (e) the top-k kernel against ``np.argpartition`` on a
60,000 x 1000 matrix.  Prints thread counts and the ratios.

    python benchmarks/bench_core.py [--threads 2] [--repeat 3] [--data mnist|random]
        [--data-home PATH] [--batch 256]

With ``--data mnist`` it uses the MNIST training images when they are found in
``--data-home`` (default ``../shared/data`` beside the project; see
``skksae.datasets.load_mnist``), otherwise sparse random images of the same shape.
"""

import argparse
import time
from pathlib import Path

import numba
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from skksae import KSparseAutoencoder
from skksae import _kernels


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def load_data(kind, data_home, rng):
    if kind == "mnist":
        try:
            from skksae.datasets import load_mnist

            X = load_mnist(data_home, return_X_y=True, download_if_missing=False)[0]
            return np.ascontiguousarray(X, dtype=np.float32), "MNIST train"
        except (OSError, ValueError) as exc:
            print(f"MNIST not available ({exc}); using random images")
    X = (rng.rand(60000, 784) < 0.19) * rng.rand(60000, 784)
    return X.astype(np.float32), "random sparse images"


def dense_numpy_epoch(X, W, b, c, k, batch_size, lr, momentum, rng):
    """The k-sparse AE epoch written as dense masked NumPy (tied, SGD + momentum)."""
    V = [np.zeros_like(W), np.zeros_like(b), np.zeros_like(c)]
    order = rng.permutation(X.shape[0])
    for start in range(0, X.shape[0], batch_size):
        Xb = X[order[start : start + batch_size]]
        n = Xb.shape[0]
        Z = Xb @ W.T + b
        thresh = np.partition(Z, -k, axis=1)[:, -k][:, None]
        mask = Z >= thresh
        H = np.where(mask, Z, 0)
        G = (H @ W + c - Xb) / n
        dZ = np.where(mask, G @ W.T, 0)
        grads = (dZ.T @ Xb + H.T @ G, dZ.sum(0), G.sum(0))
        for p, v, g in zip((W, b, c), V, grads):
            v *= momentum
            v -= lr * g
            p += v


# the epoch's targets against the floor, by batch size (doc/benchmarks.rst)
EPOCH_TARGETS = {128: "<= 2.0x", 256: "<= 1.6x"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", choices=["random", "mnist"], default="random")
    parser.add_argument("--data-home", default=str(Path(__file__).resolve().parents[2]
                                                   / "shared" / "data"))
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()

    numba.set_num_threads(args.threads)
    rng = np.random.RandomState(0)
    X, what = load_data(args.data, args.data_home, rng)
    n, d = X.shape
    m, k, batch = 1000, 25, args.batch
    with threadpool_limits(args.threads, user_api="blas"):
        blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()
                if i["user_api"] == "blas"]
        print(f"data: {what}, {n} x {d} float32; n_components={m}, k={k}, batch={batch}")
        print(f"threads: numba={numba.get_num_threads()}, BLAS={blas} (skksae's kernels "
              "run BLAS single-threaded inside Numba's threads)")

        W0 = (rng.standard_normal((m, d)) * 0.01).astype(np.float32)
        out = np.empty((n, m), dtype=np.float32)
        gemm = best_of(lambda: np.matmul(X, W0.T, out=out), args.repeat)
        gemm_alloc = best_of(lambda: X @ W0.T, args.repeat)
        print(f"(a) encoder GEMM over all rows (NumPy, {args.threads} BLAS threads): {gemm:.3f} s"
              f" into a preallocated array (the floor used below); {gemm_alloc:.3f} s for"
              " X @ W.T, which also allocates its result")

        ae = KSparseAutoencoder(n_components=m, k=k, k_start=None, batch_size=batch,
                                solver="sgd", learning_rate=0.01, max_iter=1, shuffle=True,
                                random_state=0)
        ae.partial_fit(X[:2048])  # compile and warm up
        epoch = best_of(lambda: ae.partial_fit(X), args.repeat)
        print(f"(b) training epoch (skksae, SGD+momentum): {epoch:.3f} s"
              f"   ratio to GEMM floor: {epoch / gemm:.2f}x  ({EPOCH_TARGETS.get(batch, 'no')}"
              " target at this batch size)")

        ae.transform(X[:100])
        tr = best_of(lambda: ae.transform(X), args.repeat)
        print(f"(c) transform all rows (dense output): {tr:.3f} s"
              f"   ratio to GEMM floor: {tr / gemm:.2f}x  (target <= 1.15x);"
              f" to the allocating X @ W.T: {tr / gemm_alloc:.2f}x")

        W, b, c = W0.copy(), np.zeros(m, np.float32), np.zeros(d, np.float32)
        dense = best_of(
            lambda: dense_numpy_epoch(X, W, b, c, k, batch, 0.01, 0.9, np.random.RandomState(0)),
            1,
        )
        print(f"(d) the same epoch in dense masked NumPy: {dense:.3f} s"
              f"   skksae speed-up: {dense / epoch:.2f}x  (target >= 2x)")

        Z = X[:, :1] * 0 + rng.standard_normal((n, m)).astype(np.float32)
        zero_bias = np.zeros(m, np.float32)
        idx = np.empty((n, k), np.int64)
        vals = np.empty((n, k), np.float32)
        _kernels.topk_rows(Z[:10], zero_bias, k, _kernels.LINEAR, idx[:10], vals[:10])
        topk = best_of(lambda: _kernels.topk_rows(Z, zero_bias, k, _kernels.LINEAR, idx, vals),
                       args.repeat)
        argp = best_of(lambda: np.argpartition(Z, m - k, axis=1), args.repeat)
        print(f"(e) top-{k} of {n} x {m}: kernel {topk:.3f} s, np.argpartition {argp:.3f} s"
              f"   speed-up: {argp / topk:.2f}x  (target >= 3x)")
        print(f"numba threading layer: {numba.threading_layer()}")


if __name__ == "__main__":
    main()
