"""
==========================================================
A top-k sparse autoencoder on a planted dictionary
==========================================================

The k-sparse autoencoder is the "TopK SAE" of recent interpretability work, with a few
options of its own: ReLU after the top-k, an untied decoder whose rows stay at unit
norm (``normalize_decoder``), an auxiliary loss that trains dead units on what the
live ones miss (``aux_coef``, AuxK) and a top-k over the whole batch with a threshold
kept for encoding (``batch_topk``, BatchTopK).

The data here is built in the script: each sample is a positive combination of 8 of
256 random unit atoms in 64 dimensions, plus a little noise. A dictionary that
explains the data well holds the atoms, so we can count how many a model found (a
decoder row within ``|cos| >= 0.9`` of an atom) beside the numbers users report:
the fraction of variance unexplained (FVU), the mean number of active units (L0)
and the fraction of units that never fire (dead). The dictionary has four times as
many units as there are atoms, as wide dictionaries do, so that units die.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skksae import KSparseAutoencoder

rng = np.random.default_rng(0)
n_atoms, dim, k = 256, 64, 8
atoms = rng.standard_normal((n_atoms, dim))
atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
support = np.array([rng.choice(n_atoms, k, replace=False) for _ in range(6000)])
weights = rng.uniform(0.5, 1.5, support.shape)
X = np.einsum("ij,ijd->id", weights, atoms[support]).astype(np.float32)
X += 0.01 * rng.standard_normal(X.shape).astype(np.float32)
X_train, X_test = X[:5000], X[5000:]


def found(model):
    """Fraction of the atoms with a decoder row at |cos| >= 0.9."""
    D = model.decoder_components_
    D = D / np.linalg.norm(D, axis=1, keepdims=True)
    return np.mean(np.abs(atoms @ D.T).max(axis=1) >= 0.9)


common = dict(n_components=4 * n_atoms, k=k, k_start=None, activation="relu",
              tied_weights=False, normalize_decoder=True, learning_rate=1e-2,
              max_iter=30, tol=0.0, n_iter_no_change=30, dead_window=1000, random_state=0)
models = {
    "top-k": KSparseAutoencoder(**common),
    "top-k + AuxK": KSparseAutoencoder(aux_coef=1 / 32, **common),
    "BatchTopK + AuxK": KSparseAutoencoder(aux_coef=1 / 32, batch_topk=True, **common),
}
print("model              atoms found  FVU (test)  L0 (test)  dead (test)")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed budget of epochs
    for name, model in models.items():
        model.fit(X_train)
        m = model.reconstruction_metrics(X_test)
        print(f"{name:<18} {found(model):11.2f}  {m['fvu']:10.3f}  {m['l0']:9.1f}  "
              f"{m['dead_fraction']:11.2f}")

# %%
# Every model finds most of the atoms. The auxiliary loss trains units that have not
# fired for ``dead_window`` samples on what the live ones miss, and brings some back;
# the batch-level top-k lets the samples that need more units take them, and leaves
# fewer units dead still. In this short budget neither lowers the error: the units
# they revive are still learning when training stops.

# %%
# The training loss of each model (with AuxK it includes the auxiliary term) and the
# sizes of the batch top-k codes: the number of units each test sample keeps above
# the learned threshold varies around k.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for name, model in models.items():
    axes[0].plot(model.loss_curve_, label=name)
axes[0].set(xlabel="epoch", ylabel="training loss", yscale="log")
axes[0].legend()
codes = models["BatchTopK + AuxK"].transform(X_test)
axes[1].hist((codes != 0).sum(axis=1), bins=np.arange(0, 3 * k) - 0.5)
axes[1].axvline(k, color="k", linestyle="--", label=f"k = {k}")
axes[1].set(xlabel="units kept per test sample (BatchTopK)", ylabel="samples")
axes[1].legend()
fig.tight_layout()
plt.show()
