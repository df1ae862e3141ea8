"""skksae: k-sparse and denoising autoencoders as scikit-learn transformers."""

from ._classifier import AutoencoderClassifier
from ._denoising import DenoisingAutoencoder
from ._ksparse import KSparseAutoencoder
from ._plotting import filter_extent, filter_mosaic, plot_filters
from ._precompile import precompile

__all__ = [
    "AutoencoderClassifier",
    "DenoisingAutoencoder",
    "KSparseAutoencoder",
    "filter_extent",
    "filter_mosaic",
    "plot_filters",
    "precompile",
]
__version__ = "0.1.0"
