"""
=====================================
Stacked autoencoders in a Pipeline
=====================================

Greedy layer-wise pretraining is two autoencoders in a pipeline: the second is fitted
on the (clean) codes of the first. Each layer centres its own input, so default
layers stack as they are, with no scaler in between.
"""

import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skksae import DenoisingAutoencoder, KSparseAutoencoder

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")

models = {
    "raw pixels": lambda seed: [],
    "k-sparse": lambda seed: [KSparseAutoencoder(random_state=seed)],
    "denoising": lambda seed: [DenoisingAutoencoder(random_state=seed)],
    "denoising + k-sparse": lambda seed: [DenoisingAutoencoder(random_state=seed),
                                          KSparseAutoencoder(random_state=seed)],
    "denoising + denoising": lambda seed: [DenoisingAutoencoder(random_state=seed),
                                           DenoisingAutoencoder(random_state=seed)],
}
with warnings.catch_warnings():
    # every layer runs its whole epoch budget (max_iter=50) on this small set
    warnings.simplefilter("ignore", ConvergenceWarning)
    for name, layers in models.items():
        scores = []
        for seed in range(3):
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=0.25, stratify=y, random_state=seed
            )
            model = make_pipeline(*layers(seed), LogisticRegression(max_iter=3000))
            scores.append(model.fit(X_train, y_train).score(X_test, y_test))
        print(f"{name:22s}: mean test accuracy over 3 splits {np.mean(scores):.3f}")
