"""skksae's training epoch against a hand-written PyTorch CPU loop of the same
algorithm, side by side in one run.

60,000 x 784 float32 (random sparse images), n_components=1000, k=25, batch 256, tied
weights, SGD with momentum 0.9, both with the same number of threads.  PyTorch is not
a dependency of skksae: without it the script says so and exits.

    python benchmarks/bench_torch.py [--threads 2] [--repeat 2]
"""

import argparse
import sys
import time

import numba
import numpy as np

from skksae import KSparseAutoencoder


def torch_epoch(torch, X, W, b, c, opt, k, batch, perm):
    for start in range(0, X.shape[0], batch):
        xb = X[perm[start : start + batch]]
        z = xb @ W.T + b
        vals, idx = torch.topk(z, k, dim=1)
        h = torch.zeros_like(z).scatter(1, idx, vals)
        loss = 0.5 * ((h @ W + c - xb) ** 2).sum(dim=1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed (pip install torch): nothing to compare")
        return 0
    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    rng = np.random.RandomState(0)
    n, d, m, k, batch = 60000, 784, 1000, 25, 256
    X = ((rng.rand(n, d) < 0.19) * rng.rand(n, d)).astype(np.float32)

    Xt = torch.from_numpy(X)
    W = torch.nn.Parameter(torch.from_numpy(rng.standard_normal((m, d)).astype(np.float32)
                                            * 0.01))
    b = torch.nn.Parameter(torch.zeros(m))
    c = torch.nn.Parameter(torch.zeros(d))
    opt = torch.optim.SGD([W, b, c], lr=0.01, momentum=0.9)
    perm = torch.from_numpy(rng.permutation(n))
    torch_epoch(torch, Xt[:2048], W, b, c, opt, k, batch, torch.arange(2048))  # warm up
    t_torch = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        torch_epoch(torch, Xt, W, b, c, opt, k, batch, perm)
        t_torch.append(time.perf_counter() - t0)

    ae = KSparseAutoencoder(n_components=m, k=k, k_start=None, batch_size=batch,
                            solver="sgd", learning_rate=0.01, random_state=0)
    ae.partial_fit(X[:2048])  # compile and warm up
    t_sk = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ae.partial_fit(X)
        t_sk.append(time.perf_counter() - t0)
    print(f"threads: torch={torch.get_num_threads()}, numba={numba.get_num_threads()}; "
          f"torch {torch.__version__}")
    print(f"PyTorch epoch: {min(t_torch):.3f} s   skksae epoch: {min(t_sk):.3f} s   "
          f"skksae is {min(t_torch) / min(t_sk):.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
