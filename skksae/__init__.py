"""skksae: k-sparse and denoising autoencoders as scikit-learn transformers."""

from ._ksparse import KSparseAutoencoder

__all__ = ["KSparseAutoencoder"]
__version__ = "0.1.0"
