"""ONNX export on MNIST: agreement of every export, inference speed and start-up.

1. Agreement: each export of ``skksae.onnx`` (the two autoencoders' ``transform`` in
   their variants, the classifier, the pipelines) trained on MNIST's training set
   (``--epochs`` each, fewer than the papers' runs: agreement does not depend on
   them), then onnxruntime against the estimator on the 10,000 test images: the
   largest code / probability difference, the fraction of rows with the same top-k
   support and of equal labels.
2. Speed: the main job's k-sparse pipeline (``KSparseAutoencoder(1000, k=25,
   transform_k_factor=3, sparse_output=True)``, ``MaxAbsScaler``,
   ``LogisticRegression``) predicting the 10,000 test images: ``predict`` in one
   process, onnxruntime in another, each on ``--threads`` threads (Numba and BLAS;
   onnxruntime's intra-op threads), median of ``--repeat`` runs after one warm-up.
3. Start-up of a serving process: a new process that imports, loads the saved model
   (joblib for skksae, with Numba's cache warm; the ``.onnx`` file for onnxruntime)
   and predicts one row; the median of ``--repeat`` processes.

    python benchmarks/bench_onnx.py [--epochs 3] [--threads 2] [--repeat 5]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

SERVE = r"""
import json, os, sys, time
t0 = time.perf_counter()
kind, path, data = sys.argv[1:4]
threads, repeat = int(sys.argv[4]), int(sys.argv[5])
import numpy as np
X = np.load(data)
if kind == "skksae":
    import joblib
    model = joblib.load(path)
    predict = model.predict
else:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    predict = lambda rows: session.run(None, {name: rows})[0]
predict(X[:1])
startup = time.perf_counter() - t0
times = []
if repeat:
    predict(X)
    for _ in range(repeat):
        t1 = time.perf_counter()
        predict(X)
        times.append(time.perf_counter() - t1)
print(json.dumps({"startup": startup, "times": times}))
"""


def load(data_home):
    from skksae.datasets import load_mnist

    X_train, X_test, y_train, y_test = load_mnist(data_home, return_X_y=True,
                                                  download_if_missing=False)
    return (np.ascontiguousarray(X_train, np.float32), np.ascontiguousarray(X_test, np.float32),
            y_train, y_test)


def agreement(X_train, X_test, y_train, epochs):
    """One line per export: what onnxruntime gives against the estimator."""
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler

    import skksae.onnx  # noqa: F401
    from skksae import AutoencoderClassifier, DenoisingAutoencoder, KSparseAutoencoder

    def run(model, options=None):
        onx = to_onnx(model, X_test[:1], options=options)
        session = ort.InferenceSession(onx.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: X_test})

    ks = dict(n_components=1000, k=25, max_iter=epochs, solver="sgd", learning_rate=0.01,
              random_state=0)
    autoencoders = {
        "KSparseAutoencoder (1000, k=25, alpha=3)": KSparseAutoencoder(**ks),
        "KSparseAutoencoder relu, alpha=1, sparse_output": KSparseAutoencoder(
            **ks, activation="relu", transform_k_factor=1, sparse_output=True),
        "KSparseAutoencoder batch_topk": KSparseAutoencoder(**ks, activation="relu",
                                                            batch_topk=True),
        "DenoisingAutoencoder (1000, relu)": DenoisingAutoencoder(1000, max_iter=epochs,
                                                                  random_state=0),
        "DenoisingAutoencoder sigmoid, k=50": DenoisingAutoencoder(
            1000, activation="sigmoid", loss="cross_entropy", k=50, max_iter=epochs,
            random_state=0),
    }
    for name, model in autoencoders.items():
        model.fit(X_train)
        codes = run(model)[0]
        ref = model.transform(X_test)
        ref = ref.toarray() if hasattr(ref, "toarray") else ref
        same = np.all((codes != 0) == (ref != 0), axis=1)
        line = (f"  {name}: largest code difference {np.abs(codes - ref).max():.2e} "
                f"(codes up to {np.abs(ref).max():.2f}), rows with the same support "
                f"{same.mean():.4f}")
        if not same.all():
            # how close the last kept and the first dropped activation were there
            layer = model._encoder_layer(np.float64)
            z = -np.sort(-(X_test[~same].astype(np.float64) @ layer.W.T + layer.b), axis=1)
            gaps = z[:, layer.k - 1] - z[:, layer.k]
            line += f"; where it differs, k-th minus next activation {gaps.max():.1e}"
        print(line, flush=True)
    classifiers = {
        "AutoencoderClassifier (KSparse 1000, k=25)": AutoencoderClassifier(
            [KSparseAutoencoder(**ks)], max_iter=epochs, random_state=0),
        "AutoencoderClassifier (Denoising 500 + KSparse 500)": AutoencoderClassifier(
            [DenoisingAutoencoder(500, activation="sigmoid", max_iter=epochs),
             KSparseAutoencoder(500, k=25, max_iter=epochs)], max_iter=epochs,
            random_state=0),
        "make_pipeline(KSparse, LogisticRegression)": make_pipeline(
            KSparseAutoencoder(**ks), LogisticRegression(max_iter=100)),
        "make_pipeline(Denoising, KSparse, LogisticRegression)": make_pipeline(
            DenoisingAutoencoder(500, max_iter=epochs, random_state=0),
            KSparseAutoencoder(**dict(ks, n_components=500)), LogisticRegression(max_iter=100)),
        "the main job's pipeline (KSparse, MaxAbsScaler, LogisticRegression)": make_pipeline(
            KSparseAutoencoder(**ks, sparse_output=True), MaxAbsScaler(),
            LogisticRegression(max_iter=100)),
    }
    for name, model in classifiers.items():
        model.fit(X_train, y_train)
        labels, proba = run(model, {"zipmap": False})
        print(f"  {name}: labels equal {np.mean(labels == model.predict(X_test)):.4f}, "
              f"largest probability difference "
              f"{np.abs(proba - model.predict_proba(X_test)).max():.2e}", flush=True)
    return classifiers["the main job's pipeline (KSparse, MaxAbsScaler, LogisticRegression)"]


def serve(kind, path, data, threads, repeat):
    env = dict(os.environ)
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS"):
        env[var] = str(threads)
    out = subprocess.run([sys.executable, "-c", SERVE, kind, str(path), str(data),
                          str(threads), str(repeat)], env=env, capture_output=True,
                         text=True)
    if out.returncode:
        sys.exit(f"{kind} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-home", default=str(Path(__file__).resolve().parents[2] / "shared"
                                              / "data" / "mnist"))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    import joblib
    from skl2onnx import to_onnx
    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    try:
        X_train, X_test, y_train, _ = load(args.data_home)
    except (OSError, ValueError) as exc:
        sys.exit(f"MNIST not found ({exc})")
    print(f"MNIST: {len(X_train)} training, {len(X_test)} test images; {args.epochs} "
          f"epochs per model; {args.threads} threads")
    print("1. agreement on the test set, onnxruntime against the estimator:")
    pipe = agreement(X_train, X_test, y_train, args.epochs)
    folder = Path(tempfile.mkdtemp())
    joblib.dump(pipe, folder / "pipeline.joblib")
    (folder / "pipeline.onnx").write_bytes(
        to_onnx(pipe, X_test[:1], options={"zipmap": False}).SerializeToString())
    np.save(folder / "X_test.npy", X_test)
    print(f"2. the main job's pipeline predicting {len(X_test)} rows, each contender in "
          f"its own process on {args.threads} threads (median of {args.repeat}):")
    runs = {kind: serve(kind, folder / f"pipeline.{ext}", folder / "X_test.npy",
                        args.threads, args.repeat)
            for kind, ext in (("skksae", "joblib"), ("onnxruntime", "onnx"))}
    med = {kind: float(np.median(r["times"])) for kind, r in runs.items()}
    print(f"  predict {med['skksae']:.3f} s, onnxruntime {med['onnxruntime']:.3f} s "
          f"(onnxruntime / predict = {med['onnxruntime'] / med['skksae']:.2f})")
    print(f"3. start-up of a serving process (import, load, predict one row; median of "
          f"{args.repeat} processes):")
    starts = {kind: float(np.median([serve(kind, folder / f"pipeline.{ext}",
                                           folder / "X_test.npy", args.threads, 0)["startup"]
                                     for _ in range(args.repeat)]))
              for kind, ext in (("skksae", "joblib"), ("onnxruntime", "onnx"))}
    print(f"  skksae (joblib, warm Numba cache) {starts['skksae']:.2f} s, onnxruntime "
          f"{starts['onnxruntime']:.2f} s")
    print(f"(the models and the test rows are in {folder})")


if __name__ == "__main__":
    main()
