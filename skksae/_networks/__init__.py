"""The two networks the estimators train: one autoencoder layer
(:class:`AutoencoderNet`) and the fine-tuning stack (:class:`StackNet`).

Both hold an architecture and no learned state; both are trained by the one epoch
loop of :mod:`skksae._training` through the same two methods, ``batches`` (start an
epoch, gather a batch) and ``train_batch`` (loss, gradients and the optimizer's
step).
"""

from ._autoencoder import AutoencoderNet
from ._common import copy_state, init_params, n_weights
from ._stack import StackNet

__all__ = ["AutoencoderNet", "StackNet", "copy_state", "init_params", "n_weights"]
