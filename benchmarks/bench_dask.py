"""Scaling out on Dask: blockwise encoding, streaming training and a search on a
two-worker ``distributed.LocalCluster``, each against the same work in one process.

Needs the dask extra (``pip install -e ".[dask]"``).  Three parts, each contender in
its own process, two cores in all for each (the cluster: two worker processes of one
thread each, or one worker of two threads; one process: two Numba threads):

* ``encode``: a ``KSparseAutoencoder`` (1000 units, k = 25, 75 units kept at transform)
  encodes a ``--rows`` x 784 float32 file (default 1,000,000 rows, 3.1 GB, written by
  the script from MNIST's training images tiled, or random sparse images) through a
  dask array whose blocks are read from a ``np.memmap``, and reduces the codes to each
  unit's firing count (the codes themselves, 4 GB dense, are not kept).  Rows per
  second and each process's peak resident memory.
* ``stream``: one pass of ``dask_ml.wrappers.Incremental`` (``shuffle_blocks=False``)
  over the same file, the workers' ``memory_limit`` (``--memory-limit``) below the
  file's size, against in-process ``partial_fit`` over the same blocks.
* ``search``: ``GridSearchCV`` over k (5 values, 3 folds) of a k-sparse + logistic
  regression pipeline on 10,000 MNIST training images, under joblib's dask backend on
  the two workers against ``n_jobs=2`` with joblib's default (loky) backend.

    python benchmarks/bench_dask.py [--rows 1000000] [--chunk-rows 20000]
        [--parts encode,stream,search] [--rst doc/_tables/bench_dask.rst]
"""

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

D = 784
N_UNITS, K = 1000, 25
SEARCH_KS = [10, 25, 40, 70, 100]


def peak_rss_mb():
    """This process's peak resident set size so far, in MB: Linux's VmHWM, which starts
    afresh at exec (``ru_maxrss`` would carry the parent's peak into a spawned worker)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bounds(n_rows, chunk_rows):
    return [(s, min(s + chunk_rows, n_rows)) for s in range(0, n_rows, chunk_rows)]


def mnist(data_home):
    """MNIST's training images and labels, or random sparse images and labels."""
    try:
        from skksae.datasets import load_mnist

        X, _, y, _ = load_mnist(data_home, return_X_y=True, download_if_missing=False)
        return np.ascontiguousarray(X, dtype=np.float32), y, "MNIST"
    except (OSError, ValueError):
        rng = np.random.RandomState(0)
        X = ((rng.rand(60000, D) < 0.19) * rng.rand(60000, D)).astype(np.float32)
        return X, rng.randint(0, 10, 60000), "random sparse images (MNIST not found)"


def write_file(path, n_rows, X):
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, D))
    for s in range(0, n_rows, X.shape[0]):
        e = min(s + X.shape[0], n_rows)
        mm[s:e] = X[: e - s]
    mm.flush()
    offset = mm.offset
    del mm
    return offset


def encoder():
    from skksae import KSparseAutoencoder

    return KSparseAutoencoder(n_components=N_UNITS, k=K, batch_size=128, random_state=0)


def unit_counts(codes):
    """How many rows of a block of codes fire each unit (1 x n_units)."""
    return np.count_nonzero(codes, axis=0).reshape(1, -1).astype(np.int64)


class Raw:
    """The file as (path, rows, header offset); a np.memmap with an offset."""

    def __init__(self, path, n_rows, offset):
        self.path, self.n_rows, self.offset = str(path), n_rows, offset


def load_raw(raw, start, stop):
    """Rows start:stop of the file, copied out of a memmap that is then closed (so that
    a process's resident memory holds one block, not every page it has read)."""
    mm = np.memmap(raw.path, dtype=np.float32, mode="r", offset=raw.offset,
                   shape=(raw.n_rows, D))
    block = np.array(mm[start:stop])
    del mm
    return block


def raw_array(raw, chunk_rows):
    import dask
    import dask.array as da

    load = dask.delayed(load_raw, pure=True)
    return da.concatenate([
        da.from_delayed(load(raw, s, e), shape=(e - s, D), dtype=np.float32)
        for s, e in bounds(raw.n_rows, chunk_rows)
    ])


# ------------------------------------------------------------------ one process
def local(part, raw, model_file, chunk_rows):
    """One contender in this (fresh) process: returns a dict of figures."""
    with open(model_file, "rb") as f:
        model = pickle.load(f)
    blocks = bounds(raw.n_rows, chunk_rows)
    if part == "encode":
        model.transform(load_raw(raw, 0, 1000))  # load the kernels
        t0 = time.perf_counter()
        counts = sum(unit_counts(model.transform(load_raw(raw, s, e))) for s, e in blocks)
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "checksum": int(counts.sum()), "peak_mb": peak_rss_mb()}
    est = encoder()
    est.partial_fit(load_raw(raw, 0, 1000))  # load the kernels
    est = encoder()
    t0 = time.perf_counter()
    for s, e in blocks:
        est.partial_fit(load_raw(raw, s, e))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "loss": float(np.mean(est.loss_curve_)),
            "peak_mb": peak_rss_mb()}


def run_local(part, raw, model_file, chunk_rows, threads):
    env = dict(os.environ)
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, __file__, "--contender", part, "--raw",
           json.dumps([raw.path, raw.n_rows, raw.offset]), "--model-file", str(model_file),
           "--chunk-rows", str(chunk_rows)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------- cluster
def worker_rss(client):
    """(current, peak) resident memory of each worker, MB."""
    def rss():
        import psutil

        return psutil.Process().memory_info().rss / 2**20, peak_rss_mb()
    return client.run(rss)


def warm(client, model):
    """Import skksae and load the kernels on every worker before timing."""
    X = np.random.RandomState(0).rand(1000, D).astype(np.float32)
    futures = [client.submit(lambda m, x: m.transform(x).shape, model, X, workers=[w],
                             pure=False)
               for w in client.scheduler_info()["workers"]]
    client.gather(futures)
    futures = [client.submit(lambda x: encoder().partial_fit(x).n_iter_, X, workers=[w],
                             pure=False)
               for w in client.scheduler_info()["workers"]]
    client.gather(futures)


def cluster(n_workers, threads_per_worker, memory_limit):
    from distributed import Client, LocalCluster

    c = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                     processes=True, memory_limit=memory_limit, dashboard_address=":0")
    return c, Client(c)


def encode_block(block, model):
    return model.transform(block)


def cluster_encode(raw, model, chunk_rows, n_workers, threads, memory_limit, once=True):
    """Encode on the cluster.  ``once``: the model enters the graph once, as a
    ``dask.delayed`` object every block's task depends on; else every task carries
    its own pickled copy (``map_blocks(model.transform)``, as dask-ml's
    ``ParallelPostFit`` does): 9.4 MB per block with the optimizer's state."""
    import dask

    cl, client = cluster(n_workers, threads, memory_limit)
    try:
        warm(client, model)
        base = worker_rss(client)
        dX = raw_array(raw, chunk_rows)
        meta = np.empty((0, N_UNITS), np.float32)
        if once:
            codes = dX.map_blocks(encode_block, dask.delayed(model),
                                  chunks=(dX.chunks[0], (N_UNITS,)), meta=meta)
        else:
            codes = dX.map_blocks(model.transform, chunks=(dX.chunks[0], (N_UNITS,)),
                                  meta=meta)
        counts = codes.map_blocks(unit_counts, chunks=((1,) * codes.numblocks[0],
                                                       (N_UNITS,)),
                                  dtype=np.int64).sum(axis=0)
        t0 = time.perf_counter()
        total = int(counts.compute().sum())
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "checksum": total, "base": base,
                "workers": worker_rss(client)}
    finally:
        client.close()
        cl.close()


def cluster_stream(raw, model, chunk_rows, n_workers, threads, memory_limit):
    from dask_ml.wrappers import Incremental

    cl, client = cluster(n_workers, threads, memory_limit)
    try:
        warm(client, model)
        base = worker_rss(client)
        dX = raw_array(raw, chunk_rows)
        inc = Incremental(encoder(), shuffle_blocks=False)
        t0 = time.perf_counter()
        inc.fit(dX)
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "loss": float(np.mean(inc.estimator_.loss_curve_)),
                "base": base, "workers": worker_rss(client)}
    finally:
        client.close()
        cl.close()


def search_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    from skksae import KSparseAutoencoder

    pipe = make_pipeline(
        KSparseAutoencoder(n_components=512, max_iter=10, random_state=0),
        LogisticRegression(max_iter=300),
    )
    return GridSearchCV(pipe, {"ksparseautoencoder__k": SEARCH_KS}, cv=3)


def search_local(X, y):
    search = search_pipeline().set_params(n_jobs=2)
    t0 = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - t0, search


def search_cluster(X, y, memory_limit):
    import joblib

    cl, client = cluster(2, 1, memory_limit)
    try:
        search = search_pipeline()
        t0 = time.perf_counter()
        with joblib.parallel_config(backend="dask"):
            search.fit(X, y)
        return time.perf_counter() - t0, search
    finally:
        client.close()
        cl.close()


def search_contender(which, data_file, memory_limit):
    with np.load(data_file) as f:
        X, y = f["X"], f["y"]
    seconds, search = (search_local(X, y) if which == "local"
                       else search_cluster(X, y, memory_limit))
    return {"seconds": seconds, "best_k": search.best_params_["ksparseautoencoder__k"],
            "scores": [round(float(s), 4) for s in search.cv_results_["mean_test_score"]]}


def run_search(which, data_file, memory_limit):
    cmd = [sys.executable, __file__, "--contender", f"search-{which}", "--data-file",
           str(data_file), "--memory-limit", memory_limit]
    env = dict(os.environ)
    if which == "local":  # joblib's loky workers get one thread each from joblib itself
        env.pop("NUMBA_NUM_THREADS", None)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------- main
def table(rows):
    header = ("part", "contender", "seconds", "rows/s", "peak MB per process")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)
    lines = [rule, "  ".join(h.ljust(w) for h, w in zip(header, widths)), rule]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines + [rule]) + "\n"


def peaks(result):
    return ", ".join(f"{p:.0f}" for _, p in result["workers"].values())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--chunk-rows", type=int, default=20_000)
    p.add_argument("--parts", default="encode,stream,search")
    p.add_argument("--memory-limit", default="1GiB",
                   help="each worker's memory_limit (default 1GiB)")
    p.add_argument("--data-home", default=str(Path(__file__).resolve().parents[2] / "shared"
                                              / "data"))
    p.add_argument("--workdir", default=None, help="where the data file goes (a temporary "
                   "folder by default; it needs rows x 3.1 kB)")
    p.add_argument("--rst", default=None, help="also write the table to this file")
    p.add_argument("--contender", help=argparse.SUPPRESS)
    p.add_argument("--raw", help=argparse.SUPPRESS)
    p.add_argument("--model-file", help=argparse.SUPPRESS)
    p.add_argument("--data-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    if args.contender:
        if args.contender.startswith("search-"):
            out = search_contender(args.contender[7:], args.data_file, args.memory_limit)
        else:
            out = local(args.contender, Raw(*json.loads(args.raw)), args.model_file,
                        args.chunk_rows)
        print(json.dumps(out))
        return

    import dask
    import dask_ml
    import distributed
    import sklearn

    parts = args.parts.split(",")
    X, y, source = mnist(args.data_home)
    print(f"data: {source}; dask {dask.__version__}, distributed {distributed.__version__},"
          f" dask-ml {dask_ml.__version__}, scikit-learn {sklearn.__version__}; "
          f"{os.cpu_count()} cores")
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        if "encode" in parts or "stream" in parts:
            t0 = time.perf_counter()
            path = tmp / "rows.npy"
            raw = Raw(path, args.rows, write_file(path, args.rows, X))
            size_gb = path.stat().st_size / 1e9
            print(f"file: {args.rows:,} x {D} float32, {size_gb:.2f} GB, written in "
                  f"{time.perf_counter() - t0:.0f} s; blocks of {args.chunk_rows:,} rows "
                  f"({args.chunk_rows * D * 4 / 1e6:.0f} MB); workers' memory_limit "
                  f"{args.memory_limit}")
            model = encoder().set_params(max_iter=2).fit(X[:10000])
            model_file = tmp / "model.pkl"
            with open(model_file, "wb") as f:
                pickle.dump(model, f)
        if "encode" in parts:
            loc = run_local("encode", raw, model_file, args.chunk_rows, 2)
            rows.append(("encode", "one process, 2 threads", f"{loc['seconds']:.1f}",
                         f"{args.rows / loc['seconds']:,.0f}", f"{loc['peak_mb']:.0f}"))
            for once, label in ((True, "2 workers x 1 thread"),
                                (False, "the same, model in every task")):
                dsk = cluster_encode(raw, model, args.chunk_rows, 2, 1, args.memory_limit,
                                     once)
                assert dsk["checksum"] == loc["checksum"], "the codes differ"
                rows.append(("encode", label, f"{dsk['seconds']:.1f}",
                             f"{args.rows / dsk['seconds']:,.0f}", peaks(dsk)))
            print(f"encode: workers' memory after warm-up "
                  f"{[round(c) for c, _ in dsk['base'].values()]} MB")
        if "stream" in parts:
            loc = run_local("stream", raw, model_file, args.chunk_rows, 2)
            rows.append(("stream", "one process, 2 threads", f"{loc['seconds']:.1f}",
                         f"{args.rows / loc['seconds']:,.0f}", f"{loc['peak_mb']:.0f}"))
            for n_workers, threads in ((2, 1), (1, 2)):
                dsk = cluster_stream(raw, model, args.chunk_rows, n_workers, threads,
                                     args.memory_limit)
                rows.append(("stream", f"{n_workers} worker{'s' * (n_workers > 1)} x "
                             f"{threads} thread{'s' * (threads > 1)}",
                             f"{dsk['seconds']:.1f}", f"{args.rows / dsk['seconds']:,.0f}",
                             peaks(dsk)))
                print(f"stream, {n_workers} x {threads}: mean loss {dsk['loss']:.4f} "
                      f"(one process: {loc['loss']:.4f})")
        if "search" in parts:
            data_file = tmp / "search.npz"
            np.savez(data_file, X=X[:10000], y=y[:10000])
            for which, label in (("local", "n_jobs=2, loky"),
                                 ("cluster", "2 workers x 1 thread")):
                res = run_search(which, data_file, args.memory_limit)
                rows.append(("search", label, f"{res['seconds']:.1f}", "", ""))
                print(f"search, {label}: best k {res['best_k']}, mean scores for k = "
                      f"{SEARCH_KS}: {res['scores']}")
    text = table(rows)
    print(text)
    if args.rst:
        Path(args.rst).write_text(text)


if __name__ == "__main__":
    main()
