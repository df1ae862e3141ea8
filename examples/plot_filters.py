"""
=============================================
Learned filters for different k
=============================================

Filters of :class:`~skksae.KSparseAutoencoder` models with 64 units on the 8x8 digits,
the most used units first, drawn with :func:`skksae.plot_filters`. With k close to the
number of units (40 of 64) the code is hardly sparse and the filters stay noise-like;
as k shrinks each unit must explain more of an image on its own and the filters become
digit-like templates. The paper's local stroke detectors at large k need MNIST's
28x28 images and 1000 units: ``python -m skksae --dataset mnist --out DIR`` draws that
figure, with the spatial extent of the filters (:func:`skksae.filter_extent`) for
each k.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skksae import KSparseAutoencoder, plot_filters

X, _ = load_digits(return_X_y=True)
X = X / 16.0

fig, axes = plt.subplots(1, 4, figsize=(12, 3.6))
with warnings.catch_warnings():
    # each model runs its whole epoch budget
    warnings.simplefilter("ignore", ConvergenceWarning)
    for ax, k in zip(axes, [40, 20, 10, 3]):
        ae = KSparseAutoencoder(n_components=64, k=k, transform_k_factor=1, max_iter=100,
                                random_state=0).fit(X)
        used = (ae.transform(X) != 0).sum(axis=0)
        plot_filters(ae.components_[np.argsort(-used, kind="stable")], image_shape=(8, 8),
                     n_filters=64, ax=ax)
        ax.set_title(f"k = {k}")
fig.tight_layout()
plt.show()
