"""Today's top-k sparse autoencoder on a CPU: planted dictionaries, a PyTorch loop, memory.

Three parts, each contender in its own process with Numba, BLAS and PyTorch threads
set to ``--threads``:

* ``planted``: data built as sparse combinations (``--planted-k`` = 16 atoms per
  sample, weights uniform in [0.5, 1.5]) of ``--atoms`` random unit atoms in
  ``--dim`` dimensions, plus Gaussian noise (std 0.01 per entry), ``--samples``
  rows.  A ``KSparseAutoencoder`` with ``--latents-planted`` latents (as many as
  atoms by default; ReLU, untied, unit-norm decoder rows, Adam, batch 256) is
  trained per-sample
  top-k, with the auxiliary dead-unit loss (AuxK, 1/32) and with batch-level top-k
  plus AuxK; the table gives the fraction of atoms recovered (a decoder row with
  ``|cos| >= 0.9``), the dead fraction and the fraction of variance unexplained.
* ``speed``: the same model with AuxK at ``--latents`` (16,384) on planted data in
  768 dimensions, against a hand-written PyTorch TopK SAE with AuxK (the same
  settings, a dense decoder product as a CPU user would write it): seconds per
  epoch (median of ``--repeat`` after one warm-up) and the fraction of variance
  unexplained after the same epochs.  PyTorch is not a dependency: pass
  ``--torch-python`` (an interpreter that has it).
* ``centre``: the decoder's output started at the mean or at the geometric median
  (``center=True`` / ``"geometric_median"``) of planted data (20,000 x 64, 256 atoms,
  8 per sample, every row offset by 3) where 5% of the training rows carry large
  noise (std 40 per entry): 1,024 latents, k = 16, 20 epochs, 3 seeds; the fraction of
  variance unexplained on 5,000 clean held-out rows.
* ``memory``: peak resident memory of one epoch of a 16,384-latent fit on 200,000 x 768
  float32 rows, in memory (``fit``) and as ``partial_fit`` over 10,000-row chunks of
  a memory-mapped file.

    python benchmarks/bench_topk_sae.py [planted] [speed] [centre] [memory] [--threads 2]
        [--torch-python PATH]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

BATCH = 256
AUX = 1 / 32


def planted_data(n, dim, n_atoms, k, seed):
    """Rows that are sparse combinations of ``k`` of ``n_atoms`` random unit atoms,
    plus noise; returns (X float32, atoms)."""
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((n_atoms, dim))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    X = np.empty((n, dim), dtype=np.float32)
    step = max(1, 2**23 // (k * dim))  # rows per block: 64 MB of gathered atoms
    for start in range(0, n, step):
        m = min(step, n - start)
        support = rng.integers(0, n_atoms, (m, k))  # a repeat merges two weights
        weights = rng.uniform(0.5, 1.5, (m, k))  # positive: ReLU units
        block = np.einsum("ij,ijd->id", weights, atoms[support])
        block += 0.01 * rng.standard_normal(block.shape)
        X[start : start + m] = block
    return X, atoms


def recovered(decoder, atoms, level=0.9):
    """Fraction of atoms with a decoder row at |cos| >= level."""
    D = decoder / np.maximum(np.linalg.norm(decoder, axis=1, keepdims=True), 1e-12)
    best = np.zeros(atoms.shape[0])
    for start in range(0, atoms.shape[0], 1024):
        best[start : start + 1024] = np.abs(atoms[start : start + 1024] @ D.T).max(axis=1)
    return float(np.mean(best >= level))


def sae(n_latents, k, epochs, learning_rate, random_state=0, **options):
    from skksae import KSparseAutoencoder

    return KSparseAutoencoder(
        n_components=n_latents, k=k, k_start=None, activation="relu", tied_weights=False,
        normalize_decoder=True, solver="adam", learning_rate=learning_rate, batch_size=BATCH,
        max_iter=epochs, tol=0.0, n_iter_no_change=epochs, random_state=random_state,
        **options)


# ------------------------------------------------------------------- contenders
def run_planted(args, variant):
    X, atoms = planted_data(args.samples, args.dim, args.atoms, args.planted_k, 0)
    options = {"plain": {}, "auxk": dict(aux_coef=AUX),
               "batch-auxk": dict(aux_coef=AUX, batch_topk=True)}[variant]
    model = sae(args.latents_planted, args.planted_k, args.epochs, args.learning_rate,
                dead_window=args.samples // 4, **options)
    t0 = time.perf_counter()
    model.fit(X)
    seconds = (time.perf_counter() - t0) / args.epochs
    metrics = model.reconstruction_metrics(X)
    return {"recovered": recovered(model.decoder_components_, atoms),
            "dead": metrics["dead_fraction"], "fvu": metrics["fvu"], "l0": metrics["l0"],
            "s_per_epoch": seconds}


def run_centre(args, center, seed):
    X, _ = planted_data(25_000, 64, 256, 8, 3)
    X += 3.0
    train, test = X[:20_000].copy(), X[20_000:]
    noisy = np.random.default_rng(4).random(train.shape[0]) < 0.05
    train[noisy] += 40.0 * np.random.default_rng(5).standard_normal((noisy.sum(), 64))
    model = sae(1024, 16, 20, args.learning_rate, random_state=seed, center=center)
    model.fit(train)
    return {"fvu": model.reconstruction_metrics(test)["fvu"],
            "distance": float(np.linalg.norm(model.mean_ - 3.0))}


def run_speed_skksae(args, X):
    model = sae(args.latents, args.k, 1, args.learning_rate, aux_coef=AUX, k_aux=args.k_aux,
                dead_window=args.dead_window)
    times = []
    for epoch in range(args.repeat + 1):
        t0 = time.perf_counter()
        model.partial_fit(X)
        times.append(time.perf_counter() - t0)
    return {"times": times[1:], "fvu": model.reconstruction_metrics(X)["fvu"],
            "dead": model.n_dead_units_}


def run_speed_torch(args, X):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, d = X.shape
    m, k = args.latents, args.k
    Xt = torch.from_numpy(X)
    mean = Xt.mean(dim=0)
    W_dec = torch.randn(m, d)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_enc = torch.nn.Parameter(W_dec.clone())  # the encoder as the decoder's transpose
    W_dec = torch.nn.Parameter(W_dec)
    b_enc = torch.nn.Parameter(torch.zeros(m))
    b_dec = torch.nn.Parameter(torch.zeros(d))
    opt = torch.optim.Adam([W_enc, W_dec, b_enc, b_dec], lr=args.learning_rate)
    since = torch.zeros(m, dtype=torch.long)

    def encode(x):
        return torch.relu((x - mean) @ W_enc.T + b_enc)

    def epoch():
        nonlocal since
        perm = torch.randperm(n)
        for start in range(0, n, BATCH):
            x = Xt[perm[start : start + BATCH]]
            z = encode(x)
            vals, idx = torch.topk(z, k, dim=1)
            h = torch.zeros_like(z).scatter(1, idx, vals)
            recon = h @ W_dec + b_dec + mean
            loss = 0.5 * ((recon - x) ** 2).sum(dim=1).mean()
            dead = since >= args.dead_window
            n_dead = int(dead.sum())
            if n_dead:
                e = (x - recon).detach()
                z_dead = torch.where(dead, z, torch.full_like(z, -torch.inf))
                aux_vals, aux_idx = torch.topk(z_dead, min(args.k_aux, n_dead), dim=1)
                h_aux = torch.zeros_like(z).scatter(1, aux_idx, aux_vals)
                loss = loss + AUX * 0.5 * ((h_aux @ W_dec - e) ** 2).sum(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():  # unit-norm rows: no radial step, then renormalise
                W_dec.grad -= (W_dec.grad * W_dec).sum(dim=1, keepdim=True) * W_dec
            opt.step()
            with torch.no_grad():
                W_dec.div_(W_dec.norm(dim=1, keepdim=True))
                fired = torch.zeros(m, dtype=torch.bool)
                fired[idx[vals > 0].unique()] = True
                since += x.shape[0]
                since[fired] = 0

    times = []
    for _ in range(args.repeat + 1):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    with torch.no_grad():
        sse = sst = 0.0
        for start in range(0, n, 4096):
            x = Xt[start : start + 4096]
            z = encode(x)
            vals, idx = torch.topk(z, k, dim=1)
            recon = torch.zeros_like(z).scatter(1, idx, vals) @ W_dec + b_dec + mean
            sse += float(((recon - x) ** 2).sum())
            sst += float(((x - mean) ** 2).sum())
    return {"times": times[1:], "fvu": sse / sst, "dead": int((since >= args.dead_window).sum())}


def run_memory(args, how, path):
    X = np.load(path, mmap_mode="r")
    model = sae(args.latents, args.k, 1, args.learning_rate, aux_coef=AUX, k_aux=args.k_aux,
                dead_window=args.dead_window)
    t0 = time.perf_counter()
    if how == "fit":
        model.fit(np.ascontiguousarray(X))  # the data in memory
    else:
        for start in range(0, X.shape[0], 10_000):
            model.partial_fit(X[start : start + 10_000])
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mb": peak_mb, "seconds": seconds}


def contender(args):
    warnings.simplefilter("ignore")
    if args.contender.startswith("speed"):
        X = np.load(args.data_file)
        if args.contender == "speed-torch":
            print(json.dumps(run_speed_torch(args, X)))
            return
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        if args.contender.startswith("centre-"):
            _, center, seed = args.contender.split("-")
            out = run_centre(args, True if center == "mean" else center, int(seed))
        elif args.contender.startswith("planted-"):
            out = run_planted(args, args.contender.split("-", 1)[1])
        elif args.contender == "speed-skksae":
            out = run_speed_skksae(args, X)
        else:
            out = run_memory(args, args.contender.split("-", 1)[1], args.data_file)
    print(json.dumps(out))


def spawn(args, name, data_file=None, python=None):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               NUMBA_NUM_THREADS=str(args.threads))
    cmd = [python or sys.executable, os.path.abspath(__file__), "--contender", name,
           "--data-file", data_file or ""] + [
        f"--{key.replace('_', '-')}={value}" for key, value in vars(args).items()
        if key not in ("contender", "data_file", "parts", "torch_python") and value is not None]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(f"{name}: failed\n{done.stderr[-3000:]}")
        return None
    return json.loads(done.stdout.splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("parts", nargs="*", default=["planted", "speed", "centre", "memory"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--samples", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--atoms", type=int, default=4096)
    p.add_argument("--planted-k", type=int, default=16)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--latents-planted", type=int, default=4096,
                   help="latents of the planted-dictionary models")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's, everywhere")
    p.add_argument("--latents", type=int, default=16_384)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--k-aux", type=int, default=384)
    p.add_argument("--speed-samples", type=int, default=32_768)
    p.add_argument("--dead-window", type=int, default=16_384)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON"))
    p.add_argument("--contender", help=argparse.SUPPRESS)
    p.add_argument("--data-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.contender:
        contender(args)
        return 0
    print(f"{args.threads} threads per contender (Numba, BLAS, PyTorch)")
    if "planted" in args.parts:
        print(f"\nplanted dictionary: {args.samples} x {args.dim}, {args.atoms} unit atoms, "
              f"{args.planted_k} per sample, noise 0.01; {args.latents_planted} latents, k = "
              f"{args.planted_k}, ReLU, untied, unit-norm decoder, Adam "
              f"{args.learning_rate:g}, batch {BATCH}, "
              f"{args.epochs} epochs, dead window {args.samples // 4} samples")
        print("| model | atoms recovered (abs cos >= 0.9) | dead fraction | FVU | mean L0 "
              "| s/epoch |")
        print("|---|---|---|---|---|---|")
        for variant, label in (("plain", "top-k"), ("auxk", "top-k + AuxK"),
                               ("batch-auxk", "BatchTopK + AuxK")):
            r = spawn(args, f"planted-{variant}")
            if r:
                print(f"| {label} | {r['recovered']:.3f} | {r['dead']:.3f} | {r['fvu']:.4f} "
                      f"| {r['l0']:.1f} | {r['s_per_epoch']:.1f} |", flush=True)
    if "centre" in args.parts:
        print("\ncentre: planted 20,000 x 64 (256 atoms, 8 per sample, offset 3), 5% of "
              "the training rows + noise of std 40; 1,024 latents, k = 16, 20 epochs, Adam "
              f"{args.learning_rate:g}; FVU on 5,000 clean held-out rows")
        print("| center | FVU, seeds 0 / 1 / 2 | mean | distance of the centre to the offset |")
        print("|---|---|---|---|")
        for center in ("mean", "geometric_median"):
            runs = [spawn(args, f"centre-{center}-{seed}") for seed in range(3)]
            if all(runs):
                fvu = [r["fvu"] for r in runs]
                print(f"| {center} | {' / '.join(f'{v:.4f}' for v in fvu)} | "
                      f"{np.mean(fvu):.4f} | {runs[0]['distance']:.3f} |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if "speed" in args.parts:
            X, _ = planted_data(args.speed_samples, 768, args.latents, args.k, 1)
            path = os.path.join(tmp, "speed.npy")
            np.save(path, X)
            print(f"\nspeed: {X.shape[0]} x 768 planted rows, {args.latents} latents, k = "
                  f"{args.k}, AuxK (1/32, k_aux {args.k_aux}, dead window "
                  f"{args.dead_window}), unit-norm untied decoder, Adam, batch {BATCH}; "
                  f"median of {args.repeat} epochs after one warm-up")
            rows = {"skksae": spawn(args, "speed-skksae", path)}
            if args.torch_python:
                rows["PyTorch"] = spawn(args, "speed-torch", path, args.torch_python)
            else:
                print("PyTorch skipped: pass --torch-python")
            base = rows["skksae"]
            print("| contender | s/epoch | ratio | FVU after the epochs | dead units |")
            print("|---|---|---|---|---|")
            for name, r in rows.items():
                if r is None:
                    continue
                s = float(np.median(r["times"]))
                ratio = s / float(np.median(base["times"])) if base else float("nan")
                print(f"| {name} | {s:.2f} | {ratio:.2f}x | {r['fvu']:.4f} | {r['dead']} |")
        if "memory" in args.parts:
            rng = np.random.default_rng(2)
            path = os.path.join(tmp, "memory.npy")
            X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                          shape=(200_000, 768))
            for start in range(0, X.shape[0], 20_000):
                X[start : start + 20_000] = rng.standard_normal((20_000, 768))
            X.flush()
            del X
            print(f"\nmemory: one epoch, {args.latents} latents, 200,000 x 768 float32 "
                  "(614 MB)")
            print("| how | peak resident MB | seconds |")
            print("|---|---|---|")
            for how in ("fit", "partial_fit"):
                r = spawn(args, f"memory-{how}", path)
                if r:
                    label = ("fit, data in memory" if how == "fit" else
                             "partial_fit, 10,000-row chunks of a memory-mapped file")
                    print(f"| {label} | {r['peak_mb']:.0f} | {r['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
