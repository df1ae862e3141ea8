"""
============================================================
Pretrain, then fine-tune: the same network, three starts
============================================================

The papers' central claim: greedy layer-wise pretraining gives a deep network a better
start than random weights, and fine-tuning the whole network by backpropagation then
ends better. :class:`~skksae.AutoencoderClassifier` builds the network from a list of
autoencoders (one hidden layer each) under a softmax output layer; ``pretrain=False``
is the same architecture from random weights.

Here, on the digits, networks with one and with two hidden layers of top-k units
(k-sparse autoencoders) are trained three ways with the same budget: from random
weights, from the pretrained stack with every layer fine-tuned, and from the
pretrained stack with only the output layer trained (``fine_tune=False``, the frozen
features). The curves are the accuracy on a validation split after each epoch; the
legend gives the test accuracy of the epoch that validation picked.

On these 1,347 training images the pretrained network that is fine-tuned climbs
fastest in the first epochs, but the three end within about two points of one another
and no start wins at both depths (the printed lines below): a set this small gives
pretraining little to add, and every network fits its training images within a few
dozen epochs. On MNIST (``python -m skksae --dataset mnist --table fine-tune``) pretraining lowers
the test error of every network, one and two hidden layers, top-k and sigmoid units.
"""

import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skksae import AutoencoderClassifier, KSparseAutoencoder

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)


def stack(depth):
    return [KSparseAutoencoder(n_components=256, k=16, max_iter=50, random_state=i)
            for i in range(depth)]


fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
with warnings.catch_warnings():
    # the autoencoders run their whole epoch budget on this small set
    warnings.simplefilter("ignore", ConvergenceWarning)
    for ax, depth in zip(axes, (1, 2)):
        starts = (("random init", False, True, "--"),
                  ("pretrained, fine-tuned", True, True, "-"),
                  ("pretrained, output layer only", True, False, ":"))
        for name, pretrain, fine_tune, style in starts:
            clf = AutoencoderClassifier(
                stack(depth), pretrain=pretrain, fine_tune=fine_tune, max_iter=100,
                early_stopping=True, n_iter_no_change=100, random_state=0,
            )
            clf.fit(X_train, y_train)
            test = clf.score(X_test, y_test)
            print(f"{depth} hidden layer(s), {name}: best validation accuracy "
                  f"{clf.best_validation_score_:.3f}, test accuracy {test:.3f}")
            ax.plot(range(1, clf.n_iter_ + 1), clf.validation_scores_, style,
                    label=f"{name} (test {test:.3f})")
        ax.set_title(f"{depth} hidden layer(s) of 256 top-k units")
        ax.set_xlabel("fine-tuning epoch")
        ax.legend(loc="lower right")
axes[0].set_ylabel("validation accuracy")
axes[0].set_ylim(0.8, 1.0)
fig.tight_layout()
plt.show()
