"""
=====================================
Stacked autoencoders in a Pipeline
=====================================

Greedy layer-wise pretraining is two autoencoders in a pipeline: the second is fitted
on the (clean) codes of the first. Here a k-sparse layer with sparse CSR output feeds a
denoising layer, followed by logistic regression.
"""

import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skksae import DenoisingAutoencoder, KSparseAutoencoder

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

one_layer = make_pipeline(
    DenoisingAutoencoder(n_components=256, max_iter=30, learning_rate=0.01,
                         random_state=0),
    LogisticRegression(C=10, max_iter=2000),
)
two_layers = make_pipeline(
    KSparseAutoencoder(n_components=256, k=25, transform_k_factor=2, max_iter=30,
                       sparse_output=True, random_state=0),
    DenoisingAutoencoder(n_components=128, max_iter=30, learning_rate=0.01,
                         random_state=0),
    LogisticRegression(C=10, max_iter=2000),
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    for name, model in [("one DAE layer", one_layer), ("k-sparse + DAE", two_layers)]:
        model.fit(X_train, y_train)
        print(f"{name:15s}: test accuracy {model.score(X_test, y_test):.3f}")
