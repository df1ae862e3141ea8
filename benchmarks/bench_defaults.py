"""The defaults panel: what a user gets from the autoencoders as they come.

For each dataset, logistic regression on the raw input against
``make_pipeline(<autoencoder with its defaults>, LogisticRegression())`` and against
two-layer stacks of default autoencoders (no scaler between the layers):

- ``digits`` (``load_digits() / 16``, 75/25 stratified splits, mean over 3 splits),
- ``cancer`` (``load_breast_cancer``, standardised, the same 3 splits),
- ``tfidf`` (TF-IDF of 2,000 bag-of-words documents drawn from 8 topics by
  ``make_multilabel_classification``, one topic each; a sparse CSR input),
- ``mnist`` and ``fashion-mnist`` (the first 10,000 training images, the 10,000 test
  images; skipped when the data is not found).

Only ``random_state`` is set on the autoencoders; the classifier is
``LogisticRegression(max_iter=3000)`` everywhere.  Prints one Markdown table per
dataset (accuracy, mean autoencoder fit seconds, dead units) and the thread count.

    python benchmarks/bench_defaults.py [--datasets digits,cancer,tfidf,mnist,fashion-mnist]
        [--data-home ../shared/data]
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numba import get_num_threads
from sklearn.datasets import load_breast_cancer, load_digits, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info

from skksae import DenoisingAutoencoder, KSparseAutoencoder

KS, DAE = KSparseAutoencoder, DenoisingAutoencoder
PIPELINES = {
    "raw input": [],
    "KSparseAutoencoder()": [KS],
    "DenoisingAutoencoder()": [DAE],
    "DenoisingAutoencoder() + KSparseAutoencoder()": [DAE, KS],
    "KSparseAutoencoder() + KSparseAutoencoder()": [KS, KS],
    "DenoisingAutoencoder() + DenoisingAutoencoder()": [DAE, DAE],
}


def split_datasets(name, data_home):
    """A list of (X_train, X_test, y_train, y_test), or None if the data is missing."""
    if name in ("mnist", "fashion-mnist"):
        from skksae.datasets import load_fashion_mnist, load_mnist

        loader = load_mnist if name == "mnist" else load_fashion_mnist
        try:
            X_train, X_test, y_train, y_test = loader(data_home, return_X_y=True)
        except (OSError, ValueError) as exc:
            print(f"{name}: skipped ({str(exc).splitlines()[0]})")
            return None
        return [(X_train[:10000], X_test, y_train[:10000], y_test)]
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(np.float32)
    elif name == "cancer":
        X, y = load_breast_cancer(return_X_y=True)
    elif name == "tfidf":
        counts, Y = make_multilabel_classification(
            n_samples=2000, n_features=1000, n_classes=8, n_labels=1, length=60,
            allow_unlabeled=False, random_state=0,
        )
        X, y = TfidfTransformer().fit_transform(sp.csr_matrix(counts)), Y.argmax(axis=1)
    splits = [train_test_split(X, y, test_size=0.25, stratify=y, random_state=s)
              for s in range(3)]
    if name == "cancer":  # standardised on each training split
        splits = [(sc.transform(a), sc.transform(b), c, d)
                  for a, b, c, d in splits for sc in [StandardScaler().fit(a)]]
    return splits


def run(name, splits):
    print(f"\n### {name}: {splits[0][0].shape[0]} training / {splits[0][1].shape[0]} test "
          f"samples, {splits[0][0].shape[1]} features, {len(splits)} split(s)\n")
    print("| pipeline (+ LogisticRegression) | accuracy | autoencoder fit (s) | dead units |")
    print("|---|---|---|---|")
    for label, layers in PIPELINES.items():
        accs, fit_s, dead = [], [], None
        for seed, (X_train, X_test, y_train, y_test) in enumerate(splits):
            aes = [cls(random_state=seed) for cls in layers]
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                F_train, F_test = X_train, X_test
                for ae in aes:
                    F_train = ae.fit_transform(F_train)
                    F_test = ae.transform(F_test)
            fit_s.append(time.perf_counter() - t0)
            clf = LogisticRegression(max_iter=3000).fit(F_train, y_train)
            accs.append(clf.score(F_test, y_test))
            dead = [ae.n_dead_units_ for ae in aes]
        fit = f"{np.mean(fit_s):.1f}" if layers else "-"
        dead = ", ".join(map(str, dead)) if layers else "-"
        per_split = " / ".join(f"{a:.3f}" for a in accs) if len(accs) > 1 else ""
        acc = f"{np.mean(accs):.4f}" + (f" ({per_split})" if per_split else "")
        print(f"| {label} | {acc} | {fit} | {dead} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,cancer,tfidf,mnist,fashion-mnist")
    parser.add_argument("--data-home", default=str(Path(__file__).parents[2] / "shared/data"))
    args = parser.parse_args()
    blas = ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info())
    print(f"threads: Numba {get_num_threads()}; BLAS {blas} (single-threaded inside the "
          "autoencoders' kernels)")
    for name in args.datasets.split(","):
        splits = split_datasets(name, args.data_home)
        if splits is not None:
            run(name, splits)


if __name__ == "__main__":
    main()
