"""Scaling out on Dask: a search, streaming training and blockwise encoding.

Not part of the gallery (it starts a cluster); run it as a script, with the dask extra
installed (``pip install "skksae[dask]"``)::

    python examples/scaling_out_dask.py                       # a LocalCluster on this machine
    python examples/scaling_out_dask.py tcp://scheduler:8786  # a running cluster

The same code runs on both: only the ``Client`` changes.  Pointed at a remote
scheduler, the workers need skksae installed (the same version) and read nothing from
this machine: the data travel in the task graph, as here, or are read by the workers
from storage they share.
"""

import copy
import sys
import warnings

import dask
import dask.array as da
import joblib
import numpy as np
from dask_ml.wrappers import Incremental
from distributed import Client, LocalCluster
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skksae import KSparseAutoencoder


def encode(block, model):
    return model.transform(block)


def main(address=None):
    if address is None:
        # two worker processes of one thread each: on a two-core machine, the kernels
        # of each worker run on one Numba thread (skksae caps them at the worker's
        # thread count) and BLAS on one (the nanny sets OMP/OPENBLAS/MKL_NUM_THREADS)
        # (the dashboard on any free port: 8787 may be taken by another cluster)
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
        client = Client(cluster)
    else:
        cluster, client = None, Client(address)
    print(f"workers: {len(client.scheduler_info()['workers'])}")

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)

    # 1. A search: scikit-learn's own GridSearchCV, its fits sent to the workers by
    #    joblib's dask backend.
    pipe = make_pipeline(KSparseAutoencoder(n_components=128, max_iter=30, random_state=0),
                         LogisticRegression(max_iter=2000))
    search = GridSearchCV(pipe, {"ksparseautoencoder__k": [5, 10, 20]}, cv=3)
    with joblib.parallel_config(backend="dask"), warnings.catch_warnings():
        # each autoencoder runs its whole epoch budget (max_iter=30) on this small set;
        # scikit-learn carries this filter to the workers with the fits
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    print(f"search: best k = {search.best_params_['ksparseautoencoder__k']}, "
          f"accuracy {search.best_score_:.3f}")

    # 2. Streaming training: one partial_fit per block of a chunked dask array, in
    #    block order; each pass of Incremental.fit is one epoch over the blocks.
    dX = da.from_array(X, chunks=(300, X.shape[1]))
    inc = Incremental(KSparseAutoencoder(n_components=128, k=10, random_state=0),
                      shuffle_blocks=False)
    for _ in range(5):
        inc.partial_fit(dX)
    model = inc.estimator_
    print(f"streaming: {model.n_iter_} partial_fit calls, last loss "
          f"{model.loss_curve_[-1]:.4f}")

    # 3. Blockwise encoding: the fitted model enters the graph once (dask.delayed), is
    #    pickled to each worker that needs it, and every block's task uses that copy.
    #    (map_blocks(model.transform) would pickle the model into every task: 9 MB per
    #    block for a 1000-unit model.)  Give the codes' chunks and meta: dask-ml's
    #    ParallelPostFit.transform computes the same codes but keeps the input's column
    #    chunks in the dask array's shape.
    shared = dask.delayed(model)
    codes = dX.map_blocks(encode, shared, chunks=(dX.chunks[0], (model.n_components,)),
                          meta=np.empty((0, model.n_components), dtype=np.float32))
    active = (codes != 0).sum(axis=1).mean().compute()
    print(f"encoding: codes of shape {codes.shape}, {active:.1f} nonzeros per row")
    sparse = copy.deepcopy(model).set_params(sparse_output=True)
    csr_codes = dX.map_blocks(encode, dask.delayed(sparse), chunks=codes.chunks,
                              meta=sparse.transform(X[:1])[:0])
    csr = csr_codes.compute()
    print(f"sparse encoding: a {type(csr).__name__} of shape {csr.shape}, {csr.nnz} nonzeros")

    client.close()
    if cluster is not None:
        cluster.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
