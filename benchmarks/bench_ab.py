"""A/B: this checkout's warm speed against another checkout's, path by path.

Runs ``bench_paths.py``'s skksae contender (MNIST when found, 1000 units, batch 128,
float32; see that script) from two source trees, each in its own process, old and new
alternating for ``--rounds`` rounds so that a slow spell of a shared machine falls on
both; each process warms up, then times ``--repeat`` epochs (or passes).  Prints the
median of each side and the ratio new / old.  The Numba cache of each tree is warmed
by one untimed run first.

    python benchmarks/bench_ab.py --base ../old-checkout [--rounds 3] [--threads 2]
        [--paths ksparse-fit,dae-fit]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_finetune import load_data  # noqa: E402
from bench_paths import PATHS  # noqa: E402


def run(tree, path, data_file, repeat, threads):
    env = dict(os.environ, PYTHONPATH=str(tree))
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, str(tree / "benchmarks" / "bench_paths.py"), "--contender",
           "skksae", "--path", path, "--data-file", str(data_file), "--repeat",
           str(repeat), "--threads", str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree)
    if out.returncode:
        sys.exit(f"{tree} {path} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["times"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the other checkout (the A side)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--paths", default=",".join(PATHS))
    p.add_argument("--data-home", default=str(HERE.parents[1] / "shared" / "data"))
    args = p.parse_args()
    trees = {"old": Path(args.base).resolve(), "new": HERE.parent}
    X, y, source = load_data(args.data_home)
    print(f"data: {source}; {args.threads} threads (Numba, BLAS); {args.rounds} rounds x "
          f"{args.repeat} timed epochs per side; old = {trees['old']}, new = {trees['new']}")
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "data.npz"
        np.savez(data_file, X=X, y=y)
        for path in args.paths.split(","):
            times = {"old": [], "new": []}
            for side in times:  # compile (or load) each tree's kernels once, untimed
                run(trees[side], path, data_file, 1, args.threads)
            for _ in range(args.rounds):
                for side in times:
                    times[side] += run(trees[side], path, data_file, args.repeat,
                                       args.threads)
            old, new = (float(np.median(times[s])) for s in ("old", "new"))
            print(f"{PATHS[path]}: old {old:.3f} s, new {new:.3f} s, new / old "
                  f"{new / old:.3f}", flush=True)


if __name__ == "__main__":
    main()
