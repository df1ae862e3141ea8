"""Cold start: what Numba's compilation costs a fresh install.

Each measurement is a first process with an empty Numba cache, then a second process
that loads the cached kernels:

* the first call a new user makes of each estimator, on the digits scaled to [0, 1]
  as float32: ``KSparseAutoencoder().fit(X)``, ``DenoisingAutoencoder().fit(X)``,
  ``AutoencoderClassifier().fit(X, y)`` (seconds of the call alone);
* a tiny float32 and float64 fit and transform of both estimators;
* the README's main command, ``python -m skksae`` (digits, float32), the cold start
  a newcomer meets.  Its first process also records Numba's compile events and
  prints the seconds spent compiling each top-level kernel (a kernel's time includes
  the helpers compiled for it);
* ``skksae.precompile()``: every kernel in both dtypes, both versions.

    python benchmarks/bench_compile.py [--top 12] [--skip-precompile]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TINY = """
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

FIRST_CALL = """
import time, warnings
import numpy as np
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
import skksae
warnings.simplefilter("ignore")
model = skksae.{name}()
t0 = time.perf_counter()
model.fit(X{y})
print(f"{{time.perf_counter() - t0:.2f}}")
"""

PRECOMPILE = """
import skksae
print(f"{skksae.precompile()['wall']:.2f}")
"""

# The main job in a child process, its output discarded; the compile events of the
# process (top-level ones only: a kernel's helpers are compiled inside its event) are
# printed as JSON on the last line.
MAIN = """
import contextlib, io, json
from numba.core import event
with event.install_recorder("numba:compile") as rec:
    from skksae._experiments import cli
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        status = cli.main([])
from skksae._precompile import top_level_seconds
seconds = top_level_seconds(rec.buffer)
print(json.dumps({"status": status, "compile": seconds}))
"""


def run(code, cache_dir, cwd):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, cwd=cwd)
    return time.perf_counter() - t0, out.stdout.strip().splitlines()[-1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--top", type=int, default=12,
                   help="kernels listed by compile time (default 12)")
    p.add_argument("--skip-precompile", action="store_true",
                   help="leave out the precompile() measurement (about a minute)")
    args = p.parse_args(argv)
    print(f"Numba threads: {os.environ.get('NUMBA_NUM_THREADS', 'all cores')} "
          f"({os.cpu_count()} cores)")
    for name, y in (("KSparseAutoencoder", ""), ("DenoisingAutoencoder", ""),
                    ("AutoencoderClassifier", ", y")):
        code = FIRST_CALL.format(name=name, y=y)
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as cwd:
            cold = float(run(code, cache, cwd)[1])
            warm = float(run(code, cache, cwd)[1])
        print(f"{name}().fit on the digits: first call {cold:.2f} s with an empty cache, "
              f"{warm:.2f} s warm ({cold / warm:.1f}x)")
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as cwd:
        for label in ("empty cache (first process)", "warm cache (second process)"):
            wall, line = run(TINY, cache, cwd)
            imp, fit = map(float, line.split())
            print(f"tiny fits, {label}: import {imp:.2f} s, first fit+transform of both "
                  f"estimators in both dtypes {fit:.2f} s, whole process {wall:.2f} s")
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as cwd:
        walls = []
        for label in ("empty cache (first process)", "warm cache (second process)"):
            wall, line = run(MAIN, cache, cwd)
            result = json.loads(line)
            if result["status"] != 0:
                sys.exit(f"python -m skksae exited with status {result['status']}")
            walls.append(wall)
            compiled = result["compile"]
            print(f"python -m skksae, {label}: whole process {wall:.2f} s, "
                  f"{sum(compiled.values()):.2f} s compiling {len(compiled)} kernels")
            for name, s in sorted(compiled.items(), key=lambda kv: -kv[1])[:args.top]:
                print(f"    {s:6.2f} s  {name}")
        print(f"python -m skksae: first run / warm run = {walls[0] / walls[1]:.2f}x")
    if not args.skip_precompile:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as cwd:
            wall, line = run(PRECOMPILE, cache, cwd)
        print(f"skksae.precompile() with an empty cache: {float(line):.1f} s "
              f"(whole process {wall:.1f} s)")


if __name__ == "__main__":
    main()
