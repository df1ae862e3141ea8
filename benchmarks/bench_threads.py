"""Thread counts behind the main job's two speed choices, measured side by side.

1. ``classifier``: ``LogisticRegression`` (lbfgs, 60 iterations, no early stop) on
   54,000 x 1000 float32 centred codes (random here: the time depends on the shape),
   with every BLAS library on one thread, every one on two, and NumPy's on two with
   SciPy's on one (``skksae._experiments.selection.classifier_blas``, what the main job's classifier
   fits use).
2. ``ksparse``: the main job's k-sparse model (1000 units, k falling from 100 to 25
   over the first half of the epochs, batch 128, SGD with momentum, centred input)
   trained for ``--epochs`` epochs on MNIST's training set (or random sparse images of
   its shape), on two threads, on one thread, and two one-thread trainings side by
   side; seconds per epoch.  ``--n-jobs`` trains a k sweep's models side by side.

Each measurement runs in a process of its own, with Numba's and BLAS's threads set;
the contenders alternate for ``--rounds`` rounds and every figure is printed, then
the medians.

    python benchmarks/bench_threads.py [--rounds 2] [--epochs 6] [--data-home DIR]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def classifier(blas):
    import time
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from skksae._experiments.selection import classifier_blas

    rng = np.random.default_rng(0)
    X = rng.random((54000, 1000), dtype=np.float32)
    X -= X.mean(axis=0)
    y = (X[:, :10].argmax(axis=1) + (rng.random(54000) < 0.3) * 3) % 10
    warnings.simplefilter("ignore", ConvergenceWarning)
    limits = {"one": lambda: threadpool_limits(1, user_api="blas"),
              "two": lambda: threadpool_limits(2, user_api="blas"),
              "numpy": classifier_blas}[blas]
    with limits():
        t0 = time.perf_counter()
        LogisticRegression(max_iter=60, tol=1e-12).fit(X, y)
        return time.perf_counter() - t0


def ksparse(threads, epochs, data_home):
    import time
    import warnings

    import numba
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_finetune import load_data

    from skksae._experiments.cli import parse_args
    from skksae._experiments.models import extractor as make_extractor

    numba.set_num_threads(threads)
    X = load_data(data_home)[0]
    warnings.simplefilter("ignore")
    # the main job's k-sparse model, its schedule squeezed into ``epochs`` epochs (k
    # falls from 100 to 25 over the first half, as over 150 of the 300 epochs there)
    model = make_extractor("ksparse", parse_args(["--dataset", "mnist", "--ksparse-epochs",
                                                  str(epochs)]))[0]
    with threadpool_limits(threads):
        clone(model).set_params(max_iter=1).fit(X[:2000])  # compilation, caches
        t0 = time.perf_counter()
        model.fit(X)
        return (time.perf_counter() - t0) / epochs


CLASSIFIER_BLAS = {"two": "every BLAS on two threads", "one": "every BLAS on one thread",
                   "numpy": "NumPy's BLAS on two threads, SciPy's on one"}


def spawn(args):
    """Start this script on one measurement; returns the process."""
    return subprocess.Popen([sys.executable, __file__, "--child", json.dumps(args)],
                            stdout=subprocess.PIPE, text=True)


def result(proc):
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"a measurement failed (exit status {proc.returncode})")
    return float(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=6, help="k-sparse epochs per run")
    p.add_argument("--data-home", default=str(Path(__file__).resolve().parents[2]
                                              / "shared" / "data"))
    p.add_argument("--child")
    args = p.parse_args()
    if args.child:
        spec = json.loads(args.child)
        if spec["what"] == "classifier":
            print(classifier(spec["blas"]))
        else:
            print(ksparse(spec["threads"], spec["epochs"], spec["data_home"]))
        return
    seen = {}
    for r in range(args.rounds):
        for blas, name in CLASSIFIER_BLAS.items():
            t = result(spawn({"what": "classifier", "blas": blas}))
            seen.setdefault(f"classifier, {name} (s per fit)", []).append(t)
        ks = {"what": "ksparse", "epochs": args.epochs, "data_home": args.data_home}
        for threads in (2, 1):
            t = result(spawn(dict(ks, threads=threads)))
            seen.setdefault(f"k-sparse, {threads} thread(s) alone (s per epoch)", []).append(t)
        pair = [spawn(dict(ks, threads=1)) for _ in range(2)]
        seen.setdefault("k-sparse, two one-thread trainings side by side (s per epoch, each)",
                        []).extend(result(proc) for proc in pair)
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr)
    medians = {}
    for name, times in seen.items():
        medians[name] = float(np.median(times))
        print(f"{name}: {', '.join(f'{t:.2f}' for t in times)}; median {medians[name]:.2f}")
    two, one, numpy_two = [v for k, v in medians.items() if k.startswith("classifier")]
    ks2, ks1, pair = [v for k, v in medians.items() if k.startswith("k-sparse")]
    print(f"classifier: every BLAS on one thread {two / one:.2f}x faster than on two; "
          f"NumPy's on two, SciPy's on one {one / numpy_two:.2f}x faster than every BLAS "
          "on one")
    print(f"k-sparse: two threads {ks1 / ks2:.2f}x faster than one; two one-thread "
          f"trainings side by side do {2 * ks2 / pair:.2f}x the epochs per second of one "
          "two-thread training")


if __name__ == "__main__":
    main()
