"""
====================================================
Pretrain, then classify: k-sparse features vs pixels
====================================================

Fit a :class:`~skksae.KSparseAutoencoder` with its default parameters on the digits
and train a logistic regression on its codes; compare with logistic regression on the
raw pixels, over three train/test splits. The autoencoder centres the pixels itself
(``center=True``), so almost every hidden unit is used, and it encodes with three
times the training ``k`` (``transform_k_factor=3``, the paper's alpha).
"""

import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skksae import KSparseAutoencoder

X, y = load_digits(return_X_y=True)
X = X / 16.0

pixels, codes = [], []
for seed in range(3):
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=seed
    )
    raw = LogisticRegression(max_iter=3000).fit(X_train, y_train)
    ksparse = make_pipeline(
        KSparseAutoencoder(random_state=seed), LogisticRegression(max_iter=3000)
    )
    with warnings.catch_warnings():
        # the autoencoder runs its whole epoch budget (max_iter=50) on this small set
        warnings.simplefilter("ignore", ConvergenceWarning)
        ksparse.fit(X_train, y_train)
    pixels.append(raw.score(X_test, y_test))
    codes.append(ksparse.score(X_test, y_test))
    ae = ksparse[0]
    print(f"split {seed}: raw pixels {pixels[-1]:.3f}, k-sparse codes {codes[-1]:.3f} "
          f"({ae.n_dead_units_} dead units of {ae.n_components})")

print(f"mean test accuracy: raw pixels {np.mean(pixels):.3f}, "
      f"k-sparse codes {np.mean(codes):.3f}")
