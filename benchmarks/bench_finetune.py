"""One fine-tuning epoch of a 784-1000-10 network with a top-k hidden layer:
AutoencoderClassifier against MLPClassifier and a hand-written PyTorch CPU loop.

MNIST's 60,000 training images when ``../shared/data/mnist`` (or ``--data-home``) has
them, else random sparse images of the same shape.  The same network everywhere:
784 inputs, 1000 hidden units, 10 softmax outputs, batch 128, Adam (learning rate
1e-3), an L2 penalty of alpha = 1e-4 (MLPClassifier's convention), float32.  skksae
and PyTorch keep the top 75 hidden units per sample (k = 25, transform_k_factor = 3,
as the main job's k-sparse layer); MLPClassifier has ReLU units and no top-k (it has
no such option; it is the scikit-learn network a user would otherwise reach for).

Each contender runs in its own process with the same thread count (Numba, BLAS and
PyTorch threads all set to ``--threads``), one warm-up epoch, then ``--repeat``
timed epochs; the median is reported.  PyTorch is not a dependency of skksae: point
``--torch-python`` at an interpreter that has it (for example a separate virtual
environment), or the PyTorch row is skipped.

    python benchmarks/bench_finetune.py [--threads 2] [--repeat 3] [--torch-python PATH]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_HIDDEN, K, BATCH, LR, ALPHA = 1000, 75, 128, 1e-3, 1e-4


def load_data(data_home):
    """(X, y) float32 / int64: MNIST's training set, or random sparse images."""
    try:
        from skksae.datasets import load_mnist

        X, _, y, _ = load_mnist(data_home, return_X_y=True, download_if_missing=False)
        return np.ascontiguousarray(X, dtype=np.float32), y.astype(np.int64), "MNIST"
    except (OSError, ValueError):
        rng = np.random.RandomState(0)
        X = ((rng.rand(60000, 784) < 0.19) * rng.rand(60000, 784)).astype(np.float32)
        return X, rng.randint(0, 10, 60000), "random sparse images (MNIST not found)"


def time_partial_fit(clf, X, y, repeat):
    """Seconds of ``repeat`` epochs of ``clf.partial_fit`` after one warm-up epoch
    (which builds the network)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    clf.partial_fit(X, y, classes=np.arange(10))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        clf.partial_fit(X, y)
        times.append(time.perf_counter() - t0)
    return times


def run_skksae(X, y, repeat):
    from skksae import AutoencoderClassifier, KSparseAutoencoder

    # random weights: the speed of an epoch does not depend on where they came from
    clf = AutoencoderClassifier(
        [KSparseAutoencoder(N_HIDDEN, k=K // 3, transform_k_factor=3)], pretrain=False,
        solver="adam", learning_rate=LR, alpha=ALPHA, batch_size=BATCH, random_state=0,
    )
    return time_partial_fit(clf, X, y, repeat)


def run_mlp(X, y, repeat):
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier((N_HIDDEN,), solver="adam", learning_rate_init=LR, alpha=ALPHA,
                        batch_size=BATCH, random_state=0)
    return time_partial_fit(clf, X, y, repeat)


def run_torch(X, y, repeat, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y)
    hidden = torch.nn.Linear(X.shape[1], N_HIDDEN)
    out = torch.nn.Linear(N_HIDDEN, 10)
    # an L2 penalty of alpha / batch on the weights, as MLPClassifier and skksae apply it
    opt = torch.optim.Adam([
        {"params": [hidden.weight, out.weight], "weight_decay": ALPHA / BATCH},
        {"params": [hidden.bias, out.bias], "weight_decay": 0.0},
    ], lr=LR)

    def epoch():
        perm = torch.randperm(Xt.shape[0])
        for start in range(0, Xt.shape[0], BATCH):
            rows = perm[start : start + BATCH]
            z = hidden(Xt[rows])
            vals, idx = torch.topk(z, K, dim=1)
            h = torch.zeros_like(z).scatter(1, idx, vals)
            loss = torch.nn.functional.cross_entropy(out(h), yt[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return timed(epoch, repeat)


def timed(fn, repeat):
    """Seconds of ``repeat`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def contender(name, data_file, repeat, threads):
    """Run one contender in this process; print its times as JSON."""
    data = np.load(data_file)
    X, y = data["X"], data["y"]
    if name == "torch":
        times = run_torch(X, y, repeat, threads)
    else:
        import numba
        from threadpoolctl import threadpool_limits

        numba.set_num_threads(threads)
        with threadpool_limits(threads):
            times = (run_skksae if name == "skksae" else run_mlp)(X, y, repeat)
    print(json.dumps({"times": times}))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--data-home", default=str(Path(__file__).resolve().parents[2] / "shared"
                                              / "data"))
    p.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON"),
                   help="a Python interpreter with PyTorch installed")
    p.add_argument("--contender", help=argparse.SUPPRESS)
    p.add_argument("--data-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.contender:
        contender(args.contender, args.data_file, args.repeat, args.threads)
        return 0

    X, y, what = load_data(args.data_home)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               NUMBA_NUM_THREADS=str(args.threads))
    print(f"data: {what}, {X.shape[0]} x {X.shape[1]} float32; network 784-{N_HIDDEN}-10, "
          f"batch {BATCH}, Adam, {args.threads} threads per contender, median of "
          f"{args.repeat} epochs after one warm-up")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_file = os.path.join(tmp, "data.npz")
        np.savez(data_file, X=X, y=y)
        contenders = [("skksae", sys.executable), ("MLPClassifier", sys.executable)]
        if args.torch_python:
            contenders.append(("torch", args.torch_python))
        else:
            print("PyTorch row skipped: pass --torch-python (an interpreter with torch)")
        for name, python in contenders:
            cmd = [python, os.path.abspath(__file__), "--contender", name, "--data-file",
                   data_file, "--repeat", str(args.repeat), "--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                print(f"{name}: failed\n{done.stderr[-2000:]}")
                continue
            results[name] = float(np.median(json.loads(done.stdout.splitlines()[-1])["times"]))
    labels = {"skksae": "skksae AutoencoderClassifier (top-75 of 1000)",
              "MLPClassifier": "sklearn MLPClassifier (ReLU, 1000)",
              "torch": "PyTorch loop (top-75 of 1000)"}
    base = results.get("skksae")
    print(f"\n| {'contender':<46} | s/epoch | ratio to skksae |")
    print(f"|{'-' * 48}|---------|-----------------|")
    for name, seconds in results.items():
        ratio = f"{seconds / base:.2f}x" if base else "-"
        print(f"| {labels[name]:<46} | {seconds:7.2f} | {ratio:>15} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
