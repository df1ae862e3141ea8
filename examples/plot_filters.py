"""
=============================================
Learned filters for different k
=============================================

The paper's figure: with a large k the filters are local strokes; as k shrinks they
become more global, closer to whole digits. Drawn with :func:`skksae.plot_filters`.
"""

import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skksae import KSparseAutoencoder, plot_filters

X, _ = load_digits(return_X_y=True)
X = X / 16.0

fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    for ax, k in zip(axes, [40, 20, 10, 3]):
        ae = KSparseAutoencoder(n_components=64, k=k, max_iter=30, random_state=0).fit(X)
        plot_filters(ae, image_shape=(8, 8), n_filters=64, ax=ax)
        ax.set_title(f"k = {k}")
fig.tight_layout()
plt.show()
