"""skksae: k-sparse and denoising autoencoders as scikit-learn transformers."""

from ._denoising import DenoisingAutoencoder
from ._ksparse import KSparseAutoencoder

__all__ = ["DenoisingAutoencoder", "KSparseAutoencoder"]
__version__ = "0.1.0"
