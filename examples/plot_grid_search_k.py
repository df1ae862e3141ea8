"""
=================================
Choosing k with GridSearchCV
=================================

``k`` is an ordinary hyper-parameter: search it inside a pipeline, scored by the
classifier's accuracy with cross-validation, together with ``transform_k_factor``
(the paper's alpha: how many units, as a multiple of k, are kept when encoding). This is
the k-sparse paper's k sweep with its alpha search, as a user would write it.
"""

import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skksae import KSparseAutoencoder

X, y = load_digits(return_X_y=True)
X = X / 16.0

pipe = make_pipeline(
    KSparseAutoencoder(n_components=128, max_iter=15, random_state=0),
    LogisticRegression(max_iter=1000),
)
grid = {"ksparseautoencoder__k": [5, 10, 20, 40],
        "ksparseautoencoder__transform_k_factor": [1, 3]}
search = GridSearchCV(pipe, grid, cv=3, n_jobs=2)
with warnings.catch_warnings():
    # a fixed budget of 15 epochs: the autoencoders stop before they converge
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X, y)
results = search.cv_results_
for k, alpha, score in zip(results["param_ksparseautoencoder__k"],
                           results["param_ksparseautoencoder__transform_k_factor"],
                           results["mean_test_score"]):
    print(f"k={k:3d}, alpha={alpha}: cross-validated accuracy {score:.3f}")
best = search.best_params_
print(f"best: k={best['ksparseautoencoder__k']}, "
      f"alpha={best['ksparseautoencoder__transform_k_factor']}")
