"""
====================================================
Pretrain, then classify: k-sparse features vs pixels
====================================================

Fit a :class:`~skksae.KSparseAutoencoder` on the digits, encode with a wider support
(``transform_k_factor=3``, the paper's alpha) and train a logistic regression on the
codes; compare with logistic regression on the raw pixels.
"""

from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skksae import KSparseAutoencoder

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

pixels = LogisticRegression(C=10, max_iter=2000).fit(X_train, y_train)
ksparse = make_pipeline(
    KSparseAutoencoder(n_components=256, k=25, transform_k_factor=3, max_iter=30,
                       random_state=0),
    LogisticRegression(C=10, max_iter=2000),
).fit(X_train, y_train)

print(f"raw pixels      : test accuracy {pixels.score(X_test, y_test):.3f}")
print(f"k-sparse codes  : test accuracy {ksparse.score(X_test, y_test):.3f}")
print(f"dead hidden units: {ksparse[0].n_dead_units_} of {ksparse[0].n_components}")
