"""
===================================================
Few labels: 50 labelled digits, the rest unlabelled
===================================================

Pretraining pays where unlabelled rows are many and labels few. Here 50 of the 1,257
training digits keep their labels (5 per class) and the others are marked ``-1``,
scikit-learn's convention for an unlabelled row (:mod:`sklearn.semi_supervised`).
Three routes use the unlabelled rows, against ``LogisticRegression`` on the 50:

* frozen k-sparse codes (the autoencoder fitted on every row) under a
  ``LogisticRegression`` fitted on the 50 labelled codes;
* the codes under a semi-supervised estimator that reads the ``-1`` labels:
  ``LabelSpreading`` or ``SelfTrainingClassifier`` (the autoencoder ignores ``y``, so
  in a pipeline it pretrains on every row);
* :class:`~skksae.AutoencoderClassifier` given the ``-1`` labels directly: its
  autoencoders pretrain on every row; its output layer trains on the 50 labelled
  rows, then the whole network on those and on the unlabelled rows it classifies
  with confidence (pseudo-labels), as ``pseudo_label_threshold`` says.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

from skksae import AutoencoderClassifier, KSparseAutoencoder

warnings.simplefilter("ignore", ConvergenceWarning)
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
rng = np.random.RandomState(0)
labelled = np.concatenate([rng.choice(np.flatnonzero(y_train == c), 5, replace=False)
                           for c in range(10)])
y_semi = np.full_like(y_train, -1)
y_semi[labelled] = y_train[labelled]
print(f"{len(labelled)} labelled and {np.sum(y_semi == -1)} unlabelled training rows")

ae = KSparseAutoencoder(random_state=0).fit(X_train)  # every row: no label needed
codes_train, codes_test = ae.transform(X_train), ae.transform(X_test)
scores = {
    "LogisticRegression\non the 50": LogisticRegression(max_iter=3000).fit(
        X_train[labelled], y_train[labelled]).score(X_test, y_test),
    "frozen codes\n+ LogisticRegression": LogisticRegression(max_iter=3000).fit(
        codes_train[labelled], y_train[labelled]).score(codes_test, y_test),
    # in a pipeline the autoencoder ignores y: it pretrains on every row
    "codes +\nSelfTraining": make_pipeline(
        KSparseAutoencoder(random_state=0),
        SelfTrainingClassifier(LogisticRegression(max_iter=3000))).fit(
        X_train, y_semi).score(X_test, y_test),
    "codes +\nLabelSpreading": make_pipeline(
        KSparseAutoencoder(random_state=0),
        LabelSpreading(kernel="knn", n_neighbors=10)).fit(X_train, y_semi).score(
        X_test, y_test),
    "AutoencoderClassifier\n(y with -1)": AutoencoderClassifier(
        [KSparseAutoencoder(random_state=0)], random_state=0).fit(X_train, y_semi).score(
        X_test, y_test),
    "the same,\nno pseudo-labels": AutoencoderClassifier(
        [KSparseAutoencoder(random_state=0)], pseudo_label_threshold=None,
        random_state=0).fit(X_train, y_semi).score(X_test, y_test),
}
for name, score in scores.items():
    print(f"{name.replace(chr(10), ' '):40s} test accuracy {score:.3f}")

# %%
# With 50 labels, label spreading over the k-sparse codes wins on the digits: the
# codes place digits of one class near one another, and spreading the 50 labels over
# the unlabelled rows uses that. A linear model on the frozen codes, or the
# classifier without pseudo-labels, learns from the 50 alone and ends near
# ``LogisticRegression`` on the pixels; the pseudo-labels take the classifier above
# them. (On MNIST, with dropout, the pseudo-labelled classifier wins: see the
# reproduction page's few-labels table.)
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.bar(range(len(scores)), list(scores.values()), color="tab:blue")
ax.set_xticks(range(len(scores)), list(scores), fontsize=8)
ax.set_ylim(0.7, 1.0)
ax.set_ylabel("test accuracy")
ax.set_title("digits, 50 labelled training rows")
fig.tight_layout()
plt.show()
