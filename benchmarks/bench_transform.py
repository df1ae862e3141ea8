"""``transform`` of 60,000 rows against the encoder GEMM floor, each in its own process.

``bench_core.py`` (c) times the transform and the floor one after the other in one
process, best of a few calls; the machine's speed moves within minutes, so that ratio
wanders (1.25x and 1.75x in two runs of one day).  Here the contenders alternate, each
in a fresh process, for ``--rounds`` rounds, and every figure is printed, then the
medians and their ratios:

- ``floor``: ``np.matmul(X, W.T, out=out)`` into a preallocated array, NumPy's BLAS on
  ``--threads`` threads (bench_core's floor);
- ``allocating``: ``X @ W.T``, which also allocates and first touches its
  60,000 x 1000 result, as any ``transform`` must;
- ``transform``: ``KSparseAutoencoder.transform`` (the product, the bias and the
  top-(alpha k) selection; a dense result), Numba on ``--threads`` threads.

Every process reads the same weights (a k-sparse model trained for one epoch on the
data, n_components=1000, k=25, alpha=3: 75 units kept), warms up, and reports the
median of ``--repeat`` calls.

    python benchmarks/bench_transform.py [--rounds 5] [--repeat 5] [--threads 2]
        [--data mnist|random] [--data-home PATH]
"""

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import load_data  # noqa: E402

CONTENDERS = ("floor", "allocating", "transform")


def measure(what, model_path, threads, repeat, data, data_home):
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(threads)
    X = load_data(data, data_home, np.random.RandomState(0))[0]
    with open(model_path, "rb") as f:
        model = pickle.load(f)
    W = np.ascontiguousarray(model.components_, dtype=np.float32)
    with threadpool_limits(threads, user_api="blas"):
        if what == "floor":
            out = np.empty((X.shape[0], W.shape[0]), dtype=np.float32)

            def call():
                np.matmul(X, W.T, out=out)
        elif what == "allocating":
            def call():
                return X @ W.T
        else:
            def call():
                return model.transform(X)
        call()  # compilation, caches, the first touch of the floor's output
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_child(spec):
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", choices=["random", "mnist"], default="mnist")
    p.add_argument("--data-home", default=str(Path(__file__).resolve().parents[2]
                                              / "shared" / "data"))
    p.add_argument("--child")
    args = p.parse_args()
    if args.child:
        print(measure(**json.loads(args.child)))
        return

    import warnings

    import numba
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from skksae import KSparseAutoencoder

    numba.set_num_threads(args.threads)
    X, what = load_data(args.data, args.data_home, np.random.RandomState(0))
    with threadpool_limits(args.threads, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch, on purpose
        model = KSparseAutoencoder(n_components=1000, k=25, k_start=None, batch_size=256,
                                   solver="sgd", learning_rate=0.01, max_iter=1,
                                   random_state=0).fit(X)
    print(f"data: {what}, {X.shape[0]} x {X.shape[1]} float32; n_components=1000, k=25, "
          f"transform keeps {model._transform_k()}; {args.threads} Numba and "
          f"{args.threads} BLAS threads per process; median of {args.repeat} calls per "
          "process")
    seen = {name: [] for name in CONTENDERS}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "model.pkl")
        with open(path, "wb") as f:
            pickle.dump(model, f)
        for r in range(args.rounds):
            for name in CONTENDERS:
                seen[name].append(run_child(dict(
                    what=name, model_path=path, threads=args.threads, repeat=args.repeat,
                    data=args.data, data_home=args.data_home)))
            print(f"round {r + 1}: " + ", ".join(f"{n} {seen[n][-1]:.3f} s"
                                                 for n in CONTENDERS)
                  + f"; transform / floor {seen['transform'][-1] / seen['floor'][-1]:.2f}x")
    med = {n: float(np.median(t)) for n, t in seen.items()}
    rounds = [t / f for t, f in zip(seen["transform"], seen["floor"])]
    print(f"medians: floor {med['floor']:.3f} s, allocating {med['allocating']:.3f} s, "
          f"transform {med['transform']:.3f} s")
    print(f"transform / floor: {med['transform'] / med['floor']:.2f}x (target <= 1.15x; "
          f"per round {min(rounds):.2f}-{max(rounds):.2f}x); transform / allocating: "
          f"{med['transform'] / med['allocating']:.2f}x")


if __name__ == "__main__":
    main()
