"""Out-of-core training: partial_fit over chunks of a memory-mapped file several times
larger than the memory budget.

Writes a float32 ``.npy`` file of ``--rows`` x 784 (default 400,000 rows, 1.25 GB) in a
temporary folder, then trains a KSparseAutoencoder with ``partial_fit`` on chunks of
``--chunk`` rows read from a ``np.memmap`` and prints the peak memory that Python and
NumPy allocated (tracemalloc) against the file size and the budget.

    python benchmarks/bench_out_of_core.py [--rows 400000] [--chunk 4096]
"""

import argparse
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

from skksae import KSparseAutoencoder


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=400_000)
    p.add_argument("--chunk", type=int, default=4096)
    p.add_argument("--budget-mb", type=float, default=256.0)
    args = p.parse_args()
    d = 784
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                       shape=(args.rows, d))
        rng = np.random.RandomState(0)
        for s in range(0, args.rows, 50_000):
            block = rng.rand(min(50_000, args.rows - s), d).astype(np.float32)
            mm[s : s + block.shape[0]] = block * (block < 0.2)
        mm.flush()
        del mm
        size_mb = path.stat().st_size / 1e6
        X = np.load(path, mmap_mode="r")
        ae = KSparseAutoencoder(n_components=1000, k=25, batch_size=256, random_state=0)
        warnings.simplefilter("ignore")
        ae.partial_fit(X[:1024])  # compile before measuring
        tracemalloc.start()
        t0 = time.perf_counter()
        for s in range(0, args.rows, args.chunk):
            ae.partial_fit(X[s : s + args.chunk])
        elapsed = time.perf_counter() - t0
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    model_mb = sum(a.nbytes for a in (ae.components_, *ae._optimizer_state.values())
                   if isinstance(a, np.ndarray)) / 1e6
    print(f"file: {size_mb:.0f} MB ({args.rows} x {d} float32), budget {args.budget_mb:.0f} MB"
          f", chunks of {args.chunk} rows")
    print(f"trained one pass in {elapsed:.1f} s; peak traced allocation {peak_mb:.1f} MB "
          f"(model and optimizer state {model_mb:.1f} MB)")
    print(f"file / budget = {size_mb / args.budget_mb:.1f}x; peak within budget: "
          f"{peak_mb <= args.budget_mb}")


if __name__ == "__main__":
    main()
