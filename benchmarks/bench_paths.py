"""Every path of skksae beside the same model written as a hand-written PyTorch CPU loop.

MNIST's 60,000 training images when ``../shared/data/mnist`` (or ``--data-home``) has
them, else random sparse images of the same shape; 1000 hidden units, batch 128,
float32, the settings of the MNIST main job:

* ``ksparse fit``: k = 25 (fixed), tied weights, SGD with momentum 0.9, no centring;
* ``ksparse transform``: the 60,000 rows encoded with the top 75 units;
* ``denoising fit``: 25% masking noise, sigmoid units, a sigmoid decoder with
  cross-entropy, tied weights, Adam (1e-3), no centring;
* ``denoising fit, untied, squared error``: the same with a decoder matrix of its own
  and a linear decoder with squared error;
* ``denoising transform``: the 60,000 rows through the sigmoid encoder;
* ``fine-tuning``: one epoch of a 784-1000-10 network with a top-75 hidden layer,
  Adam, alpha 1e-4 (``bench_finetune.py``'s network).

Each contender runs in its own process, with Numba, BLAS and PyTorch threads all set
to ``--threads``: one warm-up epoch (or pass), then ``--repeat`` timed ones; the two
contenders alternate for ``--rounds`` processes each, and the median of all their
timed epochs is reported.  PyTorch is not a dependency of skksae: point ``--torch-python``
at an interpreter that has it (a separate virtual environment), or its column stays
empty.  ``--rst FILE`` also writes the table for the docs.

    python benchmarks/bench_paths.py --torch-python PATH [--threads 2] [--repeat 3]
        [--rst doc/_tables/bench_paths.rst]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

N_HIDDEN, K, ALPHA_K, BATCH = 1000, 25, 75, 128
PATHS = {
    "ksparse-fit": "k-sparse fit (epoch)",
    "ksparse-transform": "k-sparse transform (60,000 rows)",
    "dae-fit": "denoising fit (epoch)",
    "dae-fit-untied-mse": "denoising fit, untied, squared error (epoch)",
    "dae-transform": "denoising transform (60,000 rows)",
    "finetune": "fine-tuning, top-75 hidden layer (epoch)",
}


sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_finetune import load_data, run_skksae, run_torch, timed  # noqa: E402


# ---------------------------------------------------------------------- skksae
def skksae_path(path, X, y, repeat):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from skksae import DenoisingAutoencoder, KSparseAutoencoder

    warnings.simplefilter("ignore", ConvergenceWarning)
    if path.startswith("ksparse"):
        model = KSparseAutoencoder(n_components=N_HIDDEN, k=K, k_start=None, center=False,
                                   solver="sgd", learning_rate=0.01, momentum=0.9,
                                   batch_size=BATCH, random_state=0)
    elif path.startswith("dae"):
        untied = path == "dae-fit-untied-mse"
        model = DenoisingAutoencoder(
            n_components=N_HIDDEN, center=False, corruption="masking", corruption_level=0.25,
            activation="sigmoid", loss="squared_error" if untied else "cross_entropy",
            tied_weights=not untied, learning_rate=1e-3, batch_size=BATCH, random_state=0)
    else:
        return run_skksae(X, y, repeat)
    if path.endswith("transform"):
        model.partial_fit(X[:2048])
        return timed(lambda: model.transform(X), repeat)
    return timed(lambda: model.partial_fit(X), repeat)


# --------------------------------------------------------------------- PyTorch
def torch_path(path, X, y, repeat, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if path == "finetune":
        return run_torch(X, y, repeat, threads)
    n, d = X.shape
    Xt = torch.from_numpy(X)
    W = torch.nn.Parameter(torch.randn(N_HIDDEN, d) * 0.01)
    D = torch.nn.Parameter(torch.randn(N_HIDDEN, d) * 0.01)
    b = torch.nn.Parameter(torch.zeros(N_HIDDEN))
    c = torch.nn.Parameter(torch.zeros(d))

    if path == "ksparse-transform":
        def encode():
            with torch.no_grad():
                z = Xt @ W.T + b
                vals, idx = torch.topk(z, ALPHA_K, dim=1)
                return torch.zeros_like(z).scatter_(1, idx, vals)
        return timed(encode, repeat)
    if path == "dae-transform":
        def encode():
            with torch.no_grad():
                return torch.sigmoid(Xt @ W.T + b)
        return timed(encode, repeat)

    untied = path == "dae-fit-untied-mse"
    if path == "ksparse-fit":
        opt = torch.optim.SGD([W, b, c], lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.Adam([W, b, c] + ([D] if untied else []), lr=1e-3)

    def batch_loss(xb):
        if path == "ksparse-fit":
            z = xb @ W.T + b
            vals, idx = torch.topk(z, K, dim=1)
            h = torch.zeros_like(z).scatter(1, idx, vals)
            return 0.5 * ((h @ W + c - xb) ** 2).sum(dim=1).mean()
        xc = xb * (torch.rand_like(xb) >= 0.25)
        h = torch.sigmoid(xc @ W.T + b)
        a = h @ (D if untied else W) + c
        if untied:
            return 0.5 * ((a - xb) ** 2).sum(dim=1).mean()
        return torch.nn.functional.binary_cross_entropy_with_logits(
            a, xb, reduction="sum") / xb.shape[0]

    def epoch():
        perm = torch.randperm(n)
        for start in range(0, n, BATCH):
            loss = batch_loss(Xt[perm[start : start + BATCH]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return timed(epoch, repeat)


# ------------------------------------------------------------------------ main
def contender(name, path, data_file, repeat, threads):
    data = np.load(data_file)
    X, y = data["X"], data["y"]
    if name == "torch":
        times = torch_path(path, X, y, repeat, threads)
        import torch

        version = torch.__version__
    else:
        import numba
        from threadpoolctl import threadpool_limits

        numba.set_num_threads(threads)
        with threadpool_limits(threads):
            times = skksae_path(path, X, y, repeat)
        version = None
    print(json.dumps({"times": times, "version": version}))


def run(python, name, path, data_file, repeat, threads):
    env = dict(os.environ)
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [python, __file__, "--contender", name, "--path", path, "--data-file",
           str(data_file), "--repeat", str(repeat), "--threads", str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        print(f"{name} {path} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2,
                   help="processes per contender and path, alternating (default 2)")
    p.add_argument("--paths", default=",".join(PATHS))
    p.add_argument("--data-home", default=str(Path(__file__).resolve().parents[2] / "shared"
                                              / "data"))
    p.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON"),
                   help="a Python interpreter with PyTorch installed")
    p.add_argument("--rst", default=None, help="also write the table to this file")
    p.add_argument("--contender", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--data-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.contender:
        contender(args.contender, args.path, args.data_file, args.repeat, args.threads)
        return
    X, y, source = load_data(args.data_home)
    print(f"data: {source}, {X.shape[0]:,} x {X.shape[1]}; {args.threads} threads per "
          f"contender (Numba, BLAS, PyTorch); median of {args.rounds} x {args.repeat} "
          "epochs, each process after a warm-up")
    rows = []
    torch_version = None
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "data.npz"
        np.savez(data_file, X=X, y=y)
        for path in args.paths.split(","):
            # the contenders alternate, round after round, so that a slow spell of
            # a shared machine falls on both
            sk_times, th_times = [], []
            for _ in range(args.rounds):
                sk = run(sys.executable, "skksae", path, data_file, args.repeat,
                         args.threads)
                th = (run(args.torch_python, "torch", path, data_file, args.repeat,
                          args.threads) if args.torch_python else None)
                sk_times += sk["times"] if sk else []
                if th:
                    th_times += th["times"]
                    torch_version = th["version"]
            s = float(np.median(sk_times)) if sk_times else float("nan")
            t = float(np.median(th_times)) if th_times else float("nan")
            th = bool(th_times)
            ratio = f"{t / s:.2f}x" if th and sk_times else ""
            rows.append((PATHS[path], f"{s:.2f}", f"{t:.2f}" if th else "", ratio))
            print(f"{PATHS[path]}: skksae {s:.2f} s, PyTorch {t:.2f} s {ratio}", flush=True)
    header = ("path", "skksae s", f"PyTorch {torch_version or ''} s".replace("  ", " "),
              "PyTorch / skksae")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    rule = "  ".join("=" * w for w in widths)
    lines = [rule, "  ".join(h.ljust(w) for h, w in zip(header, widths)), rule]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    text = "\n".join(lines + [rule]) + "\n"
    print(text)
    if args.rst:
        Path(args.rst).write_text(text)


if __name__ == "__main__":
    main()
