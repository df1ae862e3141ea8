"""First-call compile time: a first process with an empty Numba cache, then a second
process that loads the cached kernels.  Each process fits and transforms a tiny
float32 and float64 problem, which compiles every kernel the estimators use.

    python benchmarks/bench_compile.py
"""

import os
import subprocess
import sys
import tempfile
import time

CODE = """
import time, warnings
t0 = time.perf_counter()
import numpy as np
from skksae import DenoisingAutoencoder, KSparseAutoencoder
t1 = time.perf_counter()
warnings.simplefilter("ignore")
X = np.random.RandomState(0).rand(50, 8)
for dtype in (np.float32, np.float64):
    Xd = X.astype(dtype)
    KSparseAutoencoder(n_components=8, k=2, max_iter=1).fit(Xd).transform(Xd)
    DenoisingAutoencoder(n_components=8, max_iter=1).fit(Xd).transform(Xd)
t2 = time.perf_counter()
print(f"{t1 - t0:.2f} {t2 - t1:.2f}")
"""


def run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                         text=True, check=True)
    wall = time.perf_counter() - t0
    imp, first_fit = map(float, out.stdout.split())
    return wall, imp, first_fit


def main():
    with tempfile.TemporaryDirectory() as cache:
        for label in ("empty cache (first process)", "warm cache (second process)"):
            wall, imp, fit = run(cache)
            print(f"{label}: import {imp:.2f} s, first fit+transform of both estimators "
                  f"in both dtypes {fit:.2f} s, whole process {wall:.2f} s")


if __name__ == "__main__":
    main()
