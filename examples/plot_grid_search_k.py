"""
=================================
Choosing k with GridSearchCV
=================================

``k`` is an ordinary hyper-parameter: search it inside a pipeline, scored by the
classifier's accuracy with cross-validation.
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
search = GridSearchCV(pipe, {"ksparseautoencoder__k": [5, 10, 20, 40]}, cv=3, n_jobs=2)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X, y)
for k, score in zip(search.cv_results_["param_ksparseautoencoder__k"],
                    search.cv_results_["mean_test_score"]):
    print(f"k={k:3d}: cross-validated accuracy {score:.3f}")
print("best k:", search.best_params_["ksparseautoencoder__k"])
